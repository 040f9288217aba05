// The int8 matmul kernels on AVX-512 VNNI (compiled for that ISA only; matmul_kernels.h).
//
// Register blocking: 2 tile groups (32 output rows) × 4 activation rows per step. For each
// 32-column block, 8 `vpdpbusd` per (group, activation row) accumulate in two int32 chains
// (columns 0..15 and 16..31, which Q6_K scales apart), the 4-byte activation groups come as
// embedded broadcasts, and each weight register is used by 4 activation rows; then each
// chain is converted once and scaled into the fp32 accumulator. 16 int32 + 8 fp32
// accumulators + 4 weight registers fit the 32 ZMM registers.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "model/matmul_kernels.h"

#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12, inside its own reduction intrinsics

namespace ls::matmul_detail {

namespace {

inline std::int32_t load_i32(const void* p) {
  std::int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

void quantize(const float* x, std::int64_t blocks, std::int8_t* q, float* d, std::int32_t* s, float* ds,
              std::int32_t* half_s) {
  for (std::int64_t b = 0; b < blocks; ++b) {
    const __m512 x0 = _mm512_loadu_ps(x + b * kBlock), x1 = _mm512_loadu_ps(x + b * kBlock + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(x0), _mm512_abs_ps(x1)));
    const __m512 inv = _mm512_set1_ps(amax > 0.0f ? 127.0f / amax : 0.0f);
    const __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(x0, inv));  // round half to even
    const __m512i q1 = _mm512_cvtps_epi32(_mm512_mul_ps(x1, inv));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + b * kBlock), _mm512_cvtsepi32_epi8(q0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + b * kBlock + 16), _mm512_cvtsepi32_epi8(q1));
    d[b] = amax / 127.0f;
    half_s[2 * b] = _mm512_reduce_add_epi32(q0);
    half_s[2 * b + 1] = _mm512_reduce_add_epi32(q1);
    s[b] = half_s[2 * b] + half_s[2 * b + 1];
    ds[b] = d[b] * float(s[b]);
  }
}

// G groups (at tiles + g·group_stride) × T activation rows from t0.
template <Packing P, int G, int T>
void block_gemm(const GemmArgs& a, const std::uint8_t* tiles, std::int64_t group_stride, std::int64_t t0,
                float* const* y, const __mmask16* masks) {
  constexpr std::int64_t kTile = tile_bytes(P);
  const std::int64_t blocks = a.blocks, cols = blocks * kBlock;
  const std::int8_t* xq[T];
  for (int t = 0; t < T; ++t) xq[t] = a.x.q + (t0 + t) * cols;
  __m512 acc[G][T];
  for (int g = 0; g < G; ++g)
    for (int t = 0; t < T; ++t) acc[g][t] = _mm512_setzero_ps();
  for (std::int64_t b = 0; b < blocks; ++b) {
    __m512i lo[G][T], hi[G][T];
    for (int t = 0; t < T; ++t) {
      const std::int64_t xb = (t0 + t) * blocks + b;
      __m512i l = _mm512_setzero_si512(), h = _mm512_setzero_si512();
      if constexpr (P == Packing::Q8_0x16) l = _mm512_set1_epi32(-128 * a.x.s[xb]);
      if constexpr (P == Packing::Q6_Kx16) {
        l = _mm512_set1_epi32(-128 * a.x.half_s[2 * xb]);
        h = _mm512_set1_epi32(-128 * a.x.half_s[2 * xb + 1]);
      }
      for (int g = 0; g < G; ++g) lo[g][t] = l, hi[g][t] = h;
    }
    for (int i = 0; i < 4; ++i) {
      __m512i wl[G], wh[G];
      for (int g = 0; g < G; ++g) {
        const std::uint8_t* tile = tiles + g * group_stride + b * kTile;
        if constexpr (P == Packing::Q4_1x16) {
          const __m512i p = _mm512_loadu_si512(tile + 64 * i);
          wl[g] = _mm512_and_si512(p, _mm512_set1_epi8(15));
          wh[g] = _mm512_and_si512(_mm512_srli_epi16(p, 4), _mm512_set1_epi8(15));
        } else {
          wl[g] = _mm512_loadu_si512(tile + 64 * i);
          wh[g] = _mm512_loadu_si512(tile + 64 * (i + 4));
        }
      }
      for (int t = 0; t < T; ++t) {
        const __m512i xl = _mm512_set1_epi32(load_i32(xq[t] + b * kBlock + 4 * i));
        const __m512i xh = _mm512_set1_epi32(load_i32(xq[t] + b * kBlock + 16 + 4 * i));
        for (int g = 0; g < G; ++g) {
          lo[g][t] = _mm512_dpbusd_epi32(lo[g][t], wl[g], xl);
          hi[g][t] = _mm512_dpbusd_epi32(hi[g][t], wh[g], xh);
        }
      }
    }
    for (int g = 0; g < G; ++g) {
      const std::uint8_t* tile = tiles + g * group_stride + b * kTile;
      constexpr int kScales = P == Packing::Q4_1x16 ? 256 : 512;
      if constexpr (P == Packing::Q6_Kx16) {
        const __m512 d0 = _mm512_loadu_ps(tile + 512), d1 = _mm512_loadu_ps(tile + 576);
        for (int t = 0; t < T; ++t) {
          const __m512 dx = _mm512_set1_ps(a.x.d[(t0 + t) * blocks + b]);
          acc[g][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(lo[g][t]), _mm512_mul_ps(d0, dx), acc[g][t]);
          acc[g][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(hi[g][t]), _mm512_mul_ps(d1, dx), acc[g][t]);
        }
      } else {
        const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(tile + kScales)));
        for (int t = 0; t < T; ++t) {
          const std::int64_t xb = (t0 + t) * blocks + b;
          const __m512 dx = _mm512_set1_ps(a.x.d[xb]);
          const __m512 dot = _mm512_cvtepi32_ps(_mm512_add_epi32(lo[g][t], hi[g][t]));
          acc[g][t] = _mm512_fmadd_ps(dot, _mm512_mul_ps(dw, dx), acc[g][t]);
          if constexpr (P == Packing::Q4_1x16 || P == Packing::U8x16) {
            const __m512 mw =
                _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(tile + kScales + 32)));
            acc[g][t] = _mm512_fmadd_ps(mw, _mm512_set1_ps(a.x.ds[xb]), acc[g][t]);
          }
        }
      }
    }
  }
  for (int g = 0; g < G; ++g)
    for (int t = 0; t < T; ++t) _mm512_mask_storeu_ps(y[t] + g * kGroupRows, masks[g], acc[g][t]);
}

