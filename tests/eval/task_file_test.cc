// JSONL task files: round trip and validation errors with line numbers.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "eval/task.h"

namespace ls::eval {
namespace {

std::string temp_file(const std::string& name, const std::string& content) {
  auto path = std::filesystem::temp_directory_path() / ("ls_eval_" + std::to_string(::getpid()) + "_" + name);
  std::ofstream(path) << content;
  return path.string();
}

std::string error_of(const std::string& content) {
  try {
    read_task_file(temp_file("bad.jsonl", content));
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(TaskFile, RoundTrip) {
  TaskSample s;
  s.id = "x-1";
  s.task = "custom";
  s.length = 100;
  s.input = "line one\nline \"two\"";
  s.answer_prefix = " Answer:";
  s.answers = {"a", "b"};
  s.metric = "string_match_part";
  s.gen_tokens = 7;
  s.depth = 12.5;
  s.needle_positions = {3, 9};
  s.seed = 5;
  s.metadata["k"] = "v";
  std::string path = temp_file("rt.jsonl", to_jsonl_line(s) + "\n\n");
  auto back = read_task_file(path);
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(to_jsonl_line(back[0]), to_jsonl_line(s));
}

TEST(TaskFile, MinimalSampleGetsDefaults) {
  auto s = parse_task_line(R"({"id": "a", "task": "t", "length": 10, "input": "hi", "answers": ["x"]})", "f:1");
  EXPECT_EQ(s.metric, "string_match_all");
  EXPECT_EQ(s.answer_prefix, "");
  EXPECT_EQ(s.gen_tokens, 128);
  EXPECT_FALSE(s.depth.has_value());
}

TEST(TaskFile, ErrorsNameLineAndField) {
  const std::string ok = R"({"id": "a", "task": "t", "length": 10, "input": "hi", "answers": ["x"]})";
  std::string e = error_of(ok + "\n" + R"({"id": "b", "task": "t", "length": "10", "input": "hi", "answers": ["x"]})");
  EXPECT_NE(e.find(":2: field 'length' must be an integer"), std::string::npos) << e;
  e = error_of(R"({"id": "b", "task": "t", "length": 10, "answers": ["x"]})");
  EXPECT_NE(e.find(":1: missing required field 'input'"), std::string::npos) << e;
  e = error_of(ok + "\n\n" + "{not json");
  EXPECT_NE(e.find(":3: not valid JSON"), std::string::npos) << e;
  e = error_of(R"({"id": "b", "task": "t", "length": 10, "input": "", "answers": []})");
  EXPECT_NE(e.find("'answers' must not be empty"), std::string::npos) << e;
  e = error_of(R"({"id": "b", "task": "t", "length": 10, "input": "", "answers": ["x"], "metric": "bleu"})");
  EXPECT_NE(e.find("unknown metric 'bleu'"), std::string::npos) << e;
  e = error_of(ok + "\n" + ok);
  EXPECT_NE(e.find(":2: duplicate id 'a'"), std::string::npos) << e;
  e = error_of(R"({"id": "b", "task": "t", "length": 10, "input": "", "answers": ["x"], "depth": 150})");
  EXPECT_NE(e.find("'depth' must be in [0, 100]"), std::string::npos) << e;
  e = error_of("");
  EXPECT_NE(e.find("holds no samples"), std::string::npos) << e;
  EXPECT_THROW(read_task_file("/nonexistent/tasks.jsonl"), Error);
}

}  // namespace
}  // namespace ls::eval
