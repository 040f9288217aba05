// Quantized matmul kernels (see matmul.h for the two routes).
//
// Repacked tile of 16 output rows × 32 columns (one quant block of each row):
//   Q4_1x16 (320 bytes): 4 × 64 bytes of nibbles, then 16 fp16 scales d, then 16 fp16 mins m.
//     In the i-th 64 bytes, 32-bit lane r holds bytes qs[4i .. 4i+3] of row r's block: the low
//     nibbles are elements 4i .. 4i+3 and the high nibbles elements 16+4i .. 16+4i+3 (the
//     GGUF nibble order), so "& 15" and ">> 4" give the 8 column groups of 4 without shuffles.
//   Q8_0x16 (544 bytes): 8 × 64 bytes, 32-bit lane r of the k-th holding row r's quants
//     4k .. 4k+3 plus 128 (vpdpbusd multiplies unsigned by signed bytes), then 16 fp16 d.
//   Q6_Kx16 (640 bytes): the quants as in Q8_0x16 (Q6_K's q − 32, in [−32, 31], plus 128), then
//     16 fp32 scales of columns 0..15 and 16 of columns 16..31 (d·sc of the Q6_K sub-blocks of
//     16, exact in fp32).
// A block dot product with activations quantized as x ≈ dx·qx (per 32, Σqx = sx):
//   Q4_1: Σ (dw·qw + m)·dx·qx = dw·dx·Σ qw·qx + m·dx·sx
//   Q8_0: Σ dw·qw·dx·qx       = dw·dx·(Σ (qw+128)·qx − 128·sx)
//   Q6_K: the same per half block of 16, with that half's scale and sum (sx = sx₀ + sx₁)
#include "model/matmul.h"

#include <cblas.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/parallel.h"
#include "model/quant.h"

// GCC 12 warns inside its own AVX-512 reduction intrinsics (a known false positive).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace ls {

namespace {

constexpr std::int64_t kBlock = 32;       // columns per quant block
constexpr std::int64_t kGroupRows = 16;   // output rows per repacked tile (one per lane)
constexpr std::int64_t kQ4_1Tile = 320;
constexpr std::int64_t kQ8_0Tile = 544;
constexpr std::int64_t kQ6_KTile = 640;
constexpr std::int64_t kQ4_1BlockBytes = 20;  // d, m, qs[16]
constexpr std::int64_t kQ8_0BlockBytes = 34;  // d, qs[32]

float half_to_float(std::uint16_t h) { return _cvtsh_ss(h); }

std::uint16_t load_u16(const std::uint8_t* p) {
  std::uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

std::int32_t load_i32(const void* p) {
  std::int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

std::int64_t row_bytes(GgmlType type, std::int64_t cols) {
  switch (type) {
    case GgmlType::F32: return cols * 4;
    case GgmlType::F16: return cols * 2;
    case GgmlType::Q4_1: return cols / kBlock * kQ4_1BlockBytes;
    case GgmlType::Q8_0: return cols / kBlock * kQ8_0BlockBytes;
    default: {
      const GgmlTypeTraits* traits = ggml_type_traits(type);
      LS_CHECK(traits && traits->supported && can_dequantize(type),
               "weights of ggml type {} are not supported by the matmul", ggml_type_name(type));
      LS_CHECK(cols % traits->block_elements == 0, "rows of {} elements do not split into {} blocks of {}", cols,
               ggml_type_name(type), traits->block_elements);
      return cols / traits->block_elements * traits->block_bytes;
    }
  }
}

// One row of a file-layout weight to fp32.
void dequantize_file_row(GgmlType type, const std::uint8_t* src, std::int64_t cols, float* dst) {
  switch (type) {
    case GgmlType::F32:
      std::memcpy(dst, src, cols * sizeof(float));
      return;
    case GgmlType::F16:
      for (std::int64_t i = 0; i < cols; ++i) dst[i] = half_to_float(load_u16(src + 2 * i));
      return;
    case GgmlType::Q4_1:
      for (std::int64_t b = 0; b < cols / kBlock; ++b, src += kQ4_1BlockBytes, dst += kBlock) {
        __m512 d = _mm512_set1_ps(half_to_float(load_u16(src)));
        __m512 m = _mm512_set1_ps(half_to_float(load_u16(src + 2)));
        __m128i qs = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 4));
        __m128i lo = _mm_and_si128(qs, _mm_set1_epi8(15));
        __m128i hi = _mm_and_si128(_mm_srli_epi16(qs, 4), _mm_set1_epi8(15));
        _mm512_storeu_ps(dst, _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(lo)), d, m));
        _mm512_storeu_ps(dst + 16, _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(hi)), d, m));
      }
      return;
    case GgmlType::Q8_0:
      for (std::int64_t b = 0; b < cols / kBlock; ++b, src += kQ8_0BlockBytes, dst += kBlock) {
        __m512 d = _mm512_set1_ps(half_to_float(load_u16(src)));
        for (int h = 0; h < 2; ++h) {
          __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 + 16 * h));
          _mm512_storeu_ps(dst + 16 * h, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)), d));
        }
      }
      return;
    default:
      dequantize_row(type, src, dst, cols);  // every other type: the vectorised dequantizer
      return;
  }
}