template <Packing P>
void gemm_packing(const GemmArgs& a, std::int64_t g_begin, std::int64_t g_end, std::int64_t t_begin,
                  std::int64_t t_end) {
  constexpr int kTokens = 4;
  using Kernel = void (*)(const GemmArgs&, const std::uint8_t*, std::int64_t, std::int64_t, float* const*,
                          const __mmask16*);
  static constexpr Kernel kTwo[] = {block_gemm<P, 2, 1>, block_gemm<P, 2, 2>, block_gemm<P, 2, 3>, block_gemm<P, 2, 4>};
  static constexpr Kernel kOne[] = {block_gemm<P, 1, 1>, block_gemm<P, 1, 2>, block_gemm<P, 1, 3>, block_gemm<P, 1, 4>};
  const std::int64_t group_stride = a.blocks * tile_bytes(P);
  // A single activation row (decode) takes 4 groups per step: 8 int32 chains hide the
  // latency of vpdpbusd, as 2 groups × several rows do otherwise.
  const int step = t_end - t_begin == 1 ? 4 : 2;
  for (std::int64_t g = g_begin; g < g_end; g += step) {
    const int groups = int(g_end - g < step ? g_end - g : step);
    __mmask16 masks[4];
    for (int k = 0; k < groups; ++k) {
      const std::int64_t valid = a.rows - (g + k) * kGroupRows;
      masks[k] = valid >= kGroupRows ? __mmask16(0xFFFF) : __mmask16((1u << valid) - 1);
    }
    for (std::int64_t t = t_begin; t < t_end; t += kTokens) {
      const int n = int(t_end - t < kTokens ? t_end - t : kTokens);
      float* y[kTokens];
      for (int k = 0; k < n; ++k) y[k] = a.y + (t + k) * a.rows + g * kGroupRows;
      const std::uint8_t* tiles = a.tiles + g * group_stride;
      if (groups == 4) block_gemm<P, 4, 1>(a, tiles, group_stride, t, y, masks);
      else if (groups == 3) block_gemm<P, 3, 1>(a, tiles, group_stride, t, y, masks);
      else (groups == 2 ? kTwo : kOne)[n - 1](a, tiles, group_stride, t, y, masks);
    }
  }
}

void gemm(const GemmArgs& a, std::int64_t g_begin, std::int64_t g_end, std::int64_t t_begin, std::int64_t t_end) {
  switch (a.packing) {
    case Packing::Q4_1x16: return gemm_packing<Packing::Q4_1x16>(a, g_begin, g_end, t_begin, t_end);
    case Packing::Q8_0x16: return gemm_packing<Packing::Q8_0x16>(a, g_begin, g_end, t_begin, t_end);
    case Packing::Q6_Kx16: return gemm_packing<Packing::Q6_Kx16>(a, g_begin, g_end, t_begin, t_end);
    case Packing::U8x16: return gemm_packing<Packing::U8x16>(a, g_begin, g_end, t_begin, t_end);
    case Packing::Dense: return;
  }
}

}  // namespace

const Int8Kernels& kernels_avx512vnni() {
  static const Int8Kernels k{"avx512-vnni", quantize, gemm};
  return k;
}

}  // namespace ls::matmul_detail
