// Sampler: greedy and top-k=1 give the argmax; temperature sampling reproduces the tempered
// distribution; top-k, top-p and min-p exclude exactly what they should; fixed seeds make all
// of it deterministic (so the statistical checks below are exact, not flaky).
#include "model/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"

namespace ls {
namespace {

std::vector<float> log_probs(const std::vector<double>& probs) {
  std::vector<float> logits;
  for (const double p : probs) logits.push_back(static_cast<float>(std::log(p)) + 3.0f);  // shift: irrelevant
  return logits;
}

std::vector<double> frequencies(Sampler& sampler, const std::vector<float>& logits, int draws) {
  std::vector<double> counts(logits.size(), 0.0);
  for (int i = 0; i < draws; ++i) counts.at(sampler.sample(logits)) += 1.0;
  for (double& c : counts) c /= draws;
  return counts;
}

SamplerConfig plain(float temperature, std::uint64_t seed = 7) {
  SamplerConfig c;
  c.temperature = temperature;
  c.top_k = 0;
  c.top_p = 1.0f;
  c.min_p = 0.0f;
  c.seed = seed;
  return c;
}

TEST(SamplerRng, MatchesReferenceXoshiro256StarStarSeededBySplitmix64) {
  // Values from an independent Python implementation of splitmix64 + xoshiro256**.
  Xoshiro256 zero(0);
  EXPECT_EQ(zero.next(), 0x99ec5f36cb75f2b4ull);
  EXPECT_EQ(zero.next(), 0xbf6e1f784956452aull);
  EXPECT_EQ(zero.next(), 0x1a5f849d4933e6e0ull);
  Xoshiro256 answer(42);
  EXPECT_EQ(answer.next(), 0x15780b2e0c2ec716ull);
  EXPECT_EQ(answer.next(), 0x6104d9866d113a7eull);
  for (int i = 0; i < 1000; ++i) {
    const double u = answer.uniform();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
  }
}

TEST(Sampler, GreedyIsArgmax) {
  Xoshiro256 rng(1);
  Sampler greedy(plain(0.0f));
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<float> logits(1000);
    for (float& l : logits) l = static_cast<float>(rng.uniform() * 20.0 - 10.0);
    const auto expected = std::max_element(logits.begin(), logits.end()) - logits.begin();
    ASSERT_EQ(greedy.sample(logits), expected);
  }
  // Ties go to the lowest id.
  EXPECT_EQ(greedy.sample(std::vector<float>{1.0f, 5.0f, 2.0f, 5.0f}), 1);
}

TEST(Sampler, TopKOneIsArgmaxAtAnyTemperature) {
  SamplerConfig config = plain(1.5f);
  config.top_k = 1;
  Sampler sampler(config);
  Xoshiro256 rng(2);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<float> logits(300);
    for (float& l : logits) l = static_cast<float>(rng.uniform() * 4.0);
    const auto expected = std::max_element(logits.begin(), logits.end()) - logits.begin();
    ASSERT_EQ(sampler.sample(logits), expected);
  }
}

TEST(Sampler, TemperatureOneReproducesTheDistribution) {
  const std::vector<double> probs = {0.1, 0.2, 0.3, 0.4};
  Sampler sampler(plain(1.0f));
  const auto freq = frequencies(sampler, log_probs(probs), 100000);
  // Standard deviation of each frequency is <= 0.0016; 0.008 is five of them.
  for (std::size_t i = 0; i < probs.size(); ++i) EXPECT_NEAR(freq[i], probs[i], 0.008) << "token " << i;
}

TEST(Sampler, TemperatureSharpensAndFlattens) {
  const std::vector<double> probs = {0.1, 0.2, 0.3, 0.4};
  for (const float temperature : {0.5f, 2.0f}) {
    std::vector<double> expected;
    double sum = 0.0;
    for (const double p : probs) sum += std::pow(p, 1.0 / temperature);
    for (const double p : probs) expected.push_back(std::pow(p, 1.0 / temperature) / sum);
    Sampler sampler(plain(temperature, 11));
    const auto freq = frequencies(sampler, log_probs(probs), 100000);
    for (std::size_t i = 0; i < probs.size(); ++i) {
      EXPECT_NEAR(freq[i], expected[i], 0.008) << "temperature " << temperature << " token " << i;
    }
  }
}

TEST(Sampler, TopKKeepsOnlyTheKMostLikely) {
  SamplerConfig config = plain(1.0f);
  config.top_k = 2;
  Sampler sampler(config);
  const auto freq = frequencies(sampler, log_probs({0.1, 0.4, 0.2, 0.3}), 20000);
  EXPECT_EQ(freq[0], 0.0);
  EXPECT_EQ(freq[2], 0.0);
  EXPECT_NEAR(freq[1], 4.0 / 7.0, 0.02);
  EXPECT_NEAR(freq[3], 3.0 / 7.0, 0.02);
}