// A Q5_0 block as the Q8_0 block with the same values: d·(q − 16) with q − 16 in [−16, 15].
void q5_0_as_q8_0(const std::uint8_t* src, std::uint8_t* out) {
  BlockQ5_0 b;
  std::memcpy(&b, src, sizeof b);
  std::uint32_t qh;
  std::memcpy(&qh, b.qh, 4);
  std::memcpy(out, &b.d, 2);
  for (int j = 0; j < 16; ++j) {
    const int lo = (b.qs[j] & 15) | (((qh >> j) & 1) << 4);
    const int hi = (b.qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
    out[2 + j] = static_cast<std::uint8_t>(static_cast<std::int8_t>(lo - 16));
    out[2 + 16 + j] = static_cast<std::uint8_t>(static_cast<std::int8_t>(hi - 16));
  }
}

// Sub-block `sub` (32 elements) of a Q4_K super-block as a Q4_1 block: its values
// d·sc·q − dmin·m with q in 0..15 are a Q4_1 block with scale d·sc and min −dmin·m, both
// rounded to fp16 (a relative change of at most 2^-11 of each scale, far below the 4-bit
// steps themselves).
void q4_k_as_q4_1(const std::uint8_t* src, int sub, std::uint8_t* out) {
  BlockQ4_K b;
  std::memcpy(&b, src, sizeof b);
  std::uint8_t sc, mn;
  kquant_scale_min(b.scales, sub, &sc, &mn);
  const std::uint16_t d = _cvtss_sh(half_to_float(b.d) * float(sc), 0);
  const std::uint16_t m = _cvtss_sh(-half_to_float(b.dmin) * float(mn), 0);
  std::memcpy(out, &d, 2);
  std::memcpy(out + 2, &m, 2);
  const std::uint8_t* qs = b.qs + (sub / 2) * 32;  // sub-blocks 2j and 2j+1 share 32 bytes
  const int shift = sub % 2 ? 4 : 0;
  for (int j = 0; j < 16; ++j)
    out[4 + j] = static_cast<std::uint8_t>(((qs[j] >> shift) & 15) | (((qs[j + 16] >> shift) & 15) << 4));
}

// Repacks rows [0, rows) of `part` into tiles, starting at output row `row0`: Q4_1 parts, and
// Q4_K parts converted sub-block by sub-block.
void pack_q4_1(const WeightPart& part, std::int64_t row0, std::int64_t blocks, std::uint8_t* packed) {
  const auto* src = static_cast<const std::uint8_t*>(part.data);
  const bool k_quant = part.type == GgmlType::Q4_K;
  std::uint8_t converted[kQ4_1BlockBytes];
  for (std::int64_t r = 0; r < part.rows; ++r) {
    std::int64_t out_row = row0 + r, group = out_row / kGroupRows, lane = out_row % kGroupRows;
    for (std::int64_t b = 0; b < blocks; ++b) {
      const std::uint8_t* block = src + (r * blocks + b) * kQ4_1BlockBytes;
      if (k_quant) {
        const std::uint8_t* super = src + (r * blocks / 8 + b / 8) * std::int64_t(sizeof(BlockQ4_K));
        q4_k_as_q4_1(super, static_cast<int>(b % 8), converted);
        block = converted;
      }
      std::uint8_t* tile = packed + (group * blocks + b) * kQ4_1Tile;
      for (int i = 0; i < 4; ++i) std::memcpy(tile + 64 * i + 4 * lane, block + 4 + 4 * i, 4);
      std::memcpy(tile + 256 + 2 * lane, block, 2);
      std::memcpy(tile + 288 + 2 * lane, block + 2, 2);
    }
  }
}

// Q8_0 parts, and Q5_0 parts converted exactly to Q8_0 blocks.
void pack_q8_0(const WeightPart& part, std::int64_t row0, std::int64_t blocks, std::uint8_t* packed) {
  const auto* src = static_cast<const std::uint8_t*>(part.data);
  const bool q5 = part.type == GgmlType::Q5_0;
  const std::int64_t src_block = q5 ? std::int64_t(sizeof(BlockQ5_0)) : kQ8_0BlockBytes;
  std::uint8_t converted[kQ8_0BlockBytes];
  for (std::int64_t r = 0; r < part.rows; ++r) {
    std::int64_t out_row = row0 + r, group = out_row / kGroupRows, lane = out_row % kGroupRows;
    for (std::int64_t b = 0; b < blocks; ++b) {
      const std::uint8_t* block = src + (r * blocks + b) * src_block;
      if (q5) q5_0_as_q8_0(block, converted), block = converted;
      std::uint8_t* tile = packed + (group * blocks + b) * kQ8_0Tile;
      for (int k = 0; k < 8; ++k)
        for (int j = 0; j < 4; ++j) tile[64 * k + 4 * lane + j] = block[2 + 4 * k + j] ^ 0x80;
      std::memcpy(tile + 512 + 2 * lane, block, 2);
    }
  }
}

// Q6_K parts: each block of 32 columns keeps its two sub-block scales.
void pack_q6_k(const WeightPart& part, std::int64_t row0, std::int64_t blocks, std::uint8_t* packed) {
  const auto* src = static_cast<const std::uint8_t*>(part.data);
  const std::int64_t supers = blocks / 8;
  std::int8_t q[256];
  for (std::int64_t r = 0; r < part.rows; ++r) {
    std::int64_t out_row = row0 + r, group = out_row / kGroupRows, lane = out_row % kGroupRows;
    for (std::int64_t sb = 0; sb < supers; ++sb) {
      BlockQ6_K b;
      std::memcpy(&b, src + (r * supers + sb) * std::int64_t(sizeof(BlockQ6_K)), sizeof b);
      q6_k_quants(b, q);
      const float d = half_to_float(b.d);
      for (int j = 0; j < 8; ++j) {
        std::uint8_t* tile = packed + (group * blocks + sb * 8 + j) * kQ6_KTile;
        for (int k = 0; k < 8; ++k)
          for (int i = 0; i < 4; ++i)
            tile[64 * k + 4 * lane + i] = static_cast<std::uint8_t>(q[32 * j + 4 * k + i]) ^ 0x80;
        for (int half = 0; half < 2; ++half) {
          const float scale = d * float(b.scales[2 * j + half]);
          std::memcpy(tile + 512 + 64 * half + 4 * lane, &scale, 4);
        }
      }
    }
  }
}

// Quantizes one activation row: per block of 32, scale = max|x| / 127.
// `half_sums` (optional, [2 blocks]) gets the sums of each half block of 16.
void quantize_row_q8(const float* x, std::int64_t blocks, std::int8_t* q, float* scales, std::int32_t* sums,
                     std::int32_t* half_sums) {
  for (std::int64_t b = 0; b < blocks; ++b) {
    __m512 x0 = _mm512_loadu_ps(x + b * kBlock), x1 = _mm512_loadu_ps(x + b * kBlock + 16);
    float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(x0), _mm512_abs_ps(x1)));
    float d = amax / 127.0f;
    __m512 inv = _mm512_set1_ps(amax > 0.0f ? 127.0f / amax : 0.0f);
    __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(x0, inv));
    __m512i q1 = _mm512_cvtps_epi32(_mm512_mul_ps(x1, inv));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + b * kBlock), _mm512_cvtsepi32_epi8(q0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + b * kBlock + 16), _mm512_cvtsepi32_epi8(q1));
    scales[b] = d;
    if (half_sums) {
      half_sums[2 * b] = _mm512_reduce_add_epi32(q0);
      half_sums[2 * b + 1] = _mm512_reduce_add_epi32(q1);
      sums[b] = half_sums[2 * b] + half_sums[2 * b + 1];
    } else {
      sums[b] = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
    }
  }
}

