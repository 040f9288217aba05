// Quantized matmul kernels against a naive dequantize-then-double reference, on random weights
// built block by block from the GGUF layouts (docs/MODELS.md §2), with shapes that are not
// multiples of the 16-row tile or the 4-token activation tile.
#include "model/matmul.h"

#include "core/cpu.h"
#include "core/error.h"
#include "core/half.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

namespace ls {
namespace {

// The scalar conversions (tests/model/quant_test.cc checks them against F16C bit for bit):
// the build's baseline (x86-64-v2) has no F16C.
std::uint16_t to_half(float f) { return fp32_to_fp16(f); }
float from_half(std::uint16_t h) { return fp16_to_fp32(h); }

// Random file-layout weight [rows][cols] plus its exact values (as the format defines them).
struct TestWeight {
  GgmlType type;
  std::int64_t rows, cols;
  std::vector<std::uint8_t> bytes;
  std::vector<double> values;  // [rows][cols]
};

TestWeight make_weight(GgmlType type, std::int64_t rows, std::int64_t cols, std::mt19937& rng) {
  TestWeight w{type, rows, cols, {}, std::vector<double>(rows * cols)};
  std::uniform_real_distribution<float> scale(0.001f, 0.05f), shift(-0.4f, 0.1f);
  std::uniform_int_distribution<int> nibble(0, 15), byte(-128, 127);
  std::int64_t blocks = cols / 32;
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t b = 0; b < blocks; ++b) {
      double* out = &w.values[r * cols + b * 32];
      std::uint16_t d = to_half(scale(rng));
      if (type == GgmlType::Q4_1) {
        std::uint16_t m = to_half(shift(rng));
        std::uint8_t block[20];
        std::memcpy(block, &d, 2);
        std::memcpy(block + 2, &m, 2);
        for (int j = 0; j < 16; ++j) {
          int lo = nibble(rng), hi = nibble(rng);
          block[4 + j] = static_cast<std::uint8_t>(lo | hi << 4);
          out[j] = double(from_half(d)) * lo + from_half(m);
          out[j + 16] = double(from_half(d)) * hi + from_half(m);
        }
        w.bytes.insert(w.bytes.end(), block, block + 20);
      } else if (type == GgmlType::Q4_0) {
        std::uint8_t block[18];
        std::memcpy(block, &d, 2);
        for (int j = 0; j < 16; ++j) {
          int lo = nibble(rng), hi = nibble(rng);
          block[2 + j] = static_cast<std::uint8_t>(lo | hi << 4);
          out[j] = double(from_half(d)) * (lo - 8);
          out[j + 16] = double(from_half(d)) * (hi - 8);
        }
        w.bytes.insert(w.bytes.end(), block, block + 18);
      } else if (type == GgmlType::Q5_1) {
        std::uint8_t block[24] = {};
        const std::uint16_t m = to_half(shift(rng));
        std::memcpy(block, &d, 2);
        std::memcpy(block + 2, &m, 2);
        std::uint32_t qh = 0;
        for (int j = 0; j < 32; ++j) {
          const int q = nibble(rng) | (nibble(rng) & 1) << 4;  // 0..31
          if (q & 16) qh |= 1u << j;
          block[8 + j % 16] |= static_cast<std::uint8_t>((q & 15) << (j < 16 ? 0 : 4));
          out[j] = double(from_half(d)) * q + from_half(m);
        }
        std::memcpy(block + 4, &qh, 4);
        w.bytes.insert(w.bytes.end(), block, block + 24);
      } else if (type == GgmlType::Q5_K) {
        // As Q4_K below, plus bit `sub` of qh[l] as the 5th bit of element l of sub-block sub.
        if (b % 8 != 0) continue;
        std::uint8_t block[176] = {};
        const std::uint16_t dmin = to_half(scale(rng));
        std::memcpy(block, &d, 2);
        std::memcpy(block + 2, &dmin, 2);
        int sc[8], mn[8];
        for (int j = 0; j < 8; ++j) sc[j] = nibble(rng) * 4 + 1, mn[j] = nibble(rng) * 4 + 2;
        for (int j = 0; j < 4; ++j) {
          block[4 + j] = static_cast<std::uint8_t>(sc[j] | (sc[j + 4] >> 4) << 6);
          block[4 + j + 4] = static_cast<std::uint8_t>(mn[j] | (mn[j + 4] >> 4) << 6);
          block[4 + j + 8] = static_cast<std::uint8_t>((sc[j + 4] & 15) | (mn[j + 4] & 15) << 4);
        }
        for (int e = 0; e < 256; ++e) {
          const int sub = e / 32, l = e % 32, q = nibble(rng) | (nibble(rng) & 1) << 4;
          block[48 + (sub / 2) * 32 + l] |= static_cast<std::uint8_t>((q & 15) << (sub % 2 ? 4 : 0));
          block[16 + l] |= static_cast<std::uint8_t>((q >> 4) << sub);
          out[e] = double(from_half(d)) * sc[sub] * q - double(from_half(dmin)) * mn[sub];
        }
        w.bytes.insert(w.bytes.end(), block, block + 176);
      } else if (type == GgmlType::Q5_0) {
        std::uint8_t block[22] = {};
        std::memcpy(block, &d, 2);
        std::uint32_t qh = 0;
        for (int j = 0; j < 32; ++j) {
          const int q = nibble(rng) | (nibble(rng) & 1) << 4;  // 0..31
          if (q & 16) qh |= 1u << j;
          block[6 + j % 16] |= static_cast<std::uint8_t>((q & 15) << (j < 16 ? 0 : 4));
          out[j] = double(from_half(d)) * (q - 16);
        }
        std::memcpy(block + 2, &qh, 4);
        w.bytes.insert(w.bytes.end(), block, block + 22);
      } else if (type == GgmlType::Q4_K) {
        // One super-block per 256 columns: plain scales (< 64) and mins, so the values are
        // d·sc·q − dmin·m per 32-element sub-block.
        if (b % 8 != 0) continue;
        std::uint8_t block[144] = {};
        const std::uint16_t dmin = to_half(scale(rng));
        std::memcpy(block, &d, 2);
        std::memcpy(block + 2, &dmin, 2);
        int sc[8], mn[8];
        for (int j = 0; j < 8; ++j) sc[j] = nibble(rng) * 4 + 3, mn[j] = nibble(rng) * 4;
        for (int j = 0; j < 4; ++j) {
          block[4 + j] = static_cast<std::uint8_t>(sc[j] | (sc[j + 4] >> 4) << 6);
          block[4 + j + 4] = static_cast<std::uint8_t>(mn[j] | (mn[j + 4] >> 4) << 6);
          block[4 + j + 8] = static_cast<std::uint8_t>((sc[j + 4] & 15) | (mn[j + 4] & 15) << 4);
        }
        for (int e = 0; e < 256; ++e) {
          const int sub = e / 32, q = nibble(rng);
          // Pairs of sub-blocks share 32 bytes: low nibbles the first, high nibbles the second.
          block[16 + (sub / 2) * 32 + e % 32] |= static_cast<std::uint8_t>(q << (sub % 2 ? 4 : 0));
          out[e] = double(from_half(d)) * sc[sub] * q - double(from_half(dmin)) * mn[sub];
        }
        w.bytes.insert(w.bytes.end(), block, block + 144);
      } else if (type == GgmlType::Q6_K) {
        // One super-block per 256 columns: 16 signed sub-block scales, 6-bit quants split into
        // ql (low nibbles) and qh (2 high bits), values d·sc·(q − 32) per 16 elements.
        if (b % 8 != 0) continue;
        std::uint8_t block[210] = {};
        std::int8_t sc[16];
        for (std::int8_t& v : sc) v = static_cast<std::int8_t>(byte(rng));
        std::memcpy(block + 192, sc, 16);
        std::memcpy(block + 208, &d, 2);
        for (int e = 0; e < 256; ++e) {
          const int q = nibble(rng) | (nibble(rng) & 3) << 4;  // 0..63
          const int h = e / 128, l = e % 32, k = (e % 128) / 32;
          block[64 * h + l + (k % 2) * 32] |= static_cast<std::uint8_t>((q & 15) << (k / 2 ? 4 : 0));
          block[128 + 32 * h + l] |= static_cast<std::uint8_t>((q >> 4) << (2 * k));
          out[e] = double(from_half(d)) * sc[e / 16] * (q - 32);
        }
        w.bytes.insert(w.bytes.end(), block, block + 210);
      } else {
        std::uint8_t block[34];
        std::memcpy(block, &d, 2);
        for (int j = 0; j < 32; ++j) {
          int q = byte(rng);
          block[2 + j] = static_cast<std::uint8_t>(static_cast<std::int8_t>(q));
          out[j] = double(from_half(d)) * q;
        }
        w.bytes.insert(w.bytes.end(), block, block + 34);
      }
    }
  }
  return w;
}

