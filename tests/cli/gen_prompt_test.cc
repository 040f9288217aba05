// How `gen` turns a task into the model's prompt: inside the chat template for a file that
// carries one (SmolLM2-135M-Instruct), as plain text for a base model without one (the Gemma 3
// 270M file), as RULER's base-model template does. Skipped when a model is not cached.
#include <gtest/gtest.h>

#include "cli_runner.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"
#include "model/model_path.h"

namespace {

bool cached(const std::string& model) {
  try {
    ls::resolve_model_path(model);
    return true;
  } catch (const ls::Error&) {
    return false;
  }
}

// Tokens of `text` under `model`'s tokenizer (with BOS where the model adds one).
std::size_t token_count(const std::string& model, const std::string& text, bool chat) {
  const auto file = std::filesystem::temp_directory_path() / ("ls_gen_prompt_" + model + ".txt");
  std::ofstream(file) << text;
  const auto r = ls::testing::run_longsparse("tokenize -m " + model + " --json -f " + file.string() +
                                                 (chat ? " --chat" : ""),
                                             "", /*with_stderr=*/false);
  EXPECT_EQ(r.status, 0) << r.output;
  return nlohmann::json::parse(r.output).size();
}

nlohmann::json one_sample(const std::string& model) {
  const auto r = ls::testing::run_longsparse("gen -m " + model + " --task passkey --len 300 --samples 1 --seed 3",
                                             "", /*with_stderr=*/false);
  EXPECT_EQ(r.status, 0) << r.output;
  return nlohmann::json::parse(r.output);
}

TEST(GenPrompt, BaseModelGetsThePlainTaskText) {
  if (!cached("gemma3")) GTEST_SKIP() << "run scripts/fetch-model gemma3";
  const auto s = one_sample("gemma3");
  const std::string text = s["input"].get<std::string>() + s["answer_prefix"].get<std::string>();
  EXPECT_EQ(s["metadata"]["prompt_tokens"].get<std::size_t>(), token_count("gemma3", text, false));
}

TEST(GenPrompt, InstructModelGetsItsChatTemplate) {
  if (!cached("smollm2")) GTEST_SKIP() << "run scripts/fetch-model smollm2";
  const auto s = one_sample("smollm2");
  const std::string input = s["input"].get<std::string>();
  const std::size_t plain = token_count("smollm2", input + s["answer_prefix"].get<std::string>(), false);
  const std::size_t prompt = s["metadata"]["prompt_tokens"].get<std::size_t>();
  EXPECT_GT(prompt, plain);  // the template's turns around the input
  EXPECT_GE(prompt, token_count("smollm2", input, true));
}

}  // namespace