// One tile row group × up to kTokens activation rows. acc[t] lane r accumulates output row r.
template <int kTokens>
void int8_group_q4_1(const std::uint8_t* tiles, std::int64_t blocks, const std::int8_t* const* xq,
                     const float* const* xd, const std::int32_t* const* xs, __m512* acc) {
  const __m512i low = _mm512_set1_epi8(15);
  for (std::int64_t b = 0; b < blocks; ++b) {
    const std::uint8_t* tile = tiles + b * kQ4_1Tile;
    __m512i w[8];
    for (int i = 0; i < 4; ++i) {
      __m512i p = _mm512_loadu_si512(tile + 64 * i);
      w[i] = _mm512_and_si512(p, low);
      w[i + 4] = _mm512_and_si512(_mm512_srli_epi16(p, 4), low);
    }
    __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(tile + 256)));
    __m512 mw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(tile + 288)));
    for (int t = 0; t < kTokens; ++t) {
      const std::int8_t* q = xq[t] + b * kBlock;
      __m512i even = _mm512_setzero_si512(), odd = _mm512_setzero_si512();
      for (int k = 0; k < 8; k += 2) {
        even = _mm512_dpbusd_epi32(even, w[k], _mm512_set1_epi32(load_i32(q + 4 * k)));
        odd = _mm512_dpbusd_epi32(odd, w[k + 1], _mm512_set1_epi32(load_i32(q + 4 * k + 4)));
      }
      __m512 dot = _mm512_cvtepi32_ps(_mm512_add_epi32(even, odd));
      float dx = xd[t][b];
      acc[t] = _mm512_fmadd_ps(dot, _mm512_mul_ps(dw, _mm512_set1_ps(dx)), acc[t]);
      acc[t] = _mm512_fmadd_ps(mw, _mm512_set1_ps(dx * float(xs[t][b])), acc[t]);
    }
  }
}