void check_matmul(GgmlType type, std::int64_t rows, std::int64_t cols, std::int64_t m, MatmulRoute route,
                  unsigned seed) {
  std::mt19937 rng(seed);
  TestWeight tw = make_weight(type, rows, cols, rng);
  WeightMatrix w = WeightMatrix::from_part({type, rows, cols, tw.bytes.data()});
  ASSERT_EQ(w.rows(), rows);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(m * cols), y(m * rows, -999.0f);
  for (float& v : x) v = normal(rng);
  x[0] = 0.0f;
  Matmul matmul;
  matmul.run(w, x.data(), m, y.data(), route);
  for (std::int64_t t = 0; t < m; ++t) {
    for (std::int64_t r = 0; r < rows; ++r) {
      double exact = 0.0, bound = 0.0;
      for (std::int64_t b = 0; b < cols / 32; ++b) {
        double amax = 0.0, abs_w = 0.0;
        for (int j = 0; j < 32; ++j) {
          std::int64_t c = b * 32 + j;
          exact += tw.values[r * cols + c] * x[t * cols + c];
          amax = std::max(amax, double(std::fabs(x[t * cols + c])));
          abs_w += std::fabs(tw.values[r * cols + c]);
        }
        // int8 activations: each element is off by at most half a quantization step.
        double step = route == MatmulRoute::Int8 ? amax / 127.0 : 0.0;
        bound += abs_w * (0.5 * step + 1e-5 * amax);
      }
      ASSERT_NEAR(y[t * rows + r], exact, bound + 1e-5)
          << "type " << int(type) << " row " << r << " token " << t << " of " << m;
    }
  }
}

