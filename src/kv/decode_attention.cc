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
  LS_CHECK(n_keys > 0 && n_keys <= cache.capacity(), "decode over {} keys (capacity {})", n_keys,
           cache.capacity());
  dense_.set_dense(cache.shape().kv_heads, n_keys, cache.first_held(layer, n_keys));
  run(cache, layer, q, heads, dense_, scale, out);
}

void DecodeAttention::run(const KvCache& cache, int layer, const float* q, int heads, const Selection& selection,
                          float scale, float* out, const DecodeFar& far) {
  const KvCacheShape& shape = cache.shape();
  const int kv_heads = shape.kv_heads, dim = shape.dim;
  const std::int64_t n_keys = selection.n_keys();
  LS_CHECK(heads % kv_heads == 0, "{} query heads cannot share {} KV heads", heads, kv_heads);
  LS_CHECK(selection.kv_heads() == kv_heads, "selection of {} KV heads for a cache of {}", selection.kv_heads(),
           kv_heads);
  LS_CHECK(n_keys > 0 && n_keys <= cache.capacity(), "decode over {} keys (capacity {})", n_keys,
           cache.capacity());
  const std::int64_t first_held = cache.first_held(layer, n_keys);
  const std::vector<TokenRange>& ranges = selection.ranges();
  const std::vector<std::int64_t>& offsets = selection.offsets();

  // Work items: chunks of up to kChunk selected keys of one KV head.
  item_head_.clear();
  item_first_.clear();
  head_items_.assign(kv_heads + 1, 0);
  head_keys_.assign(kv_heads, 0);
  range_start_.resize(ranges.size());
  for (int g = 0; g < kv_heads; ++g) {
    std::int64_t count = 0;
    for (std::int64_t r = offsets[g]; r < offsets[g + 1]; ++r) {
      LS_CHECK(ranges[r].begin >= first_held, "layer {} no longer holds position {} (it keeps {}..{})", layer,
               ranges[r].begin, first_held, n_keys - 1);
      range_start_[r] = count;
      count += ranges[r].end - ranges[r].begin;
    }
    LS_CHECK(count > 0, "selection attends to no key for KV head {}", g);
    head_keys_[g] = count;
    for (std::int64_t first = 0; first < count; first += kChunk) {
      item_head_.push_back(g);
      item_first_.push_back(first);
    }
    head_items_[g + 1] = static_cast<std::int64_t>(item_head_.size());
  }
  const std::int64_t items = static_cast<std::int64_t>(item_head_.size());
  const int group = heads / kv_heads;
  const std::int64_t stride = dim + 2;
  const KvType kt = cache.key_type(), vt = cache.value_type();
  const std::int64_t k_bytes = cache.key_row_bytes(), v_bytes = cache.value_row_bytes();
  partials_.ensure(items * group * stride);
  scores_.ensure(std::int64_t(num_threads()) * group * kChunk);
  tiles_.ensure(std::int64_t(num_threads()) * 2 * kChunk * dim);
  // Keys before `far_before` are farther than the cap from the query at position n_keys - 1.
  const bool capped = far.limit > 0 && n_keys - 1 > far.limit;
  LS_CHECK(!capped || (far.q && far.unrotate), "decode distance cap without its query or key rotation");
  const std::int64_t far_before = capped ? n_keys - 1 - far.limit : 0;
  if (capped) positions_.ensure(std::int64_t(num_threads()) * kChunk);

  parallel_for(items, [&](std::int64_t item) {
    const int g = static_cast<int>(item_head_[item]);
    const std::int64_t first = item_first_[item];
    const std::int64_t count = std::min(kChunk, head_keys_[g] - first);
    float* keys = tiles_.data() + std::int64_t(thread_id()) * 2 * kChunk * dim;
    float* values = keys + kChunk * dim;
    // Gather the chunk's rows, range by range, converting to fp32.
    const std::uint8_t* k_base = cache.keys(layer, g);
    const std::uint8_t* v_base = cache.values(layer, g);
    auto r = std::upper_bound(range_start_.begin() + offsets[g], range_start_.begin() + offsets[g + 1], first) - 1;
    std::int64_t done = 0;
    for (std::int64_t ri = r - range_start_.begin(); done < count; ++ri) {
      const TokenRange& range = ranges[ri];
      std::int64_t p = range.begin + (first + done - range_start_[ri]);
      const std::int64_t stop = std::min(range.end, p + (count - done));
      while (p < stop) {  // runs of consecutive slots (a ring wraps)
        const std::int64_t slot = cache.slot_of(layer, p);
        const std::int64_t run = std::min(stop - p, cache.slots(layer) - slot);
        kv_decode_rows(kt, k_base + slot * k_bytes, run, dim, keys + done * dim);
        kv_decode_rows(vt, v_base + slot * v_bytes, run, dim, values + done * dim);
        if (capped)
          for (std::int64_t t = 0; t < run; ++t) positions_[std::int64_t(thread_id()) * kChunk + done + t] = p + t;
        p += run;
        done += run;
      }
    }
    // Far keys (beyond the cap) lose their rotation and meet the query rotated to the cap.
    const std::int64_t* pos = capped ? positions_.data() + std::int64_t(thread_id()) * kChunk : nullptr;
    if (capped)
      for (std::int64_t j = 0; j < count; ++j)
        if (pos[j] < far_before) far.unrotate(pos[j], keys + j * dim);
    float* scores = scores_.data() + std::int64_t(thread_id()) * group * kChunk;  // [group][kChunk]
    for (int i = 0; i < group; ++i) {
      const float* qh = q + std::int64_t(g * group + i) * dim;
      const float* qf = capped ? far.q + std::int64_t(g * group + i) * dim : qh;
      float* s = scores + i * kChunk;
      for (std::int64_t j = 0; j < count; ++j) {
        const float* k = keys + j * dim;
        const float* qq = capped && pos[j] < far_before ? qf : qh;
        float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
        for (int e = 0; e < dim; ++e) dot += qq[e] * k[e];
        s[j] = dot * scale;
      }
      float max = *std::max_element(s, s + count);
      float sum = exp_shifted_sum(s, count, max);
      float* partial = partials_.data() + (item * group + i) * stride;
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
    const int g = h / group, i = h % group;
    float max = -std::numeric_limits<float>::infinity();
    for (std::int64_t item = head_items_[g]; item < head_items_[g + 1]; ++item)
      max = std::max(max, partials_[(item * group + i) * stride + dim]);
    float* o = out + std::int64_t(h) * dim;
    std::fill(o, o + dim, 0.0f);
    float total = 0.0f;
    for (std::int64_t item = head_items_[g]; item < head_items_[g + 1]; ++item) {
      const float* pc = partials_.data() + (item * group + i) * stride;
      const float w = std::exp(pc[dim] - max);
      total += w * pc[dim + 1];
      for (int e = 0; e < dim; ++e) o[e] += w * pc[e];
    }
    for (int e = 0; e < dim; ++e) o[e] /= total;
  }
}

}  // namespace ls
