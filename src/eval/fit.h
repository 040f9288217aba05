// Fitting a generated prompt to a target length. A generator describes its prompt as a
// function of a number of haystack units (sentences, filler lines, list words, chapters); the
// fitter finds a unit count whose final prompt (chat template + answer prefix) plus the
// generation budget lies in [0.9·L, L] tokens. It searches by secant steps inside a bracket,
// so a 32k prompt is tokenized in full only a few times.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "eval/prompt.h"
#include "eval/task.h"

namespace ls::eval {

struct BuiltPrompt {
  TaskSample sample;                 // input, answer_prefix, answers, metric, metadata filled
  std::vector<std::string> needles;  // texts whose token positions are recorded (unique in the input)
};

using PromptBuilder = std::function<BuiltPrompt(std::int64_t units)>;

struct FitResult {
  BuiltPrompt built;
  std::int64_t units = 0;
  std::int64_t prompt_tokens = 0;  // tokens of the formatted prompt (without the generation budget)
};

// Finds units in [min_units, max_units] with 0.9·length <= prompt tokens + gen_tokens <= length.
// Fails with a clear message when the length is too short or too long for the task.
FitResult fit_length(const PromptBuilder& build, const PromptFormatter& formatter, const std::string& task,
                     std::int64_t length, std::int64_t gen_tokens, std::int64_t min_units,
                     std::int64_t max_units);

// Token index of the first token of each needle in the formatted prompt.
std::vector<std::int64_t> needle_token_positions(const std::string& formatted_prompt,
                                                 const std::vector<std::string>& needles,
                                                 const PromptFormatter& formatter);

}  // namespace ls::eval
