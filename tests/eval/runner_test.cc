// The evaluation loop with a fake generator: scoring, result lines, resumption.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "core/error.h"
#include "eval/results.h"
#include "eval/runner.h"
#include "eval/sweep.h"

namespace ls::eval {
namespace {

// Answers correctly for even sample numbers, wrongly for odd ones; can be told to fail
// ("crash") after a number of calls, as an interrupted run would.
class FakeGenerator : public Generator {
 public:
  explicit FakeGenerator(std::string method = method_label("dense", "dense", "", "")) : method_(std::move(method)) {}
  GenerationResult generate(const std::string& prompt, std::int64_t max_tokens) override {
    if (fail_after >= 0 && calls >= fail_after) throw Error("interrupted");
    ++calls;
    if (counter) ++*counter;
    ++seen[prompt];
    last_budget = max_tokens;
    GenerationResult r;
    const bool even = (prompt.back() - '0') % 2 == 0;
    r.text = even ? " the answer is " + std::string(1, prompt.back()) + "000" : " no idea";
    r.prefill_ms = 10, r.attention_ms = 4, r.density = 0.5, r.decode_ms_per_token = 2;
    r.estimate_precision = "amx-bf16";
    r.attention_scores = "bf16";
    return r;
  }
  std::string method() const override { return method_; }
  std::string model() const override { return "fake"; }
  int calls = 0, fail_after = -1;
  int* counter = nullptr;  // outlives the generator
  std::int64_t last_budget = 0;
  std::map<std::string, int> seen;

