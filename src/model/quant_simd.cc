// Vector dequantization with Highway, compiled once per target and dispatched at run time
// (core/simd.h). Each kernel walks a block in chunks of N ≤ 16 lanes: the quant bytes of a
// chunk are widened to int32 lanes, unpacked with shifts and masks, converted to float and
// scaled. Same formulas and element order as quant.cc.
#include "model/quant_simd.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "model/quant_simd.cc"
#include <hwy/foreach_target.h>  // re-includes this file once per target
#include <hwy/highway.h>

#include <cstring>

#include "core/half.h"
#include "model/quant.h"

HWY_BEFORE_NAMESPACE();
namespace ls::simd {
namespace HWY_NAMESPACE {
namespace {

namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::CappedTag<float, 16>;
using DI = hn::RebindToSigned<DF>;
using DU = hn::RebindToUnsigned<DF>;
using DU8 = hn::Rebind<std::uint8_t, DF>;
using DI8 = hn::Rebind<std::int8_t, DF>;
using DU16 = hn::Rebind<std::uint16_t, DF>;
using VI = hn::Vec<DI>;

const DF df;
const DI di;
const DU du;
const DU8 du8;

// N bytes at p, each widened to an int32 lane.
HWY_INLINE VI load_bytes(const std::uint8_t* p) { return hn::PromoteTo(di, hn::LoadU(du8, p)); }

HWY_INLINE void store(VI q, float scale, float* y) {
  hn::StoreU(hn::Mul(hn::Set(df, scale), hn::ConvertTo(df, q)), df, y);
}
HWY_INLINE void store(VI q, float scale, float offset, float* y) {
  hn::StoreU(hn::MulAdd(hn::Set(df, scale), hn::ConvertTo(df, q), hn::Set(df, offset)), df, y);
}

void f16(const void* src, float* y, std::int64_t n) {
  const auto* h = static_cast<const hwy::float16_t*>(src);
  const hn::Rebind<hwy::float16_t, DF> dh;
  const std::int64_t step = static_cast<std::int64_t>(hn::Lanes(df));
  std::int64_t i = 0;
  for (; i + step <= n; i += step) hn::StoreU(hn::PromoteTo(df, hn::LoadU(dh, h + i)), df, y + i);
  for (; i < n; ++i) y[i] = fp16_to_fp32(static_cast<const std::uint16_t*>(src)[i]);
}

void bf16(const void* src, float* y, std::int64_t n) {
  const auto* h = static_cast<const std::uint16_t*>(src);
  const DU16 d16;
  const std::int64_t step = static_cast<std::int64_t>(hn::Lanes(df));
  std::int64_t i = 0;
  for (; i + step <= n; i += step) {
    const auto bits = hn::ShiftLeft<16>(hn::PromoteTo(du, hn::LoadU(d16, h + i)));
    hn::StoreU(hn::BitCast(df, bits), df, y + i);
  }
  for (; i < n; ++i) y[i] = bf16_to_fp32(h[i]);
}

void q8_0(const void* src, float* y, std::int64_t n) {
  const DI8 di8;
  const int step = static_cast<int>(hn::Lanes(df));
  for (const auto* b = static_cast<const BlockQ8_0*>(src); n > 0; ++b, n -= kQK, y += kQK) {
    const float d = fp16_to_fp32(b->d);
    for (int j = 0; j < kQK; j += step) store(hn::PromoteTo(di, hn::LoadU(di8, b->qs + j)), d, y + j);
  }
}

// Q4_0 (kMin = false: y = d·(q − 8)) and Q4_1 (y = d·q + m).
template <bool kMin, typename Block>
void q4(const void* src, float* y, std::int64_t n) {
  const int step = static_cast<int>(hn::Lanes(df));
  const VI mask = hn::Set(di, 15);
  for (const auto* b = static_cast<const Block*>(src); n > 0; ++b, n -= kQK, y += kQK) {
    const float d = fp16_to_fp32(b->d);
    for (int j = 0; j < kQK / 2; j += step) {
      const VI bytes = load_bytes(b->qs + j);
      VI lo = hn::And(bytes, mask);
      VI hi = hn::ShiftRight<4>(bytes);
      if constexpr (kMin) {
        const float m = fp16_to_fp32(b->m);
        store(lo, d, m, y + j);
        store(hi, d, m, y + j + 16);
      } else {
        store(hn::Sub(lo, hn::Set(di, 8)), d, y + j);
        store(hn::Sub(hi, hn::Set(di, 8)), d, y + j + 16);
      }
    }
  }
}

// Q5_0 (kMin = false: y = d·(q − 16)) and Q5_1 (y = d·q + m); bit 4 of element j is bit j of qh.
template <bool kMin, typename Block>
void q5(const void* src, float* y, std::int64_t n) {
  const int step = static_cast<int>(hn::Lanes(df));
  const VI mask = hn::Set(di, 15);
  const auto one = hn::Set(du, 1u);
  for (const auto* b = static_cast<const Block*>(src); n > 0; ++b, n -= kQK, y += kQK) {
    const float d = fp16_to_fp32(b->d);
    std::uint32_t qh;
    std::memcpy(&qh, b->qh, 4);
    const auto qhv = hn::Set(du, qh);
    for (int j = 0; j < kQK / 2; j += step) {
      const VI bytes = load_bytes(b->qs + j);
      const auto bit_lo = hn::And(hn::operator>>(qhv, hn::Iota(du, static_cast<std::uint32_t>(j))), one);
      const auto bit_hi = hn::And(hn::operator>>(qhv, hn::Iota(du, static_cast<std::uint32_t>(j + 16))), one);
      VI lo = hn::Or(hn::And(bytes, mask), hn::ShiftLeft<4>(hn::BitCast(di, bit_lo)));
      VI hi = hn::Or(hn::ShiftRight<4>(bytes), hn::ShiftLeft<4>(hn::BitCast(di, bit_hi)));
      if constexpr (kMin) {
        const float m = fp16_to_fp32(b->m);
        store(lo, d, m, y + j);
        store(hi, d, m, y + j + 16);
      } else {
        store(hn::Sub(lo, hn::Set(di, 16)), d, y + j);
        store(hn::Sub(hi, hn::Set(di, 16)), d, y + j + 16);
      }
    }
  }
}

// Q4_K and Q5_K (kFive): chunk c of 32 qs bytes gives sub-block 2c (low nibbles) and 2c+1
// (high nibbles); y = d·sc·q − dmin·mn.
template <bool kFive, typename Block>
void kquant(const void* src, float* y, std::int64_t n) {
  const int step = static_cast<int>(hn::Lanes(df));
  const VI mask = hn::Set(di, 15);
  const VI one = hn::Set(di, 1);
  for (const auto* b = static_cast<const Block*>(src); n > 0; ++b, n -= kQKK, y += kQKK) {
    const float d = fp16_to_fp32(b->d);
    const float dmin = fp16_to_fp32(b->dmin);
    for (int c = 0; c < 4; ++c) {
      std::uint8_t sc0, mn0, sc1, mn1;
      kquant_scale_min(b->scales, 2 * c, &sc0, &mn0);
      kquant_scale_min(b->scales, 2 * c + 1, &sc1, &mn1);
      const float scale0 = d * sc0, min0 = dmin * mn0;
      const float scale1 = d * sc1, min1 = dmin * mn1;
      float* y0 = y + 64 * c;
      float* y1 = y0 + 32;
      for (int l = 0; l < 32; l += step) {
        const VI bytes = load_bytes(b->qs + 32 * c + l);
        VI lo = hn::And(bytes, mask);
        VI hi = hn::ShiftRight<4>(bytes);
        if constexpr (kFive) {
          const VI qh = load_bytes(b->qh + l);
          lo = hn::Or(lo, hn::ShiftLeft<4>(hn::And(hn::ShiftRightSame(qh, 2 * c), one)));
          hi = hn::Or(hi, hn::ShiftLeft<4>(hn::And(hn::ShiftRightSame(qh, 2 * c + 1), one)));
        }
        store(lo, scale0, -min0, y0 + l);
        store(hi, scale1, -min1, y1 + l);
      }
    }
  }
}

void q6_k(const void* src, float* y, std::int64_t n) {
  const int step = static_cast<int>(hn::Lanes(df));
  const VI mask = hn::Set(di, 15);
  const VI three = hn::Set(di, 3);
  const VI bias = hn::Set(di, 32);
  for (const auto* b = static_cast<const BlockQ6_K*>(src); n > 0; ++b, n -= kQKK, y += kQKK) {
    const float d = fp16_to_fp32(b->d);
    for (int h = 0; h < 2; ++h) {
      const std::uint8_t* ql = b->ql + 64 * h;
      const std::uint8_t* qhp = b->qh + 32 * h;
      const std::int8_t* scales = b->scales + 8 * h;
      float* out = y + 128 * h;
      for (int l = 0; l < 32; l += step) {
        const VI a = load_bytes(ql + l);
        const VI c = load_bytes(ql + 32 + l);
        const VI qh = load_bytes(qhp + l);
        // A chunk of ≤ 16 lanes never crosses a 16-element scale group.
        const VI q0 = hn::Sub(hn::Or(hn::And(a, mask), hn::ShiftLeft<4>(hn::And(qh, three))), bias);
        const VI q1 = hn::Sub(
            hn::Or(hn::And(c, mask), hn::ShiftLeft<4>(hn::And(hn::ShiftRight<2>(qh), three))), bias);
        const VI q2 = hn::Sub(
            hn::Or(hn::ShiftRight<4>(a), hn::ShiftLeft<4>(hn::And(hn::ShiftRight<4>(qh), three))), bias);
        const VI q3 = hn::Sub(hn::Or(hn::ShiftRight<4>(c), hn::ShiftLeft<4>(hn::ShiftRight<6>(qh))), bias);
        store(q0, d * static_cast<float>(scales[(l) / 16]), out + l);
        store(q1, d * static_cast<float>(scales[(l + 32) / 16]), out + l + 32);
        store(q2, d * static_cast<float>(scales[(l + 64) / 16]), out + l + 64);
        store(q3, d * static_cast<float>(scales[(l + 96) / 16]), out + l + 96);
      }
    }
  }
}

}  // namespace

bool DequantizeRow(GgmlType type, const void* src, float* dst, std::int64_t n) {
  switch (type) {
    case GgmlType::F16: f16(src, dst, n); return true;
    case GgmlType::BF16: bf16(src, dst, n); return true;
    case GgmlType::Q4_0: q4<false, BlockQ4_0>(src, dst, n); return true;
    case GgmlType::Q4_1: q4<true, BlockQ4_1>(src, dst, n); return true;
    case GgmlType::Q5_0: q5<false, BlockQ5_0>(src, dst, n); return true;
    case GgmlType::Q5_1: q5<true, BlockQ5_1>(src, dst, n); return true;
    case GgmlType::Q8_0: q8_0(src, dst, n); return true;
    case GgmlType::Q4_K: kquant<false, BlockQ4_K>(src, dst, n); return true;
    case GgmlType::Q5_K: kquant<true, BlockQ5_K>(src, dst, n); return true;
    case GgmlType::Q6_K: q6_k(src, dst, n); return true;
    default: return false;  // F32 is a copy; the scalar path does it
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace ls::simd
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace ls::simd {

HWY_EXPORT(DequantizeRow);

bool dequantize_row(GgmlType type, const void* src, float* dst, std::int64_t n) {
  return HWY_DYNAMIC_DISPATCH(DequantizeRow)(type, src, dst, n);
}

}  // namespace ls::simd
#endif  // HWY_ONCE
