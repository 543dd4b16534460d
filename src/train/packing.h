// Packing of tokenized documents into fixed-length training sequences, as the
// RoPE++ authors train: documents shorter than a minimum length are skipped,
// the rest are concatenated (in a shuffled order for training) and cut into
// sequences of seq_len tokens. Positions restart at 0 at each document start
// (and at each sequence start, for a document continued from the previous
// sequence), and segment ids keep attention inside each document.
//
// Sequence i of an epoch covers tokens [i * seq_len, (i + 1) * seq_len] of the
// concatenated stream: seq_len inputs and their next tokens as targets. A
// target in another document than its input is not scored (-1).
#pragma once

#include <cstdint>
#include <vector>

#include "train/token_cache.h"
#include "train/train_model.h"

namespace ropepp::train {

struct PackingOptions {
  int64_t seq_len = 4096;
  int64_t min_document_tokens = 512;  // shorter documents are skipped
  double validation_fraction = 0.01;  // share of documents held out, chosen by a hash of the seed and index
  uint64_t seed = 0;                  // drives the document order of each epoch and the validation split
};

enum class Split { kTrain, kValidation };

class PackedDataset {
 public:
  // Throws ropepp::Error when no document is long enough or the split leaves
  // no training sequence.
  PackedDataset(const TokenCache& cache, const PackingOptions& options);

  const PackingOptions& options() const { return options_; }
  int64_t n_documents(Split split) const;
  int64_t n_tokens(Split split) const;
  int64_t n_skipped_documents() const { return n_skipped_; }

  // Whole sequences in one pass over the split.
  int64_t sequences_per_epoch(Split split) const;

  // Fills row `row` of batch (already sized for seq_len) with training
  // sequence number `index` counted from the start of training: epoch
  // index / sequences_per_epoch, each epoch in its own shuffled order. The
  // validation split is never shuffled and `index` wraps around it.
  void fill(Split split, int64_t index, TokenBatch& batch, int64_t row);

  // Allocates a batch of n_sequences rows of seq_len tokens.
  TokenBatch make_batch(int64_t n_sequences) const;

 private:
  void prepare_epoch(int64_t epoch);

  const TokenCache& cache_;
  PackingOptions options_;
  std::vector<int64_t> train_documents_, validation_documents_;
  int64_t n_skipped_ = 0;
  int64_t train_tokens_ = 0, validation_tokens_ = 0;

  // Document order and prefix sums of the current training epoch.
  int64_t epoch_ = -1;
  std::vector<int64_t> epoch_order_;
  std::vector<int64_t> epoch_starts_;  // stream offset of each document of epoch_order_, plus the total
  std::vector<int64_t> validation_starts_;
};

}  // namespace ropepp::train
