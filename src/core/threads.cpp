#include "core/threads.h"

#include <omp.h>

extern "C" void openblas_set_num_threads(int);

namespace ropepp {

int num_threads() { return omp_get_max_threads(); }

void set_num_threads(int threads) {
  if (threads <= 0) return;
  omp_set_num_threads(threads);
  openblas_set_num_threads(threads);
}

}  // namespace ropepp
