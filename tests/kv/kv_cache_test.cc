// KV cache storage (element types, ring layers) and dense decode attention against the naive
// reference attention.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "attn/reference.h"
#include "core/error.h"
#include "core/half.h"
#include "kv/decode_attention.h"
#include "kv/kv_cache.h"
#include "kv/kv_type.h"
#include "simd_targets.h"

namespace ls {
namespace {

constexpr KvType kAllTypes[] = {KvType::F32, KvType::F16, KvType::BF16, KvType::Q8_0};

std::vector<float> normal_values(std::size_t n, unsigned seed, float sigma = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, sigma);
  std::vector<float> out(n);
  for (float& x : out) x = normal(rng);
  return out;
}

TEST(KvType, NamesAndErrors) {
  for (KvType t : kAllTypes) EXPECT_EQ(parse_kv_type(kv_type_name(t)), t);
  try {
    parse_kv_type("q4_0");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("valid: f32, f16, bf16, q8_0"), std::string::npos) << e.what();
  }
  EXPECT_EQ(kv_row_bytes(KvType::F16, 64), 128);
  EXPECT_EQ(kv_row_bytes(KvType::Q8_0, 64), 68);
  EXPECT_THROW(kv_row_bytes(KvType::Q8_0, 48), Error);
}

// Each type's round trip stays within its documented bound, and the bound is not loose by
// orders of magnitude (f16's error is visible, so a type stored as f32 would fail).
TEST(KvType, RoundTripWithinEachTypesBound) {
  const int dim = 256;
  const std::vector<float> x = normal_values(dim * 8, 3, 3.0f);
  for (KvType t : kAllTypes) {
    std::vector<std::uint8_t> row(kv_row_bytes(t, dim) * 8);
    for (int r = 0; r < 8; ++r) kv_encode_row(t, x.data() + r * dim, dim, row.data() + r * kv_row_bytes(t, dim));
    std::vector<float> back(dim * 8), single(dim);
    kv_decode_rows(t, row.data(), 8, dim, back.data());
    double worst = 0.0;
    for (int r = 0; r < 8; ++r) {
      kv_decode_row(t, row.data() + r * kv_row_bytes(t, dim), dim, single.data());
      for (int i = 0; i < dim; ++i) {
        ASSERT_EQ(single[i], back[r * dim + i]);
        const int b0 = i / kQ8BlockSize * kQ8BlockSize;
        float block_max = 0.0f;
        for (int j = b0; j < b0 + kQ8BlockSize; ++j) block_max = std::max(block_max, std::fabs(x[r * dim + j]));
        const double scale = t == KvType::Q8_0 ? block_max : std::fabs(x[r * dim + i]);
        const double err = std::fabs(back[r * dim + i] - x[r * dim + i]);
        ASSERT_LE(err, kv_type_rel_bound(t) * scale + 1e-30) << kv_type_name(t) << " element " << i;
        worst = std::max(worst, scale > 0 ? err / scale : 0.0);
      }
    }
    if (t == KvType::F32) EXPECT_EQ(worst, 0.0);
    else EXPECT_GT(worst, kv_type_rel_bound(t) / 8) << kv_type_name(t);
  }
}

