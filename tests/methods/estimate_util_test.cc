// The estimate helpers against naive double-precision versions.
#include "methods/estimate_util.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <tuple>

#include "attn/attention.h"
#include "core/error.h"
#include "core/half.h"

namespace ls {
namespace {

// scores_packed and scores_abt against double-precision dot products, in fp32 (tight) and in
// bf16 on each bf16 kernel the CPU runs. bf16 keeps 8 significant bits, so rounding to nearest
// moves each operand by at most 2^-8 of itself and each product a_i·b_i by at most
// (1 + 2^-8)² − 1 < 2^-7 of itself: |bf16 score − exact| <= scale · Σ|a_i·b_i| / 128 (plus the
// fp32 sums). A second, tight check: the products of the bf16-rounded operands are exact in
// fp32, so the kernel must match their double sum up to fp32 accumulation, at most
// γ_k = k·2^-24 / (1 − k·2^-24) of the absolute sum in any order of summation. Shapes: m, n
// and the depth below, at and past the kernels' blocks (12 or 16 rows, 32-key panels, 32-channel
// slabs, odd depths that end in half a channel pair), windows that start and end inside panels.
void check_packed_scores(estimate::ScoreKernel kernel) {
  const bool bf16 = kernel != estimate::ScoreKernel::Fp32;
  estimate::ScopedScoreKernel scoped(kernel);
  ASSERT_EQ(estimate::score_kernel(), kernel);
  ASSERT_EQ(estimate::bf16_scores(), bf16);
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  const float scale = 0.5f;  // a power of two: a·scale is exact before rounding
  for (auto [m, n, k] : {std::tuple{1, 1, 1}, {7, 45, 64}, {13, 70, 17}, {6, 32, 512}, {29, 70, 64}, {16, 64, 64},
                         {48, 100, 64}, {33, 96, 1024}, {37, 131, 3}, {12, 33, 63}, {25, 65, 130}, {5, 200, 33},
                         {11, 31, 95}}) {
    std::vector<float> a(m * k), b(n * k);
    for (float& x : a) x = normal(rng);
    for (float& x : b) x = normal(rng);
    estimate::PackedRows packed;
    packed.pack(b.data(), k, n, k);
    ASSERT_EQ(packed.is_bf16(), bf16);
    // A column window that starts and ends inside panels.
    const std::int64_t first = n > 3 ? 3 : 0, end = n > 40 ? n - 2 : n;
    std::vector<float> c(m * (end - first), -1.0f), full(m * n);
    estimate::scores_packed(a.data(), k, m, packed, first, end, c.data(), end - first, scale);
    estimate::scores_abt(a.data(), k, b.data(), k, full.data(), n, m, n, k, scale);
    const double gamma = k * 0x1p-24 / (1 - k * 0x1p-24);
    for (int i = 0; i < m; ++i)
      for (std::int64_t j = 0; j < n; ++j) {
        double dot = 0.0, magnitude = 0.0, rounded = 0.0, rounded_magnitude = 0.0;
        for (int c2 = 0; c2 < k; ++c2) {
          dot += double(a[i * k + c2]) * b[j * k + c2];
          magnitude += std::abs(double(a[i * k + c2]) * b[j * k + c2]);
          const double product =
              double(bf16_to_fp32(fp32_to_bf16(a[i * k + c2] * scale))) * bf16_to_fp32(fp32_to_bf16(b[j * k + c2]));
          rounded += product;
          rounded_magnitude += std::abs(product);
        }
        const double tolerance = bf16 ? scale * magnitude / 128 + gamma * rounded_magnitude
                                      : 1e-4 * (1 + std::abs(dot));
        ASSERT_NEAR(full[i * n + j], scale * dot, tolerance) << m << "x" << n << "x" << k << " at " << i << "," << j;
        if (bf16) {
          ASSERT_NEAR(full[i * n + j], rounded, gamma * rounded_magnitude + 1e-30)
              << "not the bf16 products' sum: " << m << "x" << n << "x" << k << " at " << i << "," << j;
        }
        if (j >= first && j < end) {
          ASSERT_EQ(c[i * (end - first) + j - first], full[i * n + j]) << m << "x" << n << "x" << k;
        }
      }
    // Keys packed in bf16 keep their precision after the setting changes.
    if (bf16) {
      estimate::ScopedScorePrecision fp32(false);
      std::vector<float> again(m * n);
      estimate::scores_packed(a.data(), k, m, packed, 0, n, again.data(), n, scale);
      ASSERT_EQ(again, full) << m << "x" << n << "x" << k;
    }
  }
}

TEST(EstimateUtil, PackedScoresMatchNaiveDotProducts) { check_packed_scores(estimate::ScoreKernel::Fp32); }

TEST(EstimateUtil, PackedScoresInBf16OnAvx512) {
  if (!estimate::cpu_runs(estimate::ScoreKernel::Avx512Bf16)) GTEST_SKIP() << "no AVX-512 BF16 on this CPU (or LONGSPARSE_ISA is below avx512-vnni)";
  check_packed_scores(estimate::ScoreKernel::Avx512Bf16);
}

TEST(EstimateUtil, PackedScoresInBf16OnAmx) {
  if (!estimate::amx_available()) GTEST_SKIP() << "no AMX on this CPU (or the OS does not grant it)";
  check_packed_scores(estimate::ScoreKernel::AmxBf16);
}

TEST(EstimateUtil, Fp32ScoresCanBeForced) {
  const bool any_bf16 = estimate::amx_available() || estimate::cpu_runs(estimate::ScoreKernel::Avx512Bf16);
  estimate::ScopedScorePrecision precision(false);
  EXPECT_FALSE(estimate::bf16_scores());
  EXPECT_STREQ(estimate::score_precision(), "fp32");
  {
    estimate::ScopedScorePrecision inner(true);
    EXPECT_EQ(estimate::bf16_scores(), any_bf16);
    // AMX first, where both run.
    const char* expect = estimate::amx_available()                                ? "amx-bf16"
                         : estimate::cpu_runs(estimate::ScoreKernel::Avx512Bf16) ? "avx512-bf16"
                                                                                 : "fp32";
    EXPECT_STREQ(estimate::score_precision(), expect);
  }
  EXPECT_FALSE(estimate::bf16_scores());
  EXPECT_THROW(estimate::force_bf16_kernel(estimate::ScoreKernel::Fp32), Error);
  if (!estimate::amx_available()) {
    EXPECT_THROW(estimate::ScopedScoreKernel amx(estimate::ScoreKernel::AmxBf16), Error);
    EXPECT_FALSE(estimate::bf16_scores());  // a failed ScopedScoreKernel changes nothing
  }
  if (estimate::cpu_runs(estimate::ScoreKernel::Avx512Bf16)) {
    estimate::ScopedScoreKernel avx512(estimate::ScoreKernel::Avx512Bf16);
    EXPECT_STREQ(estimate::score_precision(), "avx512-bf16");
  }
  EXPECT_STREQ(estimate::score_precision(), "fp32");
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

TEST(EstimateUtil, CoverCountMatchesSortedPrefixSums) {
  // Heavy-tailed values with runs of exact ties and zeros, against the definition: sort
  // descending, count the prefix sums <= target, plus one (at most n). Dyadic values make
  // every prefix sum exact, so no target is decided by rounding.
  std::mt19937 rng(7);
  std::vector<float> scratch;
  for (int n : {1, 5, 64, 65, 1000, 8192}) {
    std::vector<float> v(n);
    for (float& x : v) {
      const unsigned r = rng() % 16;
      x = r < 3 ? 0.0f : r < 6 ? 0.25f : std::ldexp(float(rng() % 64 + 1), -int(rng() % 12));
    }
    std::vector<float> sorted = v;
    std::sort(sorted.begin(), sorted.end(), std::greater<float>());
    double total = 0.0;
    for (float x : v) total += x;
    for (double fraction : {0.0, 0.3, 0.5, 0.9, 0.999, 1.0, 2.0}) {
      const double target = fraction * total;
      std::int64_t expect = 0;
      double prefix = 0.0;
      for (float x : sorted) {
        if ((prefix += x) > target) break;
        ++expect;
      }
      expect = std::min<std::int64_t>(expect + 1, n);
      EXPECT_EQ(estimate::cover_count(v, target, scratch), expect) << "n " << n << " fraction " << fraction;
    }
    // Targets equal to a prefix sum: that prefix's entries are not enough (zeros after it add
    // nothing, so they are counted too).
    double prefix = 0.0;
    for (int i = 0; i < n; ++i) {
      prefix += sorted[i];
      std::int64_t expect = i + 1;
      while (expect < n && prefix + sorted[expect] <= prefix) ++expect;
      ASSERT_EQ(estimate::cover_count(v, prefix, scratch), std::min<std::int64_t>(expect + 1, n)) << n << " " << i;
    }
  }
}

TEST(EstimateUtil, PackingInRangesEqualsWholePacking) {
  std::mt19937 rng(3);
  std::normal_distribution<float> normal;
  const int n = 150, k = 20;  // 5 panels, the last one partial
  std::vector<float> b(n * k);
  for (float& x : b) x = normal(rng);
  estimate::ScopedScorePrecision precision(false);  // compares the fp32 layout
  estimate::PackedRows whole, parts;
  whole.pack(b.data(), k, n, k);
  parts.resize(n, k);
  ASSERT_EQ(parts.panels(), 5);
  parts.pack_panels(b.data(), k, 3, 5);
  parts.pack_panels(b.data(), k, 0, 3);
  for (std::int64_t p = 0; p < 5; ++p)
    for (int i = 0; i < k * estimate::PackedRows::kPanel; ++i) ASSERT_EQ(parts.panel(p)[i], whole.panel(p)[i]) << p;
  for (int c = 0; c < k; ++c) EXPECT_EQ(whole.panel(4)[c * estimate::PackedRows::kPanel + 31], 0.0f);  // padding
}

TEST(EstimateUtil, SoftmaxOfLongRowsMatchesExact) {
  // Rows long enough for the vector path, with a wide range of exponents.
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> spread(-100.0f, 10.0f);
  for (int n : {16, 100, 4099}) {
    std::vector<float> x(n);
    for (float& v : x) v = spread(rng);
    std::vector<double> expect(n);
    double top = -1e30, sum = 0.0;
    for (float v : x) top = std::max(top, double(v));
    for (int i = 0; i < n; ++i) sum += expect[i] = std::exp(double(x[i]) - top);
    estimate::softmax(x.data(), n);
    for (int i = 0; i < n; ++i) ASSERT_NEAR(x[i], expect[i] / sum, 1e-6 * (expect[i] / sum) + 1e-12) << n << " " << i;
  }
}

void check_last_query_sums(estimate::ScoreKernel kernel) {
  const bool bf16 = kernel != estimate::ScoreKernel::Fp32;
  estimate::ScopedScoreKernel scoped(kernel);
  ASSERT_EQ(estimate::score_kernel(), kernel);
  // Column and diagonal sums of the last queries' softmax rows against double precision:
  // GQA, fewer queries than keys (a chunk of a longer prefill), a sliding window, a number
  // of last queries that is not a multiple of the work item, and lengths that are not
  // multiples of the vector or strip width.
  std::mt19937 rng(11);
  std::normal_distribution<float> normal;
  for (auto [n_q, n_k, window, last] : {std::tuple{300, 300, 0, 128}, {200, 517, 0, 100}, {333, 333, 90, 64},
                                        {20, 40, 0, 128}}) {
    AttnShape s;
    s.heads = 4;
    s.kv_heads = 2;
    s.n_q = n_q;
    s.n_k = n_k;
    s.dim = 24;
    s.window = window;
    std::vector<float> q(std::size_t(s.heads * n_q * s.dim)), k(std::size_t(s.kv_heads * n_k * s.dim));
    for (float& x : q) x = 1.5f * normal(rng);
    for (float& x : k) x = normal(rng);
    const AttnInput in{q.data(), k.data(), k.data(), s};
    const auto keys = estimate::pack_keys(in);
    std::vector<float> vertical, slash;
    estimate::last_query_sums(in, keys, last, vertical, slash);
    ASSERT_EQ(vertical.size(), std::size_t(s.heads * n_k));
    ASSERT_EQ(slash.size(), std::size_t(s.heads * n_k));
    const std::int64_t rows = std::min<std::int64_t>(last, n_q);
    for (int h = 0; h < s.heads; ++h) {
      std::vector<double> v(n_k, 0.0), sl(n_k, 0.0), probs(n_k);
      for (std::int64_t i = n_q - rows; i < n_q; ++i) {
        const std::int64_t p = s.position(i), first = s.first_key(p);
        estimate::softmax_row(in, h, in.q_row(h, i), first, p, probs);
        for (std::int64_t key = first; key <= p; ++key) {
          v[key] += probs[key];
          sl[p - key] += probs[key];
        }
      }
      for (std::int64_t j = 0; j < n_k; ++j) {
        // bf16: logits off by up to ~0.03 here (|q|·|k| / √d ≈ 6), so probabilities by ~3%.
        const double relative = bf16 ? 0.05 : 1e-5, absolute = bf16 ? 1e-3 : 1e-5;
        ASSERT_NEAR(vertical[h * n_k + j], v[j], relative * v[j] + absolute) << "head " << h << " key " << j;
        ASSERT_NEAR(slash[h * n_k + j], sl[j], relative * sl[j] + absolute) << "head " << h << " offset " << j;
      }
    }
  }
}

TEST(EstimateUtil, LastQuerySumsMatchExactSoftmax) { check_last_query_sums(estimate::ScoreKernel::Fp32); }

TEST(EstimateUtil, LastQuerySumsInBf16OnAvx512) {
  if (!estimate::cpu_runs(estimate::ScoreKernel::Avx512Bf16)) GTEST_SKIP() << "no AVX-512 BF16 on this CPU (or LONGSPARSE_ISA is below avx512-vnni)";
  check_last_query_sums(estimate::ScoreKernel::Avx512Bf16);
}

TEST(EstimateUtil, LastQuerySumsInBf16OnAmx) {
  if (!estimate::amx_available()) GTEST_SKIP() << "no AMX on this CPU (or the OS does not grant it)";
  check_last_query_sums(estimate::ScoreKernel::AmxBf16);
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
