// Synthetic long-context task generators: RULER (NVIDIA/RULER, scripts/data/synthetic), the
// Landmark-attention passkey test, and The Sparse Frontier's story tasks. A sample is fully
// determined by (task, length, seed, sample index): the same inputs give byte-identical JSON.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "eval/prompt.h"
#include "eval/task.h"
#include "eval/text_sources.h"

namespace ls::eval {

struct GenerationRequest {
  std::string task;
  std::int64_t length = 4096;       // target tokens: final prompt + generation budget
  std::uint64_t seed = 42;
  std::int64_t index = 0;           // sample index
  std::optional<double> depth;      // needle depth in percent (single-needle tasks only)
  std::optional<std::int64_t> gen_tokens;  // overrides the task's generation budget
};

// The text a generator draws from; tests may pass small lists of their own.
struct TextResources {
  const WordLists* words = nullptr;
  const std::vector<std::string>* essay = nullptr;
};
TextResources default_resources();  // the Debian-package sources (loaded on first use)

struct TaskInfo {
  std::string name;
  std::string family;  // ruler, passkey, story
  bool supports_depth = false;
  std::string summary;
};
const std::vector<TaskInfo>& task_catalog();
const TaskInfo& task_info(const std::string& name);  // fails listing valid names

TaskSample generate_sample(const GenerationRequest& request, const PromptFormatter& formatter,
                           const TextResources& resources);

// Samples 0..count-1 of one task and length.
std::vector<TaskSample> generate_samples(GenerationRequest request, std::int64_t count,
                                         const PromptFormatter& formatter, const TextResources& resources);

// Per-family entry points (ruler.cc, passkey.cc, story.cc); they fill input, answer_prefix,
// answers, metric, gen_tokens, depth, metadata and needle texts.
struct FitResult;
FitResult generate_ruler(const GenerationRequest& request, const PromptFormatter& formatter,
                         const TextResources& resources);
FitResult generate_passkey(const GenerationRequest& request, const PromptFormatter& formatter);
FitResult generate_story(const GenerationRequest& request, const PromptFormatter& formatter);

}  // namespace ls::eval
