// The evaluation loop: format each sample's prompt, generate greedily with its budget, score,
// append one result line, skip samples already in the results file for the same method.
// It drives the model only through the small Generator interface below, so it is tested
// with a fake generator and the CLI plugs in the real engine.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "eval/prompt.h"
#include "eval/results.h"
#include "eval/task.h"

namespace ls::eval {

struct GenerationResult {
  std::string text;  // the continuation after the prompt (and its answer prefix)
  std::int64_t prompt_tokens = 0, generated_tokens = 0;
  double prefill_ms = 0, attention_ms = 0, estimate_ms = 0;  // prefill total / attention kernels / method estimates
  double density = 1;
  double decode_ms_per_token = 0;
  double decode_keys_attended = 0;            // keys per KV head, layer and step (0: no decode step)
  double decode_attention_ms_per_token = 0;  // selection + attention, all layers
  // of a sparse prefill's estimates: "amx-bf16", "avx512-bf16" or "fp32"; empty if dense
  std::string estimate_precision;
  std::string attention_scores;  // "bf16" when attention's Q·K products ran in bf16; empty: fp32
};

class Generator {
 public:
  virtual ~Generator() = default;
  // Greedy generation of at most max_tokens after `prompt` (already chat-formatted, with the
  // answer prefix); stops at the model's end-of-turn token.
  virtual GenerationResult generate(const std::string& prompt, std::int64_t max_tokens) = 0;
  virtual std::string method() const = 0;  // method label (results.h, method_label)
  virtual std::string model() const = 0;
  // A generator may run several methods that share one prefill (decode selectors after the
  // same prefill): their labels, and for one prompt a result per label where `wanted` is set.
  virtual std::vector<std::string> methods() const { return {method()}; }
  // `query_at`: where the sample's question (the last line of its input) starts in `prompt`,
  // in bytes (npos: none), for methods that treat the question apart (Star Attention).
  virtual std::vector<GenerationResult> generate_all(const std::string& prompt, std::int64_t max_tokens,
                                                     const std::vector<bool>& /*wanted*/,
                                                     std::size_t /*query_at*/ = std::string::npos) {
    return {generate(prompt, max_tokens)};
  }
};

struct EvalOptions {
  std::string out_path;
  bool write = true;      // false: results are read from out_path but not appended (the other ranks of a context-parallel run)
  bool progress = false;  // draw a progress bar with ETA on stderr
  std::string progress_label;
};

struct EvalStats {
  std::int64_t evaluated = 0, skipped = 0;
  std::vector<ResultRecord> records;  // the generator's results for the given samples (old and new), method by method
};

EvalStats run_eval(const std::vector<TaskSample>& samples, Generator& generator, const PromptFormatter& formatter,
                   const EvalOptions& options);

// Mean score per (task, length, method), as printed at the end of eval and sweep.
std::string summary_table(const std::vector<ResultRecord>& records);

// A one-line progress bar with ETA on stderr (only when it is a terminal).
class ProgressBar {
 public:
  ProgressBar(std::int64_t total, bool enabled, std::string label);
  void update(std::int64_t done, const std::string& detail);
  void finish();

 private:
  std::int64_t total_;
  bool enabled_;
  std::string label_;
  double start_ms_;
};

}  // namespace ls::eval
