// The gather kernel over a decode Selection against a double-precision reference, and the
// page summaries against summaries rebuilt from scratch.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "attn/selection.h"
#include "core/error.h"
#include "core/parallel.h"
#include "kv/decode_attention.h"
#include "kv/kv_cache.h"
#include "model/ops.h"
#include "simd_targets.h"

namespace ls {
namespace {

std::vector<float> normal_values(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> out(n);
  for (float& x : out) x = normal(rng);
  return out;
}

// out[h] = softmax over the selected keys, in double, from the rows as the cache stores them.
std::vector<double> reference(const KvCache& cache, int layer, const std::vector<float>& q, int heads,
                              const Selection& sel, float scale) {
  const int G = cache.shape().kv_heads, D = cache.shape().dim, group = heads / G;
  const std::int64_t n = sel.n_keys();
  std::vector<float> k(std::size_t(G * n * D)), v(k.size());
  const std::int64_t first = cache.first_held(layer, n);
  cache.read(layer, first, n, k.data(), v.data(), n);
  std::vector<double> out(std::size_t(heads) * D, 0.0);
  for (int h = 0; h < heads; ++h) {
    const int g = h / group;
    std::vector<double> s;
    std::vector<std::int64_t> pos;
    for (std::int64_t p = first; p < n; ++p) {
      if (!sel.contains(g, p)) continue;
      double dot = 0;
      for (int e = 0; e < D; ++e) dot += double(q[h * D + e]) * k[(g * n + p - first) * D + e];
      s.push_back(dot * scale);
      pos.push_back(p);
    }
    const double max = *std::max_element(s.begin(), s.end());
    double sum = 0;
    for (double& x : s) sum += x = std::exp(x - max);
    for (std::size_t j = 0; j < s.size(); ++j)
      for (int e = 0; e < D; ++e) out[h * D + e] += s[j] / sum * v[(g * n + pos[j] - first) * D + e];
  }
  return out;
}

KvCache filled_cache(std::int64_t n, int G, int D, KvType type, std::int64_t window = 0, unsigned seed = 1) {
  KvCache cache({1, G, D, n + 8, {window}, type, type});
  const auto k = normal_values(std::size_t(G * n * D), seed), v = normal_values(std::size_t(G * n * D), seed + 1);
  cache.write(0, 0, n, k.data(), v.data());
  cache.set_size(n);
  return cache;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<double>& b) {
  double worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(a[i] - b[i]));
  return worst;
}

TEST(Selection, MergesSortsAndClips) {
  Selection s;
  s.reset(2, 100);
  s.add(0, 50, 60);
  s.add(0, 10, 20);
  s.add(0, 15, 30);
  s.add(0, 30, 31);
  s.add(0, 95, 200);
  s.add(1, -5, 3);
  s.finish();
  ASSERT_EQ(s.offsets()[1], 3);
  EXPECT_EQ(s.ranges()[0].begin, 10);
  EXPECT_EQ(s.ranges()[0].end, 31);
  EXPECT_EQ(s.ranges()[2].end, 100);
  EXPECT_EQ(s.tokens(0), 21 + 10 + 5);
  EXPECT_EQ(s.tokens(1), 3);
  EXPECT_TRUE(s.contains(0, 30));
  EXPECT_FALSE(s.contains(0, 31));
  EXPECT_FALSE(s.contains(1, 3));
  EXPECT_THROW(s.add(2, 0, 1), Error);
}

// Dense selection equals dense decode, which equals the double reference within 1e-6.
TEST(GatherKernel, DenseSelectionMatchesDenseDecode) {
  for (KvType type : {KvType::F32, KvType::F16}) {
    const int G = 3, heads = 9, D = 64;
    const std::int64_t n = 1000;
    KvCache cache = filled_cache(n, G, D, type);
    const auto q = normal_values(std::size_t(heads * D), 9);
    DecodeAttention attention;
    std::vector<float> a(q.size()), b(q.size());
    attention.run(cache, 0, q.data(), heads, n, 0.125f, a.data());
    Selection dense;
    dense.set_dense(G, n);
    attention.run(cache, 0, q.data(), heads, dense, 0.125f, b.data());
    EXPECT_EQ(a, b);
    EXPECT_LT(max_abs_diff(a, reference(cache, 0, q, heads, dense, 0.125f)), 1e-6) << kv_type_name(type);
  }
}

// Scattered ranges of different lengths per head (chunks that span several ranges and split
// ranges), every element type, with one and two threads.
TEST(GatherKernel, SparseSelectionMatchesReference) {
  const int G = 2, heads = 8, D = 64;
  const std::int64_t n = 3000;
  for (KvType type : {KvType::F32, KvType::F16, KvType::BF16, KvType::Q8_0}) {
    KvCache cache = filled_cache(n, G, D, type, 0, 3);
    const auto q = normal_values(std::size_t(heads * D), 4);
    Selection sel;
    sel.reset(G, n);
    std::mt19937 rng(5);
    for (int g = 0; g < G; ++g)
      for (int r = 0; r < 40 + 30 * g; ++r) {
        const std::int64_t b = rng() % n, len = 1 + rng() % (g ? 7 : 300);
        sel.add(g, b, b + len);
      }
    sel.add(0, n - 1, n);
    sel.finish();
    const auto expected = reference(cache, 0, q, heads, sel, 0.125f);
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      DecodeAttention attention;
      std::vector<float> out(q.size());
      attention.run(cache, 0, q.data(), heads, sel, 0.125f, out.data());
      EXPECT_LT(max_abs_diff(out, expected), 2e-6) << kv_type_name(type) << " threads " << threads;
    }
  }
  set_num_threads(0);
}