TEST(Sampler, TopPKeepsTheSmallestPrefixReachingP) {
  // Cumulative 0.5, 0.8, 0.95, 1.0: top_p 0.75 keeps the first two, 0.85 the first three.
  const auto logits = log_probs({0.15, 0.5, 0.05, 0.3});
  SamplerConfig config = plain(1.0f);
  config.top_p = 0.75f;
  Sampler two(config);
  auto freq = frequencies(two, logits, 20000);
  EXPECT_EQ(freq[0], 0.0);
  EXPECT_EQ(freq[2], 0.0);
  EXPECT_NEAR(freq[1], 0.5 / 0.8, 0.02);
  config.top_p = 0.85f;
  Sampler three(config);
  freq = frequencies(three, logits, 20000);
  EXPECT_EQ(freq[2], 0.0);
  EXPECT_NEAR(freq[0], 0.15 / 0.95, 0.02);
  // A tiny top_p still keeps the most likely token.
  config.top_p = 1e-6f;
  Sampler one(config);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(one.sample(logits), 1);
}

TEST(Sampler, MinPDropsTokensBelowAFractionOfTheTop) {
  // min_p 0.2 × top 0.5 = 0.1: 0.05 goes, 0.15 stays.
  const auto logits = log_probs({0.15, 0.5, 0.05, 0.3});
  SamplerConfig config = plain(1.0f);
  config.min_p = 0.2f;
  Sampler sampler(config);
  const auto freq = frequencies(sampler, logits, 20000);
  EXPECT_EQ(freq[2], 0.0);
  EXPECT_GT(freq[0], 0.1);
  EXPECT_NEAR(freq[1], 0.5 / 0.95, 0.02);
}

TEST(Sampler, FiltersAreComputedBeforeTemperature) {
  // At temperature 100 the kept tokens are nearly uniform, but what is kept is decided on
  // the untempered distribution, as in llama.cpp.
  SamplerConfig config = plain(100.0f);
  config.top_p = 0.75f;
  Sampler sampler(config);
  const auto freq = frequencies(sampler, log_probs({0.15, 0.5, 0.05, 0.3}), 20000);
  EXPECT_EQ(freq[0], 0.0);
  EXPECT_EQ(freq[2], 0.0);
  EXPECT_NEAR(freq[1], 0.5, 0.02);
}

TEST(Sampler, NegativeInfinityIsNeverSampled) {
  const float inf = std::numeric_limits<float>::infinity();
  Sampler sampler(plain(1.0f));
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(sampler.sample(std::vector<float>{-inf, 0.0f, -inf}), 1);
}

TEST(Sampler, SameSeedSameTokensOtherSeedOtherTokens) {
  SamplerConfig config;  // the defaults, with filtering on
  config.temperature = 1.0f;
  Xoshiro256 rng(3);
  std::vector<float> logits(5000);
  for (float& l : logits) l = static_cast<float>(rng.uniform() * 3.0);
  const auto run = [&](std::uint64_t seed) {
    config.seed = seed;
    Sampler sampler(config);
    std::vector<std::int32_t> ids;
    for (int i = 0; i < 200; ++i) ids.push_back(sampler.sample(logits));
    return ids;
  };
  EXPECT_EQ(run(5), run(5));
  EXPECT_NE(run(5), run(6));
}

TEST(Sampler, RejectsInvalidConfigs) {
  const auto rejects = [](auto change) {
    SamplerConfig config;
    change(config);
    EXPECT_THROW(Sampler{config}, Error);
  };
  rejects([](SamplerConfig& c) { c.temperature = -0.1f; });
  rejects([](SamplerConfig& c) { c.temperature = std::numeric_limits<float>::quiet_NaN(); });
  rejects([](SamplerConfig& c) { c.temperature = std::numeric_limits<float>::infinity(); });
  rejects([](SamplerConfig& c) { c.top_k = -1; });
  rejects([](SamplerConfig& c) { c.top_p = 0.0f; });
  rejects([](SamplerConfig& c) { c.top_p = 1.01f; });
  rejects([](SamplerConfig& c) { c.min_p = -0.01f; });
  rejects([](SamplerConfig& c) { c.min_p = 1.5f; });
  SamplerConfig edge;
  edge.top_p = 1.0f;
  edge.min_p = 1.0f;
  EXPECT_NO_THROW(Sampler{edge});
}

TEST(Sampler, RejectsBrokenLogits) {
  Sampler sampler(SamplerConfig{});
  EXPECT_THROW(sampler.sample(std::vector<float>{}), Error);
  EXPECT_THROW(sampler.sample(std::vector<float>{0.0f, std::numeric_limits<float>::quiet_NaN()}), Error);
  EXPECT_THROW(sampler.sample(std::vector<float>{0.0f, std::numeric_limits<float>::infinity()}), Error);
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_THROW(sampler.sample(std::vector<float>{-inf, -inf}), Error);
}

}  // namespace
}  // namespace ls