template <int kTokens>
void int8_group_q8_0(const std::uint8_t* tiles, std::int64_t blocks, const std::int8_t* const* xq,
                     const float* const* xd, const std::int32_t* const* xs, __m512* acc) {
  for (std::int64_t b = 0; b < blocks; ++b) {
    const std::uint8_t* tile = tiles + b * kQ8_0Tile;
    __m512i w[8];
    for (int k = 0; k < 8; ++k) w[k] = _mm512_loadu_si512(tile + 64 * k);
    __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(tile + 512)));
    for (int t = 0; t < kTokens; ++t) {
      const std::int8_t* q = xq[t] + b * kBlock;
      __m512i even = _mm512_set1_epi32(-128 * xs[t][b]), odd = _mm512_setzero_si512();
      for (int k = 0; k < 8; k += 2) {
        even = _mm512_dpbusd_epi32(even, w[k], _mm512_set1_epi32(load_i32(q + 4 * k)));
        odd = _mm512_dpbusd_epi32(odd, w[k + 1], _mm512_set1_epi32(load_i32(q + 4 * k + 4)));
      }
      __m512 dot = _mm512_cvtepi32_ps(_mm512_add_epi32(even, odd));
      acc[t] = _mm512_fmadd_ps(dot, _mm512_mul_ps(dw, _mm512_set1_ps(xd[t][b])), acc[t]);
    }
  }
}

