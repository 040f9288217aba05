// The int8 matmul kernels in portable C++: the path for CPUs without AVX2, and the reference
// the SIMD paths must equal to the bit (tests/model/matmul_test.cc). Same integer dot
// products, same order of fused multiply-adds (matmul_kernels.h).
#include <cmath>
#include <cstdint>
#include <cstring>

#include "model/matmul_kernels.h"

namespace ls::matmul_detail {

namespace {

float half(const std::uint8_t* p) {
  std::uint16_t h;
  std::memcpy(&h, p, 2);
  const std::uint32_t sign = std::uint32_t(h & 0x8000u) << 16, exponent = (h >> 10) & 0x1Fu, mantissa = h & 0x3FFu;
  std::uint32_t bits;
  if (exponent == 0x1F) bits = sign | 0x7F800000u | (mantissa << 13);
  else if (exponent == 0) {
    const float magnitude = float(mantissa) * 0x1p-24f;
    return sign ? -magnitude : magnitude;
  } else bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

float f32(const std::uint8_t* p) {
  float f;
  std::memcpy(&f, p, 4);
  return f;
}

void quantize(const float* x, std::int64_t blocks, std::int8_t* q, float* d, std::int32_t* s, float* ds,
              std::int32_t* half_s) {
  for (std::int64_t b = 0; b < blocks; ++b, x += kBlock, q += kBlock) {
    float amax = 0.0f;
    for (int j = 0; j < kBlock; ++j) amax = std::fmax(amax, std::fabs(x[j]));
    const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
    std::int32_t sums[2] = {0, 0};
    for (int j = 0; j < kBlock; ++j) {
      const float v = std::nearbyint(x[j] * inv);  // round half to even, as the SIMD conversions
      q[j] = static_cast<std::int8_t>(v > 127.0f ? 127 : v < -128.0f ? -128 : int(v));
      sums[j / 16] += q[j];
    }
    d[b] = amax / 127.0f;
    s[b] = sums[0] + sums[1];
    ds[b] = d[b] * float(s[b]);
    half_s[2 * b] = sums[0];
    half_s[2 * b + 1] = sums[1];
  }
}

// Weight quant of row `r`, column `c` (0..31) of a tile.
int weight(Packing p, const std::uint8_t* tile, int r, int c) {
  if (p == Packing::Q4_1x16) {
    const int i = (c % 16) / 4, j = c % 4;
    const std::uint8_t byte = tile[64 * i + 4 * r + j];
    return c < 16 ? byte & 15 : byte >> 4;
  }
  const std::uint8_t byte = tile[64 * (c / 4) + 4 * r + c % 4];
  return p == Packing::U8x16 ? int(byte) : int(byte) - 128;
}

void gemm(const GemmArgs& a, std::int64_t g_begin, std::int64_t g_end, std::int64_t t_begin, std::int64_t t_end) {
  const std::int64_t tile = tile_bytes(a.packing), cols = a.blocks * kBlock;
  for (std::int64_t g = g_begin; g < g_end; ++g) {
    const std::uint8_t* tiles = a.tiles + g * a.blocks * tile;
    const int valid = int(a.rows - g * kGroupRows < kGroupRows ? a.rows - g * kGroupRows : kGroupRows);
    for (std::int64_t t = t_begin; t < t_end; ++t) {
      const std::int8_t* xq = a.x.q + t * cols;
      for (int r = 0; r < valid; ++r) {
        float acc = 0.0f;
        for (std::int64_t b = 0; b < a.blocks; ++b) {
          const std::uint8_t* w = tiles + b * tile;
          const float dx = a.x.d[t * a.blocks + b];
          std::int32_t dot[2] = {0, 0};
          for (int c = 0; c < kBlock; ++c) dot[c / 16] += weight(a.packing, w, r, c) * xq[b * kBlock + c];
          switch (a.packing) {
            case Packing::Q8_0x16:
              acc = std::fma(float(dot[0] + dot[1]), half(w + 512 + 2 * r) * dx, acc);
              break;
            case Packing::Q6_Kx16:
              acc = std::fma(float(dot[0]), f32(w + 512 + 4 * r) * dx, acc);
              acc = std::fma(float(dot[1]), f32(w + 576 + 4 * r) * dx, acc);
              break;
            case Packing::Q4_1x16:
            case Packing::U8x16: {
              const int scales = a.packing == Packing::Q4_1x16 ? 256 : 512;
              acc = std::fma(float(dot[0] + dot[1]), half(w + scales + 2 * r) * dx, acc);
              acc = std::fma(half(w + scales + 32 + 2 * r), a.x.ds[t * a.blocks + b], acc);
              break;
            }
            case Packing::Dense: break;
          }
        }
        a.y[t * a.rows + g * kGroupRows + r] = acc;
      }
    }
  }
}

}  // namespace

const Int8Kernels& kernels_generic() {
  static const Int8Kernels k{"generic", quantize, gemm};
  return k;
}

}  // namespace ls::matmul_detail
