#include "model/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"

namespace ropepp {

void SamplerOptions::validate() const {
  ROPEPP_CHECK(std::isfinite(temperature) && temperature >= 0.0,
               "invalid temperature {}: expected a finite value >= 0 (0 means greedy)", temperature);
  ROPEPP_CHECK(top_k >= 0, "invalid top-k {}: expected >= 0 (0 keeps every token)", top_k);
  ROPEPP_CHECK(top_p > 0.0 && top_p <= 1.0, "invalid top-p {}: expected a value in (0, 1]", top_p);
}

Sampler::Sampler(const SamplerOptions& options) : options_(options), rng_(options.seed) { options_.validate(); }

int32_t Sampler::sample(const float* logits, int64_t vocab) {
  ROPEPP_CHECK(vocab > 0, "cannot sample from an empty vocabulary");
  if (options_.greedy || options_.temperature == 0.0) {
    // std::max_element returns the first maximum, so ties go to the lowest id.
    return static_cast<int32_t>(std::max_element(logits, logits + vocab) - logits);
  }
  const double inverse_temperature = 1.0 / options_.temperature;
  const double max_logit = *std::max_element(logits, logits + vocab);
  auto weight = [&](int32_t id) { return std::exp((logits[id] - max_logit) * inverse_temperature); };

  // No filtering: draw in id order from the full softmax, with no sort.
  if (options_.top_k == 0 && options_.top_p >= 1.0) {
    double total = 0.0;
    for (int64_t id = 0; id < vocab; ++id) total += weight(static_cast<int32_t>(id));
    const double target = rng_.uniform() * total;
    double cumulative = 0.0;
    for (int64_t id = 0; id < vocab; ++id) {
      cumulative += weight(static_cast<int32_t>(id));
      if (target < cumulative) return static_cast<int32_t>(id);
    }
    return static_cast<int32_t>(vocab - 1);
  }

  // Candidates are ordered by logit, descending, ties by id. Top-k keeps the k
  // first, and top-p then keeps the shortest prefix whose share of the kept
  // probability reaches top_p (at least one token), as Hugging Face's
  // TopKLogitsWarper followed by TopPLogitsWarper do.
  order_.resize(static_cast<size_t>(vocab));
  std::iota(order_.begin(), order_.end(), 0);
  auto by_logit = [logits](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  const int64_t limit = options_.top_k > 0 ? std::min<int64_t>(options_.top_k, vocab) : vocab;

  double total = 0.0;
  int64_t sorted = limit;
  if (options_.top_k > 0) {
    std::partial_sort(order_.begin(), order_.begin() + limit, order_.end(), by_logit);
    for (int64_t i = 0; i < limit; ++i) total += weight(order_[i]);
  } else {
    // Top-p alone: the nucleus is usually a few hundred tokens, so sort a
    // growing prefix instead of the whole vocabulary.
    for (int64_t id = 0; id < vocab; ++id) total += weight(static_cast<int32_t>(id));
    sorted = std::min<int64_t>(256, vocab);
    std::partial_sort(order_.begin(), order_.begin() + sorted, order_.end(), by_logit);
  }

  int64_t n_candidates = limit;
  if (options_.top_p < 1.0) {
    const double threshold = options_.top_p * total;
    for (;;) {
      double cumulative = 0.0;
      int64_t found = 0;
      for (int64_t i = 0; i < sorted; ++i) {
        cumulative += weight(order_[i]);
        if (cumulative >= threshold) {
          found = i + 1;
          break;
        }
      }
      if (found > 0) {
        n_candidates = found;
        break;
      }
      if (sorted == limit) break;  // rounding kept the sum below the threshold: keep everything
      sorted = std::min(limit, 4 * sorted);
      std::partial_sort(order_.begin(), order_.begin() + sorted, order_.end(), by_logit);
    }
  }

  probs_.resize(static_cast<size_t>(n_candidates));
  double kept_total = 0.0;
  for (int64_t i = 0; i < n_candidates; ++i) {
    probs_[i] = weight(order_[i]);
    kept_total += probs_[i];
  }
  const double target = rng_.uniform() * kept_total;
  double cumulative = 0.0;
  for (int64_t i = 0; i < n_candidates; ++i) {
    cumulative += probs_[i];
    if (target < cumulative) return order_[i];
  }
  return order_[n_candidates - 1];
}

}  // namespace ropepp
