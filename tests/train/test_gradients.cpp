// Gradient checks: every layer and the whole model in double precision against
// central finite differences, and the f32 model against the double one.
#include <gtest/gtest.h>

#include <cmath>
#include <algorithm>
#include <functional>
#include <random>
#include <vector>

#include "train/layers.h"
#include "train/train_model.h"

namespace ropepp::train {
namespace {

using Vector = std::vector<double>;

Vector random_vector(size_t n, std::mt19937_64& rng, double scale = 1.0) {
  std::normal_distribution<double> normal(0.0, scale);
  Vector v(n);
  for (double& x : v) x = normal(rng);
  return v;
}

double dot(const Vector& a, const Vector& b) {
  double sum = 0.0;
  for (size_t i = 0; i < a.size(); ++i) sum += a[i] * b[i];
  return sum;
}

// Checks analytic[i] against a central finite difference along e_i, with
// Richardson extrapolation (4 D(h/2) - D(h)) / 3 so the error is O(h^4): with
// h = 1e-4 that is ~1e-12 relative on these O(1) functions, and rounding adds
// about 1e-16 * |f| / h ~ 1e-11. A 1e-6 relative bound leaves a wide margin,
// while a wrong term (an error of order 1) still fails.
void expect_gradient(Vector& x, const Vector& analytic, const std::function<double()>& f, const char* what,
                     const std::vector<size_t>& indices = {}) {
  constexpr double kStep = 1e-4;
  ASSERT_EQ(x.size(), analytic.size());
  auto central_difference = [&](size_t i, double step) {
    const double saved = x[i];
    x[i] = saved + step;
    const double plus = f();
    x[i] = saved - step;
    const double minus = f();
    x[i] = saved;
    return (plus - minus) / (2 * step);
  };
  std::vector<size_t> checked = indices;
  if (checked.empty()) {
    for (size_t i = 0; i < x.size(); ++i) checked.push_back(i);
  }
  for (size_t i : checked) {
    const double numeric = (4 * central_difference(i, kStep / 2) - central_difference(i, kStep)) / 3;
    ASSERT_NEAR(analytic[i], numeric, 1e-8 + 1e-6 * std::abs(numeric)) << what << " element " << i;
  }
}

TEST(LayerGradients, RmsNorm) {
  std::mt19937_64 rng(1);
  const int64_t n = 5, c = 7;
  Vector x = random_vector(n * c, rng), w = random_vector(c, rng), dy = random_vector(n * c, rng);
  Vector y(n * c), rstd(n), dx(n * c), dw(c, 0.0);
  auto loss = [&] {
    rmsnorm_forward(x.data(), w.data(), n, c, 1e-5, y.data(), rstd.data());
    return dot(y, dy);
  };
  loss();
  rmsnorm_backward(x.data(), w.data(), rstd.data(), dy.data(), n, c, dx.data(), dw.data());
  expect_gradient(x, dx, loss, "dx");
  expect_gradient(w, dw, loss, "dweight");
}

TEST(LayerGradients, SwiGlu) {
  std::mt19937_64 rng(2);
  const int64_t count = 33;
  Vector gate = random_vector(count, rng, 2.0), up = random_vector(count, rng), dh = random_vector(count, rng);
  Vector h(count), dgate(count), dup(count);
  auto loss = [&] {
    swiglu_forward(gate.data(), up.data(), count, h.data());
    return dot(h, dh);
  };
  swiglu_backward(gate.data(), up.data(), dh.data(), count, dgate.data(), dup.data());
  expect_gradient(gate, dgate, loss, "dgate");
  expect_gradient(up, dup, loss, "dup");
}

TEST(LayerGradients, LinearAndEmbedding) {
  std::mt19937_64 rng(3);
  const int64_t n = 4, in = 6, out = 5, vocab = 9;
  Vector x = random_vector(n * in, rng), w = random_vector(out * in, rng), dy = random_vector(n * out, rng);
  Vector y(n * out), dx(n * in, 7.0), dw(out * in, 0.0);
  auto loss = [&] {
    linear_forward(x.data(), w.data(), n, in, out, y.data(), MatmulPrecision::kF32);
    return dot(y, dy);
  };
  linear_backward(x.data(), w.data(), dy.data(), n, in, out, dx.data(), false, dw.data(), MatmulPrecision::kF32);
  expect_gradient(x, dx, loss, "dx");
  expect_gradient(w, dw, loss, "dweight");

  const std::vector<int32_t> tokens = {3, 0, 3, 8};  // a repeated token sums its rows
  Vector table = random_vector(vocab * in, rng), dtable(vocab * in, 0.0), rows(n * in), drows = random_vector(n * in, rng);
  auto embedding_loss = [&] {
    embedding_forward(tokens.data(), n, table.data(), in, rows.data());
    return dot(rows, drows);
  };
  embedding_backward(tokens.data(), n, drows.data(), in, dtable.data());
  expect_gradient(table, dtable, embedding_loss, "dembedding");
}

struct AttentionCase {
  Variant variant;
  int heads, kv_heads;
};

class AttentionGradients : public ::testing::TestWithParam<AttentionCase> {};

TEST_P(AttentionGradients, PackedSequences) {
  const AttentionCase param = GetParam();
  const HeadLayout layout = HeadLayout::from_config(param.variant, param.heads, param.kv_heads, 4);
  RopeParams rope_params;
  rope_params.head_dim = 4;
  const RopeTable rope(rope_params);
  std::mt19937_64 rng(4);
  const int64_t n_sequences = 2, seq_len = 5, n = n_sequences * seq_len;
  const std::vector<int32_t> positions = {0, 1, 2, 0, 1, 0, 1, 2, 3, 4};
  const std::vector<int32_t> segments = {0, 0, 0, 1, 1, 0, 0, 0, 0, 0};
  Vector q = random_vector(n * layout.n_query_heads * 4, rng), k = random_vector(n * layout.n_kv_heads * 4, rng);
  Vector v = random_vector(k.size(), rng), dout = random_vector(n * layout.n_attention_heads() * 4, rng);
  Vector out(dout.size()), lse(n * layout.n_attention_heads()), dq(q.size()), dk(k.size()), dv(v.size());
  auto loss = [&] {
    attention_layer_forward(layout, rope, n_sequences, seq_len, positions.data(), segments.data(), q.data(), k.data(),
                            v.data(), out.data(), lse.data());
    return dot(out, dout);
  };
  loss();
  attention_layer_backward(layout, rope, n_sequences, seq_len, positions.data(), segments.data(), q.data(), k.data(),
                           v.data(), out.data(), lse.data(), dout.data(), dq.data(), dk.data(), dv.data());
  expect_gradient(q, dq, loss, "dq");
  expect_gradient(k, dk, loss, "dk");
  expect_gradient(v, dv, loss, "dv");
}

INSTANTIATE_TEST_SUITE_P(Variants, AttentionGradients,
                         ::testing::Values(AttentionCase{Variant::kVanilla, 4, 2}, AttentionCase{Variant::kEH, 4, 2},
                                           AttentionCase{Variant::kEC, 2, 1}));

TEST(LayerGradients, LmHeadCrossEntropy) {
  std::mt19937_64 rng(5);
  const int64_t n = 7, c = 5, vocab = 11, chunk = 3;  // chunks of 3, 3 and 1 rows
  const std::vector<int32_t> targets = {1, 10, -1, 0, 4, 4, -1};
  Vector x = random_vector(n * c, rng), w = random_vector(vocab * c, rng);
  Vector dx(n * c), dw(vocab * c, 0.0), logits(chunk * vocab);
  const double scale = 0.37;
  auto loss = [&] {
    return scale * lm_head_cross_entropy(x.data(), w.data(), targets.data(), n, c, vocab, 0.0, static_cast<double*>(nullptr),
                                         static_cast<double*>(nullptr), logits.data(), chunk, MatmulPrecision::kF32)
                       .loss_sum;
  };
  const CrossEntropySums sums = lm_head_cross_entropy(x.data(), w.data(), targets.data(), n, c, vocab, scale, dx.data(),
                                                      dw.data(), logits.data(), chunk, MatmulPrecision::kF32);
  EXPECT_EQ(sums.n_scored, 5);
  expect_gradient(x, dx, loss, "dx");
  expect_gradient(w, dw, loss, "dweight");
}

ModelConfig tiny_config(Variant variant) {
  ModelConfig config;
  config.vocab_size = 13;
  config.hidden_size = 8;
  config.intermediate_size = 12;
  config.num_hidden_layers = 2;
  config.num_attention_heads = variant == Variant::kEC ? 2 : 4;
  config.num_key_value_heads = 2;
  config.head_dim = 4;
  config.variant = variant;
  return config;
}

TokenBatch tiny_batch() {
  TokenBatch batch;
  batch.n_sequences = 2;
  batch.seq_len = 6;
  batch.tokens = {1, 5, 7, 2, 2, 9, 12, 0, 3, 3, 8, 6};
  batch.targets = {5, 7, -1, 2, 9, 4, 0, 3, 3, 8, 6, -1};
  batch.positions = {0, 1, 2, 0, 1, 2, 0, 1, 2, 3, 4, 5};
  batch.segments = {0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0};
  return batch;
}

class ModelGradients : public ::testing::TestWithParam<Variant> {};

TEST_P(ModelGradients, AllParametersMatchFiniteDifferences) {
  TrainModel<double> model(tiny_config(GetParam()));
  model.init_weights(7);
  // Larger weights than the 0.02 initialisation so every path carries signal.
  for (int64_t i = 0; i < model.n_parameters(); ++i) model.params()[i] *= 5.0;
  const TokenBatch batch = tiny_batch();

  model.zero_grad();
  model.forward(batch, 1.0);
  model.backward();
  Vector analytic(model.grads(), model.grads() + model.n_parameters());
  Vector params(model.params(), model.params() + model.n_parameters());
  auto loss = [&] {
    std::copy(params.begin(), params.end(), model.params());
    return model.forward(batch, 0.0).loss_sum;
  };
  // Every tensor, at most 40 evenly spread elements of each (all of the small ones).
  std::vector<size_t> indices;
  for (const ParameterInfo& info : model.parameters()) {
    const int64_t stride = std::max<int64_t>(1, info.numel / 40);
    for (int64_t i = 0; i < info.numel; i += stride) indices.push_back(static_cast<size_t>(info.offset + i));
  }
  expect_gradient(params, analytic, loss, "parameter", indices);
}

TEST_P(ModelGradients, FloatModelMatchesDouble) {
  const ModelConfig config = tiny_config(GetParam());
  TrainModel<double> reference(config);
  TrainModel<float> model(config);
  reference.init_weights(8);
  for (int64_t i = 0; i < reference.n_parameters(); ++i) {
    reference.params()[i] *= 20.0;
    model.params()[i] = static_cast<float>(reference.params()[i]);
  }
  const TokenBatch batch = tiny_batch();
  reference.zero_grad();
  model.zero_grad();
  const double expected_loss = reference.forward(batch, 1.0).loss_sum;
  const double loss = model.forward(batch, 1.0).loss_sum;
  reference.backward();
  model.backward();

  // f32 carries about 7 significant digits, and a depth-2 model with O(10)
  // activations loses a few of them. A wrong term (an error of order 1)
  // cannot pass a bound of 1e-4 of the largest gradient.
  EXPECT_NEAR(loss, expected_loss, 1e-4 * std::abs(expected_loss));
  double max_gradient = 0.0;
  for (int64_t i = 0; i < reference.n_parameters(); ++i) max_gradient = std::max(max_gradient, std::abs(reference.grads()[i]));
  for (int64_t i = 0; i < reference.n_parameters(); ++i) {
    ASSERT_NEAR(model.grads()[i], reference.grads()[i], 1e-4 * max_gradient) << "parameter element " << i;
  }
}

TEST_P(ModelGradients, Bf16ProductsStayCloseToF32) {
  ModelConfig config = tiny_config(GetParam());
  config.hidden_size = 32;  // enough terms per product for bf16 rounding errors to average out
  config.intermediate_size = 48;
  config.head_dim = 8;
  TrainModel<float> f32(config);
  f32.init_weights(10);
  // Moderate weights: with 10x the initialisation the attention softmaxes
  // saturate and amplify the rounding of the scores (measured 6-16% then).
  for (int64_t i = 0; i < f32.n_parameters(); ++i) f32.params()[i] *= 3.0f;
  TrainModel<float> bf16(config, MatmulPrecision::kBF16);
  std::copy(f32.params(), f32.params() + f32.n_parameters(), bf16.params());
  const TokenBatch batch = tiny_batch();
  f32.zero_grad();
  bf16.zero_grad();
  const double f32_loss = f32.forward(batch, 1.0).loss_sum;
  const double bf16_loss = bf16.forward(batch, 1.0).loss_sum;
  f32.backward();
  bf16.backward();

  // bf16 keeps 8 significant bits (relative rounding 2^-9 = 0.2%) per operand,
  // so products and the loss move by a few tenths of a percent. Gradients are
  // compared by the relative norm of their difference.
  EXPECT_NEAR(bf16_loss, f32_loss, 0.01 * std::abs(f32_loss));
  double difference = 0.0, reference = 0.0;
  for (int64_t i = 0; i < f32.n_parameters(); ++i) {
    difference += std::pow(static_cast<double>(bf16.grads()[i]) - f32.grads()[i], 2);
    reference += std::pow(static_cast<double>(f32.grads()[i]), 2);
  }
  EXPECT_LT(std::sqrt(difference / reference), 0.05);
  EXPECT_GT(std::sqrt(difference / reference), 0.0) << "the bf16 path ran in f32";
}

// Packing keeps documents apart: the loss of document B does not depend on
// document A's tokens, and equals B's loss when B is a sequence of its own.
TEST_P(ModelGradients, PackedDocumentsDoNotInteract) {
  TrainModel<double> model(tiny_config(GetParam()));
  model.init_weights(9);
  for (int64_t i = 0; i < model.n_parameters(); ++i) model.params()[i] *= 5.0;

  // Document A uses tokens 1..4 only, document B tokens 5..9 only; only B is scored.
  TokenBatch packed;
  packed.n_sequences = 1;
  packed.seq_len = 8;
  packed.tokens = {1, 2, 3, 4, 5, 6, 7, 8};
  packed.targets = {-1, -1, -1, -1, 6, 7, 8, 9};
  packed.positions = {0, 1, 2, 3, 0, 1, 2, 3};
  packed.segments = {0, 0, 0, 0, 1, 1, 1, 1};
  TokenBatch alone;
  alone.n_sequences = 1;
  alone.seq_len = 4;
  alone.tokens = {5, 6, 7, 8};
  alone.targets = {6, 7, 8, 9};
  alone.positions = {0, 1, 2, 3};
  alone.segments = {0, 0, 0, 0};

  model.zero_grad();
  const double packed_loss = model.forward(packed, 1.0).loss_sum;
  model.backward();
  const ParameterInfo& embedding = model.parameter("model.embed_tokens.weight");
  for (int token = 1; token <= 4; ++token) {
    for (int e = 0; e < 8; ++e) {
      ASSERT_EQ(model.grads()[embedding.offset + token * 8 + e], 0.0) << "token " << token << " component " << e;
    }
  }
  const double alone_loss = model.forward(alone, 0.0).loss_sum;
  EXPECT_NEAR(packed_loss, alone_loss, 1e-12 * std::abs(alone_loss));
}

INSTANTIATE_TEST_SUITE_P(Variants, ModelGradients, ::testing::Values(Variant::kVanilla, Variant::kEH, Variant::kEC),
                         [](const auto& info) { return variant_name(info.param) == "rope" ? std::string("rope")
                                                       : info.param == Variant::kEH    ? std::string("eh")
                                                                                       : std::string("ec"); });

}  // namespace
}  // namespace ropepp::train
