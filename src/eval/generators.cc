// Task catalogue and the common part of every generator: ids, seeds, needle positions.
#include "eval/generators.h"

#include <fmt/format.h>

#include "core/error.h"
#include "eval/fit.h"
#include "eval/rng.h"

namespace ls::eval {

TextResources default_resources() { return {&word_lists(), &essay_sentences()}; }

const std::vector<TaskInfo>& task_catalog() {
  static const std::vector<TaskInfo> catalog{
      {"niah_single_1", "ruler", true, "one needle (word key, 7-digit number) in repeated noise sentences"},
      {"niah_single_2", "ruler", true, "one needle (word key, number) in essay prose"},
      {"niah_single_3", "ruler", true, "one needle (word key, UUID value) in essay prose"},
      {"niah_multikey_1", "ruler", false, "4 needles with different keys in essay prose; one is asked"},
      {"niah_multikey_2", "ruler", false, "one needle among needle-shaped distractors (word keys)"},
      {"niah_multikey_3", "ruler", false, "one needle among needle-shaped distractors (UUID keys and values)"},
      {"niah_multivalue", "ruler", false, "4 values for the same key in essay prose; all are asked"},
      {"niah_multiquery", "ruler", false, "4 needles in essay prose; all 4 keys are asked"},
      {"vt", "ruler", false, "variable tracking: 1 chain of 4 hops in noise, with one worked example"},
      {"cwe", "ruler", false, "common words extraction: the 10 most frequent words of a numbered list"},
      {"fwe", "ruler", false, "frequent words extraction: the 3 most frequent coded words (Zipf, alpha 2)"},
      {"passkey", "passkey", true, "Landmark-attention passkey retrieval in repeated filler"},
      {"story_retrieval", "story", false, "16 questions on chapters' locations, characters, items (exact)"},
      {"story_multihop", "story", false, "item bought before a given item (exact)"},
      {"story_filtering", "story", false, "the 3 chapters without a purchase (set IoU)"},
  };
  return catalog;
}

const TaskInfo& task_info(const std::string& name) {
  std::string valid;
  for (const auto& info : task_catalog()) {
    if (info.name == name) return info;
    valid += (valid.empty() ? "" : ", ") + info.name;
  }
  fail("unknown task '{}'; valid: {}", name, valid);
}

TaskSample generate_sample(const GenerationRequest& request, const PromptFormatter& formatter,
                           const TextResources& resources) {
  const TaskInfo& info = task_info(request.task);
  LS_CHECK(request.length > 0, "length must be positive, got {}", request.length);
  LS_CHECK(!request.depth || info.supports_depth,
           "task '{}' places several needles; --depth applies to niah_single_1/2/3 and passkey", request.task);
  LS_CHECK(!request.depth || (*request.depth >= 0 && *request.depth <= 100), "depth must be in [0, 100], got {}",
           *request.depth);
  LS_CHECK(!request.gen_tokens || *request.gen_tokens > 0, "the generation budget must be positive");
  FitResult fit = info.family == "ruler"     ? generate_ruler(request, formatter, resources)
                  : info.family == "passkey" ? generate_passkey(request, formatter)
                                             : generate_story(request, formatter);
  TaskSample sample = std::move(fit.built.sample);
  sample.task = request.task;
  sample.length = request.length;
  sample.seed = request.seed;
  sample.id = fmt::format("{}-{}-s{}-{}", request.task, request.length, request.seed, request.index);
  if (request.depth) sample.id += fmt::format("-d{}", *request.depth);
  std::string formatted = formatter.format(sample.input, sample.answer_prefix);
  sample.needle_positions = needle_token_positions(formatted, fit.built.needles, formatter);
  sample.metadata["prompt_tokens"] = fit.prompt_tokens;
  sample.metadata["total_tokens"] = fit.prompt_tokens + sample.gen_tokens;
  sample.metadata["haystack_units"] = fit.units;
  sample.metadata["counter"] = formatter.name();
  sample.metadata["index"] = request.index;
  return sample;
}

std::vector<TaskSample> generate_samples(GenerationRequest request, std::int64_t count,
                                         const PromptFormatter& formatter, const TextResources& resources) {
  std::vector<TaskSample> samples;
  for (std::int64_t i = 0; i < count; ++i) {
    request.index = i;
    samples.push_back(generate_sample(request, formatter, resources));
  }
  return samples;
}

}  // namespace ls::eval
