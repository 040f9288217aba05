// Length fitting by bracketed secant search on the number of haystack units.
#include "eval/fit.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace ls::eval {

std::int64_t approx_token_count(const std::string& text) {
  std::int64_t tokens = 0;
  std::size_t i = 0, n = text.size();
  auto is_alpha = [](unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80; };
  auto is_digit = [](unsigned char c) { return c >= '0' && c <= '9'; };
  while (i < n) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    std::size_t j = i + 1;
    if (is_alpha(c)) {
      while (j < n && is_alpha(static_cast<unsigned char>(text[j]))) ++j;
      tokens += static_cast<std::int64_t>((j - i + 5) / 6);
    } else if (is_digit(c)) {
      while (j < n && is_digit(static_cast<unsigned char>(text[j]))) ++j;
      tokens += static_cast<std::int64_t>((j - i + 2) / 3);
    } else if (c != ' ') {
      tokens += 1;
    }
    i = j;
  }
  return tokens;
}

FitResult fit_length(const PromptBuilder& build, const PromptFormatter& formatter, const std::string& task,
                     std::int64_t length, std::int64_t gen_tokens, std::int64_t min_units,
                     std::int64_t max_units) {
  const std::int64_t budget = length - gen_tokens;                       // most prompt tokens allowed
  const std::int64_t floor_tokens = (9 * length + 9) / 10 - gen_tokens;  // fewest prompt tokens allowed
  LS_CHECK(budget > 0, "{}: length {} leaves no room for the prompt after the generation budget of {} tokens",
           task, length, gen_tokens);
  auto evaluate = [&](std::int64_t units, FitResult& out) {
    out.built = build(units);
    out.units = units;
    out.prompt_tokens = formatter.count_tokens(formatter.format(out.built.sample.input, out.built.sample.answer_prefix));
    return out.prompt_tokens;
  };
  auto accept = [&](std::int64_t tokens) { return tokens <= budget && tokens >= floor_tokens; };

  FitResult low;
  std::int64_t low_tokens = evaluate(min_units, low);
  LS_CHECK(low_tokens <= budget,
           "{}: length {} is too short: the smallest prompt needs {} tokens plus {} to generate", task, length,
           low_tokens, gen_tokens);
  if (accept(low_tokens)) return low;
  // A second small probe gives the tokens per unit for the first extrapolation.
  std::int64_t probe_units = std::min(max_units, min_units + std::max<std::int64_t>(4, min_units / 4));
  LS_CHECK(probe_units > min_units, "{}: length {} needs more haystack than is available", task, length);
  FitResult probe;
  std::int64_t probe_tokens = evaluate(probe_units, probe);
  double per_unit = std::max(1e-3, double(probe_tokens - low_tokens) / double(probe_units - min_units));
  if (probe_tokens <= budget) {
    if (accept(probe_tokens)) return probe;
    low = std::move(probe);
    low_tokens = probe_tokens;
  }
  std::int64_t high_units = max_units + 1;  // smallest unit count known to overshoot (max+1: unknown)
  std::int64_t high_tokens = 0;
  const double target = budget - std::max(1.0, 0.01 * double(length));  // aim just under the limit
  for (int iteration = 0; iteration < 40; ++iteration) {
    double guess = double(low.units) + (target - double(low_tokens)) / per_unit;
    std::int64_t units = static_cast<std::int64_t>(std::floor(guess));
    units = std::clamp(units, low.units + 1, high_units - 1);
    if (units <= low.units) break;  // bracket closed
    FitResult trial;
    std::int64_t tokens = evaluate(units, trial);
    if (accept(tokens)) return trial;
    if (tokens > budget) {
      high_units = units;
      high_tokens = tokens;
      per_unit = std::max(1e-3, double(high_tokens - low_tokens) / double(high_units - low.units));
    } else {
      per_unit = std::max(1e-3, double(tokens - low_tokens) / double(units - low.units));
      low = std::move(trial);
      low_tokens = tokens;
    }
    if (low.units >= max_units) break;
  }
  LS_CHECK(low.units < max_units,
           "{}: length {} needs more haystack than is available ({} units give {} tokens)", task, length,
           max_units, low_tokens);
  fail("{}: cannot fit length {}: {} units give {} prompt tokens, {} give {}; allowed {}..{} (units too coarse)",
       task, length, low.units, low_tokens, high_units, high_tokens, floor_tokens, budget);
}

std::vector<std::int64_t> needle_token_positions(const std::string& formatted_prompt,
                                                 const std::vector<std::string>& needles,
                                                 const PromptFormatter& formatter) {
  std::vector<std::int64_t> positions;
  for (const auto& needle : needles) {
    std::size_t offset = formatted_prompt.find(needle);
    LS_CHECK(offset != std::string::npos, "needle '{}' is not in the prompt", needle);
    // BPE vocabularies glue a leading space to the next word, so the needle's first token
    // starts at the space before it.
    if (offset > 0 && formatted_prompt[offset - 1] == ' ') --offset;
    positions.push_back(formatter.count_tokens(formatted_prompt.substr(0, offset)));
  }
  return positions;
}

}  // namespace ls::eval
