// End-to-end training runs on real text: the loss falls, resuming is
// bit-identical, interrupted checkpoint writes and bad checkpoints are handled.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include "core/error.h"
#include "io/checkpoint.h"
#include "train/train_checkpoint.h"
#include "train/trainer.h"

namespace ropepp::train {
namespace {
namespace fs = std::filesystem;

fs::path temporary_folder(const std::string& name) {
  const fs::path path = fs::temp_directory_path() / fmt::format("ropepp-train-{}-{}", name, ::getpid());
  fs::remove_all(path);
  fs::create_directories(path);
  return path;
}

std::string text_folder() { return std::string(ROPEPP_SOURCE_DIR) + "/tests/train/data"; }

std::vector<std::string> text_files() {
  return {text_folder() + "/kjv-genesis-1-3.txt", text_folder() + "/kjv-ruth.txt", text_folder() + "/kjv-jonah.txt"};
}

// A tiny byte-level model on the shipped King James texts (~30 KB).
TrainConfig tiny_run(const fs::path& out, const std::string& variant) {
  TrainConfig config;
  config.model = "tiny";
  config.variant = variant;
  config.data = text_files();
  config.tokenizer = "byte";
  config.cache_dir = (out / "cache").string();
  config.out_dir = (out / "run").string();
  config.seq_len = 64;
  config.min_document_tokens = 64;
  config.validation_fraction = 0.3;
  config.batch_size = 8;
  config.steps = 300;
  config.lr = 3e-3;
  config.warmup_steps = 10;
  config.schedule = "cosine";
  config.eval_every = 100;
  config.checkpoint_every = 1000;
  config.quiet = true;
  return config;
}

// Entropy (nats) of the byte distribution of the shipped texts: the loss of the
// best model that ignores context.
double unigram_entropy() {
  std::map<unsigned char, double> counts;
  double total = 0;
  for (const std::string& path : text_files()) {
    std::ifstream in(path, std::ios::binary);
    for (char c; in.get(c);) {
      counts[static_cast<unsigned char>(c)] += 1;
      total += 1;
    }
  }
  double entropy = 0;
  for (const auto& [byte, count] : counts) entropy -= count / total * std::log(count / total);
  return entropy;
}

std::vector<char> file_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<char>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

class TrainingRun : public ::testing::TestWithParam<std::string> {};

TEST_P(TrainingRun, LossFallsBelowUnigramEntropy) {
  const fs::path out = temporary_folder("loss-" + GetParam());
  const TrainSummary summary = run(tiny_run(out, GetParam()));
  const double entropy = unigram_entropy();  // about 2.9 nats for English bytes
  EXPECT_EQ(summary.steps, 300);
  // The training loss of one step is noisy (2048 tokens), the validation loss
  // averages 4 batches, hence the tighter bound on the latter.
  EXPECT_LT(summary.final_loss, 0.85 * entropy) << "unigram entropy " << entropy;
  ASSERT_GE(summary.final_val_loss, 0.0);
  EXPECT_LT(summary.final_val_loss, 0.8 * entropy) << "unigram entropy " << entropy;

  // The final checkpoint opens as a Hugging Face checkpoint of the variant.
  const Checkpoint checkpoint(summary.last_checkpoint);
  EXPECT_EQ(variant_name(checkpoint.config().variant), variant_name(parse_variant(GetParam())));
  fs::remove_all(out);
}

INSTANTIATE_TEST_SUITE_P(Variants, TrainingRun, ::testing::Values("rope", "eh", "ec"));

TEST(Resume, SplitRunMatchesOneRunBitForBit) {
  const fs::path out = temporary_folder("resume");
  TrainConfig whole = tiny_run(out / "whole", "ec");
  whole.steps = 8;
  whole.warmup_steps = 2;
  whole.batch_size = 4;
  whole.grad_accum = 2;
  whole.schedule = "wsd";
  whole.decay_steps = 3;
  whole.eval_every = 3;
  const TrainSummary expected = run(whole);

  TrainConfig first = whole;
  first.out_dir = (out / "split").string();
  first.cache_dir = (out / "split-cache").string();
  first.stop_after_steps = 5;  // an interrupted job: the schedule still spans 8 steps
  run(first);
  TrainConfig second = first;
  second.stop_after_steps = 0;
  second.resume = true;
  const TrainSummary resumed = run(second);

  EXPECT_EQ(resumed.steps, expected.steps);
  EXPECT_EQ(resumed.final_loss, expected.final_loss);
  for (const char* file : {"model.safetensors", "optimizer.safetensors"}) {
    EXPECT_TRUE(file_bytes(fs::path(resumed.last_checkpoint) / file) ==
                file_bytes(fs::path(expected.last_checkpoint) / file))
        << file << " differs";
  }
  fs::remove_all(out);
}

TEST(Resume, ChangedSettingsAreRejected) {
  const fs::path out = temporary_folder("resume-mismatch");
  TrainConfig config = tiny_run(out, "rope");
  config.steps = 2;
  config.warmup_steps = 1;
  run(config);
  config.steps = 4;
  config.resume = true;
  config.batch_size = 2;
  try {
    run(config);
    FAIL() << "resume with another batch size was accepted";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("batch_size (saved 8, now 2)"), std::string::npos) << error.what();
  }
  fs::remove_all(out);
}

TEST(Checkpoints, FailedWriteLeavesPreviousCheckpoint) {
  const fs::path out = temporary_folder("failed-write");
  TrainConfig config = tiny_run(out, "eh");
  config.steps = 2;
  config.warmup_steps = 1;
  config.checkpoint_every = 1;
  config.keep_last = 0;
  run(config);
  const std::vector<char> weights = file_bytes(out / "run" / "step-00000002" / "model.safetensors");

  // Every stage of a later save fails once: only complete checkpoints remain.
  for (const char* stage : {"weights", "optimizer", "state"}) {
    set_checkpoint_hook([&](const std::string& current) {
      if (current == stage) throw Error("injected failure");
    });
    config.steps += 1;
    config.resume = true;
    EXPECT_THROW(run(config), Error) << stage;
    set_checkpoint_hook(nullptr);
    config.steps -= 1;
    ASSERT_EQ(latest_checkpoint(out / "run"), out / "run" / "step-00000002") << stage;
    EXPECT_TRUE(file_bytes(out / "run" / "step-00000002" / "model.safetensors") == weights) << stage;
    for (const auto& entry : fs::directory_iterator(out / "run")) {
      EXPECT_EQ(entry.path().filename().string().find(".tmp-"), std::string::npos) << entry.path();
    }
  }
  fs::remove_all(out);
}

// Not a test of its own: the child process of KillDuringWritesLeavesLoadableCheckpoint,
// started as a fresh process (fork without exec would inherit OpenMP's state).
TEST(Checkpoints, TrainUntilKilled) {
  const char* out = std::getenv("ROPEPP_TEST_TRAIN_UNTIL_KILLED");
  if (out == nullptr) GTEST_SKIP() << "runs only as the child of KillDuringWritesLeavesLoadableCheckpoint";
  TrainConfig config = tiny_run(out, "rope");
  config.resume = true;
  config.warmup_steps = 1;
  config.steps = 1000000;
  config.checkpoint_every = 1;
  config.keep_last = 2;
  config.eval_every = 0;
  run(config);
}

TEST(Checkpoints, KillDuringWritesLeavesLoadableCheckpoint) {
  const fs::path out = temporary_folder("kill");
  TrainConfig config = tiny_run(out, "rope");
  config.steps = 2;
  config.warmup_steps = 1;
  run(config);  // builds the token cache and a first checkpoint

  // A child saves a checkpoint after every step and is killed at 12 points in time.
  const std::string variable = "ROPEPP_TEST_TRAIN_UNTIL_KILLED=" + out.string();
  char* child_environment[] = {const_cast<char*>(variable.c_str()), const_cast<char*>("OMP_NUM_THREADS=1"), nullptr};
  for (int attempt = 0; attempt < 12; ++attempt) {
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      ::execle("/proc/self/exe", "test_train", "--gtest_filter=Checkpoints.TrainUntilKilled", nullptr,
               child_environment);
      ::_exit(127);
    }
    ::usleep(static_cast<useconds_t>(300000 + 100000 * attempt));
    ::kill(child, SIGKILL);
    int status = 0;
    ::waitpid(child, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the child ended by itself with status " << status;

    const auto latest = latest_checkpoint(out / "run");
    ASSERT_TRUE(latest.has_value());
    TrainModel<float> model(Checkpoint(*latest).config());
    AdamW optimizer(AdamWConfig{}, model.parameters());
    EXPECT_NO_THROW(load_training_checkpoint(*latest, model, optimizer)) << *latest;
  }
  // The children did train and save between the kills.
  const auto latest = latest_checkpoint(out / "run");
  EXPECT_GT(latest->filename().string(), std::string("step-00000002"));
  fs::remove_all(out);
}

TEST(Checkpoints, DamagedCheckpointsAreRejected) {
  const fs::path out = temporary_folder("damaged");
  TrainConfig config = tiny_run(out, "rope");
  config.steps = 1;
  config.warmup_steps = 1;
  const TrainSummary summary = run(config);
  const fs::path folder = summary.last_checkpoint;
  TrainModel<float> model(Checkpoint(folder).config());
  AdamW optimizer(AdamWConfig{}, model.parameters());

  // Truncated optimizer state.
  const fs::path moments = folder / "optimizer.safetensors";
  const std::vector<char> saved = file_bytes(moments);
  fs::resize_file(moments, saved.size() / 2);
  EXPECT_THROW(load_training_checkpoint(folder, model, optimizer), Error);
  { std::ofstream(moments, std::ios::binary).write(saved.data(), static_cast<std::streamsize>(saved.size())); }
  EXPECT_NO_THROW(load_training_checkpoint(folder, model, optimizer));

  // A checkpoint of another model shape.
  ModelConfig other = model.config();
  other.hidden_size = 32;
  other.head_dim = 8;
  other.intermediate_size = 64;
  TrainModel<float> small(other);
  AdamW small_optimizer(AdamWConfig{}, small.parameters());
  EXPECT_THROW(load_training_checkpoint(folder, small, small_optimizer), Error);

  // Broken trainer state.
  { std::ofstream(folder / "trainer_state.json") << "{\"format\": \"ropepp-trainer-state\""; }
  try {
    load_training_checkpoint(folder, model, optimizer);
    FAIL() << "a truncated trainer_state.json was accepted";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("trainer_state.json"), std::string::npos) << error.what();
  }
  fs::remove_all(out);
}

