// Attention with a RoPE distance cap (see distance_cap.h): the plan split into near and far
// keys per row, the near part run by the plan executor, the far part scored here per query
// and merged through the log-sum-exp.
#include "attn/distance_cap.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "attn/flash.h"
#include "core/buffer.h"
#include "core/error.h"
#include "core/parallel.h"

namespace ls {

namespace {

// Row r's far keys lie below `cut_key(r)`: every query of the row is at most `limit` away
// from any key at or above the row's last position − limit. Block ranges are cut at the
// first whole block above that line, gathered columns at the line itself.
struct RowCut {
  std::int64_t line = 0;       // last position − limit: columns below it are far
  std::int32_t block_cut = 0;  // ranges below this block are far
};

RowCut row_cut(const Plan& plan, std::int64_t r, std::int64_t limit) {
  const std::int64_t line = plan.last_position(r % plan.q_blocks()) - limit;
  if (line <= 0) return {0, 0};
  return {line, std::int32_t((line + plan.block_k - 1) / plan.block_k)};
}

// The executor's part: every row's keys at or above its cut.
Plan near_plan(const Plan& plan, std::int64_t limit) {
  Plan near = plan;
  near.ranges.clear();
  near.columns.clear();
  near.range_offsets.assign(1, 0);
  near.column_offsets.assign(1, 0);
  for (std::int64_t r = 0; r < plan.rows(); ++r) {
    const RowCut cut = row_cut(plan, r, limit);
    for (BlockRange range : plan.row_ranges(r)) {
      range.begin = std::max(range.begin, cut.block_cut);
      if (range.begin < range.end) near.ranges.push_back(range);
    }
    for (std::int32_t key : plan.row_columns(r))
      if (key >= cut.line) near.columns.push_back(key);
    near.range_offsets.push_back(std::int64_t(near.ranges.size()));
    near.column_offsets.push_back(std::int64_t(near.columns.size()));
  }
  return near;
}

// Row r's far keys, ascending: range keys below the block cut, columns below the line.
void far_keys(const Plan& plan, std::int64_t r, std::int64_t limit, std::vector<std::int32_t>& keys) {
  keys.clear();
  const RowCut cut = row_cut(plan, r, limit);
  for (const BlockRange& range : plan.row_ranges(r)) {
    const std::int64_t end = std::min<std::int64_t>(range.end, cut.block_cut) * plan.block_k;
    for (std::int64_t key = std::int64_t(range.begin) * plan.block_k; key < std::min(end, plan.n_k); ++key)
      keys.push_back(std::int32_t(key));
  }
  for (std::int32_t key : plan.row_columns(r))
    if (key < cut.line) keys.push_back(key);
  std::sort(keys.begin(), keys.end());
}

float dot(const float* a, const float* b, int dim) {
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int c = 0; c < dim; ++c) sum += a[c] * b[c];
  return sum;
}

}  // namespace

void plan_attention_far(const AttnInput& in, const Plan& plan, const FarVectors& far, float* out) {
  const AttnShape& s = in.shape;
  LS_CHECK(far.limit >= 0, "distance cap: limit {} is negative", far.limit);
  if (far.limit == 0 || s.n_k - 1 <= far.limit) {  // no pair is farther apart than the cap
    plan_attention(in, plan, out);
    return;
  }
  LS_CHECK(far.q && far.k, "distance cap: null far query or key vectors");
  LS_CHECK(far.limit >= plan.block_q + plan.block_k,
           "distance cap: limit {} is below query block + key block ({}); the blocks holding a row's own positions "
           "must stay with the executor",
           far.limit, plan.block_q + plan.block_k);
  LS_CHECK(plan.heads == s.heads && plan.n_q == s.n_q && plan.n_k == s.n_k,
           "distance cap: plan shape (heads {}, n_q {}, n_k {}) does not match the input (heads {}, n_q {}, n_k {})",
           plan.heads, plan.n_q, plan.n_k, s.heads, s.n_q, s.n_k);
  validate(plan);

  std::vector<float> lse(std::size_t(s.heads * s.n_q));
  plan_attention(in, near_plan(plan, far.limit), out, lse.data());

  const float scale = s.softmax_scale();
  const std::int64_t q_blocks = plan.q_blocks();
  parallel_for(std::int64_t(s.heads) * q_blocks, [&](std::int64_t item) {
    const int h = int(item / q_blocks);
    const std::int64_t qb = item % q_blocks, g = s.kv_head_of(h);
    thread_local std::vector<std::int32_t> keys;
    thread_local std::vector<float> scores;
    thread_local std::vector<float> acc;
    far_keys(plan, plan.row(h, qb), far.limit, keys);
    if (keys.empty()) return;
    scores.resize(keys.size());
    acc.resize(std::size_t(s.dim));
    const std::int64_t q_end = std::min(s.n_q, (qb + 1) * plan.block_q);
    for (std::int64_t i = qb * plan.block_q; i < q_end; ++i) {
      const std::int64_t p = s.position(i), first = s.first_key(p);
      const float* q = in.q_row(h, i);
      const float* q_far = far.q + (std::int64_t(h) * s.n_q + i) * s.dim;
      float top = lse[std::size_t(h * s.n_q + i)];
      for (std::size_t j = 0; j < keys.size(); ++j) {
        const std::int64_t key = keys[j];
        if (key < first || key > p) {
          scores[j] = -std::numeric_limits<float>::infinity();
          continue;
        }
        const float* k = p - key > far.limit ? far.k + (g * s.n_k + key) * s.dim : in.k_row(int(g), key);
        scores[j] = dot(p - key > far.limit ? q_far : q, k, s.dim) * scale;
        top = std::max(top, scores[j]);
      }
      float* o = out + (std::int64_t(h) * s.n_q + i) * s.dim;
      const float near_weight = std::exp(lse[std::size_t(h * s.n_q + i)] - top);
      float total = near_weight;
      for (int c = 0; c < s.dim; ++c) acc[c] = near_weight * o[c];
      for (std::size_t j = 0; j < keys.size(); ++j) {
        if (scores[j] == -std::numeric_limits<float>::infinity()) continue;
        const float w = std::exp(scores[j] - top);
        total += w;
        const float* v = in.v_row(int(g), keys[j]);
#pragma omp simd
        for (int c = 0; c < s.dim; ++c) acc[c] += w * v[c];
      }
      for (int c = 0; c < s.dim; ++c) o[c] = acc[c] / total;
    }
  });
}

}  // namespace ls
