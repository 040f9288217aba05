// Sweep configuration (with parameter-grid expansion) and execution.
#include "eval/sweep.h"

#include <fstream>
#include <map>
#include <set>

#include <fmt/format.h>

#include "core/error.h"

namespace ls::eval {

using nlohmann::json;

namespace {

std::string value_text(const json& v, const std::string& where) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_integer()) return std::to_string(v.get<std::int64_t>());
  if (v.is_number_float()) return v.dump();
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  fail("{}: parameter values must be numbers, strings or booleans, got {}", where, v.type_name());
}

std::string string_field(const json& j, const char* name, const std::string& def, const std::string& where) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) return def;
  LS_CHECK(it->is_string(), "{}: '{}' must be a string, got {}", where, name, it->type_name());
  return it->get<std::string>();
}

// "name" + {"a": [1, 2], "b": 3} -> name:a=1,b=3 and name:a=2,b=3 (keys in sorted order).
std::vector<std::string> expand_specs(const std::string& base, const json& params, const std::string& where) {
  std::vector<std::string> specs{""};
  LS_CHECK(params.is_object(), "{}: 'params' must be an object of parameter -> value or list of values", where);
  for (const auto& [key, value] : params.items()) {
    std::vector<std::string> values;
    if (value.is_array()) {
      LS_CHECK(!value.empty(), "{}: parameter '{}' has an empty list of values", where, key);
      for (const auto& v : value) values.push_back(value_text(v, where));
    } else {
      values.push_back(value_text(value, where));
    }
    std::vector<std::string> next;
    for (const auto& s : specs)
      for (const auto& v : values) next.push_back(s + (s.empty() ? "" : ",") + key + "=" + v);
    specs = std::move(next);
  }
  for (auto& s : specs) s = s.empty() ? base : base + (base.find(':') == std::string::npos ? ":" : ",") + s;
  return specs;
}

}  // namespace

SweepConfig parse_sweep_config(const json& j, const std::string& where) {
  LS_CHECK(j.is_object(), "{}: the sweep config must be a JSON object", where);
  static const std::set<std::string> known{"out", "model", "tasks", "lengths", "samples", "seed", "depths",
                                           "gen_tokens", "task_files", "methods"};
  for (const auto& [key, value] : j.items())
    LS_CHECK(known.count(key), "{}: unknown key '{}'; valid: out, model, tasks, lengths, samples, seed, depths, "
             "gen_tokens, task_files, methods", where, key);
  SweepConfig c;
  c.out = string_field(j, "out", "", where);
  c.model = string_field(j, "model", "", where);
  try {
    if (j.contains("tasks")) c.tasks = j["tasks"].get<std::vector<std::string>>();
    if (j.contains("lengths")) c.lengths = j["lengths"].get<std::vector<std::int64_t>>();
    if (j.contains("samples")) c.samples = j["samples"].get<std::int64_t>();
    if (j.contains("seed")) c.seed = j["seed"].get<std::uint64_t>();
    if (j.contains("depths")) c.depths = j["depths"].get<std::vector<double>>();
    if (j.contains("gen_tokens")) c.gen_tokens = j["gen_tokens"].get<std::int64_t>();
    if (j.contains("task_files")) c.task_files = j["task_files"].get<std::vector<std::string>>();
  } catch (const json::exception& e) {
    fail("{}: wrong type in the sweep config ({}); see docs/eval.md", where, e.what());
  }
  for (const auto& t : c.tasks) task_info(t);
  LS_CHECK(c.tasks.empty() || !c.lengths.empty(), "{}: 'tasks' needs 'lengths'", where);
  for (auto l : c.lengths) LS_CHECK(l > 0, "{}: lengths must be positive, got {}", where, l);
  for (auto d : c.depths) LS_CHECK(d >= 0 && d <= 100, "{}: depths must be in [0, 100], got {}", where, d);
  LS_CHECK(c.samples > 0, "{}: 'samples' must be positive", where);
  LS_CHECK(!c.tasks.empty() || !c.task_files.empty(), "{}: give 'tasks' (with 'lengths') or 'task_files'", where);
  auto methods = j.find("methods");
  LS_CHECK(methods != j.end() && methods->is_array() && !methods->empty(),
           "{}: 'methods' must be a non-empty list, e.g. [{{\"prefill\": \"dense\"}}]", where);
  for (std::size_t i = 0; i < methods->size(); ++i) {
    const json& m = (*methods)[i];
    const std::string at = fmt::format("{}: methods[{}]", where, i);
    LS_CHECK(m.is_object(), "{}: each method must be an object", at);
    for (const auto& [key, value] : m.items())
      LS_CHECK(key == "prefill" || key == "decode" || key == "params" || key == "dense_layers" || key == "policy",
               "{}: unknown key '{}'; valid: prefill, params, decode, dense_layers, policy", at, key);
    SweepMethod base;
    base.prefill = string_field(m, "prefill", "dense", at);
    base.decode = string_field(m, "decode", "dense", at);
    base.dense_layers = string_field(m, "dense_layers", "", at);
    base.policy = string_field(m, "policy", "", at);
    for (const auto& spec : m.contains("params") ? expand_specs(base.prefill, m["params"], at)
                                                 : std::vector<std::string>{base.prefill}) {
      SweepMethod method = base;
      method.prefill = spec;
      c.methods.push_back(method);
    }
  }
  return c;
}

