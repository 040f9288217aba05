// `longsparse perplexity` end to end: error cases, the chunking it reports, and its mean NLL
// against a direct computation from the model API (each scored position's logits from a
// prefill of the prefix that ends there), on a short context with SmolLM2 (no BOS) and
// Gemma 3 (BOS replaces each chunk's first token). Model cases are skipped when the model is
// not cached.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include "cli_runner.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "kv/kv_cache.h"
#include "model/gguf.h"
#include "model/model_path.h"
#include "model/tokenizer.h"
#include "model/transformer.h"

namespace {

namespace fs = std::filesystem;
using Result = ls::testing::CliResult;
using testing::HasSubstr;

bool model_cached(const std::string& name) {
  try {
    ls::resolve_model_path(name);
    return true;
  } catch (const ls::Error&) {
    return false;
  }
}

// Prose of about 350 SmolLM2 tokens: words drawn from a fixed list by a fixed generator.
std::string sample_text() {
  static const char* words[] = {"the", "ship", "sailed", "north", "and", "a", "storm", "rose", "over", "dark",
                                "water", "while", "old", "sailors", "sang", "of", "home", "harbour", "lights", "wind"};
  std::string text;
  std::uint32_t state = 12345;
  for (int i = 0; i < 260; ++i) {
    state = state * 1664525u + 1013904223u;
    text += words[(state >> 16) % 20];
    text += i % 11 == 10 ? ". " : " ";
  }
  return text;
}

class PerplexityCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("longsparse_perplexity_test_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    std::ofstream(path("text.txt")) << sample_text();
    std::ofstream(path("short.txt")) << "Too short for a chunk.";
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  Result run(const std::string& args, bool with_stderr = true) const {
    return ls::testing::run_longsparse("perplexity " + args, "", with_stderr);
  }

  fs::path dir_;
};

// The mean NLL computed without the all-positions logits hook: for each chunk, a fresh
// prefill of tokens 0..j for each scored position j, its last logits, and a log-softmax in
// double. Returns {mean NLL, scored positions}.
std::pair<double, std::int64_t> direct_mean_nll(const std::string& model_name, const std::string& text,
                                                std::int64_t n_ctx, std::int64_t max_chunks) {
  auto file = ls::GgufFile::open(ls::resolve_model_path(model_name));
  ls::Transformer model(*file);
  ls::Tokenizer tokenizer(ls::tokenizer_data_from_gguf(*file));
  const std::vector<std::int32_t> tokens = tokenizer.encode(text, false);
  const std::int64_t chunks = std::min<std::int64_t>(std::int64_t(tokens.size()) / n_ctx, max_chunks);
  double sum = 0;
  std::int64_t count = 0;
  std::vector<float> logits(model.config().vocab);
  for (std::int64_t c = 0; c < chunks; ++c) {
    std::vector<std::int32_t> input(tokens.begin() + c * n_ctx, tokens.begin() + (c + 1) * n_ctx);
    if (tokenizer.data().add_bos) input[0] = tokenizer.bos();
    for (std::int64_t j = n_ctx / 2; j <= n_ctx - 2; ++j) {
      ls::KvCache cache = model.make_cache(n_ctx);
      model.prefill(std::span(input).first(j + 1), cache, logits.data());
      const double max = *std::max_element(logits.begin(), logits.end());
      double z = 0;
      for (float l : logits) z += std::exp(double(l) - max);
      sum += -(double(logits[tokens[c * n_ctx + j + 1]]) - max - std::log(z));
      ++count;
    }
  }
  return {sum / double(count), count};
}

TEST_F(PerplexityCli, BadInputIsAClearError) {
  const Result missing = run("-f /nonexistent/text.txt -c 64");
  EXPECT_EQ(missing.status, 1);
  EXPECT_THAT(missing.output, HasSubstr("/nonexistent/text.txt"));
  EXPECT_EQ(run("-c 64").status, 1);  // no file
  for (const char* c : {"1", "2", "0", "-5"}) {
    const Result r = run("-f " + path("text.txt") + " -c " + c);
    EXPECT_EQ(r.status, 1) << c;
    EXPECT_THAT(r.output, HasSubstr("at least 3 tokens")) << c;
  }
  if (!model_cached("smollm2")) GTEST_SKIP() << "model not cached; run scripts/fetch-model smollm2";
  const Result short_file = run("-f " + path("short.txt") + " -c 64");
  EXPECT_EQ(short_file.status, 1);
  EXPECT_THAT(short_file.output, HasSubstr("fewer than one chunk of 64"));
  const Result beyond = run("-f " + path("text.txt") + " -c 100000");
  EXPECT_EQ(beyond.status, 1);
  EXPECT_THAT(beyond.output, HasSubstr("trained context of 8192"));
  const Result dense_layers = run("-f " + path("text.txt") + " -c 64 --dense-layers 0");
  EXPECT_EQ(dense_layers.status, 1);
  EXPECT_THAT(dense_layers.output, HasSubstr("--dense-layers needs --prefill"));
  const Result bad_method = run("-f " + path("text.txt") + " -c 64 --prefill no-such-method");
  EXPECT_EQ(bad_method.status, 1);
  EXPECT_THAT(bad_method.output, HasSubstr("no-such-method"));
}

// SmolLM2 adds no BOS: chunks are the text's tokens as they are.
TEST_F(PerplexityCli, MatchesADirectComputationAndReportsTheChunking) {
  if (!model_cached("smollm2")) GTEST_SKIP() << "model not cached; run scripts/fetch-model smollm2";
  const Result r = run("-m smollm2 -f " + path("text.txt") + " -c 64 --chunks 2 -t 2 --json", false);
  ASSERT_EQ(r.status, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output);
  const std::int64_t file_tokens = j["file_tokens"];
  EXPECT_GT(file_tokens, 3 * 64);  // more chunks than --chunks allows
  EXPECT_EQ(j["chunks_available"], file_tokens / 64);
  EXPECT_EQ(j["ctx"], 64);
  EXPECT_EQ(j["chunks"], 2);
  EXPECT_EQ(j["add_bos"], false);
  EXPECT_EQ(j["first_scored"], 32);
  EXPECT_EQ(j["tokens_scored"], 2 * 31);  // positions 32 .. 62 of each chunk
  EXPECT_EQ(j["prefill_method"], "dense");
  const double mean_nll = j["mean_nll"];
  EXPECT_NEAR(j["ppl"].get<double>(), std::exp(mean_nll), 1e-9);
  EXPECT_GT(j["ppl_stderr"].get<double>(), 0.0);
  ASSERT_EQ(j["running_ppl"].size(), 2u);
  EXPECT_DOUBLE_EQ(j["running_ppl"][1].get<double>(), j["ppl"].get<double>());

  const auto [expected, count] = direct_mean_nll("smollm2", sample_text(), 64, 2);
  EXPECT_EQ(count, 62);
  EXPECT_NEAR(mean_nll, expected, 1e-3);
  EXPECT_GT(mean_nll, 0.5);  // a real text, not a degenerate one

  // The text output, as llama-perplexity prints it.
  const Result text = run("-m smollm2 -f " + path("text.txt") + " -c 64 --chunks 2 -t 2", false);
  ASSERT_EQ(text.status, 0) << text.output;
  EXPECT_THAT(text.output, HasSubstr("[1]"));
  EXPECT_THAT(text.output, HasSubstr(fmt::format("[2]{:.4f},", j["ppl"].get<double>())));
  EXPECT_THAT(text.output, HasSubstr(fmt::format("Final estimate: PPL = {:.4f} +/- {:.5f}", j["ppl"].get<double>(),
                                                 j["ppl_stderr"].get<double>())));
}

// Gemma 3 adds BOS: the first token of every chunk is replaced by it, as llama-perplexity does.
TEST_F(PerplexityCli, GemmaChunksStartWithBos) {
  if (!model_cached("gemma3")) GTEST_SKIP() << "model not cached; run scripts/fetch-model gemma3";
  const Result r = run("-m gemma3 -f " + path("text.txt") + " -c 16 --chunks 3 -t 2 --json", false);
  ASSERT_EQ(r.status, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j["add_bos"], true);
  EXPECT_EQ(j["chunks"], 3);
  EXPECT_EQ(j["tokens_scored"], 3 * 7);  // positions 8 .. 14
  const auto [expected, count] = direct_mean_nll("gemma3", sample_text(), 16, 3);
  EXPECT_EQ(count, 21);
  EXPECT_NEAR(j["mean_nll"].get<double>(), expected, 2e-3);
}

// A sparse prefill is set up as in `run`: its spec lands in the JSON.
TEST_F(PerplexityCli, SparsePrefillAsInRun) {
  if (!model_cached("smollm2")) GTEST_SKIP() << "model not cached; run scripts/fetch-model smollm2";
  const Result r =
      run("-f " + path("text.txt") + " -c 128 --chunks 1 -t 2 --json --prefill streaming --dense-layers 0", false);
  ASSERT_EQ(r.status, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output);
  EXPECT_THAT(j["prefill_method"].get<std::string>(), HasSubstr("streaming"));
  EXPECT_EQ(j["tokens_scored"], 63);
  EXPECT_GT(j["ppl"].get<double>(), 1.0);
}

}  // namespace