// `xs` holds half-block sums here: [2 blocks] per activation row.
template <int kTokens>
void int8_group_q6_k(const std::uint8_t* tiles, std::int64_t blocks, const std::int8_t* const* xq,
                     const float* const* xd, const std::int32_t* const* xs, __m512* acc) {
  for (std::int64_t b = 0; b < blocks; ++b) {
    const std::uint8_t* tile = tiles + b * kQ6_KTile;
    __m512i w[8];
    for (int k = 0; k < 8; ++k) w[k] = _mm512_loadu_si512(tile + 64 * k);
    const __m512 d0 = _mm512_loadu_ps(tile + 512), d1 = _mm512_loadu_ps(tile + 576);
    for (int t = 0; t < kTokens; ++t) {
      const std::int8_t* q = xq[t] + b * kBlock;
      __m512i lo = _mm512_set1_epi32(-128 * xs[t][2 * b]), hi = _mm512_set1_epi32(-128 * xs[t][2 * b + 1]);
      for (int k = 0; k < 4; ++k) {
        lo = _mm512_dpbusd_epi32(lo, w[k], _mm512_set1_epi32(load_i32(q + 4 * k)));
        hi = _mm512_dpbusd_epi32(hi, w[k + 4], _mm512_set1_epi32(load_i32(q + 16 + 4 * k)));
      }
      const __m512 dx = _mm512_set1_ps(xd[t][b]);
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(lo), _mm512_mul_ps(d0, dx), acc[t]);
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(hi), _mm512_mul_ps(d1, dx), acc[t]);
    }
  }
}

void unpack_row_q6_k(const std::uint8_t* tiles, std::int64_t blocks, int lane, float* dst) {
  for (std::int64_t b = 0; b < blocks; ++b, dst += kBlock) {
    const std::uint8_t* tile = tiles + b * kQ6_KTile;
    alignas(32) std::uint8_t qs[32];
    for (int k = 0; k < 8; ++k) std::memcpy(qs + 4 * k, tile + 64 * k + 4 * lane, 4);
    const __m128i flip = _mm_set1_epi8(static_cast<char>(0x80));
    for (int h = 0; h < 2; ++h) {
      float scale;
      std::memcpy(&scale, tile + 512 + 64 * h + 4 * lane, 4);
      __m128i q = _mm_xor_si128(_mm_load_si128(reinterpret_cast<const __m128i*>(qs + 16 * h)), flip);
      _mm512_storeu_ps(dst + 16 * h,
                       _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)), _mm512_set1_ps(scale)));
    }
  }
}

// Row `lane` of a repacked tile group, blocks [0, blocks), to fp32: the inverse of pack_q4_1 /
// pack_q8_0, so a packed matrix needs nothing of the file once it is built.
void unpack_row_q4_1(const std::uint8_t* tiles, std::int64_t blocks, int lane, float* dst) {
  for (std::int64_t b = 0; b < blocks; ++b, dst += kBlock) {
    const std::uint8_t* tile = tiles + b * kQ4_1Tile;
    std::uint8_t qs[16];
    for (int i = 0; i < 4; ++i) std::memcpy(qs + 4 * i, tile + 64 * i + 4 * lane, 4);
    __m512 d = _mm512_set1_ps(half_to_float(load_u16(tile + 256 + 2 * lane)));
    __m512 m = _mm512_set1_ps(half_to_float(load_u16(tile + 288 + 2 * lane)));
    __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
    __m128i lo = _mm_and_si128(q, _mm_set1_epi8(15));
    __m128i hi = _mm_and_si128(_mm_srli_epi16(q, 4), _mm_set1_epi8(15));
    _mm512_storeu_ps(dst, _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(lo)), d, m));
    _mm512_storeu_ps(dst + 16, _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(hi)), d, m));
  }
}

