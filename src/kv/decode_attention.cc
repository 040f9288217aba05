// Single-query attention over the KV cache (see decode_attention.h).
#include "kv/decode_attention.h"

// Static dispatch only: this file is compiled for the build machine (-march=native).
#define HWY_COMPILE_ONLY_STATIC 1
#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/parallel.h"

namespace ls {

namespace {

namespace hn = hwy::HWY_NAMESPACE;

constexpr std::int64_t kChunk = 256;  // keys per work item

// x[i] = exp(x[i] - shift) for i < n; returns the sum.
float exp_shifted_sum(float* x, std::int64_t n, float shift) {
  const hn::ScalableTag<float> d;
  const std::int64_t lanes = hn::Lanes(d);
  auto sum = hn::Zero(d);
  const auto sub = hn::Set(d, shift);
  std::int64_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    auto e = hn::Exp(d, hn::Sub(hn::LoadU(d, x + i), sub));
    hn::StoreU(e, d, x + i);
    sum = hn::Add(sum, e);
  }
  float total = hn::GetLane(hn::SumOfLanes(d, sum));
  for (; i < n; ++i) {
    x[i] = std::exp(x[i] - shift);
    total += x[i];
  }
  return total;
}

}  // namespace

void DecodeAttention::run(const KvCache& cache, int layer, const float* q, int heads, std::int64_t n_keys,
                          float scale, float* out) {
  const KvCacheShape& shape = cache.shape();
  const int kv_heads = shape.kv_heads, dim = shape.dim;
  LS_CHECK(heads % kv_heads == 0, "{} query heads cannot share {} KV heads", heads, kv_heads);
  LS_CHECK(n_keys > 0 && n_keys <= cache.capacity(), "decode over {} keys (capacity {})", n_keys,
           cache.capacity());
  // Slots [0, n_slots) hold the keys attended to: positions 0..n_keys-1, or a ring's window.
  const std::int64_t n_slots = std::min(n_keys, cache.slots(layer));
  const int group = heads / kv_heads;
  const std::int64_t chunks = (n_slots + kChunk - 1) / kChunk;
  const std::int64_t stride = dim + 2;
  const KvType kt = cache.key_type(), vt = cache.value_type();
  const std::int64_t k_bytes = cache.key_row_bytes(), v_bytes = cache.value_row_bytes();
  partials_.ensure(std::int64_t(heads) * chunks * stride);
  scores_.ensure(std::int64_t(num_threads()) * group * kChunk);
  if (kt != KvType::F32 || vt != KvType::F32) tiles_.ensure(std::int64_t(num_threads()) * 2 * kChunk * dim);

  parallel_for(kv_heads * chunks, [&](std::int64_t item) {
    const int g = static_cast<int>(item / chunks);
    const std::int64_t c = item % chunks, first = c * kChunk, count = std::min(kChunk, n_slots - first);
    float* tile = tiles_.data() + std::int64_t(thread_id()) * 2 * kChunk * dim;
    const std::uint8_t* k_rows = cache.keys(layer, g) + first * k_bytes;
    const std::uint8_t* v_rows = cache.values(layer, g) + first * v_bytes;
    const float* keys = reinterpret_cast<const float*>(k_rows);
    const float* values = reinterpret_cast<const float*>(v_rows);
    if (kt != KvType::F32) kv_decode_rows(kt, k_rows, count, dim, tile), keys = tile;
    if (vt != KvType::F32) kv_decode_rows(vt, v_rows, count, dim, tile + kChunk * dim), values = tile + kChunk * dim;
    float* scores = scores_.data() + std::int64_t(thread_id()) * group * kChunk;  // [group][kChunk]
    for (int i = 0; i < group; ++i) {
      const float* qh = q + std::int64_t(g * group + i) * dim;
      float* s = scores + i * kChunk;
      for (std::int64_t j = 0; j < count; ++j) {
        const float* k = keys + j * dim;
        float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
        for (int e = 0; e < dim; ++e) dot += qh[e] * k[e];
        s[j] = dot * scale;
      }
      float max = *std::max_element(s, s + count);
      float sum = exp_shifted_sum(s, count, max);
      float* partial = partials_.data() + (std::int64_t(g * group + i) * chunks + c) * stride;
      std::fill(partial, partial + dim, 0.0f);
      for (std::int64_t j = 0; j < count; ++j) {
        const float* v = values + j * dim;
        const float p = s[j];
#pragma omp simd
        for (int e = 0; e < dim; ++e) partial[e] += p * v[e];
      }
      partial[dim] = max;
      partial[dim + 1] = sum;
    }
  });

  for (int h = 0; h < heads; ++h) {
    const float* partial = partials_.data() + std::int64_t(h) * chunks * stride;
    float max = -std::numeric_limits<float>::infinity();
    for (std::int64_t c = 0; c < chunks; ++c) max = std::max(max, partial[c * stride + dim]);
    float* o = out + std::int64_t(h) * dim;
    std::fill(o, o + dim, 0.0f);
    float total = 0.0f;
    for (std::int64_t c = 0; c < chunks; ++c) {
      const float* pc = partial + c * stride;
      const float w = std::exp(pc[dim] - max);
      total += w * pc[dim + 1];
      for (int e = 0; e < dim; ++e) o[e] += w * pc[e];
    }
    for (int e = 0; e < dim; ++e) o[e] /= total;
  }
}

}  // namespace ls