// Encoding equals the scalar conversions of core/half.h (and ggml's q8_0 rounding) bit for bit
// on every Highway target: ties, fp16 subnormals, overflow to inf, NaN payloads, -0, and row
// lengths that leave a tail shorter than a vector.
TEST(KvType, EverySimdTargetEncodesLikeTheScalarConversions) {
  std::vector<float> x = normal_values(96 * 3, 12, 3.0f);
  const std::uint32_t special_bits[] = {
      0x00000000u, 0x80000000u, 0x00000001u, 0x33800000u, 0x33800001u, 0x337FFFFFu,  // 0, -0, tiny, 2^-24 ± ulp
      0x38800000u, 0x387FFFFFu, 0x387FF000u, 0x3F801000u, 0x3F803000u, 0x3F802FFFu,  // smallest normal, f16 ties
      0x477FE000u, 0x477FEFFFu, 0x477FF000u, 0x7F800000u, 0xFF800000u, 0x7F7FFFFFu,  // 65504, 65519.99, 65520, ±inf
      0x7FC00001u, 0xFFA12345u, 0x7F800001u, 0x3F808000u, 0x3F818000u, 0x3F808001u,  // NaNs, bf16 ties
      0xC0490FDBu, 0x3A83126Fu, 0xB8D1B717u, 0x47000000u};
  for (std::size_t i = 0; i < std::size(special_bits); ++i) std::memcpy(&x[i * 7 % x.size()], &special_bits[i], 4);
  testing::for_each_simd_target([&] {
    for (int dim : {40, 96}) {
      for (int r = 0; r < 3; ++r) {
        const float* row = x.data() + r * 96;
        std::vector<std::uint16_t> h(dim), b(dim);
        kv_encode_row(KvType::F16, row, dim, h.data());
        kv_encode_row(KvType::BF16, row, dim, b.data());
        for (int i = 0; i < dim; ++i) {
          ASSERT_EQ(h[i], fp32_to_fp16(row[i])) << "f16 of bits " << std::hex << std::bit_cast<std::uint32_t>(row[i]);
          ASSERT_EQ(b[i], fp32_to_bf16(row[i])) << "bf16 of bits " << std::hex << std::bit_cast<std::uint32_t>(row[i]);
        }
      }
    }
    // q8_0 over finite values, as the scalar code of ggml's quantize_row_q8_0 does it.
    const std::vector<float> y = normal_values(96, 13, 5.0f);
    std::vector<std::uint8_t> q(kv_row_bytes(KvType::Q8_0, 96)), expected(q.size());
    kv_encode_row(KvType::Q8_0, y.data(), 96, q.data());
    for (int b0 = 0; b0 < 96; b0 += kQ8BlockSize) {
      std::uint8_t* block = expected.data() + b0 / kQ8BlockSize * (2 + kQ8BlockSize);
      float amax = 0.0f;
      for (int i = 0; i < kQ8BlockSize; ++i) amax = std::max(amax, std::fabs(y[b0 + i]));
      const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
      const std::uint16_t dh = fp32_to_fp16(d);
      std::memcpy(block, &dh, 2);
      for (int i = 0; i < kQ8BlockSize; ++i) block[2 + i] = std::uint8_t(std::int8_t(std::nearbyint(y[b0 + i] * id)));
    }
    EXPECT_EQ(q, expected);
  });
}

// The vector conversions equal the scalar ones of core/half.h bit for bit on every Highway
// target, for row lengths that leave a tail shorter than a vector.
TEST(KvType, EverySimdTargetDecodesLikeTheScalarConversions) {
  testing::for_each_simd_target([] {
    for (int dim : {32, 40, 96}) {
      const std::vector<float> x = normal_values(dim * 5, 11, 4.0f);
      for (KvType t : kAllTypes) {
        if (t == KvType::Q8_0 && dim % kQ8BlockSize != 0) continue;
        const std::int64_t bytes = kv_row_bytes(t, dim);
        std::vector<std::uint8_t> rows(bytes * 5);
        for (int r = 0; r < 5; ++r) kv_encode_row(t, x.data() + r * dim, dim, rows.data() + r * bytes);
        std::vector<float> got(dim * 5), expected(dim * 5);
        kv_decode_rows(t, rows.data(), 5, dim, got.data());
        for (int r = 0; r < 5; ++r) {
          const std::uint8_t* row = rows.data() + r * bytes;
          for (int i = 0; i < dim; ++i) {
            float& e = expected[r * dim + i];
            std::uint16_t h;
            if (t == KvType::F32) {
              std::memcpy(&e, row + 4 * i, 4);
            } else if (t == KvType::Q8_0) {
              const std::uint8_t* block = row + i / kQ8BlockSize * (2 + kQ8BlockSize);
              std::memcpy(&h, block, 2);
              e = fp16_to_fp32(h) * float(std::int8_t(block[2 + i % kQ8BlockSize]));
            } else {
              std::memcpy(&h, row + 2 * i, 2);
              e = t == KvType::F16 ? fp16_to_fp32(h) : bf16_to_fp32(h);
            }
          }
        }
        EXPECT_EQ(got, expected) << kv_type_name(t) << " dim " << dim;
      }
    }
  });
}