// Every Highway target the CPU runs: dense and scattered selections over odd key counts
// (chunks of 256 split in the middle of ranges), GQA groups of 1 and 3, head dims that leave a
// vector tail (72, 40) or a single vector chunk, every element type.
TEST(GatherKernel, EverySimdTargetMatchesReference) {
  struct Case {
    int G, heads, D;
    std::int64_t n;
  };
  const Case cases[] = {{3, 9, 64, 701}, {1, 1, 72, 300}, {2, 2, 40, 257}, {1, 3, 96, 45}};
  testing::for_each_simd_target([&] {
    unsigned seed = 40;
    for (const Case& c : cases) {
      for (KvType type : {KvType::F32, KvType::F16, KvType::BF16, KvType::Q8_0}) {
        if (type == KvType::Q8_0 && c.D % kQ8BlockSize != 0) continue;
        KvCache cache = filled_cache(c.n, c.G, c.D, type, 0, seed++);
        const auto q = normal_values(std::size_t(c.heads * c.D), seed++);
        Selection dense, sparse;
        dense.set_dense(c.G, c.n);
        sparse.reset(c.G, c.n);
        std::mt19937 rng(seed++);
        for (int g = 0; g < c.G; ++g) {
          for (int r = 0; r < 12; ++r) {
            const std::int64_t b = rng() % c.n;
            sparse.add(g, b, b + 1 + rng() % 90);
          }
          sparse.add(g, c.n - 1, c.n);
        }
        sparse.finish();
        DecodeAttention attention;
        std::vector<float> out(q.size());
        for (const Selection* sel : {&dense, &sparse}) {
          attention.run(cache, 0, q.data(), c.heads, *sel, 0.125f, out.data());
          EXPECT_LT(max_abs_diff(out, reference(cache, 0, q, c.heads, *sel, 0.125f)), 2e-6)
              << kv_type_name(type) << " G=" << c.G << " heads=" << c.heads << " D=" << c.D << " n=" << c.n
              << (sel == &dense ? " dense" : " sparse");
        }
      }
    }
  });
}

