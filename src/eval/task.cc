// JSONL task files: serialisation and validation with line numbers.
#include "eval/task.h"

#include <fstream>
#include <set>

#include "core/error.h"

namespace ls::eval {

using nlohmann::json;

const std::vector<std::string>& known_metrics() {
  static const std::vector<std::string> metrics{"string_match_all", "string_match_part", "exact", "iou"};
  return metrics;
}

json to_json(const TaskSample& s) {
  json j;
  j["id"] = s.id;
  j["task"] = s.task;
  j["length"] = s.length;
  j["input"] = s.input;
  j["answer_prefix"] = s.answer_prefix;
  j["answers"] = s.answers;
  j["metric"] = s.metric;
  j["gen_tokens"] = s.gen_tokens;
  if (s.depth) j["depth"] = *s.depth;
  j["needle_positions"] = s.needle_positions;
  if (s.seed) j["seed"] = *s.seed;
  j["metadata"] = s.metadata;
  return j;
}

std::string to_jsonl_line(const TaskSample& sample) { return to_json(sample).dump(); }

namespace {

const json& require(const json& j, const char* field, const std::string& where) {
  auto it = j.find(field);
  LS_CHECK(it != j.end(), "{}: missing required field '{}'", where, field);
  return *it;
}

std::string get_string(const json& value, const char* field, const std::string& where) {
  LS_CHECK(value.is_string(), "{}: field '{}' must be a string, got {}", where, field, value.type_name());
  return value.get<std::string>();
}

std::int64_t get_int(const json& value, const char* field, const std::string& where) {
  LS_CHECK(value.is_number_integer(), "{}: field '{}' must be an integer, got {}", where, field,
           value.type_name());
  return value.get<std::int64_t>();
}

}  // namespace

TaskSample parse_task_line(const std::string& line, const std::string& where) {
  json j;
  try {
    j = json::parse(line);
  } catch (const json::parse_error& e) {
    fail("{}: not valid JSON ({})", where, e.what());
  }
  LS_CHECK(j.is_object(), "{}: expected a JSON object, got {}", where, j.type_name());
  TaskSample s;
  s.id = get_string(require(j, "id", where), "id", where);
  LS_CHECK(!s.id.empty(), "{}: field 'id' must not be empty", where);
  s.task = get_string(require(j, "task", where), "task", where);
  LS_CHECK(!s.task.empty(), "{}: field 'task' must not be empty", where);
  s.length = get_int(require(j, "length", where), "length", where);
  LS_CHECK(s.length > 0, "{}: field 'length' must be positive, got {}", where, s.length);
  s.input = get_string(require(j, "input", where), "input", where);
  const json& answers = require(j, "answers", where);
  LS_CHECK(answers.is_array(), "{}: field 'answers' must be an array of strings, got {}", where,
           answers.type_name());
  LS_CHECK(!answers.empty(), "{}: field 'answers' must not be empty", where);
  for (const json& a : answers) {
    LS_CHECK(a.is_string(), "{}: field 'answers' must hold strings, found {}", where, a.type_name());
    LS_CHECK(!a.get<std::string>().empty(), "{}: field 'answers' holds an empty string", where);
    s.answers.push_back(a.get<std::string>());
  }
  if (auto it = j.find("answer_prefix"); it != j.end() && !it->is_null())
    s.answer_prefix = get_string(*it, "answer_prefix", where);
  if (auto it = j.find("metric"); it != j.end() && !it->is_null()) {
    s.metric = get_string(*it, "metric", where);
    bool known = false;
    for (const auto& m : known_metrics()) known |= m == s.metric;
    LS_CHECK(known, "{}: unknown metric '{}'; valid: string_match_all, string_match_part, exact, iou", where,
             s.metric);
  }
  if (auto it = j.find("gen_tokens"); it != j.end() && !it->is_null()) {
    s.gen_tokens = get_int(*it, "gen_tokens", where);
    LS_CHECK(s.gen_tokens > 0, "{}: field 'gen_tokens' must be positive, got {}", where, s.gen_tokens);
  }
  if (auto it = j.find("depth"); it != j.end() && !it->is_null()) {
    LS_CHECK(it->is_number(), "{}: field 'depth' must be a number, got {}", where, it->type_name());
    s.depth = it->get<double>();
    LS_CHECK(*s.depth >= 0 && *s.depth <= 100, "{}: field 'depth' must be in [0, 100], got {}", where, *s.depth);
  }
  if (auto it = j.find("needle_positions"); it != j.end() && !it->is_null()) {
    LS_CHECK(it->is_array(), "{}: field 'needle_positions' must be an array of integers", where);
    for (const json& p : *it) s.needle_positions.push_back(get_int(p, "needle_positions", where));
  }
  if (auto it = j.find("seed"); it != j.end() && !it->is_null()) {
    LS_CHECK(it->is_number_unsigned() || (it->is_number_integer() && it->get<std::int64_t>() >= 0),
             "{}: field 'seed' must be a non-negative integer", where);
    s.seed = it->get<std::uint64_t>();
  }
  if (auto it = j.find("metadata"); it != j.end() && !it->is_null()) {
    LS_CHECK(it->is_object(), "{}: field 'metadata' must be an object, got {}", where, it->type_name());
    s.metadata = *it;
  }
  return s;
}

std::vector<TaskSample> read_task_file(const std::string& path) {
  std::ifstream in(path);
  LS_CHECK(in, "cannot open task file '{}'", path);
  std::vector<TaskSample> samples;
  std::set<std::string> ids;
  std::string line;
  for (std::int64_t number = 1; std::getline(in, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    std::string where = fmt::format("{}:{}", path, number);
    samples.push_back(parse_task_line(line, where));
    LS_CHECK(ids.insert(samples.back().id).second, "{}: duplicate id '{}'", where, samples.back().id);
  }
  LS_CHECK(!samples.empty(), "task file '{}' holds no samples", path);
  return samples;
}

}  // namespace ls::eval
