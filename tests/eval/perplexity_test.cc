// llama-perplexity's convention without a model: chunking, the BOS replacement, the NLL of a
// row of logits and the uncertainty formula, against hand computations.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/error.h"
#include "eval/perplexity.h"

namespace ls::eval {
namespace {

TEST(Perplexity, ChunksDropTheRemainderAndScoreTheSecondHalf) {
  const PerplexityChunking c = chunk_text(1000, 64);
  EXPECT_EQ(c.chunks, 15);  // 15 × 64 = 960; the last 40 tokens are dropped
  EXPECT_EQ(c.first_scored(), 32);
  EXPECT_EQ(c.scored_per_chunk(), 31);  // positions 32 .. 62 predict tokens 33 .. 63
  EXPECT_EQ(c.scored(), 15 * 31);
  const PerplexityChunking odd = chunk_text(17, 17);  // n_ctx/2 rounds down: positions 8 .. 15
  EXPECT_EQ(odd.chunks, 1);
  EXPECT_EQ(odd.first_scored(), 8);
  EXPECT_EQ(odd.scored_per_chunk(), 8);
  EXPECT_EQ(chunk_text(3, 3).scored_per_chunk(), 1);  // the smallest chunk: position 1 predicts token 2
  EXPECT_EQ(chunk_text(1000, 64, 4).chunks, 4);      // --chunks K
  EXPECT_EQ(chunk_text(1000, 64, 99).chunks, 15);    // more than the file holds: all of them
  EXPECT_EQ(chunk_text(1000, 64, -1).chunks, 15);
}

TEST(Perplexity, ChunkingErrorsSayWhatToChange) {
  try {
    chunk_text(63, 64);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("fewer than one chunk of 64"), std::string::npos) << e.what();
  }
  EXPECT_THROW(chunk_text(100, 2), Error);  // scores nothing
  EXPECT_THROW(chunk_text(100, 1), Error);
  EXPECT_THROW(chunk_text(100, 0), Error);
  EXPECT_THROW(chunk_text(100, 10, 0), Error);
}

TEST(Perplexity, FirstTokenOfEachChunkBecomesBos) {
  std::vector<std::int32_t> tokens(25);
  for (int i = 0; i < 25; ++i) tokens[i] = 100 + i;
  const PerplexityChunking c = chunk_text(25, 8);
  ASSERT_EQ(c.chunks, 3);
  EXPECT_EQ(chunk_tokens(tokens, c, 1, -1), (std::vector<std::int32_t>{108, 109, 110, 111, 112, 113, 114, 115}));
  EXPECT_EQ(chunk_tokens(tokens, c, 2, 7), (std::vector<std::int32_t>{7, 117, 118, 119, 120, 121, 122, 123}));
  EXPECT_EQ(tokens[16], 116);  // the text itself is unchanged: targets are its tokens
  EXPECT_THROW(chunk_tokens(tokens, c, 3, -1), Error);
}

TEST(Perplexity, TokenNllIsMinusLogSoftmax) {
  const std::vector<float> uniform(10, 3.0f);
  EXPECT_NEAR(token_nll(uniform, 4), std::log(10.0), 1e-12);
  const std::vector<float> logits = {1.0f, -2.0f, 0.5f, 30.0f};
  double sum = 0;
  for (float l : logits) sum += std::exp(double(l));
  for (int t = 0; t < 4; ++t) EXPECT_NEAR(token_nll(logits, t), -(double(logits[t]) - std::log(sum)), 1e-6) << t;
  EXPECT_THROW(token_nll(logits, 4), Error);
}

TEST(Perplexity, UncertaintyIsLlamaPerplexitys) {
  PerplexityAccumulator a;
  EXPECT_TRUE(std::isnan(a.ppl()));
  const std::vector<double> nll = {2.0, 3.0, 2.5, 4.0, 1.5};
  for (double v : nll) a.add(v);
  EXPECT_EQ(a.count(), 5);
  const double mean = 13.0 / 5, mean_sq = (4 + 9 + 6.25 + 16 + 2.25) / 5;
  EXPECT_DOUBLE_EQ(a.mean_nll(), mean);
  EXPECT_DOUBLE_EQ(a.ppl(), std::exp(mean));
  // ppl · sqrt((E[x²] − E[x]²) / (n − 1)): the delta method on exp of the sample mean.
  EXPECT_NEAR(a.ppl_stderr(), std::exp(mean) * std::sqrt((mean_sq - mean * mean) / 4), 1e-12);
  PerplexityAccumulator one;
  one.add(2.0);
  EXPECT_TRUE(std::isnan(one.ppl_stderr()));
  PerplexityAccumulator flat;
  for (int i = 0; i < 3; ++i) flat.add(1.0);
  EXPECT_TRUE(std::isnan(flat.ppl_stderr()));  // no spread: llama-perplexity prints an error there
}

}  // namespace
}  // namespace ls::eval