// A ring layer: a selection of held positions across the wrap point.
TEST(GatherKernel, RingLayerSelection) {
  const int G = 1, heads = 4, D = 32;
  const std::int64_t n = 700, window = 256;
  KvCache cache = filled_cache(n, G, D, KvType::F32, window, 8);
  ASSERT_TRUE(cache.is_ring(0));
  const auto q = normal_values(std::size_t(heads * D), 6);
  Selection sel;
  sel.reset(G, n);
  sel.add(0, n - window, n - window + 40);
  sel.add(0, 505, 530);  // crosses slot 0 (512 = 2 · 256)
  sel.add(0, n - 3, n);
  sel.finish();
  DecodeAttention attention;
  std::vector<float> out(q.size());
  attention.run(cache, 0, q.data(), heads, sel, 0.2f, out.data());
  EXPECT_LT(max_abs_diff(out, reference(cache, 0, q, heads, sel, 0.2f)), 1e-6);
  Selection stale;
  stale.reset(G, n);
  stale.add(0, 0, 10);
  stale.finish();
  EXPECT_THROW(attention.run(cache, 0, q.data(), heads, stale, 0.2f, out.data()), Error);
  Selection empty;
  empty.reset(G, n);
  empty.finish();
  EXPECT_THROW(attention.run(cache, 0, q.data(), heads, empty, 0.2f, out.data()), Error);
}

// Summaries after prefill chunks and single-token writes equal those of one write of all tokens.
TEST(KvSummaries, IncrementalEqualsRebuilt) {
  const int G = 2, D = 32;
  const std::int64_t n = 777;
  const SummaryNeeds needs{kSummaryPageMinMax | kSummaryBlockMean, 16, 16};
  const auto k = normal_values(std::size_t(G * n * D), 11), v = normal_values(std::size_t(G * n * D), 12);
  for (KvType type : {KvType::F32, KvType::Q8_0}) {
    KvCache whole({2, G, D, 1024, {0, 64}, type, type});
    whole.keep_summaries(needs);
    whole.write(0, 0, n, k.data(), v.data());
    whole.set_size(n);
    KvCache pieces({2, G, D, 1024, {0, 64}, type, type});
    pieces.keep_summaries(needs);
    std::int64_t p = 0;
    std::mt19937 rng(2);
    std::vector<float> kc, vc;
    while (p < n) {
      const std::int64_t m = std::min<std::int64_t>(n - p, rng() % 3 ? 1 : 1 + rng() % 70);
      kc.resize(std::size_t(G * m * D));
      vc.resize(kc.size());
      for (int g = 0; g < G; ++g)
        for (std::int64_t t = 0; t < m; ++t)
          for (int e = 0; e < D; ++e) {
            kc[(g * m + t) * D + e] = k[(g * n + p + t) * D + e];
            vc[(g * m + t) * D + e] = v[(g * n + p + t) * D + e];
          }
      pieces.write(0, p, m, kc.data(), vc.data());
      pieces.write(1, p, m, kc.data(), vc.data());
      p += m;
      pieces.set_size(p);
    }
    // Rebuilt from what is stored: summaries asked for after the writes.
    KvCache late({2, G, D, 1024, {0, 64}, type, type});
    late.write(0, 0, n, k.data(), v.data());
    late.set_size(n);
    late.keep_summaries(needs);
    const std::int64_t pages = (n + 15) / 16;
    for (int g = 0; g < G; ++g) {
      for (const KvCache* c : {&pieces, &late}) {
        EXPECT_EQ(0, std::memcmp(c->page_min(0, g), whole.page_min(0, g), pages * D * 4));
        EXPECT_EQ(0, std::memcmp(c->page_max(0, g), whole.page_max(0, g), pages * D * 4));
        EXPECT_EQ(0, std::memcmp(c->block_mean(0, g), whole.block_mean(0, g), pages * D * 4));
      }
      EXPECT_EQ(pieces.page_min(1, g), nullptr);  // a ring layer keeps none
      // The bounds hold every stored key of the page.
      std::vector<float> rows(std::size_t(n * D));
      whole.layer_keys(0, n).read_keys(g, 0, n, rows.data());
      for (std::int64_t t = 0; t < n; ++t)
        for (int e = 0; e < D; ++e) {
          ASSERT_LE(whole.page_min(0, g)[(t / 16) * D + e], rows[t * D + e]);
          ASSERT_GE(whole.page_max(0, g)[(t / 16) * D + e], rows[t * D + e]);
        }
    }
    EXPECT_EQ(whole.summary_bytes(), 3 * pages * G * D * 4);
  }
}

