// Dequantization of every supported type on blocks packed by hand from the layouts in
// docs/MODELS.md §2 (the packing here is written independently of the unpacking under test),
// plus the vector kernels against the scalar reference on random blocks, and fp16/bf16.
#include "model/quant.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <immintrin.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/cpu.h"
#include "core/error.h"
#include "core/half.h"
#include "simd_targets.h"

namespace ls {
namespace {

constexpr std::uint16_t kHalf1 = 0x3C00;      // 1.0
constexpr std::uint16_t kHalf0_5 = 0x3800;    // 0.5
constexpr std::uint16_t kHalf0_25 = 0x3400;   // 0.25
constexpr std::uint16_t kHalf0_125 = 0x3000;  // 0.125
constexpr std::uint16_t kHalfMinus1 = 0xBC00;
constexpr std::uint16_t kHalf2 = 0x4000;

// Dequantizes with both the vector and the reference path; on hand-built blocks every value
// is exact, so the two must agree bit for bit.
std::vector<float> dequant(GgmlType type, const void* src, std::int64_t n) {
  std::vector<float> fast(n), ref(n);
  dequantize_row(type, src, fast.data(), n);
  dequantize_row_reference(type, src, ref.data(), n);
  for (std::int64_t i = 0; i < n; ++i) EXPECT_EQ(fast[i], ref[i]) << "element " << i;
  return fast;
}

TEST(Half, Fp16KnownValues) {
  EXPECT_EQ(fp16_to_fp32(0x3C00), 1.0f);
  EXPECT_EQ(fp16_to_fp32(0xC000), -2.0f);
  EXPECT_EQ(fp16_to_fp32(0x7BFF), 65504.0f);
  EXPECT_EQ(fp16_to_fp32(0x0001), 0x1p-24f);  // smallest subnormal
  EXPECT_EQ(fp16_to_fp32(0x0400), 0x1p-14f);  // smallest normal
  EXPECT_TRUE(std::isinf(fp16_to_fp32(0x7C00)));
  EXPECT_TRUE(std::isnan(fp16_to_fp32(0x7E00)));
  EXPECT_TRUE(std::signbit(fp16_to_fp32(0x8000)));
  EXPECT_EQ(fp32_to_fp16(1.0f + 0x1p-11f), 0x3C00);      // tie → even (down)
  EXPECT_EQ(fp32_to_fp16(1.0f + 3 * 0x1p-11f), 0x3C02);  // tie → even (up)
  EXPECT_EQ(fp32_to_fp16(65519.0f), 0x7BFF);
  EXPECT_EQ(fp32_to_fp16(65520.0f), 0x7C00);
  EXPECT_EQ(fp32_to_fp16(0x1p-25f), 0x0000);        // half the smallest subnormal: tie → 0
  EXPECT_EQ(fp32_to_fp16(0x1p-25f * 1.5f), 0x0001);
}

TEST(Half, Fp16RoundTripsEveryValue) {
  for (std::uint32_t h = 0; h < 0x10000; ++h) {
    const auto bits = static_cast<std::uint16_t>(h);
    const float f = fp16_to_fp32(bits);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(fp16_to_fp32(fp32_to_fp16(f))));
      continue;
    }
    ASSERT_EQ(fp32_to_fp16(f), bits) << std::hex << h;
  }
}

// The hardware conversions, compiled for F16C whatever the build's baseline (x86-64-v2 has
// none); the test runs where the CPU has it.
__attribute__((target("f16c"))) std::uint16_t hardware_fp32_to_fp16(float f) {
  return static_cast<std::uint16_t>(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT));
}
__attribute__((target("f16c"))) float hardware_fp16_to_fp32(std::uint16_t h) { return _cvtsh_ss(h); }

TEST(Half, Fp16MatchesHardwareConversion) {
  if (!cpu_features().f16c) GTEST_SKIP() << "this CPU has no F16C";
  std::mt19937 rng(1);
  for (int i = 0; i < 200000; ++i) {
    // Exponents around the fp16 range, including subnormals, overflow and NaN.
    const std::uint32_t bits = (rng() & 0x807FFFFFu) | ((100u + rng() % 60u) << 23);
    const float f = std::bit_cast<float>(i % 1000 == 0 ? static_cast<std::uint32_t>(rng()) : bits);
    const std::uint16_t hw = hardware_fp32_to_fp16(f);
    if (std::isnan(f)) continue;
    ASSERT_EQ(fp32_to_fp16(f), hw) << f;
    ASSERT_EQ(std::bit_cast<std::uint32_t>(fp16_to_fp32(hw)),
              std::bit_cast<std::uint32_t>(hardware_fp16_to_fp32(hw)));
  }
}