TEST(Matmul, Q4_1Int8MatchesReference) {
  for (std::int64_t m : {1, 3, 4, 6, 9}) check_matmul(GgmlType::Q4_1, 37, 160, m, MatmulRoute::Int8, 1 + m);
  check_matmul(GgmlType::Q4_1, 64, 576, 2, MatmulRoute::Int8, 11);
}

TEST(Matmul, Q8_0Int8MatchesReference) {
  for (std::int64_t m : {1, 2, 5, 8}) check_matmul(GgmlType::Q8_0, 21, 96, m, MatmulRoute::Int8, 20 + m);
  check_matmul(GgmlType::Q8_0, 48, 576, 1, MatmulRoute::Int8, 31);
}

// Q5_0 runs the Q8_0 int8 kernel (its values are exact Q8_0 values), Q4_K the Q4_1 kernel (its
// sub-blocks are Q4_1 blocks with fp16-rounded scales, inside the bound's 1e-5·max|x| term).
TEST(Matmul, Q5_0AndQ4_KMatchReferenceOnBothRoutes) {
  std::vector<std::uint8_t> q5(22 * 5), q4k(144 * 2);
  EXPECT_TRUE(WeightMatrix::from_part({GgmlType::Q5_0, 1, 160, q5.data()}).has_int8_kernel());
  EXPECT_TRUE(WeightMatrix::from_part({GgmlType::Q4_K, 1, 512, q4k.data()}).has_int8_kernel());
  for (MatmulRoute route : {MatmulRoute::Int8, MatmulRoute::Sgemm})
    for (std::int64_t m : {1, 3, 6, 9}) {
      check_matmul(GgmlType::Q5_0, 37, 160, m, route, 60 + m);
      check_matmul(GgmlType::Q4_K, 21, 512, m, route, 70 + m);
    }
}

// Q6_K has its own kernel: two exact fp32 scales per block of 32 (one per sub-block of 16).
TEST(Matmul, Q6_KMatchesReferenceOnBothRoutes) {
  std::vector<std::uint8_t> q6k(210 * 2);
  EXPECT_TRUE(WeightMatrix::from_part({GgmlType::Q6_K, 1, 512, q6k.data()}).has_int8_kernel());
  for (MatmulRoute route : {MatmulRoute::Int8, MatmulRoute::Sgemm})
    for (std::int64_t m : {1, 2, 4, 5, 9}) check_matmul(GgmlType::Q6_K, 37, 512, m, route, 80 + m);
  check_matmul(GgmlType::Q6_K, 16, 256, 1, MatmulRoute::Int8, 90);
}

