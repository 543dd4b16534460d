#include "train/token_cache.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/rng.h"
#include "tokenizer/utf8.h"

namespace ropepp::train {
namespace fs = std::filesystem;
namespace {

constexpr const char* kFormat = "ropepp-token-cache";
constexpr int kVersion = 1;

int64_t mtime_ns(const fs::path& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) fail("cannot read {}: {}", path.string(), std::strerror(errno));
  return static_cast<int64_t>(info.st_mtim.tv_sec) * 1000000000 + info.st_mtim.tv_nsec;
}

bool is_corpus_file(const fs::path& path) {
  const std::string extension = path.extension().string();
  return extension == ".txt" || extension == ".md" || extension == ".jsonl";
}

bool is_jsonl(const std::string& path) { return fs::path(path).extension() == ".jsonl"; }

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open {}: {}", path.string(), std::strerror(errno));
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Maps a whole file read-only; an empty file maps to nothing.
const void* map_file(const fs::path& path, size_t& size, void*& mapping) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) fail("cannot open {}: {} (rebuild the token cache)", path.string(), std::strerror(errno));
  struct stat info {};
  ::fstat(fd, &info);
  size = static_cast<size_t>(info.st_size);
  if (size == 0) {
    ::close(fd);
    return nullptr;
  }
  mapping = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (mapping == MAP_FAILED) {
    mapping = nullptr;
    fail("cannot memory-map {}: {}", path.string(), std::strerror(errno));
  }
  return mapping;
}

nlohmann::json sources_json(const std::vector<SourceFile>& sources) {
  nlohmann::json list = nlohmann::json::array();
  for (const SourceFile& source : sources) {
    list.push_back({{"path", source.path}, {"size", source.size}, {"mtime_ns", source.mtime_ns}});
  }
  return list;
}

// Reads the documents of one source file and hands them to `consume` in
// batches of about kBatchBytes, so a JSON-lines file larger than memory streams.
// A plain-text file is one document and is read whole.
void read_documents(const SourceFile& source, const std::string& text_field,
                    const std::function<void(std::vector<std::string>&)>& consume) {
  constexpr size_t kBatchBytes = size_t{64} << 20;
  std::vector<std::string> documents;
  if (!is_jsonl(source.path)) {
    documents.push_back(read_file(source.path));
    consume(documents);
    return;
  }
  std::ifstream in(source.path, std::ios::binary);
  if (!in) fail("cannot open {}: {}", source.path, std::strerror(errno));
  std::string line;
  int64_t line_number = 0;
  size_t batch_bytes = 0;
  while (std::getline(in, line)) {
    ++line_number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json object;
    try {
      object = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& error) {
      fail("{}:{}: invalid JSON line: {}", source.path, line_number, error.what());
    }
    if (!object.is_object() || !object.contains(text_field) || !object[text_field].is_string()) {
      fail("{}:{}: expected an object with a string field \"{}\" (choose the field with --text-field)", source.path,
           line_number, text_field);
    }
    documents.push_back(object[text_field].get<std::string>());
    batch_bytes += documents.back().size();
    if (batch_bytes >= kBatchBytes) {
      consume(documents);
      documents.clear();
      batch_bytes = 0;
    }
  }
  if (!documents.empty()) consume(documents);
}

}  // namespace

std::vector<SourceFile> list_source_files(const std::vector<fs::path>& inputs) {
  ROPEPP_CHECK(!inputs.empty(), "no training data given: pass text files, JSON-lines files or folders");
  std::vector<SourceFile> files;
  for (const fs::path& input : inputs) {
    if (fs::is_directory(input)) {
      std::vector<fs::path> found;
      for (const auto& entry : fs::recursive_directory_iterator(input)) {
        if (entry.is_regular_file() && is_corpus_file(entry.path())) found.push_back(entry.path());
      }
      std::sort(found.begin(), found.end());
      ROPEPP_CHECK(!found.empty(), "folder {} contains no .txt, .md or .jsonl files", input.string());
      for (const fs::path& path : found) files.push_back({fs::canonical(path).string(), 0, 0});
    } else {
      ROPEPP_CHECK(fs::is_regular_file(input), "training data {} not found", input.string());
      files.push_back({fs::canonical(input).string(), 0, 0});
    }
  }
  for (SourceFile& file : files) {
    file.size = static_cast<int64_t>(fs::file_size(file.path));
    file.mtime_ns = mtime_ns(file.path);
  }
  return files;
}