TEST(Half, Bf16) {
  EXPECT_EQ(bf16_to_fp32(0x3F80), 1.0f);
  EXPECT_EQ(bf16_to_fp32(0xC040), -3.0f);
  EXPECT_EQ(fp32_to_bf16(1.0f), 0x3F80);
  EXPECT_EQ(fp32_to_bf16(std::bit_cast<float>(0x3F808000u)), 0x3F80);  // tie → even
  EXPECT_EQ(fp32_to_bf16(std::bit_cast<float>(0x3F818000u)), 0x3F82);
  EXPECT_EQ(fp32_to_bf16(std::bit_cast<float>(0x3F808001u)), 0x3F81);
  EXPECT_TRUE(std::isnan(bf16_to_fp32(fp32_to_bf16(std::bit_cast<float>(0x7F800001u)))));
}

TEST(Quant, FloatTypes) {
  const float f32[2] = {1.5f, -2.25f};
  EXPECT_THAT(dequant(GgmlType::F32, f32, 2), ::testing::ElementsAre(1.5f, -2.25f));
  const std::uint16_t f16[3] = {0x3C00, 0xC000, 0x3555};
  EXPECT_THAT(dequant(GgmlType::F16, f16, 3),
              ::testing::ElementsAre(1.0f, -2.0f, fp16_to_fp32(0x3555)));
  // 37 elements: the vector loop plus a scalar tail.
  std::vector<std::uint16_t> bf(37);
  for (int i = 0; i < 37; ++i) bf[i] = fp32_to_bf16(static_cast<float>(i) - 18.0f);
  auto y = dequant(GgmlType::BF16, bf.data(), 37);
  for (int i = 0; i < 37; ++i) EXPECT_EQ(y[i], static_cast<float>(i) - 18.0f);
}

TEST(Quant, Q4_0) {
  BlockQ4_0 b{};
  b.d = kHalf0_5;
  for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<std::uint8_t>(j | ((15 - j) << 4));
  auto y = dequant(GgmlType::Q4_0, &b, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], 0.5f * (j - 8));
    EXPECT_EQ(y[j + 16], 0.5f * (15 - j - 8));
  }
}

TEST(Quant, Q4_1) {
  BlockQ4_1 b[2]{};
  for (int k = 0; k < 2; ++k) {
    b[k].d = k ? kHalf0_25 : kHalf2;
    b[k].m = kHalfMinus1;
    for (int j = 0; j < 16; ++j) b[k].qs[j] = static_cast<std::uint8_t>(((j + k) % 16) | (j << 4));
  }
  auto y = dequant(GgmlType::Q4_1, b, 64);
  for (int k = 0; k < 2; ++k) {
    const float d = k ? 0.25f : 2.0f;
    for (int j = 0; j < 16; ++j) {
      EXPECT_EQ(y[32 * k + j], d * ((j + k) % 16) - 1.0f);
      EXPECT_EQ(y[32 * k + j + 16], d * j - 1.0f);
    }
  }
}

// Q5_0/Q5_1 blocks with low nibbles j, high nibbles 15 − j and a mixed qh pattern.
template <typename Block>
Block q5_block(std::uint16_t d, std::uint32_t qh) {
  Block b{};
  b.d = d;
  std::memcpy(b.qh, &qh, 4);
  for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<std::uint8_t>(j | ((15 - j) << 4));
  return b;
}
int q5_value(int e, std::uint32_t qh) {
  const int low = e < 16 ? e : 15 - (e - 16);
  return low | static_cast<int>(((qh >> e) & 1) << 4);
}

TEST(Quant, Q5_0) {
  const std::uint32_t qh = 0xA5C3F00Fu;
  const auto b = q5_block<BlockQ5_0>(kHalf1, qh);
  auto y = dequant(GgmlType::Q5_0, &b, 32);
  for (int e = 0; e < 32; ++e) EXPECT_EQ(y[e], static_cast<float>(q5_value(e, qh) - 16)) << e;
}

TEST(Quant, Q5_1) {
  const std::uint32_t qh = 0x3C5A0FF1u;
  auto b = q5_block<BlockQ5_1>(kHalf0_5, qh);
  b.m = kHalf2;
  auto y = dequant(GgmlType::Q5_1, &b, 32);
  for (int e = 0; e < 32; ++e) EXPECT_EQ(y[e], 0.5f * q5_value(e, qh) + 2.0f) << e;
}

TEST(Quant, Q8_0) {
  BlockQ8_0 b{};
  b.d = kHalf0_125;
  for (int j = 0; j < 32; ++j) b.qs[j] = static_cast<std::int8_t>(j * 8 - 128);
  auto y = dequant(GgmlType::Q8_0, &b, 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], 0.125f * (j * 8 - 128));
}