 private:
  std::string method_;
};

std::vector<TaskSample> samples(int n) {
  std::vector<TaskSample> out;
  for (int i = 0; i < n; ++i) {
    TaskSample s;
    // (append, not "literal" + std::string: GCC 12 warns falsely about that with -O2)
    s.id = std::string("s").append(std::to_string(i));
    s.task = i < n / 2 ? "alpha" : "beta";
    s.length = 1024;
    s.input = std::string("question ").append(std::to_string(i));
    s.answer_prefix = std::string(" digit ").append(std::to_string(i % 10));
    s.answers = {std::to_string(i % 10) + "000"};
    s.gen_tokens = 9;
    out.push_back(s);
  }
  return out;
}

std::string fresh_path(const std::string& name) {
  auto p = std::filesystem::temp_directory_path() / ("ls_eval_" + std::to_string(::getpid()) + "_" + name);
  std::filesystem::remove(p);
  return p.string();
}

TEST(Runner, ScoresAndWritesOneLinePerSample) {
  FakeGenerator g;
  ApproxFormatter f;
  EvalOptions o;
  o.out_path = fresh_path("one.jsonl");
  auto stats = run_eval(samples(6), g, f, o);
  EXPECT_EQ(stats.evaluated, 6);
  EXPECT_EQ(g.last_budget, 9);
  auto records = read_results(o.out_path);
  ASSERT_EQ(records.size(), 6u);
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(records[i].id, "s" + std::to_string(i));
    EXPECT_DOUBLE_EQ(records[i].score, i % 2 == 0 ? 1.0 : 0.0);
    EXPECT_DOUBLE_EQ(records[i].density, 0.5);
    EXPECT_EQ(records[i].method, "prefill=dense decode=dense");
    EXPECT_EQ(records[i].estimate_precision, "amx-bf16");  // carried from the generator to the file
    EXPECT_EQ(records[i].attention_scores, "bf16");
  }
  // The generator saw the formatted prompt: input then answer prefix.
  EXPECT_EQ(g.seen.count("question 3 digit 3"), 1u);
  const std::string table = summary_table(records);
  EXPECT_NE(table.find("alpha"), std::string::npos);
  EXPECT_NE(table.find("0.667"), std::string::npos) << table;  // alpha: s0, s1, s2 -> 2 of 3 right
}

// A generator running several decode selectors after one prefill: one call per prompt, one
// line per method, and on resumption only the missing methods are asked for.
class MultiGenerator : public FakeGenerator {
 public:
  std::vector<std::string> methods() const override {
    return {method_label("dense", "dense", "", ""), method_label("dense", "quest", "", "")};
  }
  std::vector<GenerationResult> generate_all(const std::string& prompt, std::int64_t max_tokens,
                                             const std::vector<bool>& wanted, std::size_t query_at) override {
    asked.push_back(wanted);
    questions.push_back(query_at == std::string::npos ? std::string() : prompt.substr(query_at));
    GenerationResult r = generate(prompt, max_tokens);
    GenerationResult wrong = r;
    wrong.text = " no idea";
    return {r, wrong};
  }
  std::vector<std::vector<bool>> asked;
  std::vector<std::string> questions;  // the prompt from query_at on
};

// The question a generator is told about is the input's last line, with what follows it in
// the prompt (here: the answer prefix).
TEST(Runner, TellsTheGeneratorWhereTheQuestionStarts) {
  ApproxFormatter f;
  EvalOptions o;
  o.out_path = fresh_path("question.jsonl");
  std::vector<TaskSample> two = samples(2);
  two[1].input = "a long context\nwith lines\nWhat is the number?";
  MultiGenerator g;
  run_eval(two, g, f, o);
  ASSERT_EQ(g.questions.size(), 2u);
  EXPECT_EQ(g.questions[0], "");
  EXPECT_EQ(g.questions[1], "What is the number? digit 1");
}

// With write = false (the other ranks of a context-parallel run) results are computed but
// the file is left as it was.
TEST(Runner, WithoutWritingLeavesTheFile) {
  ApproxFormatter f;
  EvalOptions o;
  o.out_path = fresh_path("nowrite.jsonl");
  o.write = false;
  FakeGenerator g;
  auto stats = run_eval(samples(3), g, f, o);
  EXPECT_EQ(stats.evaluated, 3);
  EXPECT_TRUE(read_results(o.out_path).empty());
}

TEST(Runner, SeveralMethodsShareEachPrompt) {
  ApproxFormatter f;
  EvalOptions o;
  o.out_path = fresh_path("multi.jsonl");
  FakeGenerator dense_only;  // the dense method's first two samples are already there
  run_eval(samples(2), dense_only, f, o);
  MultiGenerator g;
  auto stats = run_eval(samples(4), g, f, o);
  EXPECT_EQ(g.calls, 4);  // one generation per prompt, not per method
  ASSERT_EQ(g.asked.size(), 4u);
  EXPECT_EQ(g.asked[0], (std::vector<bool>{false, true}));
  EXPECT_EQ(g.asked[3], (std::vector<bool>{true, true}));
  EXPECT_EQ(stats.evaluated, 6);
  EXPECT_EQ(stats.skipped, 2);
  EXPECT_EQ(g.questions[0], "");  // a one-line input has no separate question
  auto records = read_results(o.out_path);
  ASSERT_EQ(records.size(), 8u);
  int quest = 0;
  for (const auto& r : records) {
    if (r.method != "prefill=dense decode=quest") continue;
    ++quest;
    EXPECT_DOUBLE_EQ(r.score, 0.0);
  }
  EXPECT_EQ(quest, 4);
  EXPECT_EQ(stats.records.size(), 8u);
  MultiGenerator again;
  EXPECT_EQ(run_eval(samples(4), again, f, o).skipped, 8);
  EXPECT_EQ(again.calls, 0);
}

TEST(Runner, ResumesWithoutRepeatingSamples) {
  ApproxFormatter f;
  EvalOptions o;
  o.out_path = fresh_path("resume.jsonl");
  const auto all = samples(10);
  FakeGenerator first;
  first.fail_after = 5;
  EXPECT_THROW(run_eval(all, first, f, o), Error);
  EXPECT_EQ(read_results(o.out_path).size(), 5u);
  // Simulate a line cut short by the interruption: it is ignored and rewritten.
  { std::ofstream(o.out_path, std::ios::app) << R"({"id": "s5", "task": "be)"; }
  FakeGenerator second;
  auto stats = run_eval(all, second, f, o);
  EXPECT_EQ(stats.skipped, 5);
  EXPECT_EQ(stats.evaluated, 5);
  EXPECT_EQ(second.calls, 5);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(second.seen.count("question " + std::to_string(i) + " digit " + std::to_string(i)), 0u);
  auto records = read_results(o.out_path);
  EXPECT_EQ(records.size(), 10u);
  EXPECT_EQ(result_keys(records).size(), 10u);
  // A third run does nothing; another method runs everything.
  FakeGenerator third;
  EXPECT_EQ(run_eval(all, third, f, o).evaluated, 0);
  EXPECT_EQ(third.calls, 0);
  FakeGenerator other(method_label("sparse:k=1", "dense", "0", ""));
  EXPECT_EQ(run_eval(all, other, f, o).evaluated, 10);
  EXPECT_EQ(read_results(o.out_path).size(), 20u);
}

TEST(Runner, CorruptResultLineInTheMiddleIsAnError) {
  auto path = fresh_path("corrupt.jsonl");
  { std::ofstream(path) << "{broken\n{\"also\": 1}\n"; }
  EXPECT_THROW(read_results(path), Error);
}

TEST(Sweep, ExpandsParameterGrids) {
  auto c = parse_sweep_config(nlohmann::json::parse(R"({
      "out": "x.jsonl", "tasks": ["passkey"], "lengths": [1024],
      "methods": [{"prefill": "dense"},
                  {"prefill": "flex", "params": {"gamma": [0.9, 0.95], "block": 64}, "dense_layers": "0"}]})"),
                              "cfg");
  ASSERT_EQ(c.methods.size(), 3u);
  EXPECT_EQ(c.methods[0].label(), "prefill=dense decode=dense");
  EXPECT_EQ(c.methods[1].label(), "prefill=flex:block=64,gamma=0.9 decode=dense dense_layers=0");
  EXPECT_EQ(c.methods[2].label(), "prefill=flex:block=64,gamma=0.95 decode=dense dense_layers=0");
  EXPECT_THROW(parse_sweep_config(nlohmann::json::parse(R"({"tasks": ["nope"], "lengths": [1], "methods": [{}]})"), "c"), Error);
  EXPECT_THROW(parse_sweep_config(nlohmann::json::parse(R"({"tasks": ["vt"], "lengths": [1024]})"), "c"), Error);
  EXPECT_THROW(parse_sweep_config(nlohmann::json::parse(R"({"tasks": ["vt"], "lengths": [1024], "methods": [{"prefil": "x"}]})"), "c"), Error);
}

TEST(Sweep, RunsEveryMethodOverEverySampleAndResumes) {
  ApproxFormatter f;
  auto c = parse_sweep_config(nlohmann::json::parse(R"({
      "tasks": ["passkey"], "lengths": [512, 1024], "samples": 2, "depths": [0, 100],
      "methods": [{"prefill": "dense"}, {"prefill": "a", "params": {"k": [1, 2]}}]})"), "cfg");
  c.out = fresh_path("sweep.jsonl");
  auto all = sweep_samples(c, f, TextResources{});
  ASSERT_EQ(all.size(), 8u);  // 2 lengths × 2 depths × 2 samples
  int calls = 0;
  auto factory = [&](const SweepMethod& m) {
    auto g = std::make_unique<FakeGenerator>(m.label());
    g->counter = &calls;
    return g;
  };
  auto stats = run_sweep(c, all, f, factory, false);
  EXPECT_EQ(stats.evaluated, 24);
  EXPECT_EQ(calls, 24);
  stats = run_sweep(c, all, f, factory, false);
  EXPECT_EQ(stats.evaluated, 0);
  EXPECT_EQ(stats.skipped, 24);
  EXPECT_EQ(calls, 24);
}

}  // namespace
}  // namespace ls::eval
