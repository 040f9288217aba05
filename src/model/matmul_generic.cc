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

// Activation rows per pass over a tile group: their accumulators stay in a small array while
// each tile is unpacked once.
constexpr std::int64_t kRows = 64;

void gemm(const GemmArgs& a, std::int64_t g_begin, std::int64_t g_end, std::int64_t t_begin, std::int64_t t_end) {
  const std::int64_t tile = tile_bytes(a.packing), cols = a.blocks * kBlock;
  std::int16_t w[kGroupRows][kBlock];
  float acc[kRows][kGroupRows];
  for (std::int64_t g = g_begin; g < g_end; ++g) {
    const std::uint8_t* tiles = a.tiles + g * a.blocks * tile;
    const int valid = int(a.rows - g * kGroupRows < kGroupRows ? a.rows - g * kGroupRows : kGroupRows);
    for (std::int64_t t0 = t_begin; t0 < t_end; t0 += kRows) {
      const std::int64_t n = t_end - t0 < kRows ? t_end - t0 : kRows;
      for (std::int64_t t = 0; t < n; ++t)
        for (int r = 0; r < kGroupRows; ++r) acc[t][r] = 0.0f;
      for (std::int64_t b = 0; b < a.blocks; ++b) {
        const std::uint8_t* wt = tiles + b * tile;
        for (int r = 0; r < kGroupRows; ++r)
          for (int c = 0; c < kBlock; ++c) w[r][c] = static_cast<std::int16_t>(weight(a.packing, wt, r, c));
        for (std::int64_t t = 0; t < n; ++t) {
          const std::int64_t xb = (t0 + t) * a.blocks + b;
          const std::int8_t* xq = a.x.q + (t0 + t) * cols + b * kBlock;
          const float dx = a.x.d[xb];
          for (int r = 0; r < valid; ++r) {
            std::int32_t lo = 0, hi = 0;
            for (int c = 0; c < 16; ++c) lo += w[r][c] * xq[c];
            for (int c = 16; c < kBlock; ++c) hi += w[r][c] * xq[c];
            float& out = acc[t][r];
            switch (a.packing) {
              case Packing::Q8_0x16: out = std::fma(float(lo + hi), half(wt + 512 + 2 * r) * dx, out); break;
              case Packing::Q6_Kx16:
                out = std::fma(float(lo), f32(wt + 512 + 4 * r) * dx, out);
                out = std::fma(float(hi), f32(wt + 576 + 4 * r) * dx, out);
                break;
              case Packing::Q4_1x16:
              case Packing::U8x16: {
                const int scales = a.packing == Packing::Q4_1x16 ? 256 : 512;
                out = std::fma(float(lo + hi), half(wt + scales + 2 * r) * dx, out);
                out = std::fma(half(wt + scales + 32 + 2 * r), a.x.ds[xb], out);
                break;
              }
              case Packing::Dense: break;
            }
          }
        }
      }
      for (std::int64_t t = 0; t < n; ++t)
        for (int r = 0; r < valid; ++r) a.y[(t0 + t) * a.rows + g * kGroupRows + r] = acc[t][r];
    }
  }
}

}  // namespace

const Int8Kernels& kernels_generic() {
  static const Int8Kernels k{"generic", quantize, gemm};
  return k;
}

}  // namespace ls::matmul_detail
