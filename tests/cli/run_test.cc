// `longsparse run` end to end: error cases, truncation and reproducibility with the real model
// (skipped when it is not cached).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "cli_runner.h"

#include <array>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "attn/flash.h"
#include "core/error.h"
#include "model/model_path.h"

namespace {

using Result = ls::testing::CliResult;

Result run_cli(const std::string& args, const std::string& env = "") {
  return ls::testing::run_longsparse("run " + args, env);
}

bool model_cached() {
  try {
    ls::resolve_model_path("smollm2");
    return true;
  } catch (const ls::Error&) {
    return false;
  }
}

TEST(RunCli, MissingModelNamesFetchScript) {
  const Result r = run_cli("-m smollm2 -p hello", "LONGSPARSE_MODELS=/nonexistent-longsparse-cache");
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.output, testing::HasSubstr("scripts/fetch-model"));
}

TEST(RunCli, RejectsBadArguments) {
  EXPECT_EQ(run_cli("-m smollm2").status, 1);  // no prompt
  EXPECT_THAT(run_cli("-m smollm2 -p hi --truncate right").output, testing::HasSubstr("middle"));
  if (!model_cached()) GTEST_SKIP() << "model not cached; run scripts/fetch-model smollm2";
  const Result big = run_cli("-p hi -c 100000");
  EXPECT_EQ(big.status, 1);
  EXPECT_THAT(big.output, testing::HasSubstr("trained context"));
  const Result dense = run_cli("-p hi --dense-layers 0");
  EXPECT_EQ(dense.status, 1);
  EXPECT_THAT(dense.output, testing::HasSubstr("--prefill"));
  const Result missing_layer = run_cli("-p hi -n 1 --prefill streaming --dense-layers 0,99");
  EXPECT_EQ(missing_layer.status, 1);
  EXPECT_THAT(missing_layer.output, testing::HasSubstr("layer 99 does not exist"));
  const Result missing_policy = run_cli("-p hi -n 1 --policy /nonexistent/profile.json");
  EXPECT_EQ(missing_policy.status, 1);
  EXPECT_THAT(missing_policy.output, testing::HasSubstr("/nonexistent/profile.json"));
}

TEST(RunCli, PromptLongerThanContextNeedsTruncate) {
  if (!model_cached()) GTEST_SKIP() << "model not cached; run scripts/fetch-model smollm2";
  const std::string prompt = "\"one two three four five six seven eight nine ten eleven twelve\"";
  const Result r = run_cli("-p " + prompt + " -c 12 -n 4 --temp 0");
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.output, testing::HasSubstr("--truncate"));

  const Result cut = run_cli("-p " + prompt + " -c 12 -n 4 --temp 0 --truncate middle --json");
  ASSERT_EQ(cut.status, 0) << cut.output;
  const auto json = nlohmann::json::parse(cut.output);
  EXPECT_EQ(json["prompt_tokens"], 8);
  EXPECT_EQ(json["prompt_truncated"], true);
  EXPECT_LE(json["tokens"].size(), 4u);
}

TEST(RunCli, SameSeedSameOutput) {
  if (!model_cached()) GTEST_SKIP() << "model not cached; run scripts/fetch-model smollm2";
  const std::string args = "-p \"The capital of France is\" -n 12 --temp 0.9 --seed 7 -t 2 --json";
  const Result a = run_cli(args), b = run_cli(args);
  ASSERT_EQ(a.status, 0) << a.output;
  ASSERT_EQ(b.status, 0) << b.output;
  const auto ja = nlohmann::json::parse(a.output), jb = nlohmann::json::parse(b.output);
  EXPECT_EQ(ja["tokens"], jb["tokens"]);
  EXPECT_EQ(ja["text"], jb["text"]);
  EXPECT_GT(ja["prefill_tok_s"].get<double>(), 0.0);
  EXPECT_GT(ja["peak_rss_bytes"].get<double>(), 0.0);
}

}  // namespace

