// `longsparse info` end to end: runs the binary on the default model and on bad inputs.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "cli_runner.h"
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

namespace {

using ::testing::HasSubstr;

using Result = ls::testing::CliResult;

Result run(const std::string& args, const std::string& env = "") {
  return ls::testing::run_longsparse(args, env);
}

TEST(InfoCommand, JsonDescribesTheDefaultModel) {
  const Result r = run("info -m smollm2 --json --tensors");
  ASSERT_EQ(r.status, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j["version"], 3);
  EXPECT_EQ(j["alignment"], 32);
  EXPECT_EQ(j["tensor_count"], 272);
  ASSERT_EQ(j["tensors"].size(), 272u);
  EXPECT_EQ(j["tensors"][0]["name"], "token_embd.weight");
  EXPECT_EQ(j["tensors"][0]["type"], "Q8_0");
  EXPECT_EQ(j["tensors"][0]["dims"], nlohmann::json::array({576, 49152}));
  EXPECT_EQ(j["metadata"]["general.architecture"], "llama");
  EXPECT_EQ(j["metadata"]["llama.block_count"], 30);
  EXPECT_EQ(j["metadata"]["tokenizer.ggml.tokens"]["count"], 49152);
  EXPECT_EQ(j["metadata"]["tokenizer.ggml.tokens"]["first"][1], "<|im_start|>");
  std::uint64_t bytes = 0;
  for (const auto& t : j["tensors"]) bytes += t["bytes"].get<std::uint64_t>();
  std::uint64_t total = 0;
  for (const auto& t : j["totals"]) total += t["bytes"].get<std::uint64_t>();
  EXPECT_EQ(bytes, total);
  EXPECT_LE(j["data_start"].get<std::uint64_t>() + bytes, j["file_size"].get<std::uint64_t>());
}

TEST(InfoCommand, TextAbbreviatesArraysAndListsTypes) {
  const Result r = run("info -m smollm2");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("GGUF v3, alignment 32"));
  EXPECT_THAT(r.output, HasSubstr("(49152 × string)"));
  EXPECT_THAT(r.output, HasSubstr("(48900 × string)"));
  EXPECT_THAT(r.output, ::testing::ContainsRegex("Q4_1 +210 "));
  EXPECT_THAT(r.output, ::testing::Not(HasSubstr("blk.0.attn_q.weight")));  // only with --tensors
  EXPECT_THAT(run("info -m smollm2 --tensors").output,
              ::testing::ContainsRegex("blk.0.attn_q.weight +Q4_1 +\\[576, 576\\] +207360"));
}

TEST(InfoCommand, BadInputsGiveClearErrors) {
  Result r = run("info -m /nonexistent/model.gguf");
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.output, HasSubstr("model file '/nonexistent/model.gguf' does not exist"));
  r = run("info -m smollm2", "LONGSPARSE_MODELS=/nonexistent");
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.output, HasSubstr("scripts/fetch-model smollm2"));
  r = run(std::string("info -m ") + LONGSPARSE_SOURCE_DIR + "/fuzz/corpus/gguf/bad_overlap.gguf");
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.output, HasSubstr("overlaps tensor 'a'"));
  EXPECT_THAT(r.output, HasSubstr("(at byte 127)"));
}

}  // namespace