TEST(Matmul, MixedQ5_0AndQ8_0PartsStackOnTheInt8Kernel) {
  std::mt19937 rng(9);
  TestWeight a = make_weight(GgmlType::Q5_0, 20, 64, rng), b = make_weight(GgmlType::Q8_0, 13, 64, rng);
  WeightPart parts[] = {{GgmlType::Q5_0, 20, 64, a.bytes.data()}, {GgmlType::Q8_0, 13, 64, b.bytes.data()}};
  WeightMatrix stacked = WeightMatrix::from_parts(parts);
  EXPECT_TRUE(stacked.has_int8_kernel());
  std::vector<float> x(64), y(33), rows(33 * 64);
  for (int i = 0; i < 64; ++i) x[i] = std::cos(0.7 * i);
  stacked.dequantize_rows(0, 33, rows.data());
  Matmul matmul;
  for (MatmulRoute route : {MatmulRoute::Int8, MatmulRoute::Sgemm}) {
    matmul.run(stacked, x.data(), 1, y.data(), route);
    for (int r = 0; r < 33; ++r) {
      const std::vector<double>& values = r < 20 ? a.values : b.values;
      double exact = 0.0, abs_sum = 0.0;
      for (int c = 0; c < 64; ++c) {
        exact += values[(r < 20 ? r : r - 20) * 64 + c] * x[c];
        abs_sum += std::fabs(values[(r < 20 ? r : r - 20) * 64 + c]);
        EXPECT_NEAR(rows[r * 64 + c], values[(r < 20 ? r : r - 20) * 64 + c], 1e-6);
      }
      // int8 activations: off by at most half a step of max|x| / 127 = 1/254.
      EXPECT_NEAR(y[r], exact, (route == MatmulRoute::Int8 ? abs_sum / 254 : 0.0) + 1e-4) << "row " << r;
    }
  }
}

TEST(Matmul, SgemmRouteMatchesReference) {
  for (std::int64_t m : {1, 7, 33}) {
    check_matmul(GgmlType::Q4_1, 37, 160, m, MatmulRoute::Sgemm, 40 + m);
    check_matmul(GgmlType::Q8_0, 19, 96, m, MatmulRoute::Sgemm, 50 + m);
  }
}

TEST(Matmul, StackedPartsEqualSeparateProducts) {
  std::mt19937 rng(7);
  TestWeight a = make_weight(GgmlType::Q4_1, 20, 64, rng), b = make_weight(GgmlType::Q4_1, 13, 64, rng);
  WeightPart parts[] = {{GgmlType::Q4_1, 20, 64, a.bytes.data()}, {GgmlType::Q4_1, 13, 64, b.bytes.data()}};
  WeightMatrix stacked = WeightMatrix::from_parts(parts);
  WeightMatrix only_b = WeightMatrix::from_part(parts[1]);
  std::vector<float> x(64), y_stacked(33), y_b(13);
  for (int i = 0; i < 64; ++i) x[i] = std::sin(0.3 * i);
  Matmul matmul;
  for (MatmulRoute route : {MatmulRoute::Int8, MatmulRoute::Sgemm}) {
    matmul.run(stacked, x.data(), 1, y_stacked.data(), route);
    matmul.run(only_b, x.data(), 1, y_b.data(), route);
    for (int r = 0; r < 13; ++r) EXPECT_NEAR(y_stacked[20 + r], y_b[r], 1e-5);
  }
}

TEST(Matmul, DequantizeRowsMatchesFormat) {
  std::mt19937 rng(3);
  // Packed matrices dequantize from their tiles (the file's copy may be gone), Q4_K / Q5_K matrices
  // from the file's exact blocks: rows across a 16-row group boundary, every packed type.
  for (GgmlType type : {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0,
                        GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K}) {
    const std::int64_t rows = 21, cols = 512;
    TestWeight tw = make_weight(type, rows, cols, rng);
    WeightMatrix w = WeightMatrix::from_part({type, rows, cols, tw.bytes.data()});
    if (type != GgmlType::Q4_K && type != GgmlType::Q5_K) std::vector<std::uint8_t>().swap(tw.bytes);  // nothing reads it now
    std::vector<float> out(6 * cols);
    w.dequantize_rows(13, 6, out.data());
    for (std::int64_t i = 0; i < 6 * cols; ++i) {
      const double v = tw.values[13 * cols + i];
      ASSERT_NEAR(out[i], v, 1e-6) << "type " << int(type) << " element " << i;
    }
  }
}