// The decode distance cap: keys more than `limit` behind the query score as if exactly
// `limit` apart (query rotated to the cap, key rotation undone), the nearer ones as usual; on
// every Highway target.
void expect_distance_cap_scores_far_keys_at_the_cap() {
  const int G = 1, heads = 2, D = 32;
  const std::int64_t n = 600, limit = 100;
  Rope rope(D, 10000.0);
  rope.reserve(n);
  auto k_pre = normal_values(std::size_t(n * D), 21), v = normal_values(std::size_t(n * D), 22);
  const auto q_pre = normal_values(std::size_t(heads * D), 23);
  std::vector<float> k = k_pre;
  for (std::int64_t j = 0; j < n; ++j) rope.apply(k.data() + j * D, 1, D, j);
  KvCache cache({1, G, D, n, {}, KvType::F32, KvType::F32});
  cache.write(0, 0, n, k.data(), v.data());
  cache.set_size(n);
  std::vector<float> q = q_pre, q_far = q_pre;
  rope.apply(q.data(), heads, D, n - 1);
  rope.apply(q_far.data(), heads, D, limit);
  Selection sel;
  sel.set_dense(G, n);
  DecodeAttention attention;
  std::vector<float> out(q.size());
  DecodeFar far{limit, q_far.data(), [&](std::int64_t p, float* row) { rope.apply(row, 1, D, p, true); }};
  attention.run(cache, 0, q.data(), heads, sel, 0.2f, out.data(), far);
  // Reference: position-free scores, q_pre at distance min(n - 1 - j, limit) from k_pre.
  for (int h = 0; h < heads; ++h) {
    std::vector<double> s(n);
    double max = -1e30;
    for (std::int64_t j = 0; j < n; ++j) {
      std::vector<float> qr(q_pre.begin() + h * D, q_pre.begin() + (h + 1) * D);
      rope.apply(qr.data(), 1, D, std::min<std::int64_t>(n - 1 - j, limit));
      double dot = 0;
      for (int e = 0; e < D; ++e) dot += double(qr[e]) * k_pre[j * D + e];
      s[j] = 0.2 * dot;
      max = std::max(max, s[j]);
    }
    double sum = 0;
    for (double& x : s) sum += x = std::exp(x - max);
    for (int e = 0; e < D; ++e) {
      double o = 0;
      for (std::int64_t j = 0; j < n; ++j) o += s[j] / sum * v[j * D + e];
      EXPECT_NEAR(out[h * D + e], o, 2e-5) << "head " << h << " element " << e;
    }
  }
  // A cap beyond the context changes nothing.
  std::vector<float> plain(q.size()), loose(q.size());
  attention.run(cache, 0, q.data(), heads, sel, 0.2f, plain.data());
  far.limit = n;
  attention.run(cache, 0, q.data(), heads, sel, 0.2f, loose.data(), far);
  EXPECT_EQ(plain, loose);
}

TEST(GatherKernel, DistanceCapScoresFarKeysAtTheCap) {
  testing::for_each_simd_target([] { expect_distance_cap_scores_far_keys_at_the_cap(); });
}

}  // namespace
}  // namespace ls