namespace {

// llama.cpp's KV cache and batch flags: the types land in --json, an unknown type lists the
// valid ones, and chunked prefill (-ub) gives the same greedy tokens on this short prompt.
TEST(RunCli, CacheTypesAndUbatch) {
  const Result bad = run_cli("-m smollm2 -p hi -n 1 -ctk q4_0");
  EXPECT_EQ(bad.status, 1);
  EXPECT_THAT(bad.output, testing::HasSubstr("valid: f32, f16, bf16, q8_0"));
  if (!model_cached()) GTEST_SKIP() << "model not cached; run scripts/fetch-model smollm2";
  const std::string prompt = "-p \"The capital of France is Paris. The capital of Italy is\" -n 6 --temp 0 --json";
  const Result a = ls::testing::run_longsparse("run " + prompt + " -ctk q8_0 -ctv bf16", "", false);
  const Result b = ls::testing::run_longsparse("run " + prompt + " -ub 4", "", false);
  const Result c = ls::testing::run_longsparse("run " + prompt + " --prefill streaming", "", false);
  ASSERT_EQ(a.status, 0) << a.output;
  ASSERT_EQ(b.status, 0) << b.output;
  ASSERT_EQ(c.status, 0) << c.output;
  const auto ja = nlohmann::json::parse(a.output), jb = nlohmann::json::parse(b.output);
  EXPECT_EQ(ja["cache_type_k"], "q8_0");
  EXPECT_EQ(ja["cache_type_v"], "bf16");
  EXPECT_EQ(jb["cache_type_k"], "f16");
  EXPECT_EQ(jb["ubatch"], 4);
  // Without -ub: dense attention in chunks of 512 (llama.cpp's -ub), a sparse method whole.
  EXPECT_EQ(ja["ubatch"], 512);
  EXPECT_EQ(nlohmann::json::parse(c.output)["ubatch"], 0);
  const Result negative = run_cli("-m smollm2 -p hi -n 1 -ub -1");
  EXPECT_NE(negative.status, 0);
  EXPECT_THAT(negative.output, testing::HasSubstr("--ubatch"));
  EXPECT_EQ(ja["layer_pattern"], std::string(30, 'G'));
  // q8_0 keys + bf16 values: 2 × 34 + 128 bytes per row, 30 layers × 3 KV heads.
  EXPECT_EQ(ja["kv_bytes_allocated"].get<std::int64_t>() % (30 * 3 * (68 + 128)), 0);
}

// --attn-precision: an unknown name is an error listing the valid ones; bf16 (where the CPU
// and build have it, else an error saying what is missing) lands in --json's kernels.
TEST(RunCli, AttentionPrecision) {
  const Result bad = run_cli("-m smollm2 -p hi -n 1 --attn-precision fp8");
  EXPECT_EQ(bad.status, 1);
  EXPECT_THAT(bad.output, testing::HasSubstr("valid: f32, bf16"));
  if (!model_cached()) GTEST_SKIP() << "model not cached; run scripts/fetch-model smollm2";
  const Result r = ls::testing::run_longsparse("run -p \"The capital of France is\" -n 2 --temp 0 --json --attn-precision bf16", "", false);
  if (!ls::attention_bf16_supported()) {
    EXPECT_EQ(r.status, 1);
    EXPECT_THAT(r.output, testing::HasSubstr("AVX512-BF16"));
    return;
  }
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(nlohmann::json::parse(r.output)["kernels"]["attention_scores"], "bf16");
}

// --decode: a selector's summaries and what it attended land in --json; bad specs and a
// budget that covers the whole context are clear errors.
TEST(RunCli, DecodeSelector) {
  for (const char* bad : {"--decode no-such", "--decode flexprefill", "--decode quest:budget=8",
                          "--decode quest:budget=9000 -c 8192", "-c 16384",  // beyond the trained 8k: dense refused
                          "-c 16384 --prefill lambda --decode quest"}) {       // quest does not cap distances
    const Result r = run_cli(std::string("-m smollm2 -p hi -n 2 ") + bad);
    EXPECT_EQ(r.status, 1) << bad << ": " << r.output;
    EXPECT_THAT(r.output, testing::HasSubstr("error")) << bad;
  }
  if (!model_cached()) GTEST_SKIP() << "model not cached; run scripts/fetch-model smollm2";
  std::string words;
  for (int i = 0; i < 120; ++i) words += "apple pear plum ";
  const Result r = ls::testing::run_longsparse("run -p \"" + words + "\" -n 4 --temp 0 --json --decode quest:budget=64", "", false);
  ASSERT_EQ(r.status, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j["decode_method"], "quest:budget=64,page=16,dense_layers=2,current=always");
  EXPECT_EQ(j["decode_budget"], 64);
  EXPECT_GT(j["kv_summary_bytes"].get<std::int64_t>(), 0);
  // 28 of 30 layers attend to at most 64 keys, the first two to all of them (~360).
  EXPECT_LT(j["decode_keys_attended"].get<double>(), 100.0);
  EXPECT_GT(j["decode_keys_attended"].get<double>(), 40.0);
  EXPECT_GT(j["decode_kv_bytes_per_token"].get<double>(), 0.0);
}

}  // namespace

