// Scalar dequantization of every supported GGUF tensor type, written directly from the block
// layouts of docs/MODELS.md §2, and the checked entry points. The vector kernels
// (quant_simd.cc) must reproduce these results bit for bit.
#include "model/quant.h"

#include <cstring>

#include "core/error.h"
#include "core/half.h"
#include "model/gguf.h"
#include "model/quant_simd.h"

namespace ls {

void q6_k_quants(const BlockQ6_K& b, std::int8_t* q) {
  for (int h = 0; h < 2; ++h) {
    const std::uint8_t* ql = b.ql + 64 * h;
    const std::uint8_t* qh = b.qh + 32 * h;
    std::int8_t* out = q + 128 * h;
    for (int l = 0; l < 32; ++l) {
      out[l] = static_cast<std::int8_t>(((ql[l] & 15) | ((qh[l] & 3) << 4)) - 32);
      out[l + 32] = static_cast<std::int8_t>(((ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4)) - 32);
      out[l + 64] = static_cast<std::int8_t>(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
      out[l + 96] = static_cast<std::int8_t>(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
    }
  }
}

namespace {

template <typename Block>
const Block* blocks_of(const void* src) {
  return static_cast<const Block*>(src);
}

void ref_f32(const void* src, float* y, std::int64_t n) {
  std::memcpy(y, src, static_cast<std::size_t>(n) * sizeof(float));
}

void ref_f16(const void* src, float* y, std::int64_t n) {
  const auto* h = static_cast<const std::uint16_t*>(src);
  for (std::int64_t i = 0; i < n; ++i) y[i] = fp16_to_fp32(h[i]);
}

void ref_bf16(const void* src, float* y, std::int64_t n) {
  const auto* h = static_cast<const std::uint16_t*>(src);
  for (std::int64_t i = 0; i < n; ++i) y[i] = bf16_to_fp32(h[i]);
}

void ref_q4_0(const void* src, float* y, std::int64_t n) {
  for (const auto* b = blocks_of<BlockQ4_0>(src); n > 0; ++b, n -= kQK, y += kQK) {
    const float d = fp16_to_fp32(b->d);
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = d * static_cast<float>((b->qs[j] & 15) - 8);
      y[j + 16] = d * static_cast<float>((b->qs[j] >> 4) - 8);
    }
  }
}

void ref_q4_1(const void* src, float* y, std::int64_t n) {
  for (const auto* b = blocks_of<BlockQ4_1>(src); n > 0; ++b, n -= kQK, y += kQK) {
    const float d = fp16_to_fp32(b->d);
    const float m = fp16_to_fp32(b->m);
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = d * static_cast<float>(b->qs[j] & 15) + m;
      y[j + 16] = d * static_cast<float>(b->qs[j] >> 4) + m;
    }
  }
}

// Q5_0 and Q5_1 share the bit layout; `offset` is the −16 of Q5_0 (0 for Q5_1).
template <typename Block>
void ref_q5(const Block* b, float d, float m, int offset, float* y) {
  std::uint32_t qh;
  std::memcpy(&qh, b->qh, 4);
  for (int j = 0; j < kQK / 2; ++j) {
    const int lo = (b->qs[j] & 15) | static_cast<int>(((qh >> j) & 1) << 4);
    const int hi = (b->qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1) << 4);
    y[j] = d * static_cast<float>(lo - offset) + m;
    y[j + 16] = d * static_cast<float>(hi - offset) + m;
  }
}

void ref_q5_0(const void* src, float* y, std::int64_t n) {
  for (const auto* b = blocks_of<BlockQ5_0>(src); n > 0; ++b, n -= kQK, y += kQK) {
    ref_q5(b, fp16_to_fp32(b->d), 0.0f, 16, y);
  }
}

void ref_q5_1(const void* src, float* y, std::int64_t n) {
  for (const auto* b = blocks_of<BlockQ5_1>(src); n > 0; ++b, n -= kQK, y += kQK) {
    ref_q5(b, fp16_to_fp32(b->d), fp16_to_fp32(b->m), 0, y);
  }
}

void ref_q8_0(const void* src, float* y, std::int64_t n) {
  for (const auto* b = blocks_of<BlockQ8_0>(src); n > 0; ++b, n -= kQK, y += kQK) {
    const float d = fp16_to_fp32(b->d);
    for (int j = 0; j < kQK; ++j) y[j] = d * static_cast<float>(b->qs[j]);
  }
}

// Q4_K: 4 chunks of 32 qs bytes; chunk c holds sub-block 2c in its low nibbles and 2c+1 in
// its high nibbles. Q5_K adds bit j of qh[l] as bit 4 of element l of sub-block j.
template <bool kFive, typename Block>
void ref_kquant(const Block* b, float* y) {
  const float d = fp16_to_fp32(b->d);
  const float dmin = fp16_to_fp32(b->dmin);
  for (int j = 0; j < 8; ++j) {
    std::uint8_t sc, mn;
    kquant_scale_min(b->scales, j, &sc, &mn);
    const float scale = d * sc;
    const float min = dmin * mn;
    const std::uint8_t* qs = b->qs + 32 * (j / 2);
    const int shift = 4 * (j % 2);
    for (int l = 0; l < 32; ++l) {
      int q = (qs[l] >> shift) & 15;
      if constexpr (kFive) q |= ((b->qh[l] >> j) & 1) << 4;
      y[32 * j + l] = scale * static_cast<float>(q) - min;
    }
  }
}

void ref_q4_k(const void* src, float* y, std::int64_t n) {
  for (const auto* b = blocks_of<BlockQ4_K>(src); n > 0; ++b, n -= kQKK, y += kQKK) {
    ref_kquant<false>(b, y);
  }
}

void ref_q5_k(const void* src, float* y, std::int64_t n) {
  for (const auto* b = blocks_of<BlockQ5_K>(src); n > 0; ++b, n -= kQKK, y += kQKK) {
    ref_kquant<true>(b, y);
  }
}

void ref_q6_k(const void* src, float* y, std::int64_t n) {
  std::int8_t q[kQKK];
  for (const auto* b = blocks_of<BlockQ6_K>(src); n > 0; ++b, n -= kQKK, y += kQKK) {
    const float d = fp16_to_fp32(b->d);
    q6_k_quants(*b, q);
    for (int e = 0; e < kQKK; ++e) y[e] = d * static_cast<float>(b->scales[e / 16]) * static_cast<float>(q[e]);
  }
}

using RowFn = void (*)(const void*, float*, std::int64_t);

RowFn reference_fn(GgmlType type) {
  switch (type) {
    case GgmlType::F32: return ref_f32;
    case GgmlType::F16: return ref_f16;
    case GgmlType::BF16: return ref_bf16;
    case GgmlType::Q4_0: return ref_q4_0;
    case GgmlType::Q4_1: return ref_q4_1;
    case GgmlType::Q5_0: return ref_q5_0;
    case GgmlType::Q5_1: return ref_q5_1;
    case GgmlType::Q8_0: return ref_q8_0;
    case GgmlType::Q4_K: return ref_q4_k;
    case GgmlType::Q5_K: return ref_q5_k;
    case GgmlType::Q6_K: return ref_q6_k;
    default: return nullptr;
  }
}

void check_row(GgmlType type, std::int64_t n) {
  const GgmlTypeTraits* traits = ggml_type_traits(type);
  LS_CHECK(traits && reference_fn(type),
           "cannot dequantize tensors of type {}: longsparse supports F32, F16, BF16, Q4_0, "
           "Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K and Q6_K",
           ggml_type_name(type));
  LS_CHECK(n >= 0 && n % traits->block_elements == 0,
           "dequantize: {} elements is not a multiple of the {} block size {}", n, traits->name,
           traits->block_elements);
}

}  // namespace

