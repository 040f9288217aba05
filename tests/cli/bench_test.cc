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

}  // namespace
