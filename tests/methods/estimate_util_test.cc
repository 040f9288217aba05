// The estimate helpers against naive double-precision versions.
#include "methods/estimate_util.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

namespace ls {
namespace {

TEST(EstimateUtil, PackedScoresMatchNaiveDotProducts) {
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  for (auto [m, n, k] : {std::tuple{1, 1, 1}, {7, 45, 64}, {13, 70, 17}, {6, 32, 512}, {29, 70, 64}}) {
    std::vector<float> a(m * k), b(n * k);
    for (float& x : a) x = normal(rng);
    for (float& x : b) x = normal(rng);
    estimate::PackedRows packed;
    packed.pack(b.data(), k, n, k);
    // A column window that starts and ends inside panels.
    const std::int64_t first = n > 3 ? 3 : 0, end = n > 40 ? n - 2 : n;
    std::vector<float> c(m * (end - first), -1.0f), full(m * n);
    estimate::scores_packed(a.data(), k, m, packed, first, end, c.data(), end - first, 0.5f);
    estimate::scores_abt(a.data(), k, b.data(), k, full.data(), n, m, n, k, 0.5f);
    for (int i = 0; i < m; ++i)
      for (std::int64_t j = 0; j < n; ++j) {
        double dot = 0.0;
        for (int c2 = 0; c2 < k; ++c2) dot += double(a[i * k + c2]) * b[j * k + c2];
        EXPECT_NEAR(full[i * n + j], 0.5 * dot, 1e-4 * (1 + std::abs(dot))) << m << "x" << n << "x" << k;
        if (j >= first && j < end) {
          EXPECT_NEAR(c[i * (end - first) + j - first], 0.5 * dot, 1e-4 * (1 + std::abs(dot)));
        }
      }
  }
}

TEST(EstimateUtil, SoftmaxMatchesExactAndHandlesMaskedEntries) {
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> x{0.5f, -inf, 3.0f, -20.0f, 1.0f, -inf, 0.0f, 2.5f, -90.0f};
  std::vector<double> expect(x.size());
  double sum = 0.0;
  for (std::size_t i = 0; i < x.size(); ++i) sum += expect[i] = std::isfinite(x[i]) ? std::exp(double(x[i])) : 0.0;
  estimate::softmax(x.data(), std::int64_t(x.size()));
  for (std::size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(x[i], expect[i] / sum, 1e-6) << i;
  std::vector<float> long_row(37);
  std::vector<double> long_expect(37);
  double long_sum = 0.0;
  for (int i = 0; i < 37; ++i) {
    long_row[i] = i % 5 == 0 ? -inf : 0.37f * float(i % 11) - 2.0f - (i == 20 ? 100.0f : 0.0f);
    long_sum += long_expect[i] = std::isfinite(long_row[i]) ? std::exp(double(long_row[i])) : 0.0;
  }
  estimate::softmax(long_row.data(), 37);
  for (int i = 0; i < 37; ++i) EXPECT_NEAR(long_row[i], long_expect[i] / long_sum, 1e-6) << i;
  std::vector<float> masked{-inf, -inf};
  estimate::softmax(masked.data(), 2);
  EXPECT_EQ(masked[0], 0.0f);
}

TEST(EstimateUtil, PoolingReducesPartialLastBlock) {
  std::vector<float> x{1, 10, 3, -2, 5, 7, 4, 0, 9, 1};  // 5 rows of 2 channels, blocks of 2
  std::vector<float> mean(6), max(6), min(6);
  estimate::pool_rows(x.data(), 5, 2, 2, estimate::Pool::Mean, mean.data());
  estimate::pool_rows(x.data(), 5, 2, 2, estimate::Pool::Max, max.data());
  estimate::pool_rows(x.data(), 5, 2, 2, estimate::Pool::Min, min.data());
  EXPECT_EQ(mean, (std::vector<float>{2, 4, 4.5f, 3.5f, 9, 1}));
  EXPECT_EQ(max, (std::vector<float>{3, 10, 5, 7, 9, 1}));
  EXPECT_EQ(min, (std::vector<float>{1, -2, 4, 0, 9, 1}));
}

TEST(EstimateUtil, CoverCountAndOrder) {
  std::vector<float> v{0.1f, 0.4f, 0.05f, 0.3f, 0.15f};
  std::vector<std::int32_t> order;
  estimate::order_descending(v, order);
  EXPECT_EQ(order, (std::vector<std::int32_t>{1, 3, 4, 0, 2}));
  // Prefix sums 0.4, 0.7, 0.85, 0.95, 1.0: the count of sums <= target, plus one.
  std::vector<float> scratch;
  EXPECT_EQ(estimate::cover_count(v, 0.5, scratch), 2);
  EXPECT_EQ(estimate::cover_count(v, 0.9, scratch), 4);
  EXPECT_EQ(estimate::cover_count(v, 2.0, scratch), 5);
  // Spread mass: the budget needs far more than the largest eighth of the entries.
  std::vector<float> spread(1000);
  for (int i = 0; i < 1000; ++i) spread[i] = float((i * 7919) % 1000 + 1);
  double total = 0.0;
  for (float x : spread) total += x;
  for (float& x : spread) x = float(x / total);
  // Sorted descending the values are 1000..1 (/ total); the prefix of the top c sums to
  // c(2001 − c)/2 / total. Exceeding 0.9 of 500500 first happens at c = 685.
  EXPECT_EQ(estimate::cover_count(spread, 0.9, scratch), 685);
  std::vector<float> ties{0.2f, 0.2f, 0.2f};
  estimate::order_descending(ties, order);
  EXPECT_EQ(order, (std::vector<std::int32_t>{0, 1, 2}));
}

TEST(EstimateUtil, JensenShannonDistance) {
  std::vector<float> p{0.5f, 0.5f, 0.0f}, q{0.0f, 0.5f, 0.5f};
  // m = (0.25, 0.5, 0.25): JS = 0.5·(0.5 ln 2) + 0.5·(0.5 ln 2) = 0.5 ln 2.
  EXPECT_NEAR(estimate::sqrt_js_distance(p, q), std::sqrt(0.5 * std::log(2.0)), 1e-6);
  EXPECT_NEAR(estimate::sqrt_js_distance(p, p), 0.0, 1e-7);
  std::vector<float> disjoint{0.0f, 0.0f, 1.0f}, other{1.0f, 0.0f, 0.0f};
  EXPECT_NEAR(estimate::sqrt_js_distance(disjoint, other), std::sqrt(std::log(2.0)), 1e-6);
}

}  // namespace
}  // namespace ls
