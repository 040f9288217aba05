// The evaluation report: markdown tables and SVG plots from one or more results files.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "eval/results.h"

namespace ls::eval {

// One row of the main table: a (task, length, method) group.
struct GroupStats {
  std::string task, method;
  std::int64_t length = 0;
  std::int64_t n = 0;
  double score = 0, density = 0, attention_ms = 0, estimate_ms = 0, prefill_ms = 0, decode_ms_per_token = 0;
  double decode_keys = 0, decode_attention_ms = 0;  // per KV head and layer / per token (means)
  // Paired with the baseline on the same sample ids (absent for the baseline itself).
  std::int64_t pairs = 0;
  // baseline (attention + estimate) ms / method (attention + estimate) ms, summed over pairs:
  // the estimate is part of what a sparse method costs.
  std::optional<double> speedup;
  std::optional<double> score_diff;  // mean(method score - baseline score) over pairs
  std::int64_t wins = 0, ties = 0, losses = 0;
};

// The baseline is the dense method: "prefill=dense decode=dense" without dense layers or policy.
std::string default_baseline();

std::vector<GroupStats> aggregate(const std::vector<ResultRecord>& records, const std::string& baseline);

// The budget of the decode spec in a method label ("decode=quest:budget=1024" -> 1024), if any.
std::optional<std::int64_t> decode_budget(const std::string& label);

// Short name of a method label for legends: prefill spec, plus decode etc. when not dense.
std::string short_method(const std::string& label);

struct ReportOutput {
  std::string markdown;             // also written to out_dir/report.md
  std::vector<std::string> files;   // every file written (report.md first)
};

ReportOutput write_report(const std::vector<ResultRecord>& records, const std::string& out_dir,
                          const std::string& baseline, const std::string& source);

}  // namespace ls::eval
