// Model presets, and `ropepp init` / `ropepp logits` / `ropepp generate`
// through the built program.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/npy.h"
#include "model/model.h"
#include "model/presets.h"
#include "model_test_util.h"

namespace ropepp {
namespace {

TEST(ModelPresets, PaperShapesHaveTheirParameterCounts) {
  // Vanilla RoPE, untied, 128256-token vocabulary: the sizes the RoPE++ paper names them by.
  EXPECT_NEAR(model_preset("376m").parameter_count() / 1e6, 376.0, 1.0);
  EXPECT_NEAR(model_preset("776m").parameter_count() / 1e6, 776.0, 1.0);
  EXPECT_NEAR(model_preset("1.5b").parameter_count() / 1e9, 1.4, 0.1);
  EXPECT_NEAR(model_preset("56m").parameter_count() / 1e6, 56.0, 1.0);
  EXPECT_NEAR(model_preset("small").parameter_count() / 1e6, 10.0, 0.5);
  const ModelConfig tiny = model_preset("tiny", Variant::kEH);
  EXPECT_EQ(tiny.hidden_size, 64);
  EXPECT_EQ(tiny.head_dim, 16);
  EXPECT_EQ(tiny.variant, Variant::kEH);
}

TEST(ModelPresets, EveryPresetFitsEveryVariant) {
  for (const ModelPreset& preset : model_presets()) {
    for (Variant variant : {Variant::kVanilla, Variant::kEH, Variant::kEC}) {
      EXPECT_NO_THROW(model_preset(preset.name, variant).head_layout().validate()) << preset.name;
    }
  }
}

TEST(ModelPresets, UnknownNameListsPresets) {
  try {
    model_preset("9b");
    FAIL() << "expected an error";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("376m"), std::string::npos) << error.what();
  }
}

bool binary_available() { return std::filesystem::exists(ROPEPP_BINARY); }

int run(const std::string& arguments) {
  const std::string command = fmt::format("{} {} 2>/dev/null", ROPEPP_BINARY, arguments);
  return std::system(command.c_str());
}

TEST(ModelCli, InitThenLogitsMatchesLibrary) {
  if (!binary_available()) GTEST_SKIP() << "build the ropepp program first (" << ROPEPP_BINARY << ")";
  test::TempDir temp;
  const auto model_dir = temp.path() / "model";
  ASSERT_EQ(run(fmt::format("init --preset tiny --variant ec --out {} --seed 5 --rope-scaling yarn-paper "
                            "--rope-factor 8 --dtype bf16",
                            model_dir.string())),
            0);
  const ModelConfig config = read_model_config(model_dir);
  EXPECT_EQ(config.variant, Variant::kEC);
  EXPECT_EQ(config.rope_scaling.type, RopeScalingType::kYarnPaper);

  const std::vector<int32_t> tokens = {256, 72, 101, 108, 108, 111};
  const std::vector<int32_t> positions = {0, 1, 2, 3, 3000, 9000};
  std::ofstream(temp.path() / "ids.json") << nlohmann::json(tokens).dump();
  std::ofstream(temp.path() / "pos.json") << nlohmann::json(positions).dump();
  ASSERT_EQ(run(fmt::format("logits --model {} --tokens-file {} --positions-file {} --out {}", model_dir.string(),
                            (temp.path() / "ids.json").string(), (temp.path() / "pos.json").string(),
                            (temp.path() / "logits.npy").string())),
            0);
  std::vector<int64_t> shape;
  const std::vector<float> from_cli = read_npy_f32(temp.path() / "logits.npy", shape);
  EXPECT_EQ(shape, (std::vector<int64_t>{6, config.vocab_size}));

  Model model = Model::load(model_dir);
  std::vector<float> expected(tokens.size() * static_cast<size_t>(config.vocab_size));
  model.forward(ForwardInput{tokens, positions, {}}, expected.data());
  EXPECT_EQ(from_cli, expected);
}

TEST(ModelCli, LogitsRejectsBadTokenFiles) {
  if (!binary_available()) GTEST_SKIP() << "build the ropepp program first (" << ROPEPP_BINARY << ")";
  test::TempDir temp;
  const auto model_dir = temp.path() / "model";
  ASSERT_EQ(run(fmt::format("init --preset tiny --out {}", model_dir.string())), 0);
  const std::vector<std::string> bad_files = {"[1, 2, 320]", "[1, -2]", "{\"a\": 1}", "[1, 2.5]", "[1, 2", "[]"};
  for (const std::string& contents : bad_files) {
    std::ofstream(temp.path() / "ids.json") << contents;
    EXPECT_NE(run(fmt::format("logits --model {} --tokens-file {} --out {}", model_dir.string(),
                              (temp.path() / "ids.json").string(), (temp.path() / "out.npy").string())),
              0)
        << contents;
  }
  EXPECT_FALSE(std::filesystem::exists(temp.path() / "out.npy"));
}

TEST(ModelCli, GenerateGreedyIsDeterministicAndReports) {
  if (!binary_available()) GTEST_SKIP() << "build the ropepp program first (" << ROPEPP_BINARY << ")";
  test::TempDir temp;
  const auto model_dir = temp.path() / "model";
  ASSERT_EQ(run(fmt::format("init --preset tiny --variant eh --out {}", model_dir.string())), 0);
  for (int i = 0; i < 2; ++i) {
    ASSERT_EQ(run(fmt::format("generate --model {} --tokenizer byte --prompt 'Call me' --greedy --max-tokens 12 "
                              "--json {} > {}",
                              model_dir.string(), (temp.path() / "report.json").string(),
                              (temp.path() / fmt::format("out{}.txt", i)).string())),
              0);
  }
  std::ifstream report_stream(temp.path() / "report.json");
  const nlohmann::json report = nlohmann::json::parse(report_stream);
  EXPECT_EQ(report.at("prompt_tokens").get<int>(), 7);
  EXPECT_GE(report.at("generated_tokens").get<int>(), 1);
  EXPECT_LE(report.at("generated_tokens").get<int>(), 12);
  EXPECT_GT(report.at("prefill_tokens_per_second").get<double>(), 0.0);
  std::ifstream a(temp.path() / "out0.txt"), b(temp.path() / "out1.txt");
  const std::string first((std::istreambuf_iterator<char>(a)), {}), second((std::istreambuf_iterator<char>(b)), {});
  EXPECT_EQ(first, second);
}

TEST(ModelCli, BenchModelQuickWritesJson) {
  if (!binary_available()) GTEST_SKIP() << "build the ropepp program first (" << ROPEPP_BINARY << ")";
  test::TempDir temp;
  const auto json_path = temp.path() / "bench.json";
  ASSERT_EQ(run(fmt::format("bench model --quick --variants eh --weights f32 --json {} > /dev/null",
                            json_path.string())),
            0);
  std::ifstream stream(json_path);
  const nlohmann::json json = nlohmann::json::parse(stream);
  ASSERT_EQ(json.at("results").size(), 1u);
  const nlohmann::json& result = json.at("results")[0];
  EXPECT_EQ(result.at("variant").get<std::string>(), "rope++eh");
  EXPECT_GT(result.at("prefill_tokens_per_second").get<double>(), 0.0);
  EXPECT_GT(result.at("decode_tokens_per_second").get<double>(), 0.0);
  EXPECT_GT(result.at("decode_bytes_per_token").get<double>(), 0.0);
  EXPECT_GT(json.at("machine").at("sgemm_gflops").get<double>(), 0.0);
}

// Runs `bench model --quick` on the RoPE preset with a peer script of the
// given text in place of bench/torch_model.py, and returns the one result of
// its JSON. The program's output goes to log.txt in the temporary folder.
nlohmann::json bench_with_peer(const test::TempDir& temp, const std::string& peer_text) {
  const auto script = temp.path() / "peer.py";
  std::ofstream(script) << peer_text;
  const auto json_path = temp.path() / "bench.json";
  const std::string command =
      fmt::format("{} bench model --quick --variants rope --weights f32 --torch --torch-script {} --work-dir {} "
                  "--json {} > {} 2>&1",
                  ROPEPP_BINARY, script.string(), (temp.path() / "work").string(), json_path.string(),
                  (temp.path() / "log.txt").string());
  EXPECT_EQ(std::system(command.c_str()), 0);
  std::ifstream stream(json_path);
  return nlohmann::json::parse(stream).at("results")[0];
}

// A stand-in for bench/torch_model.py --peer: fixed prefill and decode times,
// so the alternation of decode rounds can be checked without PyTorch.
constexpr const char* kFakePeer = R"(import json, sys
print(json.dumps({"prefill_seconds": 0.5}), flush=True)
for line in iter(sys.stdin.readline, ""):
    words = line.split()
    if words[0] == "quit":
        break
    print(json.dumps({"decode_seconds_per_token": 0.25, "id": int(words[2])}), flush=True)
)";