void unpack_row_q8_0(const std::uint8_t* tiles, std::int64_t blocks, int lane, float* dst) {
  for (std::int64_t b = 0; b < blocks; ++b, dst += kBlock) {
    const std::uint8_t* tile = tiles + b * kQ8_0Tile;
    alignas(32) std::uint8_t qs[32];
    for (int k = 0; k < 8; ++k) std::memcpy(qs + 4 * k, tile + 64 * k + 4 * lane, 4);
    __m512 d = _mm512_set1_ps(half_to_float(load_u16(tile + 512 + 2 * lane)));
    const __m128i flip = _mm_set1_epi8(static_cast<char>(0x80));  // stored as q + 128
    for (int h = 0; h < 2; ++h) {
      __m128i q = _mm_xor_si128(_mm_load_si128(reinterpret_cast<const __m128i*>(qs + 16 * h)), flip);
      _mm512_storeu_ps(dst + 16 * h, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)), d));
    }
  }
}

}  // namespace

WeightMatrix WeightMatrix::from_parts(std::span<const WeightPart> parts, const ReleaseFn& release) {
  LS_CHECK(!parts.empty(), "a weight matrix needs at least one part");
  WeightMatrix w;
  w.cols_ = parts[0].cols;
  for (const WeightPart& part : parts) {
    LS_CHECK(part.cols == w.cols_, "stacked weights differ in row length ({} vs {})", part.cols, w.cols_);
    LS_CHECK(part.rows > 0 && part.data, "empty weight part");
    row_bytes(part.type, part.cols);  // checks the type is known
    LS_CHECK(part.type == GgmlType::F32 || part.type == GgmlType::F16 || part.cols % kBlock == 0,
             "quantized rows must be a multiple of {} elements, got {}", kBlock, part.cols);
    w.rows_ += part.rows;
  }
  // Q5_0 values are exact Q8_0 values, Q4_K sub-blocks are Q4_1 blocks: they share those int8
  // kernels; Q6_K has its own. Other types, and mixed types, are held as dense fp32.
  auto kernel_type = [](GgmlType t) {
    return t == GgmlType::Q5_0 ? GgmlType::Q8_0 : t == GgmlType::Q4_K ? GgmlType::Q4_1 : t;
  };
  w.type_ = kernel_type(parts[0].type);
  for (const WeightPart& part : parts)
    if (kernel_type(part.type) != w.type_) w.type_ = GgmlType::F32;
  w.parts_.assign(parts.begin(), parts.end());

  std::int64_t blocks = w.cols_ / kBlock;
  bool blocked = w.cols_ % kBlock == 0;
  if (blocked && (w.type_ == GgmlType::Q4_1 || w.type_ == GgmlType::Q8_0 || w.type_ == GgmlType::Q6_K)) {
    w.packing_ = w.type_ == GgmlType::Q4_1   ? Packing::Q4_1x16
                 : w.type_ == GgmlType::Q8_0 ? Packing::Q8_0x16
                                             : Packing::Q6_Kx16;
    const std::int64_t tile = tile_bytes(w.packing_);
    // Q4_K's fp16-rounded scales are fine for the int8 route (its activations are 8-bit), not
    // for the fp32 sgemm route: such a matrix keeps reading the file's blocks for sgemm.
    w.exact_tiles_ = std::none_of(parts.begin(), parts.end(), [](const WeightPart& p) { return p.type == GgmlType::Q4_K; });
    std::int64_t groups = (w.rows_ + kGroupRows - 1) / kGroupRows;
    w.packed_.reset(groups * blocks * tile, /*zero=*/true);  // padding rows: zero scales
    // In slices of rows (a multiple of 16), releasing each slice's source once it is packed.
    constexpr std::int64_t kSliceRows = 4096;
    std::int64_t row0 = 0;
    for (const WeightPart& part : parts) {
      const std::int64_t part_row_bytes = row_bytes(part.type, part.cols);
      for (std::int64_t r = 0; r < part.rows; r += kSliceRows) {
        WeightPart slice = part;
        slice.rows = std::min(kSliceRows, part.rows - r);
        slice.data = static_cast<const std::uint8_t*>(part.data) + r * part_row_bytes;
        if (w.packing_ == Packing::Q4_1x16) pack_q4_1(slice, row0 + r, blocks, w.packed_.data());
        else if (w.packing_ == Packing::Q8_0x16) pack_q8_0(slice, row0 + r, blocks, w.packed_.data());
        else pack_q6_k(slice, row0 + r, blocks, w.packed_.data());
        if (release && w.exact_tiles_) release(slice.data, static_cast<std::size_t>(slice.rows * part_row_bytes));
      }
      row0 += part.rows;
    }
  } else {
    w.packing_ = Packing::Dense;
    Buffer<float> dense(w.rows_ * w.cols_);
    w.dequantize_rows(0, w.rows_, dense.data());  // dense_ still empty: reads the parts
    w.dense_ = std::move(dense);
    if (release)
      for (const WeightPart& part : parts)
        release(part.data, static_cast<std::size_t>(part.rows * row_bytes(part.type, part.cols)));
  }
  if (w.exact_tiles_) w.parts_.clear();  // the matrix owns what it needs: the parts' memory may go
  return w;
}

