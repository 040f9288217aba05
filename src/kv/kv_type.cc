// KV cache element types (see kv_type.h). Encoding a row and decoding a run of rows are
// Highway kernels dispatched at run time (core/simd.h). The scalar conversions of core/half.h
// define the rounding (round to nearest even); the encoders reproduce them bit for bit.
#include "kv/kv_type.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kv/kv_type.cc"
#include <hwy/foreach_target.h>  // re-includes this file once per target
#include <hwy/highway.h>

#include <cstring>

#include "core/error.h"
#include "core/half.h"

HWY_BEFORE_NAMESPACE();
namespace ls {
namespace HWY_NAMESPACE {
namespace {

namespace hn = hwy::HWY_NAMESPACE;

// The vector forms of core/half.h's fp32_to_fp16 and fp32_to_bf16, step for step in integer
// lanes, so every target rounds (and keeps NaNs) exactly as the scalar code does.
void EncodeF16(const float* x, std::int64_t n, std::uint16_t* out) {
  const hn::ScalableTag<float> df;
  const hn::RebindToSigned<decltype(df)> di;
  const hn::Rebind<std::uint16_t, decltype(df)> d16;
  const std::int64_t lanes = hn::Lanes(df);
  const auto one = hn::Set(di, 1);
  std::int64_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const auto bits = hn::BitCast(di, hn::LoadU(df, x + i));
    const auto sign = hn::And(hn::ShiftRight<16>(bits), hn::Set(di, 0x8000));
    const auto ax = hn::And(bits, hn::Set(di, 0x7FFFFFFF));
    // Normal: rebias the exponent, keep 10 mantissa bits, round the 13 dropped ones half to
    // even (a carry into the exponent is right).
    auto h = hn::Or(hn::ShiftLeft<10>(hn::Sub(hn::ShiftRight<23>(ax), hn::Set(di, 112))),
                    hn::And(hn::ShiftRight<13>(ax), hn::Set(di, 0x3FF)));
    const auto rest = hn::And(ax, hn::Set(di, 0x1FFF));
    const auto half = hn::Set(di, 0x1000);
    const auto up = hn::Or(rest > half, hn::And(rest == half, hn::And(h, one) == one));
    h = hn::Add(h, hn::IfThenElseZero(up, one));
    // Below the smallest normal: units of 2^-24, rounded half to even.
    const auto units = hn::ConvertTo(di, hn::Round(hn::Mul(hn::BitCast(df, ax), hn::Set(df, 0x1p24f))));
    h = hn::IfThenElse(ax < hn::Set(di, 0x38800000), units, h);
    h = hn::IfThenElse(ax > hn::Set(di, 0x477FEFFF), hn::Set(di, 0x7C00), h);  // >= 65520: inf
    const auto nan = hn::Or(hn::Set(di, 0x7E00), hn::And(hn::ShiftRight<13>(ax), hn::Set(di, 0x3FF)));
    h = hn::IfThenElse(ax > hn::Set(di, 0x7F800000), nan, h);
    hn::StoreU(hn::DemoteTo(d16, hn::Or(sign, h)), d16, out + i);
  }
  for (; i < n; ++i) out[i] = fp32_to_fp16(x[i]);
}

void EncodeBf16(const float* x, std::int64_t n, std::uint16_t* out) {
  const hn::ScalableTag<float> df;
  const hn::RebindToSigned<decltype(df)> di;
  const hn::RebindToUnsigned<decltype(df)> du;
  const hn::Rebind<std::uint16_t, decltype(df)> d16;
  const std::int64_t lanes = hn::Lanes(df);
  std::int64_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const auto bits = hn::BitCast(du, hn::LoadU(df, x + i));
    const auto rounding = hn::Add(hn::Set(du, 0x7FFFu), hn::And(hn::ShiftRight<16>(bits), hn::Set(du, 1u)));
    const auto rounded = hn::ShiftRight<16>(hn::Add(bits, rounding));  // half to even
    const auto nan = hn::Or(hn::ShiftRight<16>(bits), hn::Set(du, 0x40u));  // truncating could give inf
    const auto is_nan = hn::And(hn::BitCast(di, bits), hn::Set(di, 0x7FFFFFFF)) > hn::Set(di, 0x7F800000);
    const auto b = hn::IfThenElse(hn::RebindMask(du, is_nan), nan, rounded);
    hn::StoreU(hn::DemoteTo(d16, hn::BitCast(di, b)), d16, out + i);
  }
  for (; i < n; ++i) out[i] = fp32_to_bf16(x[i]);
}

// Blocks of 32: d = max|x| / 127 stored as fp16, q = round(x / d) half to even, as ggml's
// quantize_row_q8_0.
void EncodeQ8_0(const float* x, int dim, std::uint8_t* block) {
  const hn::CappedTag<float, kQ8BlockSize> df;
  const hn::RebindToSigned<decltype(df)> di;
  const hn::Rebind<std::int8_t, decltype(df)> d8;
  const int lanes = static_cast<int>(hn::Lanes(df));
  for (int b0 = 0; b0 < dim; b0 += kQ8BlockSize, block += 2 + kQ8BlockSize) {
    auto top = hn::Zero(df);
    for (int i = 0; i < kQ8BlockSize; i += lanes) top = hn::Max(top, hn::Abs(hn::LoadU(df, x + b0 + i)));
    const float amax = hn::GetLane(hn::MaxOfLanes(df, top));
    const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    const std::uint16_t dh = fp32_to_fp16(d);
    std::memcpy(block, &dh, 2);
    auto* q = reinterpret_cast<std::int8_t*>(block + 2);
    const auto scale = hn::Set(df, id);
    for (int i = 0; i < kQ8BlockSize; i += lanes)
      hn::StoreU(hn::DemoteTo(d8, hn::ConvertTo(di, hn::Round(hn::Mul(hn::LoadU(df, x + b0 + i), scale)))), d8, q + i);
  }
}

void DecodeF16(const std::uint16_t* h, std::int64_t n, float* out) {
  const hn::ScalableTag<float> df;
  const hn::Rebind<hwy::float16_t, decltype(df)> dh;
  const std::int64_t lanes = hn::Lanes(df);
  std::int64_t i = 0;
  for (; i + lanes <= n; i += lanes)
    hn::StoreU(hn::PromoteTo(df, hn::LoadU(dh, reinterpret_cast<const hwy::float16_t*>(h + i))), df, out + i);
  for (; i < n; ++i) out[i] = fp16_to_fp32(h[i]);
}

void DecodeBf16(const std::uint16_t* b, std::int64_t n, float* out) {
  const hn::ScalableTag<float> df;
  const hn::RebindToUnsigned<decltype(df)> du;
  const hn::Rebind<std::uint16_t, decltype(df)> d16;
  const std::int64_t lanes = hn::Lanes(df);
  std::int64_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const auto wide = hn::PromoteTo(du, hn::LoadU(d16, b + i));
    hn::StoreU(hn::BitCast(df, hn::ShiftLeft<16>(wide)), df, out + i);
  }
  for (; i < n; ++i) out[i] = bf16_to_fp32(b[i]);
}