bool can_dequantize(GgmlType type) { return reference_fn(type) != nullptr; }

void dequantize_row_reference(GgmlType type, const void* src, float* dst, std::int64_t n) {
  check_row(type, n);
  reference_fn(type)(src, dst, n);
}

void dequantize_row(GgmlType type, const void* src, float* dst, std::int64_t n) {
  check_row(type, n);
  if (!simd::dequantize_row(type, src, dst, n)) reference_fn(type)(src, dst, n);
}

void dequantize_rows(const GgufTensor& tensor, std::int64_t first_row, std::int64_t row_count,
                     float* dst) {
  LS_CHECK(can_dequantize(tensor.type), "tensor '{}' has type {}, which longsparse cannot dequantize",
           tensor.name, ggml_type_name(tensor.type));
  LS_CHECK(first_row >= 0 && row_count >= 0 && first_row <= tensor.rows() - row_count,
           "tensor '{}': rows [{}, {}) are outside its {} rows", tensor.name, first_row,
           first_row + row_count, tensor.rows());
  const std::int64_t ne0 = tensor.dims[0];
  const std::int64_t row_bytes = tensor.row_bytes();
  for (std::int64_t r = 0; r < row_count; ++r) {
    dequantize_row(tensor.type, tensor.data + (first_row + r) * row_bytes, dst + r * ne0, ne0);
  }
}

}  // namespace ls
