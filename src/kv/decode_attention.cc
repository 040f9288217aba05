// Single-query attention over the KV cache (see decode_attention.h). The arithmetic on fp32
// rows is in three Highway kernels with dynamic dispatch (core/simd.h), each called once per
// work item and query head: scores, exp with their sum, and the weighted sum of value rows.
#include "kv/decode_attention.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kv/decode_attention.cc"
#include <hwy/foreach_target.h>  // re-includes this file once per target
#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/parallel.h"

HWY_BEFORE_NAMESPACE();
namespace ls {
namespace HWY_NAMESPACE {

namespace hn = hwy::HWY_NAMESPACE;

// scores[j] = scale · q·rows[j] for j < count; rows [count][dim]. Each dot product sums in one
// vector of lanes, then adds the lanes one by one from lane 0 (elements beyond the last whole
// vector go to lane 0 first): the order of the compiler-vectorised loop this replaced, so
// AVX-512 scores are bit for bit those of earlier builds. Four rows at a time share each
// vector of q.
void Scores(const float* q, const float* rows, std::int64_t count, int dim, float scale, float* scores) {
  const hn::ScalableTag<float> d;
  const int lanes = int(hn::Lanes(d));
  const int whole = dim / lanes * lanes;
  HWY_ALIGN float lane[4][HWY_MAX_BYTES / sizeof(float)];
  auto finish = [&](int i, const float* r, std::int64_t j) {
    for (int e = whole; e < dim; ++e) lane[i][0] += q[e] * r[e];
    float dot = 0.0f;
    for (int l = 0; l < lanes; ++l) dot += lane[i][l];
    scores[j] = dot * scale;
  };
  std::int64_t j = 0;
  for (; j + 4 <= count; j += 4) {
    const float* r = rows + j * dim;
    auto a0 = hn::Zero(d), a1 = hn::Zero(d), a2 = hn::Zero(d), a3 = hn::Zero(d);
    for (int e = 0; e < whole; e += lanes) {
      const auto qv = hn::LoadU(d, q + e);
      a0 = hn::MulAdd(qv, hn::LoadU(d, r + e), a0);
      a1 = hn::MulAdd(qv, hn::LoadU(d, r + dim + e), a1);
      a2 = hn::MulAdd(qv, hn::LoadU(d, r + 2 * dim + e), a2);
      a3 = hn::MulAdd(qv, hn::LoadU(d, r + 3 * dim + e), a3);
    }
    hn::Store(a0, d, lane[0]);
    hn::Store(a1, d, lane[1]);
    hn::Store(a2, d, lane[2]);
    hn::Store(a3, d, lane[3]);
    for (int i = 0; i < 4; ++i) finish(i, r + i * dim, j + i);
  }
  for (; j < count; ++j) {
    const float* r = rows + j * dim;
    auto a = hn::Zero(d);
    for (int e = 0; e < whole; e += lanes) a = hn::MulAdd(hn::LoadU(d, q + e), hn::LoadU(d, r + e), a);
    hn::Store(a, d, lane[0]);
    finish(0, r, j);
  }
}

// x[i] = exp(x[i] - shift) for i < n; returns the sum.
float ExpShiftedSum(float* x, std::int64_t n, float shift) {
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

// out[e] = Σ_j p[j] · rows[j][e] for e < dim; rows [count][dim].
void WeightedSum(const float* p, const float* rows, std::int64_t count, int dim, float* out) {
  const hn::ScalableTag<float> d;
  const int lanes = int(hn::Lanes(d));
  int c0 = 0;
  // Columns in chunks of four vectors kept in registers over all rows.
  for (; c0 + 4 * lanes <= dim; c0 += 4 * lanes) {
    auto a0 = hn::Zero(d), a1 = hn::Zero(d), a2 = hn::Zero(d), a3 = hn::Zero(d);
    for (std::int64_t j = 0; j < count; ++j) {
      const float* r = rows + j * dim + c0;
      const auto w = hn::Set(d, p[j]);
      a0 = hn::MulAdd(w, hn::LoadU(d, r), a0);
      a1 = hn::MulAdd(w, hn::LoadU(d, r + lanes), a1);
      a2 = hn::MulAdd(w, hn::LoadU(d, r + 2 * lanes), a2);
      a3 = hn::MulAdd(w, hn::LoadU(d, r + 3 * lanes), a3);
    }
    hn::StoreU(a0, d, out + c0);
    hn::StoreU(a1, d, out + c0 + lanes);
    hn::StoreU(a2, d, out + c0 + 2 * lanes);
    hn::StoreU(a3, d, out + c0 + 3 * lanes);
  }
  for (; c0 + lanes <= dim; c0 += lanes) {
    auto a = hn::Zero(d);
    for (std::int64_t j = 0; j < count; ++j) a = hn::MulAdd(hn::Set(d, p[j]), hn::LoadU(d, rows + j * dim + c0), a);
    hn::StoreU(a, d, out + c0);
  }
  for (; c0 < dim; ++c0) {
    float a = 0.0f;
    for (std::int64_t j = 0; j < count; ++j) a += p[j] * rows[j * dim + c0];
    out[c0] = a;
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace ls
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace ls {

namespace {

constexpr std::int64_t kChunk = 256;  // keys per work item

}  // namespace

HWY_EXPORT(Scores);
HWY_EXPORT(ExpShiftedSum);
HWY_EXPORT(WeightedSum);

void DecodeAttention::run(const KvCache& cache, int layer, const float* q, int heads, std::int64_t n_keys,
                          float scale, float* out) {
  LS_CHECK(n_keys > 0 && n_keys <= cache.capacity(), "decode over {} keys (capacity {})", n_keys,
           cache.capacity());
  dense_.set_dense(cache.shape().kv_heads, n_keys, cache.first_held(layer, n_keys));
  run(cache, layer, q, heads, dense_, scale, out);
}

void DecodeAttention::run(const KvCache& cache, int layer, const float* q, int heads, const Selection& selection,
                          float scale, float* out, const DecodeFar& far, double* lse) {
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
    // Positions ascend within a chunk, so they are its first `far_count` keys.
    std::int64_t far_count = 0;
    if (capped) {
      const std::int64_t* pos = positions_.data() + std::int64_t(thread_id()) * kChunk;
      far_count = std::lower_bound(pos, pos + count, far_before) - pos;
      for (std::int64_t j = 0; j < far_count; ++j) far.unrotate(pos[j], keys + j * dim);
    }
    float* scores = scores_.data() + std::int64_t(thread_id()) * group * kChunk;  // [group][kChunk]
    for (int i = 0; i < group; ++i) {
      const std::int64_t head = g * group + i;
      float* s = scores + i * kChunk;
      if (far_count > 0) HWY_DYNAMIC_DISPATCH(Scores)(far.q + head * dim, keys, far_count, dim, scale, s);
      HWY_DYNAMIC_DISPATCH(Scores)(q + head * dim, keys + far_count * dim, count - far_count, dim, scale, s + far_count);
      const float max = *std::max_element(s, s + count);
      const float sum = HWY_DYNAMIC_DISPATCH(ExpShiftedSum)(s, count, max);
      float* partial = partials_.data() + (item * group + i) * stride;
      HWY_DYNAMIC_DISPATCH(WeightedSum)(s, values, count, dim, partial);
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
    if (lse) lse[h] = double(max) + std::log(double(total));
  }
}

}  // namespace ls
#endif  // HWY_ONCE
