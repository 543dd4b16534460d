#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>

#include "io/checkpoint.h"
#include "io_test_util.h"

namespace ropepp::testing {
namespace {

using json = nlohmann::json;

const char* variant_text(Variant variant) {
  if (variant == Variant::kEH) return "eh";
  if (variant == Variant::kEC) return "ec";
  return "vanilla";
}

TEST(CheckpointShapes, FollowVariantTable) {
  // H = 4, G = 2, d = 8, hidden 32.
  const auto vanilla = expected_tensor_shapes(small_config(Variant::kVanilla));
  EXPECT_EQ(vanilla.at("model.layers.0.self_attn.q_proj.weight"), (std::vector<int64_t>{32, 32}));
  EXPECT_EQ(vanilla.at("model.layers.0.self_attn.k_proj.weight"), (std::vector<int64_t>{16, 32}));
  EXPECT_EQ(vanilla.at("model.layers.1.self_attn.o_proj.weight"), (std::vector<int64_t>{32, 32}));

  const auto eh = expected_tensor_shapes(small_config(Variant::kEH));
  EXPECT_EQ(eh.at("model.layers.0.self_attn.q_proj.weight"), (std::vector<int64_t>{16, 32}));
  EXPECT_EQ(eh.at("model.layers.0.self_attn.k_proj.weight"), (std::vector<int64_t>{8, 32}));
  EXPECT_EQ(eh.at("model.layers.0.self_attn.v_proj.weight"), (std::vector<int64_t>{8, 32}));
  EXPECT_EQ(eh.at("model.layers.0.self_attn.o_proj.weight"), (std::vector<int64_t>{32, 32}));

  const auto ec = expected_tensor_shapes(small_config(Variant::kEC));
  EXPECT_EQ(ec.at("model.layers.0.self_attn.q_proj.weight"), (std::vector<int64_t>{32, 32}));
  EXPECT_EQ(ec.at("model.layers.0.self_attn.v_proj.weight"), (std::vector<int64_t>{16, 32}));
  EXPECT_EQ(ec.at("model.layers.0.self_attn.o_proj.weight"), (std::vector<int64_t>{32, 64}));

  EXPECT_EQ(vanilla.at("model.embed_tokens.weight"), (std::vector<int64_t>{61, 32}));
  EXPECT_EQ(vanilla.at("lm_head.weight"), (std::vector<int64_t>{61, 32}));
  EXPECT_EQ(vanilla.at("model.layers.1.mlp.down_proj.weight"), (std::vector<int64_t>{32, 48}));
  EXPECT_EQ(vanilla.at("model.layers.1.mlp.gate_proj.weight"), (std::vector<int64_t>{48, 32}));
  EXPECT_EQ(vanilla.size(), 3u + 2u * 9u);
  EXPECT_EQ(expected_tensor_shapes(small_config(Variant::kEC, true)).count("lm_head.weight"), 0u);
}

// Writes, reads back and compares every tensor bit for bit with the written
// values (after conversion to the stored dtype), then writes the read-back
// weights again and expects byte-identical files.
void check_round_trip(const fs::path& directory, const ModelConfig& config, DType dtype, int64_t shard_bytes) {
  ModelWeights weights = random_weights(config, 17);
  // Multiples of 1/16 below 8 in magnitude fit the 8-bit significand of BF16, so
  // every dtype stores them exactly and reading back must return them unchanged.
  for (auto& [name, values] : weights.values) {
    for (float& value : values) value = std::clamp(std::round(value * 16.0f) / 16.0f, -7.9375f, 7.9375f);
  }
  write_checkpoint(directory, config, weights.to_write(), dtype, shard_bytes);

  const Checkpoint checkpoint(directory);
  EXPECT_EQ(checkpoint.config().variant, config.variant);
  EXPECT_EQ(checkpoint.config().tie_word_embeddings, config.tie_word_embeddings);
  ASSERT_EQ(checkpoint.tensors().size(), weights.values.size());
  ModelWeights read_back;
  for (const auto& [name, values] : weights.values) {
    const TensorView& view = checkpoint.tensor(name);
    EXPECT_EQ(view.dtype, dtype) << name;
    EXPECT_EQ(view.shape, weights.shapes.at(name)) << name;
    std::vector<float>& out = read_back.values[name];
    out.resize(values.size());
    view.to_f32(out.data(), static_cast<int64_t>(out.size()));
    EXPECT_EQ(std::memcmp(out.data(), values.data(), values.size() * sizeof(float)), 0) << name;
    read_back.shapes[name] = view.shape;
  }

  const fs::path again = directory.string() + "-again";
  write_checkpoint(again, checkpoint.config(), read_back.to_write(), dtype, shard_bytes);
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(directory)) names.push_back(entry.path().filename().string());
  for (const std::string& name : names) {
    EXPECT_EQ(read_bytes(directory / name), read_bytes(again / name)) << name;
  }
  EXPECT_EQ(static_cast<size_t>(std::distance(fs::directory_iterator(again), fs::directory_iterator())),
            names.size());
}

TEST_F(ScratchTest, CheckpointRoundTripEveryVariant) {
  for (const Variant variant : {Variant::kVanilla, Variant::kEH, Variant::kEC}) {
    for (const bool tied : {false, true}) {
      for (const DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
        const std::string name = fmt::format("{}-{}-{}", variant_text(variant), tied ? "tied" : "untied",
                                             dtype_name(dtype));
        SCOPED_TRACE(name);
        check_round_trip(scratch_ / name, small_config(variant, tied), dtype, 0);
        EXPECT_TRUE(fs::exists(scratch_ / name / "model.safetensors"));
      }
    }
  }
}

TEST_F(ScratchTest, CheckpointRoundTripSharded) {
  for (const Variant variant : {Variant::kVanilla, Variant::kEH, Variant::kEC}) {
    for (const DType dtype : {DType::kF32, DType::kBF16}) {
      const std::string name = fmt::format("{}-{}", variant_text(variant), dtype_name(dtype));
      SCOPED_TRACE(name);
      const fs::path directory = scratch_ / name;
      check_round_trip(directory, small_config(variant), dtype, 8000);
      EXPECT_FALSE(fs::exists(directory / "model.safetensors"));
      const json index = json::parse(read_bytes(directory / "model.safetensors.index.json"));
      std::set<std::string> shards;
      for (const auto& [tensor, shard] : index["weight_map"].items()) shards.insert(shard.get<std::string>());
      EXPECT_GE(shards.size(), 2u);
      EXPECT_TRUE(shards.count(fmt::format("model-00001-of-{:05d}.safetensors", shards.size())));
      EXPECT_EQ(index["weight_map"].size(), expected_tensor_shapes(small_config(variant)).size());
    }
  }
}

TEST_F(ScratchTest, CheckpointOverwriteLeavesNoStaging) {
  const ModelConfig config = small_config(Variant::kEC);
  const ModelWeights weights = random_weights(config, 3);
  const fs::path directory = scratch_ / "model";
  write_checkpoint(directory, config, weights.to_write(), DType::kF32, 4000);
  ASSERT_TRUE(fs::exists(directory / "model.safetensors.index.json"));
  write_checkpoint(directory, config, weights.to_write(), DType::kBF16);
  EXPECT_FALSE(fs::exists(directory / "model.safetensors.index.json"));
  EXPECT_EQ(read_model_config(directory).torch_dtype, "bfloat16");
  int entries = 0;
  for (const auto& entry : fs::directory_iterator(scratch_)) {
    ++entries;
    EXPECT_EQ(entry.path().filename(), "model");
  }
  EXPECT_EQ(entries, 1);
}

TEST_F(ScratchTest, CheckpointWriteRejectsWrongTensors) {
  const ModelConfig config = small_config(Variant::kEH);
  ModelWeights weights = random_weights(config, 5);
  const fs::path directory = scratch_ / "model";
  weights.shapes["model.layers.0.self_attn.q_proj.weight"] = {32, 16};
  expect_error([&] { write_checkpoint(directory, config, weights.to_write(), DType::kF32); },
               {"model.layers.0.self_attn.q_proj.weight", "[32, 16]", "[16, 32]"});
  EXPECT_FALSE(fs::exists(directory));
}

TEST_F(ScratchTest, CheckpointWriteKeepsForeignFolder) {
  const ModelConfig config = small_config(Variant::kVanilla);
  const ModelWeights weights = random_weights(config, 4);
  const fs::path folder = scratch_ / "documents";
  fs::create_directories(folder);
  write_bytes(folder / "notes.txt", "keep me");
  expect_error([&] { write_checkpoint(folder, config, weights.to_write(), DType::kF32); },
               {folder.string(), "not empty", "no config.json"});
  EXPECT_EQ(read_bytes(folder / "notes.txt"), "keep me");

  write_bytes(scratch_ / "file", "x");
  expect_error([&] { write_checkpoint(scratch_ / "file", config, weights.to_write(), DType::kF32); },
               {"a file with that name exists"});

  fs::create_directories(scratch_ / "empty");
  write_checkpoint(scratch_ / "empty", config, weights.to_write(), DType::kF32);
  EXPECT_TRUE(fs::exists(scratch_ / "empty" / "model.safetensors"));
}

// A valid checkpoint folder to damage in the tests below.
class BrokenCheckpointTest : public ScratchTest {
 protected:
  void SetUp() override {
    ScratchTest::SetUp();
    config_ = small_config(Variant::kEH);
    weights_ = random_weights(config_, 9);
    directory_ = scratch_ / "model";
  }

