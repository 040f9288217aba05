// `longsparse capture`, `bench attention --qkv` and `profile` end to end on the real default
// model (SmolLM2-135M) and a short prompt: the saved arrays and manifests, recall and error of
// plans on captured attention, the profile the policy loader reads, and clear errors.
// Values are asserted, never timings.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "cli_runner.h"
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "core/npy.h"
#include "methods/policy.h"

namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

using Result = ls::testing::CliResult;

Result run(const std::string& args, bool with_stderr = true) {
  return ls::testing::run_longsparse(args, "", with_stderr);
}

std::vector<nlohmann::json> json_lines(const std::string& text) {
  std::vector<nlohmann::json> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

// One capture shared by the tests: two layers of a ~300-token prompt.
class CaptureTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("longsparse_capture_test_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    std::ofstream text(prompt_path());
    for (int i = 0; i < 7; ++i)
      text << "On day " << i + 1 << " the keeper of the lighthouse counted the ships that passed the northern "
           << "rocks, wrote their names in a blue ledger, and wondered whether the storm from the west would "
           << "reach the harbour before the evening bell. ";
    text.close();
    capture_ = run("capture -m smollm2 -f " + prompt_path() + " --layers 3,17 --out " + (dir_ / "cap").string());
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  static std::string prompt_path() { return (dir_ / "prompt.txt").string(); }

  static inline fs::path dir_;
  static inline Result capture_;
};

TEST_F(CaptureTest, WritesArraysAndManifests) {
  ASSERT_EQ(capture_.status, 0) << capture_.output;
  const Result tokens = run("tokenize -m smollm2 --json -f " + prompt_path(), false);
  ASSERT_EQ(tokens.status, 0) << tokens.output;
  const std::int64_t n = std::int64_t(nlohmann::json::parse(tokens.output).size());
  EXPECT_GT(n, 200);
  EXPECT_LT(n, 400);

  std::ifstream top_file(dir_ / "cap" / "manifest.json");
  const auto top = nlohmann::json::parse(top_file);
  EXPECT_EQ(top["tokens"], n);
  EXPECT_EQ(top["truncated"], false);
  EXPECT_EQ(top["model_layers"], 30);
  ASSERT_EQ(top["layers"].size(), 2u);
  EXPECT_EQ(top["layers"][0]["layer"], 3);
  EXPECT_EQ(top["layers"][1]["dir"], "layer17");

  for (int layer : {3, 17}) {
    const fs::path d = dir_ / "cap" / ("layer" + std::to_string(layer));
    std::ifstream manifest_file(d / "manifest.json");
    const auto m = nlohmann::json::parse(manifest_file);
    EXPECT_EQ(m["layer"], layer);
    EXPECT_EQ(m["tokens"], n);
    EXPECT_EQ(m["heads"], 9);
    EXPECT_EQ(m["kv_heads"], 3);
    EXPECT_EQ(m["head_dim"], 64);
    EXPECT_NEAR(m["softmax_scale"].get<double>(), 0.125, 1e-7);
    EXPECT_GT(m["rope_theta"].get<double>(), 0.0);
    const ls::NpyArray q = ls::read_npy((d / "q.npy").string());
    const ls::NpyArray k = ls::read_npy((d / "k.npy").string());
    const ls::NpyArray v = ls::read_npy((d / "v.npy").string());
    EXPECT_EQ(q.shape, (std::vector<std::int64_t>{9, n, 64}));
    EXPECT_EQ(k.shape, (std::vector<std::int64_t>{3, n, 64}));
    EXPECT_EQ(v.shape, (std::vector<std::int64_t>{3, n, 64}));
    // Real activations: finite and not all zero.
    double sum = 0.0;
    for (std::int64_t i = 0; i < q.elements(); ++i) {
      ASSERT_TRUE(std::isfinite(q.data[i]));
      sum += std::abs(q.data[i]);
    }
    EXPECT_GT(sum / double(q.elements()), 1e-3);
  }
  // The two layers differ (each capture is its own layer's input, not a reused buffer).
  const ls::NpyArray k3 = ls::read_npy((dir_ / "cap" / "layer3" / "k.npy").string());
  const ls::NpyArray k17 = ls::read_npy((dir_ / "cap" / "layer17" / "k.npy").string());
  double diff = 0.0;
  for (std::int64_t i = 0; i < k3.elements(); ++i) diff += std::abs(k3.data[i] - k17.data[i]);
  EXPECT_GT(diff, 1.0);
}

TEST_F(CaptureTest, BenchQkvDenseIsExactAndStreamingLosesMass) {
  ASSERT_EQ(capture_.status, 0) << capture_.output;
  const std::string layer = (dir_ / "cap" / "layer17").string();
  const Result r = run("bench attention --qkv " + layer +
                           " --plan 'dense;streaming:sink=4,window=64' --check --json --threads 1 --repeat 1",
                       false);
  ASSERT_EQ(r.status, 0) << r.output;
  const auto lines = json_lines(r.output);
  ASSERT_EQ(lines.size(), 2u) << r.output;
  const auto& dense = lines[0];
  EXPECT_EQ(dense["plan"], "dense");
  EXPECT_EQ(dense["layer"], 17);
  EXPECT_DOUBLE_EQ(dense["density"].get<double>(), 1.0);
  EXPECT_NEAR(dense["recall"].get<double>(), 1.0, 1e-9);
  EXPECT_LT(dense["rel_err"].get<double>(), 1e-5);
  for (const char* key : {"estimate_ms", "attn_ms", "dense_ms", "speedup"}) EXPECT_TRUE(dense.contains(key)) << key;

  const auto& streaming = lines[1];
  EXPECT_EQ(streaming["plan"], "streaming:sink=4,window=64,tri=false,tri_last=100");
  EXPECT_LT(streaming["density"].get<double>(), 0.6);
  EXPECT_LT(streaming["recall"].get<double>(), 0.999);
  EXPECT_GT(streaming["recall"].get<double>(), 0.2);
  EXPECT_GE(streaming["min_recall"].get<double>(), 0.0);
  EXPECT_GT(streaming["rel_err"].get<double>(), 1e-4);

  // The table form names the plans too.
  const Result table = run("bench attention --qkv " + layer + " --plan streaming:window=32 --check --repeat 1");
  ASSERT_EQ(table.status, 0) << table.output;
  EXPECT_THAT(table.output, HasSubstr("streaming:sink=4,window=32"));
  EXPECT_THAT(table.output, HasSubstr("speedup"));
}

TEST_F(CaptureTest, ProfileLoadsWithThePolicyLoader) {
  const std::string out = (dir_ / "profile.json").string();
  const Result r = run("profile -m smollm2 -q -f " + prompt_path() + " --out " + out + " --sample-rows 16");
  ASSERT_EQ(r.status, 0) << r.output;
  const ls::HeadProfile profile = ls::load_profile(out);
  ASSERT_EQ(profile.layers.size(), 30u);
  EXPECT_EQ(profile.heads(), 9);
  for (const auto& layer : profile.layers)
    for (const auto& head : layer) {
      EXPECT_GT(head.recall, 0.0);
      EXPECT_LE(head.recall, 1.0 + 1e-9);
    }
  ls::Policy policy("dense");
  policy.set_profile(profile);
  EXPECT_EQ(policy.spec(29, 8), profile.layers[29][8].spec);
}

TEST_F(CaptureTest, BadInputsAreClearErrors) {
  const std::string out = (dir_ / "bad").string();
  Result r = run("capture -m smollm2 -f " + prompt_path() + " --layers 30 --out " + out);
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.output, HasSubstr("layer 30 does not exist: the model has layers 0..29"));

  r = run("capture -m smollm2 -f /nonexistent/text.txt --layers 1 --out " + out);
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.output, HasSubstr("text file '/nonexistent/text.txt' does not exist"));

  r = run("capture -m smollm2 -f " + prompt_path() + " -c 40 --layers 1 --out " + out);
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.output, HasSubstr("--truncate"));

  r = run("capture -m smollm2 -f " + prompt_path() + " --layers 1-x --out " + out);
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.output, HasSubstr("1-x"));

  // --truncate keeps the first CTX tokens.
  r = run("capture -m smollm2 -f " + prompt_path() + " -c 40 --truncate --layers 0 --out " + out);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(ls::read_npy((fs::path(out) / "layer0" / "q.npy").string()).shape, (std::vector<std::int64_t>{9, 40, 64}));

  r = run("bench attention --qkv " + (dir_ / "nothing").string() + " --plan dense");
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.output, HasSubstr("is not a directory"));

  r = run("bench attention --qkv " + (fs::path(out) / "layer0").string() + " --plan no-such-method --check");
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.output, HasSubstr("no-such-method"));

  r = run("bench attention --qkv " + (fs::path(out) / "layer0").string() + " --n 100");
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.output, HasSubstr("--n does not apply with --qkv"));

  r = run("bench attention --n 64 --check");
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.output, HasSubstr("--check needs --qkv"));
}

}  // namespace
