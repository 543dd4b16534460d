#include "train/trainer.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/cpu.h"
#include "core/error.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/threads.h"
#include "tokenizer/tokenizer.h"
#include "train/packing.h"
#include "train/token_cache.h"
#include "train/train_checkpoint.h"
#include "train/train_model.h"

namespace ropepp::train {
namespace fs = std::filesystem;
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Measures the GEMM ceiling of this run's precision with a square product
// (best of three after a warm-up), so utilisation is judged against this
// machine today. `ropepp bench train` measures it more thoroughly.
double measure_gemm_gflops(MatmulPrecision precision) {
  constexpr int64_t kSize = 768;
  std::vector<float> a(kSize * kSize, 0.5f), b(kSize * kSize, 0.25f), c(kSize * kSize);
  double best = 1e30;
  for (int r = 0; r < 4; ++r) {
    const auto start = Clock::now();
    matmul(false, true, kSize, kSize, kSize, 1.0f, a.data(), kSize, b.data(), kSize, 0.0f, c.data(), kSize, precision);
    if (r > 0) best = std::min(best, seconds_since(start));  // the first call warms up
  }
  return 2.0 * kSize * kSize * kSize / best / 1e9;
}

// Run settings a resume must match. steps is left out so a run can be extended.
nlohmann::ordered_json resume_settings(const TrainConfig& config, const ModelConfig& model, const TokenCache& cache) {
  nlohmann::ordered_json json;
  json["model"] = model_config_to_json(model);
  json["data"] = cache.fingerprint();
  json["seq_len"] = config.seq_len;
  json["min_document_tokens"] = config.min_document_tokens;
  json["validation_fraction"] = config.validation_fraction;
  json["batch_size"] = config.batch_size;
  json["grad_accum"] = config.grad_accum;
  json["schedule"] = config.schedule;
  json["lr"] = config.lr;
  json["min_lr"] = config.min_lr;
  json["warmup_steps"] = config.warmup_steps;
  json["decay_steps"] = config.decay_steps;
  json["weight_decay"] = config.weight_decay;
  json["betas"] = {config.beta1, config.beta2};
  json["adam_eps"] = config.adam_eps;
  json["grad_clip"] = config.grad_clip;
  json["precision"] = config.precision;
  json["seed"] = config.seed;
  return json;
}

double validation_loss(TrainModel<float>& model, PackedDataset& dataset, const TrainConfig& config) {
  if (dataset.sequences_per_epoch(Split::kValidation) == 0) return -1.0;
  TokenBatch batch = dataset.make_batch(config.batch_size);
  double loss_sum = 0.0;
  int64_t scored = 0;
  for (int64_t b = 0; b < config.eval_batches; ++b) {
    for (int64_t row = 0; row < config.batch_size; ++row) {
      dataset.fill(Split::kValidation, b * config.batch_size + row, batch, row);
    }
    const CrossEntropySums sums = model.forward(batch, 0.0);
    loss_sum += sums.loss_sum;
    scored += sums.n_scored;
  }
  return scored > 0 ? loss_sum / static_cast<double>(scored) : -1.0;
}

void print_configuration(const TrainConfig& config, const ModelConfig& model, int64_t n_parameters,
                         const PackedDataset& dataset, const TokenCache& cache, double ceiling_gflops,
                         const std::string& start) {
  const int64_t tokens_per_step = config.batch_size * config.grad_accum * config.seq_len;
  auto row = [](const std::string& key, const std::string& value) {
    std::fprintf(stderr, "  %-16s %s\n", key.c_str(), value.c_str());
  };
  std::fprintf(stderr, "training configuration\n");
  const HeadLayout layout = model.head_layout();
  row("model", fmt::format("{} ({}), {} layers, hidden {}, {} query / {} key-value heads projected, {} attention "
                           "heads, head_dim {}, MLP {}",
                           config.model, variant_name(model.variant), model.num_hidden_layers, model.hidden_size,
                           layout.n_query_heads, layout.n_kv_heads, layout.n_attention_heads(), model.head_dim,
                           model.intermediate_size));
  row("parameters", fmt::format("{:.2f}M", static_cast<double>(n_parameters) / 1e6));
  row("rope", fmt::format("theta {}, scaling {} (factor {})", model.rope_theta,
                          rope_scaling_type_name(model.rope_scaling.type), model.rope_scaling.factor));
  row("tokens/step", fmt::format("{} = {} sequences x {} micro-batches x {} tokens", tokens_per_step,
                                 config.batch_size, config.grad_accum, config.seq_len));
  row("schedule", fmt::format("{}, lr {:.2e} (min {:.2e}), warm-up {} steps, {} steps in all", config.schedule,
                              config.lr, config.min_lr, config.warmup_steps, config.steps));
  row("optimizer", fmt::format("AdamW betas ({}, {}), eps {:.0e}, weight decay {} (not on norms), clip {}",
                               config.beta1, config.beta2, config.adam_eps, config.weight_decay, config.grad_clip));
  row("data", fmt::format("{} documents, {} tokens in {} ({} skipped under {} tokens)", cache.n_documents(),
                          cache.n_tokens(), cache.directory().string(), dataset.n_skipped_documents(),
                          config.min_document_tokens));
  row("split", fmt::format("train {} documents / {} tokens, validation {} documents / {} tokens",
                           dataset.n_documents(Split::kTrain), dataset.n_tokens(Split::kTrain),
                           dataset.n_documents(Split::kValidation), dataset.n_tokens(Split::kValidation)));
  row("compute", fmt::format("{} matrix products, {} threads, GEMM ceiling {:.0f} GFLOP/s (measured)",
                             config.precision, num_threads(), ceiling_gflops));
  row("start", start);
  row("output", config.out_dir);
}

}  // namespace