void DecodeQ8_0(const std::uint8_t* block, int dim, float* out) {
  const hn::ScalableTag<float> df;
  const hn::Rebind<std::int32_t, decltype(df)> di;
  const hn::Rebind<std::int8_t, decltype(df)> d8;
  const int lanes = static_cast<int>(hn::Lanes(df));
  for (int b0 = 0; b0 < dim; b0 += kQ8BlockSize, block += 2 + kQ8BlockSize) {
    std::uint16_t dh;
    std::memcpy(&dh, block, 2);
    const float d = fp16_to_fp32(dh);
    const auto* q = reinterpret_cast<const std::int8_t*>(block + 2);
    if (lanes <= kQ8BlockSize) {
      const auto scale = hn::Set(df, d);
      for (int i = 0; i < kQ8BlockSize; i += lanes)
        hn::StoreU(hn::Mul(scale, hn::ConvertTo(df, hn::PromoteTo(di, hn::LoadU(d8, q + i)))), df, out + b0 + i);
    } else {
      for (int i = 0; i < kQ8BlockSize; ++i) out[b0 + i] = d * float(q[i]);
    }
  }
}

}  // namespace

// One row of `dim` elements into the type's bytes.
void EncodeRow(KvType type, const float* x, int dim, void* out) {
  switch (type) {
    case KvType::F32: std::memcpy(out, x, std::size_t(dim) * 4); return;
    case KvType::F16: EncodeF16(x, dim, static_cast<std::uint16_t*>(out)); return;
    case KvType::BF16: EncodeBf16(x, dim, static_cast<std::uint16_t*>(out)); return;
    case KvType::Q8_0: EncodeQ8_0(x, dim, static_cast<std::uint8_t*>(out)); return;
  }
}