namespace {

// The process sets what its libraries need itself (OpenBLAS's core type from CPUID, a bounded
// OpenMP spin), caps -t at the cores it may use, and names the kernels it ran.
TEST(RunCli, SetsItsEnvironmentCapsThreadsAndNamesKernels) {
  if (!model_cached()) GTEST_SKIP() << "model not cached; run scripts/fetch-model smollm2";
  const Result r = run_cli("-p hi -n 1 --temp 0 -t 4096 --json", "OPENBLAS_CORETYPE=Prescott OMP_WAIT_POLICY=passive");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_THAT(r.output, testing::HasSubstr("-t 4096 is more than the"));
  const nlohmann::json j = nlohmann::json::parse(r.output.substr(r.output.find('{')));
  EXPECT_LT(j["threads"].get<int>(), 4096);
  const nlohmann::json& k = j["kernels"];
  for (const char* key : {"cpu", "matmul", "attention", "estimate", "blas_core", "omp_wait"})
    EXPECT_TRUE(k.contains(key)) << key;
  // OMP_WAIT_POLICY from the environment is kept and named. Without it the CLI chooses
  // from the machine's load: passive beside other runnable processes, a bounded spin otherwise.
  EXPECT_THAT(k["omp_wait"].get<std::string>(), testing::HasSubstr("(environment)"));
  const Result chosen = run_cli("-p hi -n 1 --temp 0 --json", "env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT");
  ASSERT_EQ(chosen.status, 0) << chosen.output;
  const std::string wait =
      nlohmann::json::parse(chosen.output.substr(chosen.output.find('{')))["kernels"]["omp_wait"].get<std::string>();
  EXPECT_TRUE(wait.starts_with("passive (") || wait == "spin 20000 (machine idle at start)") << wait;
  if (k["matmul"] != "generic") {  // an x86-64 CPU with AVX2 or more: our core type replaced Prescott
    EXPECT_EQ(k["blas_core_replaced"], "Prescott");
    EXPECT_NE(k["blas_core"], "Prescott");
  }
  // LONGSPARSE_ISA selects a lower ISA for the int8 matmul; one the CPU lacks is an error.
  const Result generic = run_cli("-p hi -n 1 --temp 0 --json", "LONGSPARSE_ISA=generic");
  ASSERT_EQ(generic.status, 0) << generic.output;
  EXPECT_THAT(generic.output, testing::HasSubstr("\"matmul\":\"generic\""));
  EXPECT_EQ(run_cli("-p hi -n 1", "LONGSPARSE_ISA=sse9").status, 1);
}

}  // namespace
