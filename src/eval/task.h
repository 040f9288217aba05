// One evaluation sample and the JSONL task-file format (docs/DESIGN.md §7, docs/eval.md).
// Anyone can write such files; `longsparse eval` reads them, validating every field with the
// line number so a malformed file is reported, never half-evaluated.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ls::eval {

struct TaskSample {
  std::string id;
  std::string task;
  std::int64_t length = 0;         // target tokens (final prompt + generation budget)
  std::string input;               // prompt text without chat template
  std::string answer_prefix;       // the model continues after it (may be empty)
  std::vector<std::string> answers;
  std::string metric = "string_match_all";
  std::int64_t gen_tokens = 128;   // generation budget
  std::optional<double> depth;     // needle depth in percent of the haystack (single-needle tasks)
  std::vector<std::int64_t> needle_positions;  // token index of each needle's first token in the final prompt
  std::optional<std::uint64_t> seed;
  nlohmann::json metadata = nlohmann::json::object();
};

// Metrics a sample may name.
const std::vector<std::string>& known_metrics();

nlohmann::json to_json(const TaskSample& sample);
std::string to_jsonl_line(const TaskSample& sample);  // one line, no trailing newline

// Parses one line; `where` (e.g. "tasks.jsonl:12") prefixes every error message.
TaskSample parse_task_line(const std::string& line, const std::string& where);

// Reads a whole file; skips blank lines; fails on duplicate ids.
std::vector<TaskSample> read_task_file(const std::string& path);

}  // namespace ls::eval
