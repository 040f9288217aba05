// `longsparse calibrate` end to end on the real default model (SmolLM2-135M, skipped when it is
// not cached) and a short text: the label channels file has the model's shape, `run --decode
// double-sparsity` loads it and attends to its budget, and bad input is a clear error.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "cli_runner.h"
#include "core/error.h"
#include "model/model_path.h"

namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using Result = ls::testing::CliResult;

bool model_cached() {
  try {
    ls::resolve_model_path("smollm2");
    return true;
  } catch (const ls::Error&) {
    return false;
  }
}

class CalibrateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("longsparse_calibrate_test_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    std::ofstream text(path("text.txt"));
    for (int i = 0; i < 7; ++i)
      text << "On day " << i + 1 << " the keeper of the lighthouse counted the ships that passed the northern "
           << "rocks, wrote their names in a blue ledger, and wondered whether the storm from the west would "
           << "reach the harbour before the evening bell. ";
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  fs::path dir_;
};

TEST_F(CalibrateTest, BadInputIsAnError) {
  for (const std::string& bad :
       {"calibrate -f " + path("text.txt"), "calibrate -o " + path("c.json"),
        "calibrate -f /nonexistent/text.txt -o " + path("c.json"),
        "calibrate -f " + path("text.txt") + " --channels 0 -o " + path("c.json"),
        "calibrate -f " + path("text.txt") + " -c 0 -o " + path("c.json"),
        "calibrate -f " + path("text.txt") + " -o /nonexistent/dir/c.json"}) {
    const Result r = ls::testing::run_longsparse(bad);
    EXPECT_NE(r.status, 0) << bad << ": " << r.output;
    EXPECT_FALSE(r.output.empty()) << bad;
  }
  if (!model_cached()) GTEST_SKIP() << "model not cached; run scripts/fetch-model smollm2";
  const Result wide = ls::testing::run_longsparse("calibrate -f " + path("text.txt") + " --channels 65 -o " + path("c.json"));
  EXPECT_EQ(wide.status, 1);
  EXPECT_THAT(wide.output, HasSubstr("head dimension 64"));
}

TEST_F(CalibrateTest, WritesChannelsThatRunLoads) {
  if (!model_cached()) GTEST_SKIP() << "model not cached; run scripts/fetch-model smollm2";
  const std::string out = path("channels.json");
  const Result r = ls::testing::run_longsparse("calibrate -m smollm2 -f " + path("text.txt") + " -c 200 -q -o " + out);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("from 200 tokens"));
  std::ifstream in(out);
  const nlohmann::json j = nlohmann::json::parse(in);
  EXPECT_EQ(j["layers"], 30);
  EXPECT_EQ(j["kv_heads"], 3);
  EXPECT_EQ(j["head_dim"], 64);
  EXPECT_EQ(j["channels"], 8);
  EXPECT_EQ(j["criterion"], "qk");
  ASSERT_EQ(j["heads"].size(), 30u);
  for (const auto& layer : j["heads"]) {
    ASSERT_EQ(layer.size(), 3u);
    for (const auto& head : layer) {
      const std::set<int> distinct(head.begin(), head.end());
      EXPECT_EQ(distinct.size(), 8u);
      EXPECT_GE(*distinct.begin(), 0);
      EXPECT_LT(*distinct.rbegin(), 64);
    }
  }

  const Result run = ls::testing::run_longsparse(
      "run -f " + path("text.txt") + " -n 4 --temp 0 --json --decode double-sparsity:file=" + out + ",budget=64,dense_layers=0", "", false);
  ASSERT_EQ(run.status, 0) << run.output;
  const auto result = nlohmann::json::parse(run.output);
  EXPECT_EQ(result["decode_budget"], 64);
  EXPECT_EQ(result["decode_keys_attended"].get<double>(), 64.0);  // every layer sparse
  EXPECT_GT(result["kv_summary_bytes"].get<std::int64_t>(), 0);

  // The file of one model does not fit another of another shape (Gemma 3 270M).
  try {
    ls::resolve_model_path("gemma3");
  } catch (const ls::Error&) {
    GTEST_SKIP() << "gemma3 not cached";
  }
  const Result other = ls::testing::run_longsparse("run -m gemma3 -f " + path("text.txt") +
                                                   " -n 2 --decode double-sparsity:file=" + out + ",budget=64");
  EXPECT_EQ(other.status, 1) << other.output;
  EXPECT_THAT(other.output, HasSubstr("label"));
}

}  // namespace
