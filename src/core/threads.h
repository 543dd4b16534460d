// Thread-count control. ropepp owns its threads through OpenMP; the OpenMP
// build of OpenBLAS shares the same pool and runs one-threaded when called from
// inside a parallel region.
#pragma once

namespace ropepp {

// Number of threads parallel regions use (OMP_NUM_THREADS or the core count).
int num_threads();

// Sets the thread count for ropepp and for OpenBLAS. 0 keeps the default.
void set_num_threads(int threads);

}  // namespace ropepp