// 6-bit scales and mins for the 8 sub-blocks. For j ≥ 4 the top two bits of the scales
// (2, 3, 3, 1) differ from those of the mins (0, 2, 1, 3), so reading a min's high bits from
// the wrong byte shows.
constexpr int kScales[8] = {1, 2, 3, 4, 37, 50, 63, 17};
constexpr int kMins[8] = {5, 6, 7, 8, 13, 33, 20, 63};

// Packs scales/mins into the 12 bytes: s[0..3] scale low 6 bits (j < 4) with the top 2 bits of
// scale j+4 above; s[4..7] the same for mins; s[8..11] the low nibbles of scale and min j+4.
void pack_kquant_scales(std::uint8_t* s) {
  for (int j = 0; j < 4; ++j) {
    s[j] = static_cast<std::uint8_t>(kScales[j] | ((kScales[j + 4] >> 4) << 6));
    s[j + 4] = static_cast<std::uint8_t>(kMins[j] | ((kMins[j + 4] >> 4) << 6));
    s[j + 8] = static_cast<std::uint8_t>((kScales[j + 4] & 15) | ((kMins[j + 4] & 15) << 4));
  }
}

TEST(Quant, KQuantScaleUnpacking) {
  std::uint8_t s[12];
  pack_kquant_scales(s);
  for (int j = 0; j < 8; ++j) {
    std::uint8_t scale, min;
    kquant_scale_min(s, j, &scale, &min);
    EXPECT_EQ(scale, kScales[j]) << j;
    EXPECT_EQ(min, kMins[j]) << j;
  }
}

// The intended 4-bit value of element l of sub-block j.
int k4_value(int j, int l) { return (l * 5 + j * 3) % 16; }

TEST(Quant, Q4_K) {
  BlockQ4_K b{};
  b.d = kHalf0_5;
  b.dmin = kHalf0_25;
  pack_kquant_scales(b.scales);
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) {
      b.qs[32 * c + l] = static_cast<std::uint8_t>(k4_value(2 * c, l) | (k4_value(2 * c + 1, l) << 4));
    }
  }
  auto y = dequant(GgmlType::Q4_K, &b, 256);
  for (int j = 0; j < 8; ++j) {
    for (int l = 0; l < 32; ++l) {
      EXPECT_EQ(y[32 * j + l], 0.5f * kScales[j] * k4_value(j, l) - 0.25f * kMins[j]) << j << "," << l;
    }
  }
}

TEST(Quant, Q5_K) {
  BlockQ5_K b{};
  b.d = kHalf0_125;
  b.dmin = kHalf1;
  pack_kquant_scales(b.scales);
  // Intended 5-bit values; bit 4 of element l of sub-block j goes to bit j of qh[l].
  auto value = [](int j, int l) { return (l * 7 + j * 11 + 3) % 32; };
  for (int j = 0; j < 8; ++j) {
    for (int l = 0; l < 32; ++l) {
      const int q = value(j, l);
      b.qs[32 * (j / 2) + l] |= static_cast<std::uint8_t>((q & 15) << (4 * (j % 2)));
      b.qh[l] |= static_cast<std::uint8_t>((q >> 4) << j);
    }
  }
  auto y = dequant(GgmlType::Q5_K, &b, 256);
  for (int j = 0; j < 8; ++j) {
    for (int l = 0; l < 32; ++l) {
      EXPECT_EQ(y[32 * j + l], 0.125f * kScales[j] * value(j, l) - 1.0f * kMins[j]) << j << "," << l;
    }
  }
}

TEST(Quant, Q6_K) {
  BlockQ6_K b{};
  b.d = kHalf0_5;
  for (int i = 0; i < 16; ++i) b.scales[i] = static_cast<std::int8_t>(i * 9 - 70);
  auto value = [](int e) { return (e * 7 + 3) % 64; };  // unsigned 6-bit, before the −32
  for (int h = 0; h < 2; ++h) {
    for (int l = 0; l < 32; ++l) {
      const int q0 = value(128 * h + l), q1 = value(128 * h + l + 32);
      const int q2 = value(128 * h + l + 64), q3 = value(128 * h + l + 96);
      b.ql[64 * h + l] = static_cast<std::uint8_t>((q0 & 15) | ((q2 & 15) << 4));
      b.ql[64 * h + 32 + l] = static_cast<std::uint8_t>((q1 & 15) | ((q3 & 15) << 4));
      b.qh[32 * h + l] =
          static_cast<std::uint8_t>((q0 >> 4) | ((q1 >> 4) << 2) | ((q2 >> 4) << 4) | ((q3 >> 4) << 6));
    }
  }
  auto y = dequant(GgmlType::Q6_K, &b, 256);
  for (int e = 0; e < 256; ++e) {
    EXPECT_EQ(y[e], 0.5f * b.scales[e / 16] * (value(e) - 32)) << e;
  }
}