  void write(const ModelConfig& config, const ModelWeights& weights) {
    // Writes tensors unchecked, so the folder can hold what write_checkpoint rejects.
    fs::create_directories(directory_);
    write_model_config(directory_ / "config.json", config);
    write_safetensors(directory_ / "model.safetensors", weights.to_write(), DType::kF32);
  }

  void expect_rejected(std::initializer_list<std::string> parts) {
    expect_error([&] { Checkpoint checkpoint(directory_); }, parts);
  }

  ModelConfig config_;
  ModelWeights weights_;
  fs::path directory_;
};

TEST_F(BrokenCheckpointTest, MissingTensor) {
  weights_.values.erase("model.layers.1.mlp.up_proj.weight");
  weights_.shapes.erase("model.layers.1.mlp.up_proj.weight");
  write(config_, weights_);
  expect_rejected({directory_.string(), "1 tensor(s) missing", "model.layers.1.mlp.up_proj.weight", "RoPE++EH"});
}

TEST_F(BrokenCheckpointTest, UnexpectedTensor) {
  weights_.values["model.layers.2.mlp.up_proj.weight"] = {1.0f};
  weights_.shapes["model.layers.2.mlp.up_proj.weight"] = {1};
  write(config_, weights_);
  expect_rejected({directory_.string(), "unexpected", "model.layers.2.mlp.up_proj.weight", "num_hidden_layers"});
}

TEST_F(BrokenCheckpointTest, WrongShapeForVariant) {
  // The EC q/k/v shapes with an EH config.
  const ModelWeights ec = random_weights(small_config(Variant::kEC), 9);
  write(config_, ec);
  expect_rejected({directory_.string(), "tensor model.layers.0.self_attn.k_proj.weight has shape [16, 32]",
                   "expected [8, 32]", "RoPE++EH"});
}

TEST_F(BrokenCheckpointTest, LmHeadWithTiedEmbeddings) {
  ModelConfig tied = config_;
  tied.tie_word_embeddings = true;
  write(tied, weights_);
  expect_rejected({directory_.string(), "lm_head.weight", "tie_word_embeddings"});
}

TEST_F(BrokenCheckpointTest, LmHeadMissingWhenUntied) {
  weights_.values.erase("lm_head.weight");
  weights_.shapes.erase("lm_head.weight");
  write(config_, weights_);
  expect_rejected({"lm_head.weight", "tie_word_embeddings false"});
}

TEST_F(BrokenCheckpointTest, IgnoresRotaryBuffers) {
  weights_.values["model.layers.0.self_attn.rotary_emb.inv_freq"] = {1.0f, 0.1f};
  weights_.shapes["model.layers.0.self_attn.rotary_emb.inv_freq"] = {2};
  write(config_, weights_);
  const Checkpoint checkpoint(directory_);
  EXPECT_TRUE(checkpoint.has("model.norm.weight"));
}

TEST_F(BrokenCheckpointTest, NoWeightsOrConfig) {
  expect_rejected({directory_.string(), "not found"});
  fs::create_directories(directory_);
  expect_rejected({"config.json", "not found"});
  write_model_config(directory_ / "config.json", config_);
  expect_rejected({directory_.string(), "model.safetensors", "model.safetensors.index.json"});
  expect_error([&] { (void)Checkpoint(directory_).tensor("x"); }, {"model.safetensors"});
}

TEST_F(BrokenCheckpointTest, FoldersInPlaceOfFiles) {
  write(config_, weights_);
  fs::remove(directory_ / "config.json");
  fs::create_directory(directory_ / "config.json");
  expect_rejected({(directory_ / "config.json").string(), "is a folder"});

  fs::remove(directory_ / "config.json");
  write_model_config(directory_ / "config.json", config_);
  fs::remove(directory_ / "model.safetensors");
  fs::create_directory(directory_ / "model.safetensors.index.json");
  expect_rejected({"model.safetensors.index.json", "is a folder"});
}

TEST_F(BrokenCheckpointTest, SymlinkLoopsRaiseRopeppError) {
  // std::filesystem reports a loop as filesystem_error; callers expect ropepp::Error.
  write(config_, weights_);
  fs::remove(directory_ / "model.safetensors");
  fs::create_symlink("model.safetensors", directory_ / "model.safetensors");
  expect_rejected({(directory_ / "model.safetensors").string(), "cannot access"});

  fs::remove(directory_ / "config.json");
  fs::create_symlink("config.json", directory_ / "config.json");
  expect_rejected({(directory_ / "config.json").string(), "cannot access"});
}

TEST_F(BrokenCheckpointTest, MissingTensorLookupNamesIt) {
  write(config_, weights_);
  const Checkpoint checkpoint(directory_);
  expect_error([&] { checkpoint.tensor("model.layers.9.mlp.up_proj.weight"); },
               {directory_.string(), "no tensor model.layers.9.mlp.up_proj.weight"});
}

// A sharded checkpoint whose index is then edited to break it.
class BrokenIndexTest : public BrokenCheckpointTest {
 protected:
  void SetUp() override {
    BrokenCheckpointTest::SetUp();
    write_checkpoint(directory_, config_, weights_.to_write(), DType::kF32, 4000);
    index_ = json::parse(read_bytes(directory_ / "model.safetensors.index.json"));
    first_shard_ = index_["weight_map"]["model.embed_tokens.weight"].get<std::string>();
  }