// `count` rows of `dim` elements, row_bytes apart, into out [count][dim].
void DecodeRows(KvType type, const void* rows, std::int64_t count, int dim, std::int64_t row_bytes, float* out) {
  switch (type) {
    case KvType::F32: std::memcpy(out, rows, std::size_t(count) * dim * 4); return;
    case KvType::F16: DecodeF16(static_cast<const std::uint16_t*>(rows), count * dim, out); return;
    case KvType::BF16: DecodeBf16(static_cast<const std::uint16_t*>(rows), count * dim, out); return;
    case KvType::Q8_0: {
      const auto* p = static_cast<const std::uint8_t*>(rows);
      for (std::int64_t r = 0; r < count; ++r) DecodeQ8_0(p + r * row_bytes, dim, out + r * dim);
      return;
    }
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace ls
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace ls {

HWY_EXPORT(EncodeRow);
HWY_EXPORT(DecodeRows);

KvType parse_kv_type(std::string_view name) {
  if (name == "f32") return KvType::F32;
  if (name == "f16") return KvType::F16;
  if (name == "bf16") return KvType::BF16;
  if (name == "q8_0") return KvType::Q8_0;
  fail("unknown KV cache type '{}'; valid: {}", name, kv_type_names());
}

const char* kv_type_name(KvType type) {
  switch (type) {
    case KvType::F32: return "f32";
    case KvType::F16: return "f16";
    case KvType::BF16: return "bf16";
    case KvType::Q8_0: return "q8_0";
  }
  return "?";
}

std::string kv_type_names() { return "f32, f16, bf16, q8_0"; }

std::int64_t kv_row_bytes(KvType type, int dim) {
  LS_CHECK(dim > 0, "invalid KV row of {} elements", dim);
  switch (type) {
    case KvType::F32: return std::int64_t(dim) * 4;
    case KvType::F16:
    case KvType::BF16: return std::int64_t(dim) * 2;
    case KvType::Q8_0:
      LS_CHECK(dim % kQ8BlockSize == 0, "KV cache type q8_0 needs a head dimension that is a multiple of {} (got {})",
               kQ8BlockSize, dim);
      return std::int64_t(dim / kQ8BlockSize) * (2 + kQ8BlockSize);
  }
  return 0;
}

double kv_type_rel_bound(KvType type) {
  switch (type) {
    case KvType::F32: return 0.0;
    case KvType::F16: return 1.0 / 2048;
    case KvType::BF16: return 1.0 / 256;
    case KvType::Q8_0: return 0.5 / 127 + 1.0 / 2048;
  }
  return 0.0;
}

void kv_encode_row(KvType type, const float* x, int dim, void* out) {
  HWY_DYNAMIC_DISPATCH(EncodeRow)(type, x, dim, out);
}

void kv_decode_row(KvType type, const void* row, int dim, float* out) {
  HWY_DYNAMIC_DISPATCH(DecodeRows)(type, row, 1, dim, kv_row_bytes(type, dim), out);
}

void kv_decode_rows(KvType type, const void* rows, std::int64_t count, int dim, float* out) {
  HWY_DYNAMIC_DISPATCH(DecodeRows)(type, rows, count, dim, kv_row_bytes(type, dim), out);
}

}  // namespace ls
#endif  // HWY_ONCE