TEST(ModelCli, BenchModelAlternatesWithPeer) {
  if (!binary_available()) GTEST_SKIP() << "build the ropepp program first (" << ROPEPP_BINARY << ")";
  test::TempDir temp;
  // Files already in --work-dir are neither read nor deleted.
  std::filesystem::create_directories(temp.path() / "work");
  std::ofstream(temp.path() / "work" / "notes.txt") << "keep\n";
  const nlohmann::json result = bench_with_peer(temp, kFakePeer);
  EXPECT_TRUE(std::filesystem::exists(temp.path() / "work" / "notes.txt"));

  EXPECT_EQ(result.at("torch_prefill_seconds").get<double>(), 0.5);
  const nlohmann::json& rounds = result.at("decode_rounds");
  ASSERT_EQ(rounds.size(), 2u);  // --quick runs two rounds
  int matched = 0;
  for (const nlohmann::json& round : rounds) {
    EXPECT_EQ(round.at("torch_seconds_per_token").get<double>(), 0.25);
    EXPECT_EQ(round.at("read_gbs").size(), 3u);
    matched += round.at("matched").get<bool>() ? 1 : 0;
  }
  EXPECT_EQ(result.at("decode_rounds_matched").get<int>(), matched);
  // Every round of the tiny model decodes in far less than the peer's 0.25 s.
  EXPECT_GT(result.at("decode_speedup_vs_torch").get<double>(), 1.0);
}

