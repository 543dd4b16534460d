// Token cache and packing: caching, validation of stale or damaged caches,
// positions, segments and targets of packed sequences, shuffling and the split.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "core/error.h"
#include "tokenizer/tokenizer.h"
#include "train/packing.h"
#include "train/token_cache.h"

namespace ropepp::train {
namespace {
namespace fs = std::filesystem;

class DataTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / fmt::format("ropepp-data-{}-{}", ::getpid(),
                                                    ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_ / "text");
    tokenizer_ = load_tokenizer("byte");
    identity_ = tokenizer_identity(*tokenizer_, "byte");
  }
  void TearDown() override { fs::remove_all(root_); }

  void write(const fs::path& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

  CorpusOptions options() const {
    CorpusOptions corpus;
    corpus.inputs = {root_ / "text"};
    corpus.add_bos = false;
    corpus.add_eos = false;
    return corpus;
  }

  fs::path root_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::string identity_;
};

TEST_F(DataTest, CacheHoldsDocumentsOfTextAndJsonLines) {
  write(root_ / "text" / "a.txt", "hello");
  write(root_ / "text" / "b.jsonl", "{\"text\": \"xy\", \"id\": 1}\n\n{\"text\": \"z\\u00e9\"}\n");
  CorpusOptions corpus = options();
  corpus.add_eos = true;
  TokenCache::build(root_ / "cache", corpus, *tokenizer_, identity_);
  const TokenCache cache(root_ / "cache", corpus, identity_);
  ASSERT_EQ(cache.n_documents(), 3);
  const auto first = cache.document(0);
  EXPECT_EQ(std::vector<int32_t>(first.begin(), first.end()), (std::vector<int32_t>{'h', 'e', 'l', 'l', 'o', 257}));
  EXPECT_EQ(cache.document_length(1), 3);
  EXPECT_EQ(cache.document_length(2), 4);  // z, two bytes of e-acute, EOS
  EXPECT_EQ(cache.n_tokens(), 13);
}

TEST_F(DataTest, JsonLinesWithoutTheFieldAreRejected) {
  write(root_ / "text" / "b.jsonl", "{\"body\": \"xy\"}\n");
  CorpusOptions corpus = options();
  try {
    TokenCache::build(root_ / "cache", corpus, *tokenizer_, identity_);
    FAIL() << "a JSON line without the text field was accepted";
  } catch (const Error& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("b.jsonl:1"), std::string::npos) << message;
    EXPECT_NE(message.find("--text-field"), std::string::npos) << message;
  }
  EXPECT_FALSE(fs::exists(root_ / "cache"));
}

TEST_F(DataTest, StaleOrForeignCachesAreRejected) {
  write(root_ / "text" / "a.txt", "hello world");
  TokenCache::build(root_ / "cache", options(), *tokenizer_, identity_);

  EXPECT_THROW(TokenCache(root_ / "cache", options(), "another tokenizer"), Error);

  write(root_ / "text" / "a.txt", "hello there, world");
  try {
    TokenCache cache(root_ / "cache", options(), identity_);
    FAIL() << "a cache of changed sources was accepted";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("stale"), std::string::npos) << error.what();
  }
  // open_or_build notices and rebuilds.
  const auto rebuilt = TokenCache::open_or_build(root_ / "cache", options(), *tokenizer_, identity_);
  EXPECT_EQ(rebuilt->n_tokens(), 18);
}

TEST_F(DataTest, DamagedCachesAreRejected) {
  write(root_ / "text" / "a.txt", "hello world");
  TokenCache::build(root_ / "cache", options(), *tokenizer_, identity_);

  fs::resize_file(root_ / "cache" / "tokens.bin", 8);
  try {
    TokenCache cache(root_ / "cache", options(), identity_);
    FAIL() << "a truncated token file was accepted";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("tokens.bin"), std::string::npos) << error.what();
  }

  TokenCache::build(root_ / "cache", options(), *tokenizer_, identity_);
  write(root_ / "cache" / "manifest.json", "{\"format\": ");
  EXPECT_THROW(TokenCache(root_ / "cache", options(), identity_), Error);
}

// Documents of lengths 5, 2 (skipped), 7 and 4 with distinct letters.
class PackingTest : public DataTest {
 protected:
  void SetUp() override {
    DataTest::SetUp();
    write(root_ / "text" / "1.txt", "aaaaa");
    write(root_ / "text" / "2.txt", "bb");
    write(root_ / "text" / "3.txt", "ccccccc");
    write(root_ / "text" / "4.txt", "dddd");
    TokenCache::build(root_ / "cache", options(), *tokenizer_, identity_);
    cache_ = std::make_unique<TokenCache>(root_ / "cache", options(), identity_);
  }
  std::unique_ptr<TokenCache> cache_;
};

