// KV cache element types (see kv_type.h). Conversions are vectorised with Highway; the scalar
// conversions of core/half.h define the rounding (round to nearest even).
#include "kv/kv_type.h"

// Static dispatch only: this file is compiled for the build machine (-march=native).
#define HWY_COMPILE_ONLY_STATIC 1
#include <hwy/highway.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/half.h"

namespace ls {

namespace hn = hwy::HWY_NAMESPACE;

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
  switch (type) {
    case KvType::F32: std::memcpy(out, x, std::size_t(dim) * 4); return;
    case KvType::F16: {
      auto* h = static_cast<std::uint16_t*>(out);
      for (int i = 0; i < dim; ++i) h[i] = fp32_to_fp16(x[i]);
      return;
    }
    case KvType::BF16: {
      auto* b = static_cast<std::uint16_t*>(out);
      for (int i = 0; i < dim; ++i) b[i] = fp32_to_bf16(x[i]);
      return;
    }
    case KvType::Q8_0: {
      auto* block = static_cast<std::uint8_t*>(out);
      for (int b0 = 0; b0 < dim; b0 += kQ8BlockSize, block += 2 + kQ8BlockSize) {
        float amax = 0.0f;
        for (int i = 0; i < kQ8BlockSize; ++i) amax = std::max(amax, std::fabs(x[b0 + i]));
        const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        const std::uint16_t dh = fp32_to_fp16(d);
        std::memcpy(block, &dh, 2);
        auto* q = reinterpret_cast<std::int8_t*>(block + 2);
        for (int i = 0; i < kQ8BlockSize; ++i) q[i] = static_cast<std::int8_t>(std::nearbyint(x[b0 + i] * id));
      }
      return;
    }
  }
}

namespace {

void decode_f16(const std::uint16_t* h, std::int64_t n, float* out) {
  const hn::ScalableTag<float> df;
  const hn::Rebind<hwy::float16_t, decltype(df)> dh;
  const std::int64_t lanes = hn::Lanes(df);
  std::int64_t i = 0;
  for (; i + lanes <= n; i += lanes)
    hn::StoreU(hn::PromoteTo(df, hn::LoadU(dh, reinterpret_cast<const hwy::float16_t*>(h + i))), df, out + i);
  for (; i < n; ++i) out[i] = fp16_to_fp32(h[i]);
}

void decode_bf16(const std::uint16_t* b, std::int64_t n, float* out) {
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

void decode_q8_0(const std::uint8_t* block, int dim, float* out) {
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

void kv_decode_row(KvType type, const void* row, int dim, float* out) {
  switch (type) {
    case KvType::F32: std::memcpy(out, row, std::size_t(dim) * 4); return;
    case KvType::F16: decode_f16(static_cast<const std::uint16_t*>(row), dim, out); return;
    case KvType::BF16: decode_bf16(static_cast<const std::uint16_t*>(row), dim, out); return;
    case KvType::Q8_0: decode_q8_0(static_cast<const std::uint8_t*>(row), dim, out); return;
  }
}

void kv_decode_rows(KvType type, const void* rows, std::int64_t count, int dim, float* out) {
  switch (type) {
    case KvType::F32: std::memcpy(out, rows, std::size_t(count) * dim * 4); return;
    case KvType::F16: decode_f16(static_cast<const std::uint16_t*>(rows), count * dim, out); return;
    case KvType::BF16: decode_bf16(static_cast<const std::uint16_t*>(rows), count * dim, out); return;
    case KvType::Q8_0: {
      const std::int64_t bytes = kv_row_bytes(type, dim);
      const auto* p = static_cast<const std::uint8_t*>(rows);
      for (std::int64_t r = 0; r < count; ++r) decode_q8_0(p + r * bytes, dim, out + r * dim);
      return;
    }
  }
}

}  // namespace ls