TEST(ModelCli, BenchModelSurvivesFailedPeer) {
  if (!binary_available()) GTEST_SKIP() << "build the ropepp program first (" << ROPEPP_BINARY << ")";
  test::TempDir temp;
  const nlohmann::json result = bench_with_peer(temp, "print('not json')\n");

  EXPECT_FALSE(result.contains("torch_prefill_seconds"));
  EXPECT_GT(result.at("decode_tokens_per_second").get<double>(), 0.0);
  std::ifstream log(temp.path() / "log.txt");
  const std::string text((std::istreambuf_iterator<char>(log)), {});
  EXPECT_NE(text.find("not json"), std::string::npos);
}

// A peer that dies after its prefill line: the decode columns stay empty and
// the benchmark still finishes.
TEST(ModelCli, BenchModelSurvivesPeerDyingInDecode) {
  if (!binary_available()) GTEST_SKIP() << "build the ropepp program first (" << ROPEPP_BINARY << ")";
  test::TempDir temp;
  const nlohmann::json result = bench_with_peer(temp, "print('{\"prefill_seconds\": 0.5}', flush=True)\n");

  EXPECT_EQ(result.at("torch_prefill_seconds").get<double>(), 0.5);
  EXPECT_FALSE(result.contains("decode_speedup_vs_torch"));
  EXPECT_GT(result.at("decode_tokens_per_second").get<double>(), 0.0);
}

// Replies that are out of step (an extra line) or not a positive time are
// rejected: the decode comparison is left out instead of reporting nonsense.
TEST(ModelCli, BenchModelRejectsBadPeerReplies) {
  if (!binary_available()) GTEST_SKIP() << "build the ropepp program first (" << ROPEPP_BINARY << ")";
  // Both are the well-behaved peer with one change.
  const std::string fake = kFakePeer;
  const size_t after_prefill = fake.find('\n', fake.find("prefill_seconds")) + 1;
  const std::string out_of_step = fake.substr(0, after_prefill) +
                                  "print(json.dumps({\"decode_seconds_per_token\": 999.0, \"id\": 7}), flush=True)\n" +
                                  fake.substr(after_prefill);
  std::string negative = fake;
  negative.replace(negative.find("0.25"), 4, "-1.0");

  for (const std::string& peer : {out_of_step, negative}) {
    test::TempDir temp;
    const nlohmann::json result = bench_with_peer(temp, peer);
    EXPECT_EQ(result.at("torch_prefill_seconds").get<double>(), 0.5);
    EXPECT_FALSE(result.contains("decode_speedup_vs_torch"));
  }

  // A misspelt preset fails before anything is measured.
  EXPECT_NE(run("bench model --presets tiny,bogus > /dev/null"), 0);

  // A prefill time that is not a positive number leaves every PyTorch column out.
  test::TempDir temp;
  const nlohmann::json result = bench_with_peer(temp, "print('{\"prefill_seconds\": -0.5}', flush=True)\n");
  EXPECT_FALSE(result.contains("torch_prefill_seconds"));
}

}  // namespace
}  // namespace ropepp
