#include "io/checkpoint.h"

#include <random>
#include <set>

#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/log.h"
#include "core/progress.h"
#include "io/json_file.h"

namespace ropepp {
namespace fs = std::filesystem;
namespace {

using json = nlohmann::json;

constexpr const char* kSingleFile = "model.safetensors";
constexpr const char* kIndexFile = "model.safetensors.index.json";

std::string shape_text(const std::vector<int64_t>& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

// Lists at most a few names so that a message about a wholly wrong checkpoint stays readable.
std::string name_list(const std::vector<std::string>& names) {
  constexpr size_t kShown = 5;
  std::string text;
  for (size_t i = 0; i < names.size() && i < kShown; ++i) text += (i == 0 ? "" : ", ") + names[i];
  if (names.size() > kShown) text += fmt::format(" and {} more", names.size() - kShown);
  return text;
}

std::string model_description(const ModelConfig& config) {
  const char* variant = config.variant == Variant::kEH   ? "RoPE++EH"
                        : config.variant == Variant::kEC ? "RoPE++EC"
                                                         : "vanilla RoPE";
  return fmt::format("{} model with hidden_size {}, {} layers, num_attention_heads {}, num_key_value_heads {}, "
                     "head_dim {}",
                     variant, config.hidden_size, config.num_hidden_layers, config.num_attention_heads,
                     config.num_key_value_heads, config.head_dim);
}

// Returns whether `path` exists. A path that cannot be inspected (a symbolic
// link loop, a name too long) raises ropepp::Error instead of
// std::filesystem::filesystem_error.
bool path_exists(const fs::path& path) {
  std::error_code error;
  const bool found = fs::exists(path, error);
  if (error) fail("{}: cannot access the file: {}", path.string(), error.message());
  return found;
}

// Old Hugging Face Llama checkpoints store the rotary frequencies as a buffer.
// The transformers library ignores them on load, and so does ropepp.
bool is_ignored_buffer(const std::string& name) {
  const std::string suffix = ".rotary_emb.inv_freq";
  return name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Checks the tensors of a checkpoint (name -> shape) against the config.
// `source` is the folder or file named in messages.
void check_tensor_set(const ModelConfig& config, const std::map<std::string, std::vector<int64_t>>& found,
                      const std::string& source) {
  const auto expected = expected_tensor_shapes(config);

  if (config.tie_word_embeddings && found.count("lm_head.weight") != 0) {
    fail("{}: lm_head.weight is present but config.json sets tie_word_embeddings true, so the model would reuse "
         "model.embed_tokens.weight and ignore it: set tie_word_embeddings to false or remove lm_head.weight",
         source);
  }

  std::vector<std::string> missing;
  for (const auto& [name, shape] : expected) {
    if (found.count(name) == 0) missing.push_back(name);
  }
  if (!missing.empty()) {
    std::string hint;
    if (missing.size() == 1 && missing.front() == "lm_head.weight") {
      hint = " (config.json sets tie_word_embeddings false; set it to true if the model shares its embeddings)";
    }
    fail("{}: {} tensor(s) missing for a {}: {}{}", source, missing.size(), model_description(config),
         name_list(missing), hint);
  }

  std::vector<std::string> unexpected;
  for (const auto& [name, shape] : found) {
    if (expected.count(name) == 0 && !is_ignored_buffer(name)) unexpected.push_back(name);
  }
  if (!unexpected.empty()) {
    fail("{}: {} unexpected tensor(s) for a {}: {} (is num_hidden_layers or the variant in config.json right?)",
         source, unexpected.size(), model_description(config), name_list(unexpected));
  }

  for (const auto& [name, shape] : expected) {
    const std::vector<int64_t>& actual = found.at(name);
    if (actual != shape) {
      fail("{}: tensor {} has shape {}, expected {} for a {}", source, name, shape_text(actual), shape_text(shape),
           model_description(config));
    }
  }
}

std::string random_suffix() {
  std::random_device device;
  return fmt::format("{:08x}", device());
}

std::string torch_dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kF32: return "float32";
    case DType::kBF16: return "bfloat16";
    case DType::kF16: return "float16";
  }
  return "float32";
}

uint64_t tensor_bytes(const TensorToWrite& tensor, DType dtype) {
  uint64_t count = 1;
  for (const int64_t dimension : tensor.shape) count *= static_cast<uint64_t>(dimension);
  return count * dtype_size(dtype);
}

// Writes the weights into `staging`: one file, or shards of at most
// max_shard_bytes each (a single larger tensor gets a shard of its own) plus
// the index Hugging Face reads.
void write_weights(const fs::path& staging, const std::vector<TensorToWrite>& tensors, DType dtype,
                   int64_t max_shard_bytes) {
  uint64_t total = 0;
  for (const TensorToWrite& tensor : tensors) total += tensor_bytes(tensor, dtype);

  std::vector<std::vector<TensorToWrite>> shards(1);
  if (max_shard_bytes > 0 && total > static_cast<uint64_t>(max_shard_bytes)) {
    uint64_t shard_bytes = 0;
    for (const TensorToWrite& tensor : tensors) {
      const uint64_t bytes = tensor_bytes(tensor, dtype);
      if (!shards.back().empty() && shard_bytes + bytes > static_cast<uint64_t>(max_shard_bytes)) {
        shards.emplace_back();
        shard_bytes = 0;
      }
      shards.back().push_back(tensor);
      shard_bytes += bytes;
    }
  } else {
    shards.front() = tensors;
  }

  if (shards.size() == 1) {
    write_safetensors(staging / kSingleFile, shards.front(), dtype);
    return;
  }

  // Shows progress per shard only for writes of 1 GiB or more, because smaller ones finish too fast to watch.
  std::unique_ptr<ProgressBar> progress;
  if (total >= (uint64_t{1} << 30)) {
    progress = std::make_unique<ProgressBar>(static_cast<int64_t>(shards.size()), "writing shards");
  }
  std::map<std::string, std::string> weight_map;
  for (size_t i = 0; i < shards.size(); ++i) {
    const std::string name = fmt::format("model-{:05d}-of-{:05d}.safetensors", i + 1, shards.size());
    write_safetensors(staging / name, shards[i], dtype);
    for (const TensorToWrite& tensor : shards[i]) weight_map[tensor.name] = name;
    if (progress) progress->update(static_cast<int64_t>(i + 1));
  }
  if (progress) progress->finish();

  nlohmann::ordered_json index;
  index["metadata"] = {{"total_size", total}};
  index["weight_map"] = weight_map;
  write_file_atomic(staging / kIndexFile, index.dump(2) + "\n");
}

}  // namespace

std::map<std::string, std::vector<int64_t>> expected_tensor_shapes(const ModelConfig& config) {
  const ProjectionHeads heads = projection_heads(config);
  const int64_t hidden = config.hidden_size;
  const int64_t d = config.head_dim;
  const int64_t intermediate = config.intermediate_size;

  std::map<std::string, std::vector<int64_t>> shapes;
  shapes["model.embed_tokens.weight"] = {config.vocab_size, hidden};
  shapes["model.norm.weight"] = {hidden};
  if (!config.tie_word_embeddings) shapes["lm_head.weight"] = {config.vocab_size, hidden};
  for (int layer = 0; layer < config.num_hidden_layers; ++layer) {
    const std::string prefix = fmt::format("model.layers.{}.", layer);
    shapes[prefix + "input_layernorm.weight"] = {hidden};
    shapes[prefix + "post_attention_layernorm.weight"] = {hidden};
    shapes[prefix + "self_attn.q_proj.weight"] = {heads.query * d, hidden};
    shapes[prefix + "self_attn.k_proj.weight"] = {heads.key_value * d, hidden};
    shapes[prefix + "self_attn.v_proj.weight"] = {heads.key_value * d, hidden};
    shapes[prefix + "self_attn.o_proj.weight"] = {hidden, heads.attention * d};
    shapes[prefix + "mlp.gate_proj.weight"] = {intermediate, hidden};
    shapes[prefix + "mlp.up_proj.weight"] = {intermediate, hidden};
    shapes[prefix + "mlp.down_proj.weight"] = {hidden, intermediate};
  }
  return shapes;
}

Checkpoint::Checkpoint(const fs::path& directory) : directory_(directory) {
  std::error_code ignored;  // a folder that cannot be inspected is reported as not found
  if (!fs::is_directory(directory, ignored)) {
    fail("checkpoint folder {} not found: expected a folder with config.json and model.safetensors", directory.string());
  }
  // The folder form, so that a folder named config.json is reported as such.
  config_ = read_model_config(directory);

  const fs::path single = directory / kSingleFile;
  const fs::path index_path = directory / kIndexFile;
  if (path_exists(single)) {
    // Hugging Face loads model.safetensors first when both forms are present.
    files_.push_back(std::make_unique<SafetensorsFile>(single));
    for (const auto& [name, view] : files_.front()->tensors()) tensors_[name] = &view;
  } else if (path_exists(index_path)) {
    const std::string index_name = index_path.string();
    const json index = read_json_file(index_path);
    if (!index.is_object() || !index.contains("weight_map") || !index.at("weight_map").is_object()) {
      fail("{}: expected an object with a \"weight_map\" object mapping tensor names to shard files", index_name);
    }

    // Opens each shard once, in the order the index first names it.
    std::map<std::string, SafetensorsFile*> shards;
    for (const auto& [tensor, shard] : index.at("weight_map").items()) {
      if (!shard.is_string()) {
        fail("{}: weight_map entry for {} must be a file name string, found {}", index_name, tensor, shard.dump());
      }
      const std::string file_name = shard.get<std::string>();
      const fs::path relative(file_name);
      if (file_name.empty() || relative.has_parent_path() || relative.is_absolute() || file_name == "." ||
          file_name == "..") {
        fail("{}: weight_map entry for {} names \"{}\": shard files must be plain file names inside the checkpoint "
             "folder",
             index_name, tensor, file_name);
      }
      if (shards.count(file_name) == 0) {
        const fs::path shard_path = directory / relative;
        if (!path_exists(shard_path)) {
          fail("{}: shard {} (listed for tensor {}) is missing from {}: copy the complete checkpoint", index_name,
               file_name, tensor, directory.string());
        }
        files_.push_back(std::make_unique<SafetensorsFile>(shard_path));
        shards[file_name] = files_.back().get();
      }
      const SafetensorsFile& file = *shards.at(file_name);
      const auto found = file.tensors().find(tensor);
      if (found == file.tensors().end()) {
        fail("{}: tensor {} is listed in {} but not found in that shard", file.path().string(), tensor, index_name);
      }
      tensors_[tensor] = &found->second;
    }

    // A shard tensor absent from the index, or mapped to another shard, means
    // the index and the shards disagree.
    for (const auto& [file_name, file] : shards) {
      for (const auto& [name, view] : file->tensors()) {
        const auto mapped = tensors_.find(name);
        if (mapped == tensors_.end()) {
          fail("{}: tensor {} is not listed in {}: the index does not match its shards", file->path().string(), name,
               index_name);
        }
        if (mapped->second != &view) {
          fail("{}: tensor {} is stored in two shards ({} and the one {} names)", file->path().string(), name,
               file_name, index_name);
        }
      }
    }
  } else {
    fail("{}: no {} or {} found: the checkpoint has no weights", directory.string(), kSingleFile, kIndexFile);
  }

  std::map<std::string, std::vector<int64_t>> found;
  for (const auto& [name, view] : tensors_) found[name] = view->shape;
  check_tensor_set(config_, found, directory.string());
}

const TensorView& Checkpoint::tensor(const std::string& name) const {
  const auto found = tensors_.find(name);
  if (found == tensors_.end()) fail("checkpoint {} has no tensor {}", directory_.string(), name);
  return *found->second;
}

void write_checkpoint(const fs::path& directory, const ModelConfig& config, const std::vector<TensorToWrite>& tensors,
                      DType dtype, int64_t max_shard_bytes) {
  const std::string target = directory.string();
  config.validate(target + "/config.json");

  // Rejects tensors that Checkpoint would reject on reading.
  std::map<std::string, std::vector<int64_t>> shapes_to_write;
  for (const TensorToWrite& tensor : tensors) {
    if (!shapes_to_write.emplace(tensor.name, tensor.shape).second) {
      fail("cannot write checkpoint {}: tensor {} is given twice", target, tensor.name);
    }
  }
  check_tensor_set(config, shapes_to_write, "cannot write checkpoint " + target);

  fs::path absolute = fs::absolute(directory).lexically_normal();
  if (!absolute.has_filename()) absolute = absolute.parent_path();

  // The old folder is deleted once the new one is in place, so only an empty
  // folder or an earlier checkpoint may be replaced.
  if (fs::exists(absolute)) {
    if (!fs::is_directory(absolute)) {
      fail("cannot write checkpoint {}: a file with that name exists. Choose another output path", target);
    }
    if (!fs::is_empty(absolute) && !fs::exists(absolute / "config.json")) {
      fail("cannot write checkpoint {}: the folder exists, is not empty and has no config.json, so it is not a "
           "checkpoint that may be replaced. Choose an empty or new output path",
           target);
    }
  }

  std::error_code error;
  fs::create_directories(absolute.parent_path(), error);
  if (error) fail("cannot create folder {}: {}", absolute.parent_path().string(), error.message());
  const fs::path staging = absolute.parent_path() / (absolute.filename().string() + ".staging-" + random_suffix());
  try {
    if (!fs::create_directory(staging, error) || error) {
      fail("cannot create staging folder {}: {}", staging.string(), error ? error.message() : "it already exists");
    }
    ModelConfig written = config;
    written.torch_dtype = torch_dtype_name(dtype);
    write_model_config(staging / "config.json", written);
    write_weights(staging, tensors, dtype, max_shard_bytes);
    replace_directory_atomic(staging, absolute);
  } catch (...) {
    std::error_code ignored;
    fs::remove_all(staging, ignored);
    throw;
  }
  spdlog::debug("wrote checkpoint {}", absolute.string());
}

}  // namespace ropepp
