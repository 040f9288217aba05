// Sweeps: methods × parameter grids × lengths × tasks (× needle depths) into one results file,
// resumable like eval (a (sample id, method label) already in the file is skipped).
//
// Config (JSON):
//   {"out": "sweep.jsonl", "model": "smollm2",
//    "tasks": ["niah_single_2", "passkey"], "lengths": [2048, 4096], "samples": 4, "seed": 42,
//    "depths": [0, 50, 100],               optional: a depth grid for niah_single_* and passkey
//    "gen_tokens": 32,                     optional: overrides every task's generation budget
//    "task_files": ["mine.jsonl"],         optional: extra samples from files
//    "methods": [{"prefill": "dense"},
//                {"prefill": "flexprefill", "params": {"gamma": [0.9, 0.95]},
//                 "decode": "dense", "dense_layers": "0,1", "policy": ""}]}
// "params" expands to every combination: flexprefill:gamma=0.9, flexprefill:gamma=0.95.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "eval/generators.h"
#include "eval/runner.h"

namespace ls::eval {

struct SweepMethod {
  std::string prefill = "dense", decode = "dense", dense_layers, policy;
  std::string label() const { return method_label(prefill, decode, dense_layers, policy); }
};

struct SweepConfig {
  std::string out, model;
  std::vector<std::string> tasks;
  std::vector<std::int64_t> lengths;
  std::int64_t samples = 1;
  std::uint64_t seed = 42;
  std::vector<double> depths;
  std::optional<std::int64_t> gen_tokens;
  std::vector<std::string> task_files;
  std::vector<SweepMethod> methods;  // parameter grids already expanded
};

SweepConfig parse_sweep_config(const nlohmann::json& config, const std::string& where);
SweepConfig read_sweep_config(const std::string& path);

// Every sample of the sweep: generated tasks (lengths × tasks × depths × samples) then files.
std::vector<TaskSample> sweep_samples(const SweepConfig& config, const PromptFormatter& formatter,
                                      const TextResources& resources);

using GeneratorFactory = std::function<std::unique_ptr<Generator>(const SweepMethod&)>;

struct SweepStats {
  std::int64_t evaluated = 0, skipped = 0;
  std::vector<ResultRecord> records;
};

// Runs every method over the samples. `prepare` (optional) sees each generator before use.
SweepStats run_sweep(const SweepConfig& config, const std::vector<TaskSample>& samples, const PromptFormatter& formatter,
                     const GeneratorFactory& make_generator, bool progress,
                     const std::function<void(Generator&)>& prepare = {});

}  // namespace ls::eval
