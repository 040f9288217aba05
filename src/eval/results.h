// Results files: one JSON line per (sample, method). Written by eval and sweep, read back for
// resumption and by the report.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace ls::eval {

struct ResultRecord {
  std::string id, task, method;  // method: the canonical spec label (see method_label)
  std::int64_t length = 0;
  std::string prediction;
  std::vector<std::string> answers;
  std::string metric;
  double score = 0;                // in [0, 1]
  // attention_ms: prefill attention without plan building; estimate_ms: plan building.
  double prefill_ms = 0, attention_ms = 0, estimate_ms = 0;
  double density = 1;              // computed causal pairs / all causal pairs in prefill attention
  double decode_ms_per_token = 0;
  double decode_keys_attended = 0;            // keys one KV head attended per layer and decode step
  double decode_attention_ms_per_token = 0;  // decode selection + attention per token, all layers
  std::int64_t prompt_tokens = 0, generated_tokens = 0;
  std::optional<double> depth;
  std::string model;
  // "amx-bf16", "avx512-bf16" or "fp32" for sparse prefills; empty for dense or older files
  std::string estimate_precision;
  // "bf16" when attention's score products ran in bf16 (--attn-precision); empty: fp32
  std::string attention_scores;
};

// "prefill=<spec> decode=<spec>[ dense_layers=<list>][ policy=<file>]": the key that, with
// the sample id, identifies a result for resumption.
std::string method_label(const std::string& prefill, const std::string& decode, const std::string& dense_layers,
                         const std::string& policy);

nlohmann::json to_json(const ResultRecord& record);
ResultRecord result_from_json(const nlohmann::json& j, const std::string& where);

// Reads a results file. A missing file is empty. A final line cut short by an interrupted run
// is ignored (with a warning on stderr); any other malformed line is an error.
std::vector<ResultRecord> read_results(const std::string& path);

// Drops a last line left without its newline by an interrupted run, so appending continues
// on a clean line.
void repair_results_tail(const std::string& path);

// Appends one line and flushes, so an interrupted run loses at most the sample in progress.
void append_result(const std::string& path, const ResultRecord& record);

using ResultKey = std::pair<std::string, std::string>;  // (id, method)
std::set<ResultKey> result_keys(const std::vector<ResultRecord>& records);

}  // namespace ls::eval
