// The bf16 score kernel on AVX-512 BF16 (compiled for that ISA only; score_kernels.h).
//
// Register blocking: 12 query rows × one 32-key panel in 24 fp32 accumulators. Per channel
// pair, the panel's two 64-byte lines (keys 0–15 and 16–31, that pair of each) are loaded once
// and each row's pair (32 bits) is broadcast: two vdpbf16ps per row, 32 multiply-adds each. A
// pair then costs 2 + 12 loads for 24 vdpbf16ps: the fp32 kernel's shape with two channels
// per instruction. The AMX B-tile layout serves as it is: within a 16-row half, the line of
// pair q is at q · 32 bf16 (slab q / 16, pair q % 16 of the slab).
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "methods/score_kernels.h"

namespace ls::estimate::detail {

namespace {

constexpr int kPanel = 32;  // keys per packed panel (PackedRows::kPanel)
constexpr int kRows = 12;   // 24 accumulators + 2 panel lines + broadcasts fit 32 ZMM registers
constexpr std::int64_t kTileBf16 = 512;  // one 16 × 32 bf16 tile

inline __m512bh broadcast_pair(const std::uint16_t* p) {
  std::int32_t bits;
  std::memcpy(&bits, p, 4);
  return (__m512bh)_mm512_set1_epi32(bits);
}

// MR rows of A against one panel; out rows ldo floats apart, 32 floats each. pairs >= 1.
template <int MR>
void panel_kernel(const std::uint16_t* a, std::int64_t a_width, const std::uint16_t* panel, std::int64_t slabs,
                  std::int64_t pairs, float* out, std::int64_t ldo) {
  const std::uint16_t* upper = panel + slabs * kTileBf16;  // rows 16..31
  __m512 acc[MR][2];
  for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  // A loop that always runs (pairs >= 1): with a path around it GCC passes the accumulators
  // through memory.
  std::int64_t q = 0;
  do {
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512(panel + q * 32);
    const __m512bh b1 = (__m512bh)_mm512_loadu_si512(upper + q * 32);
    for (int r = 0; r < MR; ++r) {
      const __m512bh x = broadcast_pair(a + r * a_width + 2 * q);
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], x, b0);
      acc[r][1] = _mm512_dpbf16_ps(acc[r][1], x, b1);
    }
  } while (++q < pairs);
  for (int r = 0; r < MR; ++r) {
    _mm512_storeu_ps(out + r * ldo, acc[r][0]);
    _mm512_storeu_ps(out + r * ldo + 16, acc[r][1]);
  }
}

using KernelFn = void (*)(const std::uint16_t*, std::int64_t, const std::uint16_t*, std::int64_t, std::int64_t, float*,
                          std::int64_t);
constexpr KernelFn kKernels[kRows + 1] = {
    nullptr,           &panel_kernel<1>,  &panel_kernel<2>, &panel_kernel<3>, &panel_kernel<4>,
    &panel_kernel<5>,  &panel_kernel<6>,  &panel_kernel<7>, &panel_kernel<8>, &panel_kernel<9>,
    &panel_kernel<10>, &panel_kernel<11>, &panel_kernel<12>};

// The mask of the first `count` of 16 lanes (none for count <= 0, all for count >= 16).
inline __mmask16 lanes(std::int64_t count) {
  return count >= 16 ? __mmask16(0xFFFF) : count > 0 ? __mmask16((1u << count) - 1) : __mmask16(0);
}

inline std::int64_t min64(std::int64_t x, std::int64_t y) { return x < y ? x : y; }
inline std::int64_t max64(std::int64_t x, std::int64_t y) { return x > y ? x : y; }

}  // namespace

void scores_avx512bf16(const Bf16Scores& s) {
  if (s.pairs <= 0) {  // depth 0: every score is 0
    for (std::int64_t i = 0; i < s.m; ++i)
      for (std::int64_t j = s.col_first; j < s.col_end; ++j) s.c[i * s.ldc + (j - s.col_first)] = 0.0f;
    return;
  }
  alignas(64) float tile[kRows * kPanel];
  const std::int64_t panel_bf16 = 2 * s.slabs * kTileBf16;
  for (std::int64_t p = s.col_first / kPanel; p * kPanel < s.col_end; ++p) {
    const std::int64_t j0 = max64(s.col_first, p * kPanel), j1 = min64(s.col_end, (p + 1) * kPanel);
    const bool whole = j0 == p * kPanel && j1 == (p + 1) * kPanel;
    const std::uint16_t* panel = s.b + p * panel_bf16;
    for (std::int64_t i = 0; i < s.m; i += kRows) {
      const int mr = int(min64(kRows, s.m - i));
      const std::uint16_t* a = s.a + i * s.a_width;
      if (whole) {  // straight into c
        kKernels[mr](a, s.a_width, panel, s.slabs, s.pairs, s.c + i * s.ldc + (j0 - s.col_first), s.ldc);
        continue;
      }
      kKernels[mr](a, s.a_width, panel, s.slabs, s.pairs, tile, kPanel);
      for (int r = 0; r < mr; ++r) {
        float* dst = s.c + (i + r) * s.ldc + (j0 - s.col_first);
        for (std::int64_t j = j0; j < j1; ++j) dst[j - j0] = tile[r * kPanel + (j - p * kPanel)];
      }
    }
  }
}

void round_rows_avx512bf16(const float* a, std::int64_t lda, std::int64_t m, std::int64_t k, float scale,
                           std::uint16_t* out, std::int64_t width) {
  const __m512 factor = _mm512_set1_ps(scale);
  for (std::int64_t i = 0; i < m; ++i) {
    const float* row = a + i * lda;
    std::uint16_t* dst = out + i * width;
    for (std::int64_t ch = 0; ch < width; ch += 32) {
      // Lanes past the depth load nothing and round 0.
      const std::int64_t left = k - ch;
      const __mmask16 lo = lanes(left), hi = lanes(left - 16);
      const __m512 x0 = _mm512_mul_ps(_mm512_maskz_loadu_ps(lo, row + ch), factor);
      const __m512 x1 = _mm512_mul_ps(_mm512_maskz_loadu_ps(hi, row + ch + 16), factor);
      _mm512_storeu_si512(dst + ch, (__m512i)_mm512_cvtne2ps_pbh(x1, x0));  // x0 in the low half
    }
  }
}

}  // namespace ls::estimate::detail
