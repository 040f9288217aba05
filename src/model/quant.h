// Quantized block formats of GGUF tensors and their dequantization to fp32
// (docs/MODELS.md §2). The block structs mirror the file bytes exactly (fp16 fields are raw
// uint16_t bits); matmul kernels may read them directly.
#pragma once

#include <cstdint>

#include "model/ggml_type.h"

namespace ls {

struct GgufTensor;

inline constexpr int kQK = 32;    // elements per block of the simple formats
inline constexpr int kQKK = 256;  // elements per K-quant super-block

struct BlockQ4_0 {
  std::uint16_t d;
  std::uint8_t qs[kQK / 2];  // element j < 16: low nibble of qs[j]; j ≥ 16: high nibble of qs[j-16]
};
struct BlockQ4_1 {
  std::uint16_t d, m;
  std::uint8_t qs[kQK / 2];
};
struct BlockQ5_0 {
  std::uint16_t d;
  std::uint8_t qh[4];  // bit j (little-endian u32) = 5th bit of element j
  std::uint8_t qs[kQK / 2];
};
struct BlockQ5_1 {
  std::uint16_t d, m;
  std::uint8_t qh[4];
  std::uint8_t qs[kQK / 2];
};
struct BlockQ8_0 {
  std::uint16_t d;
  std::int8_t qs[kQK];
};
struct BlockQ4_K {
  std::uint16_t d, dmin;
  std::uint8_t scales[12];  // 8 six-bit scales and 8 six-bit mins, see kquant_scale_min
  std::uint8_t qs[kQKK / 2];
};
struct BlockQ5_K {
  std::uint16_t d, dmin;
  std::uint8_t scales[12];
  std::uint8_t qh[kQKK / 8];
  std::uint8_t qs[kQKK / 2];
};
struct BlockQ6_K {
  std::uint8_t ql[kQKK / 2];
  std::uint8_t qh[kQKK / 4];
  std::int8_t scales[kQKK / 16];
  std::uint16_t d;
};
static_assert(sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20 && sizeof(BlockQ5_0) == 22 &&
              sizeof(BlockQ5_1) == 24 && sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_K) == 144 &&
              sizeof(BlockQ5_K) == 176 && sizeof(BlockQ6_K) == 210);

// Scale and min of sub-block j (0..7) of a Q4_K/Q5_K super-block, from its 12 packed bytes.
// For j ≥ 4 the top two bits of both come from s[j-4] (scale) and s[j] (min).
inline void kquant_scale_min(const std::uint8_t* s, int j, std::uint8_t* scale, std::uint8_t* min) {
  if (j < 4) {
    *scale = s[j] & 63;
    *min = s[j + 4] & 63;
  } else {
    *scale = static_cast<std::uint8_t>((s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4));
    *min = static_cast<std::uint8_t>((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
  }
}

// The 256 signed quants (q − 32) of a Q6_K super-block in element order; element e has the
// scale d · scales[e / 16].
void q6_k_quants(const BlockQ6_K& b, std::int8_t* q);

// True when dequantize_row handles the type.
bool can_dequantize(GgmlType type);

// Dequantizes n elements starting at a block boundary of `src` into dst[n]. n must be a
// multiple of the type's block size. Throws ls::Error for a type it cannot dequantize.
// Vectorised; results equal dequantize_row_reference up to the rounding of fused
// multiply-adds (one ulp of the larger term).
void dequantize_row(GgmlType type, const void* src, float* dst, std::int64_t n);

// The plain scalar form of dequantize_row, written straight from the format description; the
// vector code is tested against it.
void dequantize_row_reference(GgmlType type, const void* src, float* dst, std::int64_t n);

// Rows [first_row, first_row + row_count) of a tensor (row = ne0 elements) into
// dst[row_count][ne0]. Throws for unsupported types or rows outside the tensor.
void dequantize_rows(const GgufTensor& tensor, std::int64_t first_row, std::int64_t row_count,
                     float* dst);

}  // namespace ls
