// Results JSONL: serialisation, tolerant reading of an interrupted tail, appending.
#include "eval/results.h"

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/error.h"

namespace ls::eval {

using nlohmann::json;

std::string method_label(const std::string& prefill, const std::string& decode, const std::string& dense_layers,
                         const std::string& policy) {
  std::string label = "prefill=" + (prefill.empty() ? std::string("dense") : prefill) +
                      " decode=" + (decode.empty() ? std::string("dense") : decode);
  if (!dense_layers.empty()) label += " dense_layers=" + dense_layers;
  if (!policy.empty()) label += " policy=" + policy;
  return label;
}

json to_json(const ResultRecord& r) {
  json j;
  j["id"] = r.id;
  j["task"] = r.task;
  j["length"] = r.length;
  j["method"] = r.method;
  j["prediction"] = r.prediction;
  j["answers"] = r.answers;
  j["metric"] = r.metric;
  j["score"] = r.score;
  j["prefill_ms"] = r.prefill_ms;
  j["attention_ms"] = r.attention_ms;
  j["estimate_ms"] = r.estimate_ms;
  j["density"] = r.density;
  j["decode_ms_per_token"] = r.decode_ms_per_token;
  if (r.decode_keys_attended > 0) j["decode_keys_attended"] = r.decode_keys_attended;
  if (r.decode_attention_ms_per_token > 0) j["decode_attention_ms_per_token"] = r.decode_attention_ms_per_token;
  j["prompt_tokens"] = r.prompt_tokens;
  j["generated_tokens"] = r.generated_tokens;
  j["depth"] = r.depth ? json(*r.depth) : json(nullptr);
  j["model"] = r.model;
  if (!r.estimate_precision.empty()) j["estimate_precision"] = r.estimate_precision;
  if (!r.attention_scores.empty()) j["attention_scores"] = r.attention_scores;
  return j;
}

namespace {
const json& field(const json& j, const char* name, const std::string& where) {
  auto it = j.find(name);
  LS_CHECK(it != j.end(), "{}: missing field '{}'", where, name);
  return *it;
}
template <typename T>
T get(const json& j, const char* name, const std::string& where) {
  const json& v = field(j, name, where);
  try {
    return v.get<T>();
  } catch (const json::exception&) {
    fail("{}: field '{}' has the wrong type ({})", where, name, v.type_name());
  }
}
double number(const json& j, const char* name, const std::string& where) {
  const json& v = field(j, name, where);
  LS_CHECK(v.is_number(), "{}: field '{}' must be a number, got {}", where, name, v.type_name());
  return v.get<double>();
}
}  // namespace

ResultRecord result_from_json(const json& j, const std::string& where) {
  LS_CHECK(j.is_object(), "{}: expected a JSON object", where);
  ResultRecord r;
  r.id = get<std::string>(j, "id", where);
  r.task = get<std::string>(j, "task", where);
  r.length = get<std::int64_t>(j, "length", where);
  r.method = get<std::string>(j, "method", where);
  r.prediction = get<std::string>(j, "prediction", where);
  r.score = number(j, "score", where);
  LS_CHECK(r.score >= 0 && r.score <= 1, "{}: score {} is outside [0, 1]", where, r.score);
  r.density = number(j, "density", where);
  r.attention_ms = number(j, "attention_ms", where);
  if (j.contains("answers")) r.answers = get<std::vector<std::string>>(j, "answers", where);
  if (j.contains("metric")) r.metric = get<std::string>(j, "metric", where);
  if (j.contains("prefill_ms")) r.prefill_ms = number(j, "prefill_ms", where);
  if (j.contains("estimate_ms")) r.estimate_ms = number(j, "estimate_ms", where);
  if (j.contains("decode_ms_per_token")) r.decode_ms_per_token = number(j, "decode_ms_per_token", where);
  if (j.contains("decode_keys_attended")) r.decode_keys_attended = number(j, "decode_keys_attended", where);
  if (j.contains("decode_attention_ms_per_token"))
    r.decode_attention_ms_per_token = number(j, "decode_attention_ms_per_token", where);
  if (j.contains("prompt_tokens")) r.prompt_tokens = get<std::int64_t>(j, "prompt_tokens", where);
  if (j.contains("generated_tokens")) r.generated_tokens = get<std::int64_t>(j, "generated_tokens", where);
  if (j.contains("depth") && !j["depth"].is_null()) r.depth = number(j, "depth", where);
  if (j.contains("model")) r.model = get<std::string>(j, "model", where);
  if (j.contains("estimate_precision")) r.estimate_precision = get<std::string>(j, "estimate_precision", where);
  if (j.contains("attention_scores")) r.attention_scores = get<std::string>(j, "attention_scores", where);
  return r;
}

std::vector<ResultRecord> read_results(const std::string& path) {
  std::vector<ResultRecord> records;
  std::ifstream in(path, std::ios::binary);
  if (!in) return records;
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::size_t start = 0;
  for (std::int64_t number = 1; start < content.size(); ++number) {
    std::size_t end = content.find('\n', start);
    const bool last_unterminated = end == std::string::npos;
    std::string line = content.substr(start, last_unterminated ? std::string::npos : end - start);
    start = last_unterminated ? content.size() : end + 1;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = fmt::format("{}:{}", path, number);
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded()) {
      if (last_unterminated) {
        std::fprintf(stderr, "longsparse: warning: %s: ignoring an incomplete last line (interrupted run)\n",
                     where.c_str());
        break;
      }
      fail("{}: not valid JSON", where);
    }
    records.push_back(result_from_json(j, where));
  }
  return records;
}

void repair_results_tail(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return;
  std::ifstream in(path, std::ios::binary);
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (content.empty() || content.back() == '\n') return;
  const std::size_t keep = content.rfind('\n') == std::string::npos ? 0 : content.rfind('\n') + 1;
  std::filesystem::resize_file(path, keep, ec);
  LS_CHECK(!ec, "cannot repair the interrupted last line of '{}': {}", path, ec.message());
}

void append_result(const std::string& path, const ResultRecord& record) {
  std::FILE* f = std::fopen(path.c_str(), "ab");
  LS_CHECK(f, "cannot write results file '{}'", path);
  const std::string line = to_json(record).dump() + "\n";
  bool ok = std::fwrite(line.data(), 1, line.size(), f) == line.size();
  ok &= std::fflush(f) == 0;
  std::fclose(f);
  LS_CHECK(ok, "writing results file '{}' failed (disk full?)", path);
}

std::set<ResultKey> result_keys(const std::vector<ResultRecord>& records) {
  std::set<ResultKey> keys;
  for (const auto& r : records) keys.insert({r.id, r.method});
  return keys;
}

}  // namespace ls::eval