std::string tokenizer_identity(const Tokenizer& tokenizer, const std::string& path_or_name) {
  std::string identity = fmt::format("{} ({} ids)", tokenizer.description(), tokenizer.vocab_size());
  std::error_code error;
  if (fs::exists(path_or_name, error)) {
    const fs::path path = fs::canonical(path_or_name);
    const fs::path file = fs::is_directory(path) ? path / "tokenizer.json" : path;
    if (fs::is_regular_file(file, error)) {
      identity += fmt::format(" from {}, {} bytes, mtime {}", file.string(), fs::file_size(file), mtime_ns(file));
    } else {
      identity += " from " + path.string();
    }
  } else {
    identity += " '" + path_or_name + "'";
  }
  return identity;
}

void TokenCache::build(const fs::path& directory, const CorpusOptions& options, const Tokenizer& tokenizer,
                       const std::string& identity) {
  const std::vector<SourceFile> sources = list_source_files(options.inputs);
  int64_t total_bytes = 0;
  for (const SourceFile& source : sources) total_bytes += source.size;

  const fs::path parent = directory.parent_path().empty() ? fs::path(".") : directory.parent_path();
  fs::create_directories(parent);
  const fs::path staging = parent / fmt::format("{}.tmp-{:08x}", directory.filename().string(), std::random_device{}());
  fs::create_directories(staging);

  const std::optional<TokenId> bos = options.add_bos ? tokenizer.bos_id() : std::nullopt;
  const std::optional<TokenId> eos = options.add_eos ? tokenizer.eos_id() : std::nullopt;
  std::vector<uint64_t> offsets = {0};
  int64_t n_repaired = 0;
  uint64_t checksum = 0;
  try {
    ProgressBar progress(total_bytes, "tokenizing");
    int64_t bytes_done = 0;
    write_file_atomic(staging / "tokens.bin", [&](std::FILE* out) {
      auto encode_and_write = [&](std::vector<std::string>& documents) {
        // Encoded in parallel (the tokenizer is thread-safe), written in order.
        std::vector<std::vector<TokenId>> encoded(documents.size());
        std::vector<char> repaired(documents.size(), 0);
#pragma omp parallel for schedule(dynamic)
        for (size_t d = 0; d < documents.size(); ++d) {
          if (find_invalid_utf8(documents[d]) != std::string_view::npos) {
            documents[d] = replace_invalid_utf8(documents[d]);
            repaired[d] = 1;
          }
          encoded[d] = tokenizer.encode(documents[d]);
        }
        for (size_t d = 0; d < documents.size(); ++d) {
          n_repaired += repaired[d];
          std::vector<TokenId>& tokens = encoded[d];
          if (tokens.empty()) continue;
          if (bos) tokens.insert(tokens.begin(), *bos);
          if (eos) tokens.push_back(*eos);
          if (std::fwrite(tokens.data(), sizeof(TokenId), tokens.size(), out) != tokens.size()) {
            fail("writing the token cache in {} failed: {} (is the disk full?)", staging.string(), std::strerror(errno));
          }
          for (TokenId token : tokens) checksum = mix64(checksum ^ static_cast<uint32_t>(token));
          offsets.push_back(offsets.back() + tokens.size());
        }
      };
      for (const SourceFile& source : sources) {
        read_documents(source, options.text_field, encode_and_write);
        bytes_done += source.size;
        progress.update(bytes_done, fmt::format("{} documents, {} tokens", offsets.size() - 1, offsets.back()));
      }
    });
    progress.finish(fmt::format("{} documents, {} tokens", offsets.size() - 1, offsets.back()));
    if (n_repaired > 0) {
      spdlog::warn("{} documents held invalid UTF-8; each invalid sequence was replaced by U+FFFD", n_repaired);
    }

    write_file_atomic(staging / "documents.bin", std::string_view(reinterpret_cast<const char*>(offsets.data()),
                                                                  offsets.size() * sizeof(uint64_t)));
    nlohmann::ordered_json manifest;
    manifest["format"] = kFormat;
    manifest["version"] = kVersion;
    manifest["tokenizer"] = identity;
    manifest["vocab_size"] = tokenizer.vocab_size();
    manifest["text_field"] = options.text_field;
    manifest["add_bos"] = bos.has_value();
    manifest["add_eos"] = eos.has_value();
    manifest["n_documents"] = offsets.size() - 1;
    manifest["n_tokens"] = offsets.back();
    manifest["checksum"] = fmt::format("{:016x}", checksum);
    manifest["sources"] = sources_json(sources);
    write_file_atomic(staging / "manifest.json", manifest.dump(2) + "\n");
    replace_directory_atomic(staging, directory);
  } catch (...) {
    std::error_code ignored;
    fs::remove_all(staging, ignored);
    throw;
  }
  spdlog::info("token cache {}: {} documents, {} tokens from {} files ({:.1f} MB of text)", directory.string(),
               offsets.size() - 1, offsets.back(), sources.size(), static_cast<double>(total_bytes) / 1e6);
}