std::int64_t WeightMatrix::tile_bytes(Packing packing) {
  switch (packing) {
    case Packing::Q4_1x16: return kQ4_1Tile;
    case Packing::Q8_0x16: return kQ8_0Tile;
    case Packing::Q6_Kx16: return kQ6_KTile;
    case Packing::Dense: break;
  }
  return 0;
}

std::size_t WeightMatrix::bytes() const { return packed_.size() + dense_.size() * sizeof(float); }

void WeightMatrix::dequantize_rows(std::int64_t first, std::int64_t count, float* out) const {
  LS_CHECK(first >= 0 && count >= 0 && first + count <= rows_, "row range out of bounds");
  if (!dense_.empty()) {
    std::memcpy(out, dense_.data() + first * cols_, count * cols_ * sizeof(float));
    return;
  }
  if (!packed_.empty() && exact_tiles_) {
    const std::int64_t blocks = cols_ / kBlock;
    const std::int64_t tile = tile_bytes(packing_);
    parallel_for(count, [&](std::int64_t i) {
      const std::int64_t row = first + i;
      const std::uint8_t* tiles = packed_.data() + row / kGroupRows * blocks * tile;
      const int lane = static_cast<int>(row % kGroupRows);
      switch (packing_) {
        case Packing::Q4_1x16: unpack_row_q4_1(tiles, blocks, lane, out + i * cols_); break;
        case Packing::Q8_0x16: unpack_row_q8_0(tiles, blocks, lane, out + i * cols_); break;
        case Packing::Q6_Kx16: unpack_row_q6_k(tiles, blocks, lane, out + i * cols_); break;
        case Packing::Dense: break;
      }
    }, 16);
    return;
  }
  parallel_for(count, [&](std::int64_t i) {
    std::int64_t row = first + i;
    for (const WeightPart& part : parts_) {
      if (row < part.rows) {
        const auto* src = static_cast<const std::uint8_t*>(part.data) + row * row_bytes(part.type, cols_);
        dequantize_file_row(part.type, src, cols_, out + i * cols_);
        return;
      }
      row -= part.rows;
    }
  }, 16);
}

void Matmul::run(const WeightMatrix& w, const float* x, std::int64_t m, float* y, MatmulRoute route) {
  if (m <= 0) return;
  if (route == MatmulRoute::Auto) route = m >= kSgemmMinRows ? MatmulRoute::Sgemm : MatmulRoute::Int8;
  if (route == MatmulRoute::Int8 && w.has_int8_kernel()) run_int8(w, x, m, y);
  else run_sgemm(w, x, m, y);
}

void Matmul::run_sgemm(const WeightMatrix& w, const float* x, std::int64_t m, float* y) {
  const float* dense = w.dense_.data();
  if (!dense) {
    w_dense_.ensure(w.rows_ * w.cols_);
    w.dequantize_rows(0, w.rows_, w_dense_.data());
    dense = w_dense_.data();
  }
  if (m == 1) {
    cblas_sgemv(CblasRowMajor, CblasNoTrans, w.rows_, w.cols_, 1.0f, dense, w.cols_, x, 1, 0.0f, y, 1);
  } else {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, w.rows_, w.cols_, 1.0f, x, w.cols_, dense,
                w.cols_, 0.0f, y, w.rows_);
  }
}