TEST(Matmul, RejectsRowsThatAreNotWholeBlocks) {
  std::vector<std::uint8_t> bytes(100);
  EXPECT_THROW(WeightMatrix::from_part({GgmlType::Q4_1, 1, 48, bytes.data()}), Error);
}

}  // namespace
}  // namespace ls
namespace ls {
namespace {

// Every weight type that has an int8 packing, with a row length its blocks divide.
struct PackedType {
  GgmlType type;
  std::int64_t cols;
};
constexpr PackedType kPackedTypes[] = {{GgmlType::Q4_0, 160}, {GgmlType::Q4_1, 160}, {GgmlType::Q5_0, 160},
                                       {GgmlType::Q5_1, 96},  {GgmlType::Q8_0, 96},  {GgmlType::Q4_K, 512},
                                       {GgmlType::Q5_K, 512}, {GgmlType::Q6_K, 512}};

// Forces the kernels' ISA for a scope.
class ScopedIsa {
 public:
  explicit ScopedIsa(Isa isa) : previous_(force_isa(isa)) {}
  ~ScopedIsa() { force_isa(previous_); }

 private:
  Isa previous_;
};

TEST(Matmul, EveryPackedTypeMatchesReferenceOnTheGenericKernel) {
  ScopedIsa generic(Isa::Generic);
  unsigned seed = 100;
  for (const PackedType& p : kPackedTypes) {
    std::vector<std::uint8_t> bytes(4096);
    EXPECT_TRUE(WeightMatrix::from_part({p.type, 1, p.cols, bytes.data()}).has_int8_kernel()) << int(p.type);
    for (std::int64_t m : {1, 3, 6}) check_matmul(p.type, 37, p.cols, m, MatmulRoute::Int8, ++seed);
  }
}

// Each SIMD path equals the generic kernel to the bit (same integer dot products, same order
// of fused multiply-adds): odd row counts, single rows, the 4-row tiles' remainders, and more
// rows than a work item's chunk of 128.
void expect_isa_equals_generic(Isa isa) {
  if (!cpu_runs(isa)) GTEST_SKIP() << "this CPU (" << cpu_name() << ") cannot run " << isa_name(isa);
  unsigned seed = 200;
  for (const PackedType& p : kPackedTypes) {
    for (std::int64_t rows : {16, 53}) {
      std::mt19937 rng(++seed);
      TestWeight tw = make_weight(p.type, rows, p.cols, rng);
      WeightMatrix w = WeightMatrix::from_part({p.type, rows, p.cols, tw.bytes.data()});
      for (std::int64_t m : {1, 2, 3, 5, 8, 131}) {
        std::vector<float> x(m * p.cols), y_isa(m * rows, -1.0f), y_generic(m * rows, -2.0f);
        std::normal_distribution<float> normal(0.0f, 1.0f);
        for (float& v : x) v = normal(rng);
        Matmul matmul;
        {
          ScopedIsa scoped(Isa::Generic);
          matmul.run(w, x.data(), m, y_generic.data(), MatmulRoute::Int8);
        }
        {
          ScopedIsa scoped(isa);
          EXPECT_STREQ(int8_kernel_name(), isa_name(isa));
          matmul.run(w, x.data(), m, y_isa.data(), MatmulRoute::Int8);
        }
        for (std::int64_t i = 0; i < m * rows; ++i)
          ASSERT_EQ(y_isa[i], y_generic[i]) << isa_name(isa) << " type " << int(p.type) << " rows " << rows << " m " << m
                                            << " element " << i;
      }
    }
  }
  ScopedIsa scoped(isa);  // and against the double reference on a larger shape
  check_matmul(GgmlType::Q4_K, 70, 1024, 9, MatmulRoute::Int8, 7);
  check_matmul(GgmlType::Q8_0, 70, 1024, 130, MatmulRoute::Int8, 8);
}

TEST(Matmul, Avx2KernelEqualsGenericBitForBit) { expect_isa_equals_generic(Isa::Avx2); }
TEST(Matmul, AvxVnniKernelEqualsGenericBitForBit) { expect_isa_equals_generic(Isa::AvxVnni); }
TEST(Matmul, Avx512VnniKernelEqualsGenericBitForBit) { expect_isa_equals_generic(Isa::Avx512Vnni); }

TEST(Matmul, ForcingAnIsaTheCpuCannotRunIsAnError) {
  for (Isa isa : {Isa::Avx2, Isa::AvxVnni, Isa::Avx512Vnni})
    if (!cpu_runs(isa)) EXPECT_THROW(force_isa(isa), Error);
  EXPECT_EQ(force_isa(best_isa()), active_isa());
  Isa parsed;
  EXPECT_TRUE(isa_from_name("avx2", &parsed));
  EXPECT_EQ(parsed, Isa::Avx2);
  EXPECT_FALSE(isa_from_name("sse9", &parsed));
}

}  // namespace
}  // namespace ls