SweepConfig read_sweep_config(const std::string& path) {
  std::ifstream in(path);
  LS_CHECK(in, "cannot open sweep config '{}'", path);
  json j = json::parse(in, nullptr, false);
  LS_CHECK(!j.is_discarded(), "{}: not valid JSON", path);
  return parse_sweep_config(j, path);
}

std::vector<TaskSample> sweep_samples(const SweepConfig& c, const PromptFormatter& formatter,
                                      const TextResources& resources) {
  std::vector<TaskSample> samples;
  for (auto length : c.lengths)
    for (const auto& task : c.tasks) {
      GenerationRequest request;
      request.task = task;
      request.length = length;
      request.seed = c.seed;
      request.gen_tokens = c.gen_tokens;
      std::vector<std::optional<double>> depths{std::nullopt};
      if (!c.depths.empty() && task_info(task).supports_depth) depths.assign(c.depths.begin(), c.depths.end());
      for (const auto& depth : depths) {
        request.depth = depth;
        auto part = generate_samples(request, c.samples, formatter, resources);
        samples.insert(samples.end(), part.begin(), part.end());
      }
    }
  std::set<std::string> ids;
  for (const auto& s : samples) ids.insert(s.id);
  for (const auto& file : c.task_files)
    for (auto& s : read_task_file(file)) {
      LS_CHECK(ids.insert(s.id).second, "{}: sample id '{}' occurs twice in the sweep", file, s.id);
      samples.push_back(std::move(s));
    }
  return samples;
}

SweepStats run_sweep(const SweepConfig& c, const std::vector<TaskSample>& samples, const PromptFormatter& formatter,
                     const GeneratorFactory& make_generator, bool progress,
                     const std::function<void(Generator&)>& prepare) {
  SweepStats stats;
  for (std::size_t i = 0; i < c.methods.size(); ++i) {
    auto generator = make_generator(c.methods[i]);
    if (prepare) prepare(*generator);
    EvalOptions options;
    options.out_path = c.out;
    options.progress = progress;
    options.progress_label = fmt::format("[{}/{} {}] ", i + 1, c.methods.size(), c.methods[i].prefill);
    auto part = run_eval(samples, *generator, formatter, options);
    stats.evaluated += part.evaluated;
    stats.skipped += part.skipped;
    stats.records.insert(stats.records.end(), part.records.begin(), part.records.end());
  }
  return stats;
}

}  // namespace ls::eval