  void save_index() { write_bytes(directory_ / "model.safetensors.index.json", index_.dump()); }

  std::string shard_of(const std::string& tensor) { return index_["weight_map"][tensor].get<std::string>(); }

  json index_;
  std::string first_shard_;
};

TEST_F(BrokenIndexTest, ShardMissing) {
  fs::remove(directory_ / first_shard_);
  expect_rejected({"model.safetensors.index.json", first_shard_, "missing"});
}

TEST_F(BrokenIndexTest, TensorNotInItsShard) {
  // Points a tensor at a shard that does not store it.
  const std::string tensor = "model.norm.weight";
  std::string other;
  for (const auto& [name, shard] : index_["weight_map"].items()) {
    if (shard != index_["weight_map"][tensor]) other = shard.get<std::string>();
  }
  ASSERT_FALSE(other.empty());
  index_["weight_map"][tensor] = other;
  save_index();
  expect_rejected({other, "tensor model.norm.weight", "not found in that shard"});
}

TEST_F(BrokenIndexTest, TensorAbsentFromIndex) {
  index_["weight_map"].erase("model.norm.weight");
  save_index();
  expect_rejected({"model.norm.weight", "not listed in"});
}

TEST_F(BrokenIndexTest, TensorInTwoShards) {
  // Adds a copy of a tensor of the first shard to another shard.
  std::string other;
  for (const auto& [name, shard] : index_["weight_map"].items()) {
    if (shard != first_shard_) other = shard.get<std::string>();
  }
  ASSERT_FALSE(other.empty());
  std::vector<TensorToWrite> tensors;
  const SafetensorsFile original(directory_ / other);
  std::map<std::string, std::vector<float>> data;
  for (const auto& [name, view] : original.tensors()) {
    data[name].resize(static_cast<size_t>(view.numel()));
    view.to_f32(data[name].data(), view.numel());
  }
  const std::string copied = "model.embed_tokens.weight";
  data[copied] = weights_.values.at(copied);
  for (const auto& [name, values] : data) {
    tensors.push_back({name, name == copied ? weights_.shapes.at(copied) : original.tensors().at(name).shape,
                       values.data()});
  }
  write_safetensors(directory_ / (other + ".new"), tensors, DType::kF32);
  fs::rename(directory_ / (other + ".new"), directory_ / other);
  expect_rejected({copied, "two shards"});
}

TEST_F(BrokenIndexTest, ShardNameOutsideFolder) {
  index_["weight_map"]["model.norm.weight"] = "../elsewhere.safetensors";
  save_index();
  expect_rejected({"plain file names"});
}

TEST_F(BrokenIndexTest, InvalidIndexJson) {
  write_bytes(directory_ / "model.safetensors.index.json", "{\"weight_map\": ");
  expect_rejected({"model.safetensors.index.json", "invalid JSON"});
  write_bytes(directory_ / "model.safetensors.index.json", "{\"weight_map\": []}");
  expect_rejected({"model.safetensors.index.json", "weight_map"});
  write_bytes(directory_ / "model.safetensors.index.json", "{\"weight_map\": {\"model.norm.weight\": 3}}");
  expect_rejected({"model.safetensors.index.json", "model.norm.weight", "file name"});
}

}  // namespace
}  // namespace ropepp::testing