TokenCache::TokenCache(const fs::path& directory, const CorpusOptions& options, const std::string& identity)
    : directory_(directory) {
  const fs::path manifest_path = directory / "manifest.json";
  ROPEPP_CHECK(fs::is_regular_file(manifest_path), "token cache {} has no manifest.json (build it first)",
               directory.string());
  nlohmann::json manifest;
  try {
    manifest = nlohmann::json::parse(read_file(manifest_path));
  } catch (const nlohmann::json::exception& error) {
    fail("{}: invalid JSON: {} (delete the cache folder to rebuild it)", manifest_path.string(), error.what());
  }
  auto field = [&](const char* name) -> const nlohmann::json& {
    if (!manifest.contains(name)) fail("{}: missing field \"{}\" (delete the cache folder to rebuild it)", manifest_path.string(), name);
    return manifest[name];
  };
  try {
    ROPEPP_CHECK(field("format") == kFormat && field("version") == kVersion,
                 "{}: not a version {} ropepp token cache (delete the folder to rebuild it)", manifest_path.string(),
                 kVersion);
    const std::string cached_identity = field("tokenizer").get<std::string>();
    ROPEPP_CHECK(cached_identity == identity,
                 "token cache {} was made with tokenizer \"{}\", but this run uses \"{}\" (rebuild the cache)",
                 directory.string(), cached_identity, identity);
    ROPEPP_CHECK(field("text_field") == options.text_field,
                 "token cache {} read the JSON field \"{}\", but this run asks for \"{}\" (rebuild the cache)",
                 directory.string(), field("text_field").get<std::string>(), options.text_field);
    const nlohmann::json current = sources_json(list_source_files(options.inputs));
    if (field("sources") != current) {
      fail("token cache {} is stale: its sources were {} but are now {} (rebuild the cache)", directory.string(),
           field("sources").dump(), current.dump());
    }
    n_documents_ = field("n_documents").get<int64_t>();
    n_tokens_ = field("n_tokens").get<int64_t>();
    vocab_size_ = field("vocab_size").get<int32_t>();
    fingerprint_ = field("checksum").get<std::string>() + "/" + identity;
  } catch (const nlohmann::json::exception& error) {
    fail("{}: invalid field: {} (delete the cache folder to rebuild it)", manifest_path.string(), error.what());
  }

  size_t token_bytes = 0, offset_bytes = 0;
  tokens_ = static_cast<const int32_t*>(map_file(directory / "tokens.bin", token_bytes, token_map_));
  token_map_size_ = token_bytes;
  offsets_ = static_cast<const uint64_t*>(map_file(directory / "documents.bin", offset_bytes, offset_map_));
  offset_map_size_ = offset_bytes;
  ROPEPP_CHECK(token_bytes == static_cast<size_t>(n_tokens_) * sizeof(int32_t),
               "{}: expected {} bytes for {} tokens, found {} (the cache is damaged: delete it to rebuild)",
               (directory / "tokens.bin").string(), n_tokens_ * 4, n_tokens_, token_bytes);
  ROPEPP_CHECK(offset_bytes == static_cast<size_t>(n_documents_ + 1) * sizeof(uint64_t),
               "{}: expected {} bytes for {} documents, found {} (the cache is damaged: delete it to rebuild)",
               (directory / "documents.bin").string(), (n_documents_ + 1) * 8, n_documents_, offset_bytes);
  ROPEPP_CHECK(offsets_[0] == 0 && offsets_[n_documents_] == static_cast<uint64_t>(n_tokens_),
               "{}: document offsets do not cover the {} tokens (the cache is damaged: delete it to rebuild)",
               (directory / "documents.bin").string(), n_tokens_);
  for (int64_t d = 0; d < n_documents_; ++d) {
    ROPEPP_CHECK(offsets_[d] <= offsets_[d + 1],
                 "{}: document offsets decrease at document {} (the cache is damaged: delete it to rebuild)",
                 (directory / "documents.bin").string(), d);
  }
}

TokenCache::~TokenCache() {
  if (token_map_ != nullptr) ::munmap(token_map_, token_map_size_);
  if (offset_map_ != nullptr) ::munmap(offset_map_, offset_map_size_);
}

std::unique_ptr<TokenCache> TokenCache::open_or_build(const fs::path& directory, const CorpusOptions& options,
                                                      const Tokenizer& tokenizer, const std::string& identity) {
  if (fs::exists(directory / "manifest.json")) {
    try {
      return std::make_unique<TokenCache>(directory, options, identity);
    } catch (const Error& error) {
      spdlog::warn("rebuilding the token cache: {}", error.what());
    }
  }
  build(directory, options, tokenizer, identity);
  return std::make_unique<TokenCache>(directory, options, identity);
}

}  // namespace ropepp::train