void expect_vector_kernels_match_reference_on_random_blocks() {
  struct Case {
    GgmlType type;
    std::vector<int> half_offsets;  // where the block's fp16 fields sit (float types: all)
  };
  const Case cases[] = {{GgmlType::F16, {}},          {GgmlType::BF16, {}},
                        {GgmlType::Q4_0, {0}},        {GgmlType::Q4_1, {0, 2}},
                        {GgmlType::Q5_0, {0}},        {GgmlType::Q5_1, {0, 2}},
                        {GgmlType::Q8_0, {0}},        {GgmlType::Q4_K, {0, 2}},
                        {GgmlType::Q5_K, {0, 2}},     {GgmlType::Q6_K, {208}}};
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> scale(-4, 4);
  for (const Case& c : cases) {
    const GgmlTypeTraits* t = ggml_type_traits(c.type);
    const std::int64_t blocks = 37;
    const std::int64_t n = blocks * t->block_elements;
    std::vector<std::uint8_t> bytes(blocks * t->block_bytes);
    for (auto& byte : bytes) byte = static_cast<std::uint8_t>(rng());
    for (std::int64_t b = 0; b < blocks; ++b) {
      std::uint8_t* block = bytes.data() + b * t->block_bytes;
      if (c.type == GgmlType::F16) {
        const std::uint16_t h = fp32_to_fp16(scale(rng));
        std::memcpy(block, &h, 2);
      } else if (c.type == GgmlType::BF16) {
        const std::uint16_t h = fp32_to_bf16(scale(rng));
        std::memcpy(block, &h, 2);
      }
      for (int offset : c.half_offsets) {
        const std::uint16_t h = fp32_to_fp16(scale(rng));
        std::memcpy(block + offset, &h, 2);
      }
    }
    std::vector<float> fast(n), ref(n);
    dequantize_row(c.type, bytes.data(), fast.data(), n);
    dequantize_row_reference(c.type, bytes.data(), ref.data(), n);
    for (std::int64_t i = 0; i < n; ++i) {
      ASSERT_TRUE(std::isfinite(ref[i]));
      float block_max = 0;
      const std::int64_t start = i / t->block_elements * t->block_elements;
      for (std::int64_t k = start; k < start + t->block_elements; ++k) {
        block_max = std::max(block_max, std::abs(ref[k]));
      }
      ASSERT_LE(std::abs(fast[i] - ref[i]), 1e-6f * block_max)
          << ggml_type_name(c.type) << " element " << i;
    }
  }
}

// Random quant bytes with finite fp16 scales: the vector kernels agree with the reference to
// within fused-multiply-add rounding, relative to the block's magnitude, on every Highway
// target.
TEST(Quant, VectorKernelsMatchReferenceOnRandomBlocks) {
  testing::for_each_simd_target([] { expect_vector_kernels_match_reference_on_random_blocks(); });
}

TEST(Quant, RejectsUnsupportedTypesAndPartialBlocks) {
  std::vector<std::uint8_t> bytes(1024);
  std::vector<float> out(256);
  EXPECT_FALSE(can_dequantize(GgmlType::Q2_K));
  EXPECT_TRUE(can_dequantize(GgmlType::Q6_K));
  EXPECT_THAT([&] { dequantize_row(GgmlType::Q2_K, bytes.data(), out.data(), 256); },
              ::testing::ThrowsMessage<Error>(
                  ::testing::HasSubstr("cannot dequantize tensors of type Q2_K")));
  EXPECT_THAT([&] { dequantize_row(GgmlType::Q4_K, bytes.data(), out.data(), 32); },
              ::testing::ThrowsMessage<Error>(
                  ::testing::HasSubstr("not a multiple of the Q4_K block size 256")));
  EXPECT_THROW(dequantize_row(static_cast<GgmlType>(77), bytes.data(), out.data(), 32), Error);
}

TEST(GgmlType, Traits) {
  EXPECT_EQ(ggml_type_traits(GgmlType::Q4_1)->block_bytes, 20);
  EXPECT_EQ(ggml_type_traits(GgmlType::Q6_K)->block_elements, 256);
  EXPECT_EQ(ggml_type_traits(GgmlType::BF16)->block_bytes, 2);
  EXPECT_EQ(ggml_type_traits(4u), nullptr);  // retired id
  EXPECT_EQ(ggml_type_traits(40u), nullptr);
  EXPECT_EQ(ggml_type_name(4u), "type4");
  // Every known type's size is consistent with the structs used to read it.
  EXPECT_EQ(ggml_type_traits(GgmlType::Q5_K)->block_bytes, static_cast<std::int64_t>(sizeof(BlockQ5_K)));
}

}  // namespace
}  // namespace ls
