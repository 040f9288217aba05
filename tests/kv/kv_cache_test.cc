// KV cache storage and dense decode attention against the naive reference attention.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "attn/reference.h"
#include "core/error.h"
#include "kv/decode_attention.h"
#include "kv/kv_cache.h"

namespace ls {
namespace {

TEST(KvCache, WritesLandAtTheirPositions) {
  KvCache cache({/*layers=*/2, /*kv_heads=*/2, /*dim=*/4, /*capacity=*/8});
  EXPECT_EQ(cache.bytes_per_token(), 2 * 2 * 2 * 4 * 4);
  // Layer 1: three tokens at positions 0..2, head-major [2][3][4].
  std::vector<float> k(2 * 3 * 4), v(2 * 3 * 4);
  for (int i = 0; i < 24; ++i) k[i] = float(i), v[i] = float(100 + i);
  cache.write(1, 0, 3, k.data(), v.data());
  std::vector<float> k1 = {7, 7, 7, 7, 8, 8, 8, 8}, v1 = {9, 9, 9, 9, 10, 10, 10, 10};
  cache.write_token(1, 3, k1.data(), v1.data());
  cache.set_size(4);
  EXPECT_EQ(cache.size(), 4);
  EXPECT_EQ(cache.keys(1, 1)[2 * 4 + 1], 12 + 2 * 4 + 1);  // head 1, token 2, element 1
  EXPECT_EQ(cache.values(1, 0)[1 * 4 + 3], 100 + 7);
  EXPECT_EQ(cache.keys(1, 1)[3 * 4], 8);
  EXPECT_EQ(cache.values(1, 0)[3 * 4 + 2], 9);
  EXPECT_THROW(cache.write_token(0, 8, k1.data(), v1.data()), Error);
  EXPECT_THROW(cache.set_size(9), Error);
}

TEST(DecodeAttention, MatchesReferenceAcrossChunks) {
  const int layers = 2, kv_heads = 3, heads = 9, dim = 64;
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (std::int64_t n : {1, 7, 256, 700}) {
    KvCache cache({layers, kv_heads, dim, 1024});
    std::vector<float> k(kv_heads * n * dim), v(kv_heads * n * dim), q(heads * dim);
    for (float& x : k) x = normal(rng);
    for (float& x : v) x = normal(rng);
    for (float& x : q) x = 2.0f * normal(rng);
    cache.write(1, 0, n, k.data(), v.data());
    cache.set_size(n);
    std::vector<float> out(heads * dim), expected(heads * dim);
    DecodeAttention attention;
    attention.run(cache, 1, q.data(), heads, n, 0.125f, out.data());
    AttnInput in{q.data(), k.data(), v.data(), {heads, kv_heads, 1, n, dim, 0.125f, 0}};
    reference_attention(in, expected.data());
    for (int i = 0; i < heads * dim; ++i) ASSERT_NEAR(out[i], expected[i], 1e-4) << "n " << n << " at " << i;
  }
}

}  // namespace
}  // namespace ls
