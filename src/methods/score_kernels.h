// The bf16 score kernel on AVX-512 BF16 (`vdpbf16ps`), behind plain pointers. Internal to
// src/methods: estimate_util.cc rounds the queries, holds the packed keys and picks the kernel
// at run time; scores_avx512bf16.cc is compiled for AVX-512 BF16 only and includes nothing but
// this header and the intrinsics, so no inline function compiled for that ISA can be shared
// with code that runs everywhere (as the int8 matmul kernels do: src/model/matmul_kernels.h).
#pragma once

#include <cstdint>

namespace ls::estimate::detail {

// c[i · ldc + (j − col_first)] = Σ_ch a[i][ch] · b[j][ch] over i < m, col_first <= j < col_end,
// products of bf16 pairs summed in fp32.
struct Bf16Scores {
  const std::uint16_t* a = nullptr;  // [m][a_width] bf16 bits (a · scale), zero past the depth
  std::int64_t a_width = 0;          // slabs · 32
  std::int64_t m = 0;
  // PackedRows' bf16 storage: [panels][2 halves][slabs][16 channel pairs][16 rows][2], the
  // AMX B-tile layout; one 64-byte line is 16 rows × one channel pair, a dpbf16ps operand.
  const std::uint16_t* b = nullptr;
  std::int64_t slabs = 0;
  std::int64_t pairs = 0;  // channel pairs that hold data: ceil(depth / 2) <= 16 · slabs
  std::int64_t col_first = 0, col_end = 0;
  float* c = nullptr;
  std::int64_t ldc = 0;
};

void scores_avx512bf16(const Bf16Scores& args);

// out[i · width + ch] = bf16(a[i · lda + ch] · scale) for i < m, ch < k, rounded to nearest
// even (vcvtne2ps2bf16, which reads denormals as 0 as the dot products do), zero for
// k <= ch < width.
void round_rows_avx512bf16(const float* a, std::int64_t lda, std::int64_t m, std::int64_t k, float scale,
                           std::uint16_t* out, std::int64_t width);

}  // namespace ls::estimate::detail
