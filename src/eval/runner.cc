// Evaluation loop with resumption, progress bar and summary.
#include "eval/runner.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <tuple>

#include <fmt/format.h>

#include "core/error.h"
#include "eval/scoring.h"

namespace ls::eval {

namespace {
double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
std::string duration_text(double seconds) {
  auto s = static_cast<long>(seconds + 0.5);
  if (s >= 3600) return fmt::format("{}h{:02}m", s / 3600, (s / 60) % 60);
  if (s >= 60) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}s", s);
}
}  // namespace

ProgressBar::ProgressBar(std::int64_t total, bool enabled, std::string label)
    : total_(total), enabled_(enabled), label_(std::move(label)), start_ms_(now_ms()) {}

void ProgressBar::update(std::int64_t done, const std::string& detail) {
  if (!enabled_ || total_ <= 0) return;
  constexpr int kWidth = 30;
  const int filled = static_cast<int>(kWidth * done / total_);
  const double elapsed = (now_ms() - start_ms_) / 1000.0;
  std::string eta = done > 0 ? duration_text(elapsed / double(done) * double(total_ - done)) : "?";
  std::fprintf(stderr, "\r\033[K%s[%s%s] %lld/%lld  elapsed %s  ETA %s  %s", label_.c_str(),
               std::string(filled, '#').c_str(), std::string(kWidth - filled, '.').c_str(),
               static_cast<long long>(done), static_cast<long long>(total_), duration_text(elapsed).c_str(),
               eta.c_str(), detail.c_str());
  std::fflush(stderr);
}

void ProgressBar::finish() {
  if (enabled_) std::fprintf(stderr, "\n");
}

EvalStats run_eval(const std::vector<TaskSample>& samples, Generator& generator, const PromptFormatter& formatter,
                   const EvalOptions& options) {
  LS_CHECK(!options.out_path.empty(), "eval: an output file (--out) is required");
  const std::vector<std::string> methods = generator.methods();
  std::vector<std::map<std::string, ResultRecord>> done(methods.size());  // per method: id -> earlier result
  for (auto& r : read_results(options.out_path))
    for (std::size_t m = 0; m < methods.size(); ++m)
      if (r.method == methods[m]) done[m][r.id] = r;
  if (options.write) repair_results_tail(options.out_path);
  EvalStats stats;
  auto missing = [&](const TaskSample& s) {
    std::vector<bool> wanted(methods.size());
    for (std::size_t m = 0; m < methods.size(); ++m) wanted[m] = !done[m].count(s.id);
    return wanted;
  };
  std::int64_t todo = 0;
  for (const auto& s : samples) {
    const auto wanted = missing(s);
    todo += std::find(wanted.begin(), wanted.end(), true) != wanted.end();
  }
  ProgressBar bar(todo, options.progress, options.progress_label);
  std::vector<std::vector<ResultRecord>> records(methods.size());
  std::int64_t prompts = 0;
  for (const auto& sample : samples) {
    const std::vector<bool> wanted = missing(sample);
    if (std::find(wanted.begin(), wanted.end(), true) == wanted.end()) {
      for (std::size_t m = 0; m < methods.size(); ++m) records[m].push_back(done[m].at(sample.id));
      stats.skipped += static_cast<std::int64_t>(methods.size());
      continue;
    }
    bar.update(prompts, sample.id);
    const std::string prompt = formatter.format(sample.input, sample.answer_prefix);
    // The question: the input's last line, found verbatim in the prompt.
    std::size_t query_at = std::string::npos;
    if (const std::size_t newline = sample.input.rfind('\n'); newline != std::string::npos)
      if (const std::size_t at = prompt.rfind(sample.input); at != std::string::npos) query_at = at + newline + 1;
    const std::vector<GenerationResult> outs = generator.generate_all(prompt, sample.gen_tokens, wanted, query_at);
    LS_CHECK(outs.size() == methods.size(), "internal: {} results for {} methods", outs.size(), methods.size());
    for (std::size_t m = 0; m < methods.size(); ++m) {
      if (!wanted[m]) {
        records[m].push_back(done[m].at(sample.id));
        ++stats.skipped;
        continue;
      }
      const GenerationResult& out = outs[m];
      ResultRecord r;
      r.id = sample.id;
      r.task = sample.task;
      r.length = sample.length;
      r.method = methods[m];
      r.model = generator.model();
      r.prediction = out.text;
      r.answers = sample.answers;
      r.metric = sample.metric;
      r.score = score_prediction(sample.metric, out.text, sample.answers);
      r.prefill_ms = out.prefill_ms;
      r.attention_ms = out.attention_ms;
      r.estimate_ms = out.estimate_ms;
      r.estimate_precision = out.estimate_precision;
      r.attention_scores = out.attention_scores;
      r.density = out.density;
      r.decode_ms_per_token = out.decode_ms_per_token;
      r.decode_keys_attended = out.decode_keys_attended;
      r.decode_attention_ms_per_token = out.decode_attention_ms_per_token;
      r.prompt_tokens = out.prompt_tokens;
      r.generated_tokens = out.generated_tokens;
      r.depth = sample.depth;
      if (options.write) append_result(options.out_path, r);
      done[m][r.id] = r;
      records[m].push_back(std::move(r));
      ++stats.evaluated;
    }
    ++prompts;
  }
  for (auto& method_records : records)
    for (auto& r : method_records) stats.records.push_back(std::move(r));
  bar.update(prompts, "done");
  bar.finish();
  return stats;
}

std::string summary_table(const std::vector<ResultRecord>& records) {
  struct Sum {
    double score = 0, density = 0, attention = 0;
    std::int64_t n = 0;
  };
  std::map<std::tuple<std::string, std::int64_t, std::string>, Sum> groups;
  for (const auto& r : records) {
    Sum& s = groups[{r.task, r.length, r.method}];
    s.score += r.score;
    s.density += r.density;
    s.attention += r.attention_ms;
    ++s.n;
  }
  std::string out = fmt::format("{:<18} {:>7} {:>4} {:>7} {:>8} {:>10}  {}\n", "task", "length", "n", "score",
                                "density", "attn ms", "method");
  for (const auto& [key, s] : groups) {
    const auto& [task, length, method] = key;
    out += fmt::format("{:<18} {:>7} {:>4} {:>7.3f} {:>8.3f} {:>10.1f}  {}\n", task, length, s.n, s.score / s.n,
                       s.density / s.n, s.attention / s.n, method);
  }
  return out;
}

}  // namespace ls::eval