TEST(Training, ContextExtensionWritesNewRopeSettings) {
  const fs::path out = temporary_folder("extend");
  TrainConfig short_context = tiny_run(out / "short", "eh");
  short_context.steps = 40;
  short_context.warmup_steps = 1;
  const TrainSummary base = run(short_context);
  ASSERT_LT(base.final_loss, 4.0);

  for (const std::string scaling : {"linear", "yarn-paper"}) {
    TrainConfig extended = short_context;
    extended.out_dir = (out / scaling).string();
    extended.init_from = base.last_checkpoint;
    extended.seq_len = 128;
    extended.rope_theta = 500000;
    extended.rope_scaling = scaling;
    extended.rope_factor = 2;
    extended.rope_original_context = 64;
    extended.steps = 2;
    const TrainSummary summary = run(extended);
    const ModelConfig config = Checkpoint(summary.last_checkpoint).config();
    EXPECT_EQ(config.rope_theta, 500000) << scaling;
    EXPECT_EQ(rope_scaling_type_name(config.rope_scaling.type), scaling);
    EXPECT_EQ(config.rope_scaling.factor, 2) << scaling;
    EXPECT_EQ(config.max_position_embeddings, 128) << scaling;
    EXPECT_EQ(config.variant, Variant::kEH) << scaling;
    // Started from the trained weights: the first loss is far below a fresh model's (ln 320 = 5.8).
    std::ifstream metrics(summary.metrics_file);
    std::string first_line;
    std::getline(metrics, first_line);
    EXPECT_LT(nlohmann::json::parse(first_line).at("loss").get<double>(), 4.5) << scaling;
  }
  fs::remove_all(out);
}

TEST(Training, DivergenceStopsWithStepAndTensor) {
  const fs::path out = temporary_folder("nan");
  TrainConfig config = tiny_run(out, "rope");
  config.steps = 50;
  config.lr = 1e30;  // the first update overflows the weights
  config.warmup_steps = 0;
  config.schedule = "constant";
  config.grad_clip = 0;
  config.checkpoint_every = 1;
  try {
    run(config);
    FAIL() << "training with lr 1e30 did not stop";
  } catch (const Error& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("step 2"), std::string::npos) << message;
    EXPECT_TRUE(message.find("loss") != std::string::npos || message.find("gradient of") != std::string::npos)
        << message;
  }
  // Only the healthy first step was saved.
  EXPECT_EQ(latest_checkpoint(out / "run"), out / "run" / "step-00000001");
  fs::remove_all(out);
}

}  // namespace
}  // namespace ropepp::train
