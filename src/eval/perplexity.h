// Perplexity in llama.cpp's convention (tools/perplexity, the default mode), so that our
// figures and llama-perplexity's can be compared number for number:
//  - the whole text is tokenized once, with BOS when the model's tokenizer adds it;
//  - it is cut into chunks of n_ctx tokens, the remainder dropped;
//  - each chunk is a fresh prefill of its n_ctx tokens, its first token replaced by BOS when
//    the model adds BOS;
//  - in each chunk the positions j = n_ctx/2 .. n_ctx - 2 are scored: the negative
//    log-likelihood of token j + 1 under the logits at j (n_ctx - n_ctx/2 - 1 per chunk), so
//    every scored token has at least n_ctx/2 tokens of context;
//  - PPL = exp(mean NLL), with the standard error ppl · sqrt((mean(NLL²) − mean(NLL)²) / (count − 1)).
// Nothing here runs a model: the CLI feeds logits in (docs/perplexity.md).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace ls::eval {

// How a tokenized text is cut into chunks.
struct PerplexityChunking {
  std::int64_t context = 0;  // n_ctx: tokens per chunk
  std::int64_t chunks = 0;   // chunks scored (at most tokens / n_ctx, and at most the requested count)

  // The first scored position of a chunk (n_ctx / 2), and how many positions are scored.
  std::int64_t first_scored() const { return context / 2; }
  std::int64_t scored_per_chunk() const { return context - context / 2 - 1; }
  std::int64_t scored() const { return chunks * scored_per_chunk(); }
};

// The chunking of `tokens` tokens at `context` per chunk; max_chunks < 0: all of them.
// Throws ls::Error when context < 3 (fewer scores nothing) or the text is shorter than one chunk.
PerplexityChunking chunk_text(std::int64_t tokens, std::int64_t context, std::int64_t max_chunks = -1);

// Chunk `index` of `tokens` as it is prefilled: its n_ctx tokens, the first replaced by `bos`
// when bos >= 0 (pass -1 when the model does not add BOS).
std::vector<std::int32_t> chunk_tokens(std::span<const std::int32_t> tokens, const PerplexityChunking& chunking,
                                       std::int64_t index, std::int32_t bos);

// −log softmax(logits)[token], computed as llama-perplexity does (float max, double sum of expf).
double token_nll(std::span<const float> logits, std::int32_t token);

// Running sums of the scored NLLs.
class PerplexityAccumulator {
 public:
  void add(double nll) { sum_ += nll, sum_squares_ += nll * nll, ++count_; }
  std::int64_t count() const { return count_; }
  double mean_nll() const;  // NaN when nothing was added
  double ppl() const;       // exp(mean NLL)
  // llama-perplexity's uncertainty of the PPL; NaN with fewer than two values or no spread.
  double ppl_stderr() const;

 private:
  double sum_ = 0.0, sum_squares_ = 0.0;
  std::int64_t count_ = 0;
};

}  // namespace ls::eval
