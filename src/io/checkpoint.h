// Hugging Face checkpoint folders: config.json plus model.safetensors, or
// shards listed in model.safetensors.index.json ({"weight_map": {name: file}}).
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/model_config.h"
#include "io/safetensors.h"

namespace ropepp {

// Expected tensors of a Llama model for a config: name -> [out, in] or [n].
// Shapes follow the variant (q_proj has (H/2)*d rows for EH, o_proj 2H*d
// columns for EC); lm_head.weight is absent when embeddings are tied.
std::map<std::string, std::vector<int64_t>> expected_tensor_shapes(const ModelConfig& config);

// An opened checkpoint: config and every tensor, validated against each other
// (missing, unexpected, misshaped tensors, lm_head with tied embeddings, shards
// named in the index but absent). Tensors stay memory-mapped.
class Checkpoint {
 public:
  // Throws ropepp::Error naming the file, tensor or key, what was expected and
  // what was found.
  explicit Checkpoint(const std::filesystem::path& directory);

  const std::filesystem::path& directory() const { return directory_; }
  const ModelConfig& config() const { return config_; }
  const TensorView& tensor(const std::string& name) const;
  bool has(const std::string& name) const { return tensors_.count(name) != 0; }
  const std::map<std::string, const TensorView*>& tensors() const { return tensors_; }

 private:
  std::filesystem::path directory_;
  ModelConfig config_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const TensorView*> tensors_;
};

// Writes a checkpoint folder atomically: everything goes to a staging folder
// beside `directory`, which then replaces it. max_shard_bytes > 0 splits the
// weights into model-0000i-of-0000n.safetensors shards with an index.
void write_checkpoint(const std::filesystem::path& directory, const ModelConfig& config,
                      const std::vector<TensorToWrite>& tensors, DType dtype, int64_t max_shard_bytes = 0);

}  // namespace ropepp