void Matmul::run_int8(const WeightMatrix& w, const float* x, std::int64_t m, float* y) {
  using Packing = WeightMatrix::Packing;
  const std::int64_t blocks = w.cols_ / kBlock, cols = w.cols_;
  const bool q6 = w.packing_ == Packing::Q6_Kx16;  // its kernel takes half-block sums
  x_quants_.ensure(m * cols);
  x_scales_.ensure(m * blocks);
  x_sums_.ensure(m * blocks);
  if (q6) x_half_sums_.ensure(m * 2 * blocks);
  std::int8_t* xq = x_quants_.data();
  float* xd = x_scales_.data();
  std::int32_t* xs = x_sums_.data();
  std::int32_t* xh = q6 ? x_half_sums_.data() : nullptr;
  const auto quantize = [&](std::int64_t t) {
    quantize_row_q8(x + t * cols, blocks, xq + t * cols, xd + t * blocks, xs + t * blocks,
                    xh ? xh + t * 2 * blocks : nullptr);
  };
  if (m == 1) quantize(0);
  else parallel_for(m, quantize, 8);

  const std::int64_t tile_size = WeightMatrix::tile_bytes(w.packing_);
  const std::int64_t groups = (w.rows_ + kGroupRows - 1) / kGroupRows;
  const std::int64_t rows = w.rows_;
  const std::uint8_t* packed = w.packed_.data();
  constexpr int kTile = 4;  // activation rows sharing one unpacked weight tile
  using Kernel = void (*)(const std::uint8_t*, std::int64_t, const std::int8_t* const*, const float* const*,
                          const std::int32_t* const*, __m512*);
  static constexpr Kernel kQ4_1[] = {int8_group_q4_1<1>, int8_group_q4_1<2>, int8_group_q4_1<3>, int8_group_q4_1<4>};
  static constexpr Kernel kQ8_0[] = {int8_group_q8_0<1>, int8_group_q8_0<2>, int8_group_q8_0<3>, int8_group_q8_0<4>};
  static constexpr Kernel kQ6_K[] = {int8_group_q6_k<1>, int8_group_q6_k<2>, int8_group_q6_k<3>, int8_group_q6_k<4>};
  const Kernel* kernels = w.packing_ == Packing::Q4_1x16 ? kQ4_1 : w.packing_ == Packing::Q8_0x16 ? kQ8_0 : kQ6_K;
  parallel_for(groups, [&](std::int64_t g) {
    const std::uint8_t* tiles = packed + g * blocks * tile_size;
    std::int64_t valid = std::min(kGroupRows, rows - g * kGroupRows);
    __mmask16 mask = static_cast<__mmask16>((1u << valid) - 1);
    for (std::int64_t t0 = 0; t0 < m; t0 += kTile) {
      int n = static_cast<int>(std::min<std::int64_t>(kTile, m - t0));
      const std::int8_t* q[kTile];
      const float* d[kTile];
      const std::int32_t* s[kTile];
      __m512 acc[kTile];
      for (int t = 0; t < n; ++t) {
        q[t] = xq + (t0 + t) * cols;
        d[t] = xd + (t0 + t) * blocks;
        s[t] = q6 ? xh + (t0 + t) * 2 * blocks : xs + (t0 + t) * blocks;
        acc[t] = _mm512_setzero_ps();
      }
      kernels[n - 1](tiles, blocks, q, d, s, acc);
      for (int t = 0; t < n; ++t) _mm512_mask_storeu_ps(y + (t0 + t) * rows + g * kGroupRows, mask, acc[t]);
    }
  }, groups >= 256 ? 16 : 1);
}

void set_blas_threads(int threads) { openblas_set_num_threads(threads); }

}  // namespace ls