TEST_F(PackingTest, PositionsRestartAndTargetsStayInDocument) {
  PackingOptions packing;
  packing.seq_len = 6;
  packing.min_document_tokens = 3;
  packing.validation_fraction = 0;
  PackedDataset dataset(*cache_, packing);
  EXPECT_EQ(dataset.n_skipped_documents(), 1);
  EXPECT_EQ(dataset.n_tokens(Split::kTrain), 16);
  EXPECT_EQ(dataset.sequences_per_epoch(Split::kTrain), 2);  // (16 - 1) / 6

  TokenBatch batch = dataset.make_batch(2);
  dataset.fill(Split::kTrain, 0, batch, 0);
  dataset.fill(Split::kTrain, 1, batch, 1);
  // Rebuild the epoch's stream from the batch and check every token's fields.
  for (int64_t t = 0; t < 12; ++t) {
    const int32_t token = batch.tokens[t];
    const bool starts_document = t % 6 == 0 || batch.tokens[t - 1] != token;
    if (starts_document) {
      EXPECT_EQ(batch.positions[t], 0) << t;
    } else {
      EXPECT_EQ(batch.positions[t], batch.positions[t - 1] + 1) << t;
      EXPECT_EQ(batch.segments[t], batch.segments[t - 1]) << t;
    }
    if (t % 6 != 0 && starts_document) {
      EXPECT_EQ(batch.segments[t], batch.segments[t - 1] + 1) << t;
    }
    // The target is the same letter inside a document, -1 at its end.
    if (batch.targets[t] >= 0) {
      EXPECT_EQ(batch.targets[t], token) << t;
    }
    EXPECT_NE(token, 'b') << "a skipped document was packed";
  }
  int64_t unscored = 0;
  for (int32_t target : batch.targets) unscored += target < 0;
  EXPECT_GE(unscored, 2);  // at least the ends of two documents
}

TEST_F(PackingTest, ShuffleDependsOnSeedAndEpochOnly) {
  PackingOptions packing;
  packing.seq_len = 4;
  packing.min_document_tokens = 1;
  packing.validation_fraction = 0;
  packing.seed = 5;
  auto epoch_stream = [&](PackedDataset& dataset, int64_t epoch) {
    std::string stream;
    TokenBatch batch = dataset.make_batch(1);
    const int64_t per_epoch = dataset.sequences_per_epoch(Split::kTrain);
    for (int64_t i = 0; i < per_epoch; ++i) {
      dataset.fill(Split::kTrain, epoch * per_epoch + i, batch, 0);
      for (int32_t token : batch.tokens) stream += static_cast<char>(token);
    }
    return stream;
  };
  PackedDataset first(*cache_, packing), second(*cache_, packing);
  EXPECT_EQ(epoch_stream(first, 3), epoch_stream(second, 3));  // order of calls does not matter
  std::set<std::string> orders;
  for (int64_t epoch = 0; epoch < 8; ++epoch) orders.insert(epoch_stream(first, epoch));
  EXPECT_GT(orders.size(), 1u) << "every epoch had the same document order";
}

TEST_F(PackingTest, ValidationSplitIsByDocument) {
  PackingOptions packing;
  packing.seq_len = 2;
  packing.min_document_tokens = 1;
  packing.validation_fraction = 0.3;
  PackedDataset dataset(*cache_, packing);
  ASSERT_GE(dataset.n_documents(Split::kValidation), 1);
  EXPECT_EQ(dataset.n_documents(Split::kTrain) + dataset.n_documents(Split::kValidation), 4);
  EXPECT_EQ(dataset.n_tokens(Split::kTrain) + dataset.n_tokens(Split::kValidation), 18);

  // No letter (document) appears in both splits.
  std::set<int32_t> train_letters, validation_letters;
  TokenBatch batch = dataset.make_batch(1);
  for (int64_t i = 0; i < dataset.sequences_per_epoch(Split::kTrain); ++i) {
    dataset.fill(Split::kTrain, i, batch, 0);
    train_letters.insert(batch.tokens.begin(), batch.tokens.end());
  }
  for (int64_t i = 0; i < dataset.sequences_per_epoch(Split::kValidation); ++i) {
    dataset.fill(Split::kValidation, i, batch, 0);
    validation_letters.insert(batch.tokens.begin(), batch.tokens.end());
  }
  for (int32_t letter : validation_letters) EXPECT_EQ(train_letters.count(letter), 0u) << static_cast<char>(letter);
}

TEST_F(PackingTest, TooShortDataIsRejected) {
  PackingOptions packing;
  packing.seq_len = 64;
  packing.min_document_tokens = 1;
  packing.validation_fraction = 0;
  EXPECT_THROW(PackedDataset(*cache_, packing), Error);
  packing.seq_len = 4;
  packing.min_document_tokens = 100;
  EXPECT_THROW(PackedDataset(*cache_, packing), Error);
}

}  // namespace
}  // namespace ropepp::train