double training_flops_per_token(const ModelConfig& config, int64_t seq_len) {
  const HeadLayout layout = HeadLayout::from_config(config.variant, config.num_attention_heads,
                                                    config.num_key_value_heads, resolved_head_dim(config));
  const double d = layout.head_dim, c = config.hidden_size;
  const double per_layer = c * d * (layout.n_query_heads + 2.0 * layout.n_kv_heads + layout.n_attention_heads()) +
                           3.0 * c * config.intermediate_size;
  const double matmul_parameters = per_layer * config.num_hidden_layers + c * config.vocab_size;
  const double attention = 6.0 * config.num_hidden_layers * layout.n_attention_heads() * d * static_cast<double>(seq_len);
  return 6.0 * matmul_parameters + attention;
}

TrainSummary run(const TrainConfig& config) {
  config.validate();
  const fs::path out_dir = config.out_dir;
  fs::create_directories(out_dir);

  // Data: tokenize once into the cache, then pack.
  const std::unique_ptr<Tokenizer> tokenizer = load_tokenizer(config.tokenizer);
  CorpusOptions corpus;
  for (const std::string& input : config.data) corpus.inputs.emplace_back(input);
  corpus.text_field = config.text_field;
  const fs::path cache_dir = config.cache_dir.empty() ? out_dir / "token_cache" : fs::path(config.cache_dir);
  const std::unique_ptr<TokenCache> cache = TokenCache::open_or_build(
      cache_dir, corpus, *tokenizer, tokenizer_identity(*tokenizer, config.tokenizer));
  PackingOptions packing;
  packing.seq_len = config.seq_len;
  packing.min_document_tokens = config.min_document_tokens;
  packing.validation_fraction = config.validation_fraction;
  packing.seed = config.seed;
  PackedDataset dataset(*cache, packing);

  // Model and optimizer.
  ModelConfig model_config = resolve_model_config(config, tokenizer->vocab_size());
  model_config.head_dim = resolved_head_dim(model_config);
  model_config.bos_token_id = tokenizer->bos_id().value_or(-1);
  model_config.eos_token_ids.clear();
  if (tokenizer->eos_id()) model_config.eos_token_ids.push_back(*tokenizer->eos_id());
  model_config.validate("model settings");
  ROPEPP_CHECK(cache->vocab_size() <= model_config.vocab_size,
               "token cache {} holds ids up to {}, beyond the model's vocab_size {}", cache_dir.string(),
               cache->vocab_size(), model_config.vocab_size);
  const MatmulPrecision precision = config.precision == "bf16" ? MatmulPrecision::kBF16 : MatmulPrecision::kF32;
  if (precision == MatmulPrecision::kBF16) {
    ROPEPP_CHECK(bf16_matmul_supported(),
                 "bf16 matrix products need a CPU with AVX512_BF16, which this one lacks: use --precision f32");
  }
  TrainModel<float> model(model_config, precision);
  AdamWConfig adam;
  adam.beta1 = config.beta1;
  adam.beta2 = config.beta2;
  adam.eps = config.adam_eps;
  adam.weight_decay = config.weight_decay;
  AdamW optimizer(adam, model.parameters());
  LrSchedule schedule;
  schedule.type = parse_schedule_type(config.schedule);
  schedule.lr = config.lr;
  schedule.min_lr = config.min_lr;
  schedule.warmup_steps = config.warmup_steps;
  schedule.total_steps = config.steps;
  // Unset, the wsd decay takes the last 10% of the steps (as far as the warm-up leaves room).
  schedule.decay_steps = config.decay_steps > 0
                             ? config.decay_steps
                             : std::min(std::max<int64_t>(1, config.steps / 10), config.steps - config.warmup_steps);
  schedule.validate();

  TrainerState state;
  state.seed = config.seed;
  state.run_settings = resume_settings(config, model_config, *cache);
  std::string start = fmt::format("from scratch (seed {})", config.seed);
  if (config.resume) {
    const auto latest = latest_checkpoint(out_dir);
    ROPEPP_CHECK(latest.has_value(), "--resume: no checkpoint (step-*/trainer_state.json) in {}", out_dir.string());
    const nlohmann::ordered_json current = state.run_settings;
    state = load_training_checkpoint(*latest, model, optimizer);
    check_resume_settings(state.run_settings, current, *latest);
    start = fmt::format("resumed from {} (step {})", latest->string(), state.step);
  } else if (!config.init_from.empty()) {
    load_weights(config.init_from, model);
    start = fmt::format("weights of {}, new optimizer", config.init_from);
  } else {
    model.init_weights(config.seed);
  }
  ROPEPP_CHECK(state.step < config.steps, "the run in {} already has {} steps; raise --steps to continue it",
               out_dir.string(), state.step);

  const double ceiling = measure_gemm_gflops(precision);
  const double flops_per_token = training_flops_per_token(model_config, config.seq_len);
  if (!config.quiet) {
    print_configuration(config, model_config, model.n_parameters(), dataset, *cache, ceiling, start);
  }

  const fs::path metrics_path = out_dir / "metrics.jsonl";
  std::ofstream metrics(metrics_path, config.resume ? std::ios::app : std::ios::trunc);
  ROPEPP_CHECK(metrics.good(), "cannot write {}", metrics_path.string());

  // Micro-batches of one step are filled first: the loss is the mean over all
  // scored tokens of the step, so each backward needs their total count.
  std::vector<TokenBatch> micro_batches;
  for (int64_t m = 0; m < config.grad_accum; ++m) micro_batches.push_back(dataset.make_batch(config.batch_size));
  const int64_t tokens_per_step = config.batch_size * config.grad_accum * config.seq_len;

  TrainSummary summary;
  summary.metrics_file = metrics_path.string();
  const auto run_start = Clock::now();
  const int64_t first_step = state.step;
  const int64_t end_step =
      config.stop_after_steps > 0 ? std::min(config.steps, first_step + config.stop_after_steps) : config.steps;
  ProgressBar progress(end_step - first_step, "training");
  double loss = 0.0;
  fs::path last_saved;

  for (int64_t step = first_step; step < end_step; ++step) {
    const auto step_start = Clock::now();
    int64_t scored = 0;
    for (TokenBatch& batch : micro_batches) {
      for (int64_t row = 0; row < config.batch_size; ++row) {
        dataset.fill(Split::kTrain, state.sequences_consumed++, batch, row);
      }
      for (int32_t target : batch.targets) scored += target >= 0;
    }

    model.zero_grad();
    double loss_sum = 0.0;
    for (TokenBatch& batch : micro_batches) {
      loss_sum += model.forward(batch, 1.0 / static_cast<double>(std::max<int64_t>(scored, 1))).loss_sum;
      model.backward();
    }
    loss = loss_sum / static_cast<double>(std::max<int64_t>(scored, 1));
    if (!std::isfinite(loss)) {
      fail("step {}: the training loss is {}; stopping without saving this step (the last checkpoint is {}). Lower "
           "the learning rate or enable gradient clipping",
           step + 1, loss, last_saved.empty() ? std::string("none") : last_saved.string());
    }
    const double grad_norm = gradient_norm(model.grads(), model.n_parameters());
    if (!std::isfinite(grad_norm)) {
      fail("step {}: the gradient of {} is not finite (NaN or inf); stopping without saving this step (the last "
           "checkpoint is {}). Lower the learning rate or enable gradient clipping",
           step + 1, first_nonfinite_tensor(model.grads(), model.parameters()),
           last_saved.empty() ? std::string("none") : last_saved.string());
    }
    clip_gradients(model.grads(), model.n_parameters(), grad_norm, config.grad_clip);
    const double lr = schedule.at(step);
    optimizer.update(model.params(), model.grads(), lr);
    state.step = step + 1;
    state.tokens_seen += tokens_per_step;

    const double step_seconds = seconds_since(step_start);
    const double tokens_per_second = static_cast<double>(tokens_per_step) / step_seconds;
    const double mfu = flops_per_token * tokens_per_second / (ceiling * 1e9);
    metrics << nlohmann::json{{"step", state.step},         {"loss", loss},
                              {"lr", lr},                   {"grad_norm", grad_norm},
                              {"tokens", state.tokens_seen}, {"tokens_per_second", tokens_per_second},
                              {"mfu", mfu},                 {"seconds", step_seconds}}
                   .dump()
            << "\n";

    const bool last = state.step == end_step;
    if (config.eval_every > 0 && (state.step % config.eval_every == 0 || last)) {
      summary.final_val_loss = validation_loss(model, dataset, config);
      if (summary.final_val_loss >= 0) {
        metrics << nlohmann::json{{"step", state.step}, {"val_loss", summary.final_val_loss}}.dump() << "\n";
      }
    }
    metrics.flush();
    if (state.step % config.checkpoint_every == 0 || last) {
      last_saved = save_training_checkpoint(out_dir, model, optimizer, state, config.keep_last);
    }
    progress.update(state.step - first_step,
                    fmt::format("loss {:.4f} lr {:.2e} |g| {:.3f} {:.0f} tok/s MFU {:.0f}%{}", loss, lr, grad_norm,
                                tokens_per_second, 100 * mfu,
                                summary.final_val_loss >= 0 ? fmt::format(" val {:.4f}", summary.final_val_loss)
                                                            : std::string()));
  }
  progress.finish();

  summary.seconds = seconds_since(run_start);
  summary.steps = state.step;
  summary.tokens = state.tokens_seen;
  summary.final_loss = loss;
  summary.tokens_per_second =
      static_cast<double>((end_step - first_step) * tokens_per_step) / std::max(summary.seconds, 1e-9);
  summary.mfu = flops_per_token * summary.tokens_per_second / (ceiling * 1e9);
  summary.last_checkpoint = last_saved.string();
  if (!config.quiet) {
    std::fprintf(stderr,
                 "done: %lld steps, %lld tokens, final loss %.4f, validation loss %s, %.0f tokens/s, MFU %.0f%%, "
                 "%.1f s\n  checkpoint %s\n  metrics    %s\n",
                 static_cast<long long>(summary.steps), static_cast<long long>(summary.tokens), summary.final_loss,
                 summary.final_val_loss >= 0 ? fmt::format("{:.4f}", summary.final_val_loss).c_str() : "none",
                 summary.tokens_per_second, 100 * summary.mfu, summary.seconds, summary.last_checkpoint.c_str(),
                 summary.metrics_file.c_str());
  }
  return summary;
}

}  // namespace ropepp::train
