// Task generators: determinism, length window, answers present, needle depth, RULER formats.
#include <gtest/gtest.h>

#include <regex>
#include <set>

#include "core/error.h"
#include "eval/fit.h"
#include "eval/generators.h"
#include "eval/rng.h"
#include "eval/text_sources.h"

namespace ls::eval {
namespace {

// A chat template around the input, as a real model adds, so lengths include it.
class TemplateFormatter : public PromptFormatter {
 public:
  std::string format(const std::string& input, const std::string& prefix) const override {
    return "<|im_start|>user\n" + input + "<|im_end|>\n<|im_start|>assistant\n" + prefix;
  }
  std::int64_t count_tokens(const std::string& text) const override {
    ++calls;
    if (text.size() > 20000) ++large_calls;
    return approx_token_count(text);
  }
  std::string name() const override { return "approx+template"; }
  mutable int calls = 0, large_calls = 0;
};

std::int64_t total_tokens(const TaskSample& s, const PromptFormatter& f) {
  return f.count_tokens(f.format(s.input, s.answer_prefix)) + s.gen_tokens;
}

TEST(Rng, MatchesReferenceXoshiro256StarStar) {
  // Values from an independent implementation of splitmix64 seeding + xoshiro256**.
  Rng rng(12345);
  EXPECT_EQ(rng.next(), 0xbe6a36374160d49bull);
  EXPECT_EQ(rng.next(), 0x214aaa0637a688c6ull);
  EXPECT_EQ(rng.next(), 0xf69d16de9954d388ull);
}

TEST(Rng, BelowIsInRangeAndCoversIt) {
  Rng rng(7);
  std::set<std::uint64_t> seen;
  for (int i = 0; i < 2000; ++i) {
    auto v = rng.below(10);
    ASSERT_LT(v, 10u);
    seen.insert(v);
  }
  EXPECT_EQ(seen.size(), 10u);
  auto picked = rng.sample(50, 50);
  EXPECT_EQ(std::set<std::int64_t>(picked.begin(), picked.end()).size(), 50u);
}

TEST(Rng, SampleSeedSeparatesInputs) {
  EXPECT_EQ(sample_seed("vt", 4096, 1, 0), sample_seed("vt", 4096, 1, 0));
  std::set<std::uint64_t> seeds{sample_seed("vt", 4096, 1, 0), sample_seed("vt", 4096, 1, 1),
                                sample_seed("vt", 4096, 2, 0), sample_seed("vt", 2048, 1, 0),
                                sample_seed("cwe", 4096, 1, 0)};
  EXPECT_EQ(seeds.size(), 5u);
}

TEST(TextSources, SplitsSentencesKeepingTitles) {
  auto s = split_sentences("CHAPTER 1\n\nMr. Darcy came.  \"Did he?\" she asked. Yes!\nIt rained");
  ASSERT_EQ(s.size(), 4u);
  EXPECT_EQ(s[0], "Mr. Darcy came.");
  EXPECT_EQ(s[1], "\"Did he?\" she asked.");
  EXPECT_EQ(s[2], "Yes!");
  EXPECT_EQ(s[3], "It rained");
}

TEST(TextSources, WordListsAreLargeAndPlain) {
  const auto& w = word_lists();
  EXPECT_GT(w.nouns.size(), 5000u);
  EXPECT_GT(w.adjectives.size(), 1000u);
  EXPECT_GT(w.verbs.size(), 1000u);
  for (const auto& word : w.nouns) ASSERT_TRUE(std::regex_match(word, std::regex("[a-z]{3,12}"))) << word;
}

struct Case {
  std::string task;
  std::int64_t length;
};

class AllTasks : public ::testing::TestWithParam<Case> {};

TEST_P(AllTasks, DeterministicWithinLengthAnswersPresent) {
  const Case c = GetParam();
  TemplateFormatter f;
  GenerationRequest r;
  r.task = c.task;
  r.length = c.length;
  r.seed = 3;
  r.index = 1;
  auto res = default_resources();
  TaskSample a = generate_sample(r, f, res);
  TaskSample b = generate_sample(r, f, res);
  EXPECT_EQ(to_jsonl_line(a), to_jsonl_line(b));
  r.index = 2;
  EXPECT_NE(generate_sample(r, f, res).input, a.input);

  const std::int64_t total = total_tokens(a, f);
  EXPECT_LE(total, c.length);
  EXPECT_GE(total, (9 * c.length + 9) / 10);
  EXPECT_EQ(a.metadata["total_tokens"].get<std::int64_t>(), total);
  EXPECT_EQ(a.task, c.task);
  EXPECT_EQ(a.length, c.length);
  ASSERT_FALSE(a.answers.empty());
  if (a.metric != "iou") {
    for (const auto& answer : a.answers) EXPECT_NE(a.input.find(answer), std::string::npos) << answer;
  } else {
    for (const auto& answer : a.answers) EXPECT_NE(a.input.find("Chapter " + answer + ":\n"), std::string::npos);
  }
  // Needle positions are increasing token indexes inside the prompt.
  const std::int64_t prompt_tokens = total - a.gen_tokens;
  for (auto p : a.needle_positions) {
    EXPECT_GT(p, 0);
    EXPECT_LT(p, prompt_tokens);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Generators, AllTasks,
    ::testing::Values(Case{"niah_single_1", 2048}, Case{"niah_single_2", 2048}, Case{"niah_single_3", 4096},
                      Case{"niah_multikey_1", 2048}, Case{"niah_multikey_2", 2048}, Case{"niah_multikey_3", 4096},
                      Case{"niah_multivalue", 2048}, Case{"niah_multiquery", 8192}, Case{"vt", 2048},
                      Case{"vt", 8192}, Case{"cwe", 2048}, Case{"cwe", 8192}, Case{"fwe", 2048},
                      Case{"fwe", 8192}, Case{"passkey", 1024}, Case{"passkey", 16384},
                      Case{"story_retrieval", 8192}, Case{"story_multihop", 4096}, Case{"story_filtering", 4096}),
    [](const auto& info) { return info.param.task + "_" + std::to_string(info.param.length); });

TEST(Generators, NeedleSitsAtTheRequestedDepth) {
  TemplateFormatter f;
  auto res = default_resources();
  for (const std::string task : {"niah_single_1", "niah_single_2", "passkey"})
    for (double depth : {0.0, 25.0, 50.0, 75.0, 100.0}) {
      GenerationRequest r;
      r.task = task;
      r.length = 8192;
      r.depth = depth;
      TaskSample s = generate_sample(r, f, res);
      ASSERT_EQ(s.needle_positions.size(), 1u);
      ASSERT_TRUE(s.depth.has_value());
      EXPECT_EQ(*s.depth, depth);
      const double prompt_tokens = double(total_tokens(s, f) - s.gen_tokens);
      const double relative = 100.0 * double(s.needle_positions[0]) / prompt_tokens;
      EXPECT_NEAR(relative, depth, 5.0) << task << " depth " << depth;
      // The recorded position is where the needle starts: the text before it counts that many tokens.
      const std::string prompt = f.format(s.input, s.answer_prefix);
      const std::string key = s.answers[0];
      const std::size_t at = prompt.find(key);
      ASSERT_NE(at, std::string::npos);
      EXPECT_LT(f.count_tokens(prompt.substr(0, at)) - s.needle_positions[0], 40);
      EXPECT_GE(f.count_tokens(prompt.substr(0, at)), s.needle_positions[0]);
    }
}

TEST(Generators, RulerFormats) {
  TemplateFormatter f;
  auto res = default_resources();
  GenerationRequest r;
  r.length = 2048;
  r.task = "niah_single_1";
  TaskSample s = generate_sample(r, f, res);
  EXPECT_EQ(s.input.rfind("A special magic number is hidden within the following text.", 0), 0u);
  EXPECT_TRUE(std::regex_match(s.answers[0], std::regex("[1-9][0-9]{6}")));
  EXPECT_NE(s.input.find("One of the special magic numbers for "), std::string::npos);
  EXPECT_TRUE(std::regex_match(s.answer_prefix, std::regex(" The special magic number for [a-z]+-[a-z]+ mentioned in the provided text is")));
  EXPECT_EQ(s.gen_tokens, 128);
  r.task = "niah_single_3";
  s = generate_sample(r, f, res);
  EXPECT_TRUE(std::regex_match(s.answers[0], std::regex("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")));
  r.task = "niah_multivalue";
  s = generate_sample(r, f, res);
  EXPECT_EQ(s.answers.size(), 4u);
  EXPECT_EQ(s.needle_positions.size(), 4u);
  EXPECT_EQ(s.input.rfind("Some special magic numbers are hidden", 0), 0u);
  r.task = "vt";
  s = generate_sample(r, f, res);
  EXPECT_EQ(s.answers.size(), 5u);
  EXPECT_EQ(s.gen_tokens, 30);
  EXPECT_NE(s.answer_prefix.find("5 variables are assigned the value"), std::string::npos);
  r.task = "fwe";
  s = generate_sample(r, f, res);
  EXPECT_EQ(s.answers.size(), 3u);
  EXPECT_EQ(s.gen_tokens, 50);
  r.task = "cwe";
  s = generate_sample(r, f, res);
  EXPECT_EQ(s.answers.size(), 10u);
  EXPECT_EQ(s.gen_tokens, 120);
}

TEST(Generators, LongPromptsTokenizeInFullOnlyAFewTimes) {
  TemplateFormatter f;
  auto res = default_resources();
  for (const std::string task : {"niah_single_2", "niah_multikey_2", "cwe", "passkey"}) {
    f.large_calls = 0;
    GenerationRequest r;
    r.task = task;
    r.length = 32768;
    generate_sample(r, f, res);
    EXPECT_LE(f.large_calls, 10) << task;
  }
}

TEST(Generators, ClearErrors) {
  TemplateFormatter f;
  auto res = default_resources();
  GenerationRequest r;
  r.task = "niah_multikey_1";
  r.depth = 50;
  EXPECT_THROW(generate_sample(r, f, res), Error);
  r.task = "no_such_task";
  EXPECT_THROW(generate_sample(r, f, res), Error);
  r.task = "story_retrieval";
  r.depth.reset();
  r.length = 2048;  // 16 chapters and the 1024-token budget do not fit
  try {
    generate_sample(r, f, res);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("too short"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ls::eval
