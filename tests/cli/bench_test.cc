// `longsparse bench attention` end to end on tiny shapes: the JSON it prints, the plan
// generators, and clear errors for bad plans. No timing is asserted.
#include <gtest/gtest.h>

#include "cli_runner.h"

#include <array>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

namespace {

using Result = ls::testing::CliResult;

Result run(const std::string& args) {
  return ls::testing::run_longsparse(args);
}

const std::string kSmall = "bench attention --n 300 --heads 4 --kv-heads 2 --dim 64 --threads 1 --repeat 1 ";

TEST(BenchAttention, DensePlanJsonMatchesTheDenseKernel) {
  Result r = run(kSmall + "--json --compare-dense");
  ASSERT_EQ(r.status, 0) << r.output;
  auto json = nlohmann::json::parse(r.output);
  EXPECT_EQ(json["plan"], "dense");
  EXPECT_EQ(json["n"], 300);
  EXPECT_EQ(json["heads"], 4);
  EXPECT_EQ(json["kv_heads"], 2);
  EXPECT_DOUBLE_EQ(json["density"].get<double>(), 1.0);
  EXPECT_GT(json["ms"].get<double>(), 0.0);
  EXPECT_GT(json["gflops"].get<double>(), 0.0);
  EXPECT_TRUE(json.contains("dense_ms"));
  EXPECT_TRUE(json.contains("speedup"));
  EXPECT_LE(json["max_abs_diff_vs_dense"].get<double>(), 1e-6);
  EXPECT_FALSE(json.contains("estimate_ms"));  // bench generators have no estimate step
}

TEST(BenchAttention, GeneratorsReachTheirDensityAndQuality) {
  Result r = run(kSmall + "--json --plan random-blocks:density=0.5,seed=3 --quality 16");
  ASSERT_EQ(r.status, 0) << r.output;
  auto json = nlohmann::json::parse(r.output);
  EXPECT_EQ(json["plan"], "random-blocks:density=0.5,seed=3");
  EXPECT_GT(json["density"].get<double>(), 0.3);
  EXPECT_LT(json["density"].get<double>(), 0.95);
  EXPECT_GT(json["recall"].get<double>(), 0.0);
  EXPECT_LE(json["recall"].get<double>(), 1.0 + 1e-9);

  r = run(kSmall + "--json --plan window:sink=4,window=64 --quality 16");
  ASSERT_EQ(r.status, 0) << r.output;
  json = nlohmann::json::parse(r.output);
  EXPECT_LT(json["density"].get<double>(), 0.8);
  EXPECT_GT(json["rel_err"].get<double>(), 0.0);
}

TEST(BenchAttention, BadPlansAreClearErrors) {
  Result r = run(kSmall + "--plan no-such-method");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("no-such-method"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("unknown method"), std::string::npos) << r.output;  // asked the registry

  r = run(kSmall + "--plan random-blocks:densty=0.1");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("valid: density, seed"), std::string::npos) << r.output;

  r = run(kSmall + "--plan random-blocks:density=2");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("density=2"), std::string::npos) << r.output;

  r = run("bench attention --n 100 --heads 3 --kv-heads 2 --repeat 1");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("multiple of kv_heads"), std::string::npos) << r.output;
}

TEST(BenchAttention, TableOutputNamesTheKernels) {
  Result r = run(kSmall + "--compare-dense");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("OpenBLAS core"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("executor"), std::string::npos);
  EXPECT_NE(r.output.find("dense"), std::string::npos);
}

// `bench decode`: dense equals dense (recall 1, no error); a selector attends its budget and
// reads fewer bytes; bad specs are errors.
TEST(BenchDecode, JsonFieldsAndBudgets) {
  const std::string small = "bench decode --n 4096 --heads 4 --kv-heads 2 --dim 64 --threads 1 --repeat 2 --json ";
  Result dense = run(small + "--plan dense");
  ASSERT_EQ(dense.status, 0) << dense.output;
  auto d = nlohmann::json::parse(dense.output);
  EXPECT_DOUBLE_EQ(d["tokens_attended"].get<double>(), 4096.0);
  EXPECT_NEAR(d["recall"].get<double>(), 1.0, 1e-6);  // probabilities summed in float
  EXPECT_EQ(d["rel_err"].get<double>(), 0.0);
  EXPECT_EQ(d["kv_bytes_read"], d["dense_kv_bytes_read"]);
  Result quest = run(small + "--plan quest:budget=512 --compare-dense");
  ASSERT_EQ(quest.status, 0) << quest.output;
  auto q = nlohmann::json::parse(quest.output);
  EXPECT_LE(q["tokens_attended"].get<double>(), 512.0);
  EXPECT_LT(q["kv_bytes_read"].get<double>(), d["kv_bytes_read"].get<double>() / 4);
  EXPECT_GT(q["recall"].get<double>(), 0.5);  // the planted needles are found
  EXPECT_TRUE(q.contains("speedup"));
  EXPECT_EQ(q["plan"], "quest:budget=512,page=16,dense_layers=2,current=always");
  for (const char* bad : {"--plan nope", "--plan xattention", "--layer 40", "--needles 5000"}) {
    Result r = run(small + bad);
    EXPECT_EQ(r.status, 1) << bad << ": " << r.output;
  }
}

}  // namespace