TEST(KvCache, WritesLandAtTheirPositionsInEveryType) {
  for (KvType t : kAllTypes) {
    KvCache cache({/*layers=*/2, /*kv_heads=*/2, /*dim=*/32, /*capacity=*/8, {}, t, t});
    EXPECT_EQ(cache.bytes_per_token(), 2 * 2 * 2 * kv_row_bytes(t, 32));
    // Layer 1: three tokens at positions 0..2, head-major [2][3][32], then one more.
    const std::vector<float> k = normal_values(2 * 3 * 32, 1), v = normal_values(2 * 3 * 32, 2);
    const std::vector<float> k1 = normal_values(2 * 32, 3), v1 = normal_values(2 * 32, 4);
    cache.write(1, 0, 3, k.data(), v.data());
    cache.write_token(1, 3, k1.data(), v1.data());
    cache.set_size(4);
    std::vector<float> rk(2 * 4 * 32), rv(2 * 4 * 32);
    cache.read(1, 0, 4, rk.data(), rv.data());
    for (int g = 0; g < 2; ++g)
      for (int p = 0; p < 4; ++p)
        for (int e = 0; e < 32; ++e) {
          const float ek = p < 3 ? k[(g * 3 + p) * 32 + e] : k1[g * 32 + e];
          const float ev = p < 3 ? v[(g * 3 + p) * 32 + e] : v1[g * 32 + e];
          ASSERT_NEAR(rk[(g * 4 + p) * 32 + e], ek, 0.02 * 4) << kv_type_name(t);
          ASSERT_NEAR(rv[(g * 4 + p) * 32 + e], ev, 0.02 * 4) << kv_type_name(t);
        }
    EXPECT_THROW(cache.write_token(0, 8, k1.data(), v1.data()), Error);
    EXPECT_THROW(cache.set_size(9), Error);
  }
}

// A ring layer keeps the last `window` positions in slot p mod window; a global layer keeps all.
TEST(KvCache, RingLayersKeepTheirWindow) {
  const int dim = 32;
  KvCache cache({2, 1, dim, 100, {0, 8}, KvType::F32, KvType::F32});
  EXPECT_FALSE(cache.is_ring(0));
  EXPECT_TRUE(cache.is_ring(1));
  EXPECT_EQ(cache.slots(1), 8);
  std::vector<float> k(20 * dim), v(20 * dim);
  for (int p = 0; p < 20; ++p)
    for (int e = 0; e < dim; ++e) k[p * dim + e] = float(p), v[p * dim + e] = float(100 + p);
  // 13 tokens in one write (only the last 8 stay), then 7 more one by one.
  cache.write(0, 0, 13, k.data(), v.data());
  cache.write(1, 0, 13, k.data(), v.data());
  cache.set_size(13);
  for (int p = 13; p < 20; ++p) {
    cache.write_token(0, p, k.data() + p * dim, v.data() + p * dim);
    cache.write_token(1, p, k.data() + p * dim, v.data() + p * dim);
    cache.set_size(p + 1);
  }
  EXPECT_EQ(cache.first_held(1, 20), 12);
  std::vector<float> rk(8 * dim), rv(8 * dim);
  cache.read(1, 12, 20, rk.data(), rv.data());
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(rk[i * dim], float(12 + i));
    EXPECT_EQ(rv[i * dim + 5], float(112 + i));
  }
  EXPECT_THROW(cache.read(1, 11, 20, rk.data(), rv.data()), Error);  // position 11 is gone
  std::vector<float> all_k(20 * dim), all_v(20 * dim);
  cache.read(0, 0, 20, all_k.data(), all_v.data());
  EXPECT_EQ(all_k[3 * dim], 3.0f);
  // Bytes: the ring holds 8 tokens, the global layer 20.
  EXPECT_EQ(cache.bytes_used(), (20 + 8) * 2 * dim * 4);
  EXPECT_EQ(cache.bytes_allocated(), (100 + 8) * 2 * dim * 4);
}

