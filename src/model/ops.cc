// Forward-pass operations (see ops.h). The element-wise kernels use Highway with dynamic
// dispatch (core/simd.h); RMSNorm, soft-capping and RoPE are scalar.
#include "model/ops.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "model/ops.cc"
#include <hwy/foreach_target.h>  // re-includes this file once per target
#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "core/error.h"

HWY_BEFORE_NAMESPACE();
namespace ls {
namespace HWY_NAMESPACE {

namespace hn = hwy::HWY_NAMESPACE;

void SiluMul(const float* gate, const float* up, std::int64_t n, float* out) {
  const hn::ScalableTag<float> d;
  const std::int64_t lanes = hn::Lanes(d);
  const auto one = hn::Set(d, 1.0f);
  std::int64_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    auto g = hn::LoadU(d, gate + i);
    auto silu = hn::Div(g, hn::Add(one, hn::Exp(d, hn::Neg(g))));
    hn::StoreU(hn::Mul(silu, hn::LoadU(d, up + i)), d, out + i);
  }
  for (; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void GeluTanhMul(const float* gate, const float* up, std::int64_t n, float* out) {
  const hn::ScalableTag<float> d;
  const std::int64_t lanes = hn::Lanes(d);
  const auto half = hn::Set(d, 0.5f), one = hn::Set(d, 1.0f), c = hn::Set(d, 0.7978845608f),
             k = hn::Set(d, 0.044715f);
  std::int64_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const auto x = hn::LoadU(d, gate + i);
    const auto inner = hn::Mul(c, hn::MulAdd(hn::Mul(k, x), hn::Mul(x, x), x));
    const auto gelu = hn::Mul(hn::Mul(half, x), hn::Add(one, hn::Tanh(d, inner)));
    hn::StoreU(hn::Mul(gelu, hn::LoadU(d, up + i)), d, out + i);
  }
  for (; i < n; ++i) {
    const float x = gate[i];
    out[i] = 0.5f * x * (1.0f + std::tanh(0.7978845608f * (x + 0.044715f * x * x * x))) * up[i];
  }
}

void AddInplace(float* x, const float* y, std::int64_t n) {
  const hn::ScalableTag<float> d;
  const std::int64_t lanes = hn::Lanes(d);
  std::int64_t i = 0;
  for (; i + lanes <= n; i += lanes) hn::StoreU(hn::Add(hn::LoadU(d, x + i), hn::LoadU(d, y + i)), d, x + i);
  for (; i < n; ++i) x[i] += y[i];
}

}  // namespace HWY_NAMESPACE
}  // namespace ls
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace ls {

HWY_EXPORT(SiluMul);
HWY_EXPORT(GeluTanhMul);
HWY_EXPORT(AddInplace);

void rms_norm(const float* x, const float* weight, std::int64_t n, float eps, float* out) {
  double sum = 0.0;
  for (std::int64_t i = 0; i < n; ++i) sum += double(x[i]) * x[i];
  const float scale = static_cast<float>(1.0 / std::sqrt(sum / double(n) + double(eps)));
  for (std::int64_t i = 0; i < n; ++i) out[i] = x[i] * scale * weight[i];
}

void silu_mul(const float* gate, const float* up, std::int64_t n, float* out) {
  HWY_DYNAMIC_DISPATCH(SiluMul)(gate, up, n, out);
}

void gelu_tanh_mul(const float* gate, const float* up, std::int64_t n, float* out) {
  HWY_DYNAMIC_DISPATCH(GeluTanhMul)(gate, up, n, out);
}

void softcap(float* x, std::int64_t n, float cap) {
  for (std::int64_t i = 0; i < n; ++i) x[i] = cap * std::tanh(x[i] / cap);
}

void add_inplace(float* x, const float* y, std::int64_t n) { HWY_DYNAMIC_DISPATCH(AddInplace)(x, y, n); }

void Rope::reserve(std::int64_t positions) {
  if (positions <= positions_) return;
  const int pairs = rope_dims_ / 2;
  if (fine_.empty()) {
    inv_freq_.resize(pairs);
    for (int i = 0; i < pairs; ++i) inv_freq_[i] = std::pow(theta_, -2.0 * i / rope_dims_);
    fine_.resize(std::size_t(kFine) * pairs * 2);
    for (std::int64_t p = 0; p < kFine; ++p)
      for (int i = 0; i < pairs; ++i) {
        fine_[(p * pairs + i) * 2] = std::cos(double(p) * inv_freq_[i]);
        fine_[(p * pairs + i) * 2 + 1] = std::sin(double(p) * inv_freq_[i]);
      }
  }
  const std::int64_t coarse = (positions + kFine - 1) / kFine, have = std::int64_t(coarse_.size()) / (2 * pairs);
  coarse_.resize(std::size_t(coarse) * pairs * 2);
  for (std::int64_t c = have; c < coarse; ++c)
    for (int i = 0; i < pairs; ++i) {
      const double angle = double(c * kFine) * inv_freq_[i];
      coarse_[(c * pairs + i) * 2] = std::cos(angle);
      coarse_[(c * pairs + i) * 2 + 1] = std::sin(angle);
    }
  positions_ = positions;
}

void Rope::apply(float* x, int heads, int head_dim, std::int64_t position, bool inverse) const {
  LS_CHECK(position >= 0 && position < positions_, "RoPE position {} beyond its table of {}", position,
           positions_);
  const int pairs = rope_dims_ / 2;
  // cos/sin of position·f from the two tables: (c·F + r)·f = c·F·f + r·f, added in double.
  float cs[2 * kMaxPairs];
  const double* a = coarse_.data() + position / kFine * pairs * 2;
  const double* b = fine_.data() + position % kFine * pairs * 2;
  for (int i = 0; i < pairs; ++i) {
    cs[2 * i] = static_cast<float>(a[2 * i] * b[2 * i] - a[2 * i + 1] * b[2 * i + 1]);
    cs[2 * i + 1] = static_cast<float>(a[2 * i + 1] * b[2 * i] + a[2 * i] * b[2 * i + 1]);
    if (inverse) cs[2 * i + 1] = -cs[2 * i + 1];
  }
  for (int h = 0; h < heads; ++h) {
    float* v = x + std::int64_t(h) * head_dim;
    if (neox_) {
      for (int i = 0; i < pairs; ++i) {
        const float c = cs[2 * i], s = cs[2 * i + 1];
        const float a = v[i], b = v[i + pairs];
        v[i] = a * c - b * s;
        v[i + pairs] = a * s + b * c;
      }
      continue;
    }
    for (int i = 0; i < pairs; ++i) {
      const float c = cs[2 * i], s = cs[2 * i + 1];
      const float a = v[2 * i], b = v[2 * i + 1];
      v[2 * i] = a * c - b * s;
      v[2 * i + 1] = a * s + b * c;
    }
  }
}

}  // namespace ls
#endif  // HWY_ONCE
