#include "train/packing.h"

#include <algorithm>

#include "core/error.h"
#include "core/rng.h"

namespace ropepp::train {
namespace {

constexpr uint64_t kValidationStream = 0x76616c6964;  // "valid"
constexpr uint64_t kShuffleStream = 0x73687566;       // "shuf"

std::vector<int64_t> prefix_starts(const TokenCache& cache, const std::vector<int64_t>& documents) {
  std::vector<int64_t> starts(documents.size() + 1, 0);
  for (size_t i = 0; i < documents.size(); ++i) starts[i + 1] = starts[i] + cache.document_length(documents[i]);
  return starts;
}

}  // namespace

PackedDataset::PackedDataset(const TokenCache& cache, const PackingOptions& options)
    : cache_(cache), options_(options) {
  ROPEPP_CHECK(options.seq_len >= 2, "invalid sequence length {}: expected >= 2", options.seq_len);
  ROPEPP_CHECK(options.min_document_tokens >= 1, "invalid minimum document length {}: expected >= 1",
               options.min_document_tokens);
  ROPEPP_CHECK(options.validation_fraction >= 0 && options.validation_fraction < 1,
               "invalid validation fraction {}: expected 0 <= fraction < 1", options.validation_fraction);

  std::vector<int64_t> eligible;
  for (int64_t d = 0; d < cache.n_documents(); ++d) {
    if (cache.document_length(d) >= options.min_document_tokens) {
      eligible.push_back(d);
    } else {
      ++n_skipped_;
    }
  }
  ROPEPP_CHECK(!eligible.empty(),
               "none of the {} documents in {} has at least {} tokens: lower the minimum document length",
               cache.n_documents(), cache.directory().string(), options.min_document_tokens);

  // Each document is held out independently with probability validation_fraction;
  // with a non-zero fraction at least one document is, the one of smallest hash.
  int64_t smallest = -1;
  uint64_t smallest_hash = ~uint64_t{0};
  for (int64_t d : eligible) {
    const uint64_t hash = hash_counter(options.seed, kValidationStream, static_cast<uint64_t>(d));
    if (options.validation_fraction > 0 && uniform_open(hash) < options.validation_fraction) {
      validation_documents_.push_back(d);
    } else {
      train_documents_.push_back(d);
    }
    if (hash < smallest_hash) {
      smallest_hash = hash;
      smallest = d;
    }
  }
  if (options.validation_fraction > 0 && validation_documents_.empty() && train_documents_.size() > 1) {
    validation_documents_.push_back(smallest);
    train_documents_.erase(std::find(train_documents_.begin(), train_documents_.end(), smallest));
  }
  for (int64_t d : train_documents_) train_tokens_ += cache.document_length(d);
  for (int64_t d : validation_documents_) validation_tokens_ += cache.document_length(d);
  validation_starts_ = prefix_starts(cache, validation_documents_);
  ROPEPP_CHECK(sequences_per_epoch(Split::kTrain) > 0,
               "the training split has {} tokens, fewer than one sequence of {} + 1: add data or shorten the sequences",
               train_tokens_, options.seq_len);
}

int64_t PackedDataset::n_documents(Split split) const {
  return static_cast<int64_t>(split == Split::kTrain ? train_documents_.size() : validation_documents_.size());
}

int64_t PackedDataset::n_tokens(Split split) const {
  return split == Split::kTrain ? train_tokens_ : validation_tokens_;
}

int64_t PackedDataset::sequences_per_epoch(Split split) const {
  const int64_t tokens = n_tokens(split);
  return tokens > options_.seq_len ? (tokens - 1) / options_.seq_len : 0;
}

void PackedDataset::prepare_epoch(int64_t epoch) {
  if (epoch == epoch_) return;
  epoch_ = epoch;
  // Fisher-Yates with a generator seeded by (seed, epoch): the order depends
  // on nothing else, so a resumed run reads the same sequences.
  epoch_order_ = train_documents_;
  Rng rng(hash_counter(options_.seed, kShuffleStream, static_cast<uint64_t>(epoch)));
  for (size_t i = epoch_order_.size(); i > 1; --i) std::swap(epoch_order_[i - 1], epoch_order_[rng.below(i)]);
  epoch_starts_ = prefix_starts(cache_, epoch_order_);
}

TokenBatch PackedDataset::make_batch(int64_t n_sequences) const {
  TokenBatch batch;
  batch.n_sequences = n_sequences;
  batch.seq_len = options_.seq_len;
  const auto n = static_cast<size_t>(n_sequences * options_.seq_len);
  batch.tokens.resize(n);
  batch.targets.resize(n);
  batch.positions.resize(n);
  batch.segments.resize(n);
  return batch;
}

void PackedDataset::fill(Split split, int64_t index, TokenBatch& batch, int64_t row) {
  const int64_t per_epoch = sequences_per_epoch(split);
  ROPEPP_CHECK(per_epoch > 0, "the validation split has fewer than {} tokens: raise the validation fraction",
               options_.seq_len + 1);
  const std::vector<int64_t>* order = &validation_documents_;
  const std::vector<int64_t>* starts = &validation_starts_;
  if (split == Split::kTrain) {
    prepare_epoch(index / per_epoch);
    order = &epoch_order_;
    starts = &epoch_starts_;
  }
  const int64_t seq_len = options_.seq_len;
  const int64_t begin = (index % per_epoch) * seq_len;

  // Document containing stream offset `begin`.
  size_t doc = static_cast<size_t>(std::upper_bound(starts->begin(), starts->end(), begin) - starts->begin() - 1);
  int64_t offset = begin - (*starts)[doc];
  std::span<const int32_t> tokens = cache_.document((*order)[doc]);
  int32_t segment = 0, position = 0;
  const int64_t base = row * seq_len;
  for (int64_t t = 0; t < seq_len; ++t) {
    if (offset == static_cast<int64_t>(tokens.size())) {
      ++doc;
      tokens = cache_.document((*order)[doc]);
      offset = 0;
      if (t > 0) ++segment;
      position = 0;
    }
    batch.tokens[base + t] = tokens[offset];
    batch.positions[base + t] = position++;
    batch.segments[base + t] = segment;
    ++offset;
    // The target is the next stream token only inside the same document.
    batch.targets[base + t] = offset < static_cast<int64_t>(tokens.size()) ? tokens[offset] : -1;
  }
}

}  // namespace ropepp::train