// Decode over every type equals the reference over the same (rounded) keys and values, and
// differs from the fp32 reference by no more than the type's rounding allows.
TEST(DecodeAttention, MatchesReferenceAcrossChunksInEveryType) {
  const int layers = 2, kv_heads = 3, heads = 9, dim = 64;
  for (KvType t : kAllTypes) {
    for (std::int64_t n : {1, 7, 256, 700}) {
      KvCache cache({layers, kv_heads, dim, 1024, {}, t, t});
      const std::vector<float> k = normal_values(kv_heads * n * dim, 5), v = normal_values(kv_heads * n * dim, 6);
      const std::vector<float> q = normal_values(heads * dim, 7, 2.0f);
      cache.write(1, 0, n, k.data(), v.data());
      cache.set_size(n);
      std::vector<float> rk(k.size()), rv(v.size());
      cache.read(1, 0, n, rk.data(), rv.data());
      std::vector<float> out(heads * dim), expected(heads * dim), exact(heads * dim);
      DecodeAttention attention;
      attention.run(cache, 1, q.data(), heads, n, 0.125f, out.data());
      AttnInput rounded{q.data(), rk.data(), rv.data(), {heads, kv_heads, 1, n, dim, 0.125f, 0}};
      reference_attention(rounded, expected.data());
      AttnInput in{q.data(), k.data(), v.data(), {heads, kv_heads, 1, n, dim, 0.125f, 0}};
      reference_attention(in, exact.data());
      double worst = 0.0;
      for (int i = 0; i < heads * dim; ++i) {
        ASSERT_NEAR(out[i], expected[i], 1e-4) << kv_type_name(t) << " n " << n << " at " << i;
        worst = std::max(worst, double(std::fabs(out[i] - exact[i])));
      }
      // Scores move by |q|·|Δk|·scale; with |q| ≈ 16, |k| ≈ 8 this is a few times the bound.
      EXPECT_LE(worst, 60 * kv_type_rel_bound(t) + 1e-4) << kv_type_name(t) << " n " << n;
    }
  }
}

// A ring layer's decode attends over exactly the window: equal to windowed reference attention.
TEST(DecodeAttention, RingLayerEqualsWindowedReference) {
  const int heads = 4, kv_heads = 1, dim = 256;
  const std::int64_t window = 300, n = 1000;
  KvCache cache({1, kv_heads, dim, 2048, {window}, KvType::F32, KvType::F32});
  const std::vector<float> k = normal_values(n * dim, 8), v = normal_values(n * dim, 9);
  const std::vector<float> q = normal_values(heads * dim, 10, 0.5f);
  cache.write(0, 0, 600, k.data(), v.data());
  cache.set_size(600);
  for (std::int64_t p = 600; p < n; ++p) {
    cache.write_token(0, p, k.data() + p * dim, v.data() + p * dim);
    cache.set_size(p + 1);
  }
  std::vector<float> out(heads * dim), expected(heads * dim);
  DecodeAttention attention;
  attention.run(cache, 0, q.data(), heads, n, 1.0f / 16, out.data());
  AttnInput in{q.data(), k.data(), v.data(), {heads, kv_heads, 1, n, dim, 1.0f / 16, window}};
  reference_attention(in, expected.data());
  for (int i = 0; i < heads * dim; ++i) ASSERT_NEAR(out[i], expected[i], 1e-5) << i;
}

}  // namespace
}  // namespace ls
