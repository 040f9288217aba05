#include "eval/perplexity.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"

namespace ls::eval {

PerplexityChunking chunk_text(std::int64_t tokens, std::int64_t context, std::int64_t max_chunks) {
  LS_CHECK(context >= 3, "-c {}: a chunk needs at least 3 tokens (the positions from n_ctx/2 to n_ctx-2 are scored)",
           context);
  LS_CHECK(tokens >= context,
           "the text tokenizes to {} tokens, fewer than one chunk of {}; give a longer file or a smaller -c", tokens,
           context);
  LS_CHECK(max_chunks != 0, "--chunks 0 scores nothing; give a positive count (or -1 for all)");
  const std::int64_t available = tokens / context;
  return {context, max_chunks < 0 ? available : std::min(available, max_chunks)};
}

std::vector<std::int32_t> chunk_tokens(std::span<const std::int32_t> tokens, const PerplexityChunking& chunking,
                                       std::int64_t index, std::int32_t bos) {
  LS_CHECK(index >= 0 && index < chunking.chunks, "chunk {} outside 0..{}", index, chunking.chunks - 1);
  const auto begin = tokens.begin() + index * chunking.context;
  std::vector<std::int32_t> chunk(begin, begin + chunking.context);
  if (bos >= 0) chunk[0] = bos;
  return chunk;
}

double token_nll(std::span<const float> logits, std::int32_t token) {
  LS_CHECK(token >= 0 && std::size_t(token) < logits.size(), "token {} outside the {} logits", token, logits.size());
  const float max_logit = *std::max_element(logits.begin(), logits.end());
  double sum_exp = 0.0;
  for (float l : logits) sum_exp += std::exp(l - max_logit);
  return -(double(logits[token] - max_logit) - std::log(sum_exp));
}

double PerplexityAccumulator::mean_nll() const {
  return count_ ? sum_ / double(count_) : std::numeric_limits<double>::quiet_NaN();
}

double PerplexityAccumulator::ppl() const { return std::exp(mean_nll()); }

double PerplexityAccumulator::ppl_stderr() const {
  if (count_ < 2) return std::numeric_limits<double>::quiet_NaN();
  const double mean = mean_nll(), variance = sum_squares_ / double(count_) - mean * mean;
  if (!(variance > 0)) return std::numeric_limits<double>::quiet_NaN();
  return std::sqrt(variance / double(count_ - 1)) * ppl();
}

}  // namespace ls::eval
