// The two drivers of the tile engine (flash_tile.h):
//   - the dense flash-attention kernel: every work item (GQA group, query block of
//     kFlashQueryBlock queries) attends to the single key interval its queries can see;
//   - the plan executor: the same loop over a Plan's key-block ranges and gathered columns.
// Causality and the window are enforced by the engine whatever a plan selects.
#include "attn/flash.h"

#include <algorithm>
#include <numeric>
#include <vector>

#include "attn/flash_tile.h"
#include "core/error.h"
#include "core/parallel.h"

namespace ls {

namespace {

void check_attention_input(const AttnInput& in, const float* out) {
  in.shape.validate();
  LS_CHECK(in.q && in.k && in.v && out, "attention: null Q, K, V or output pointer");
  LS_CHECK(in.shape.n_k < (std::int64_t(1) << 31) - 1, "attention: n_k={} exceeds the 2^31 key limit",
           in.shape.n_k);
}

// Query heads per work item: the largest divisor of `heads` (heads that share K/V) whose
// rows' outputs, heads × block × dim floats, fit in 512 KiB, so an item's scratch stays in L2.
int heads_per_item(int heads, std::int64_t block, int dim) {
  const std::int64_t budget = (512 << 10) / (std::int64_t(sizeof(float)) * block * dim);
  for (int count = heads; count > 1; --count)
    if (heads % count == 0 && count <= budget) return count;
  return 1;
}

}  // namespace

void flash_attention(const AttnInput& in, float* out) {
  check_attention_input(in, out);
  const AttnShape& s = in.shape;
  const detail::PackedKeys keys(in);
  // Normally a whole GQA group per item (K/V tiles loaded once for the group).
  const int unit = heads_per_item(s.group(), kFlashQueryBlock, s.dim);
  const int units = s.heads / unit;
  const std::int64_t q_blocks = (s.n_q + kFlashQueryBlock - 1) / kFlashQueryBlock;
  // The last query blocks see the most keys: hand them out first for a balanced finish.
  parallel_for(q_blocks * units, [&](std::int64_t item) {
    const std::int64_t qb = q_blocks - 1 - item / units;
    const int first_head = int(item % units) * unit;
    const std::int64_t q0 = qb * kFlashQueryBlock;
    const std::int64_t q1 = std::min(s.n_q, q0 + kFlashQueryBlock);
    const detail::KeyInterval keys_seen{s.first_key(s.position(q0)), s.position(q1 - 1) + 1};
    detail::attend_rows(in, keys, first_head, unit, q0, q1, {&keys_seen, 1}, {}, out);
  });
}

void plan_attention(const AttnInput& in, const Plan& plan, float* out) { plan_attention(in, plan, out, nullptr); }

void plan_attention(const AttnInput& in, const Plan& plan, float* out, float* lse) {
  check_attention_input(in, out);
  const AttnShape& s = in.shape;
  LS_CHECK(plan.heads == s.heads && plan.n_q == s.n_q && plan.n_k == s.n_k,
           "plan executor: plan shape (heads {}, n_q {}, n_k {}) does not match the input (heads {}, n_q {}, "
           "n_k {})",
           plan.heads, plan.n_q, plan.n_k, s.heads, s.n_q, s.n_k);
  validate(plan);

  const detail::PackedKeys keys(in);
  // A work item is a set of query heads that share both a plan row and a KV head: aligned
  // blocks of gcd(heads per plan row, GQA group) heads. With row_heads == kv_heads that is
  // the whole GQA group, so K/V tiles are loaded once per group (split only when very large).
  const int heads_per_row = plan.heads / plan.row_heads;
  const int unit = heads_per_item(std::gcd(heads_per_row, s.group()), plan.block_q, s.dim);
  const int units = s.heads / unit;
  const std::int64_t q_blocks = plan.q_blocks();
  parallel_for(q_blocks * units, [&](std::int64_t item) {
    const std::int64_t qb = q_blocks - 1 - item / units;
    const int first_head = int(item % units) * unit;
    const std::int64_t row = plan.row(first_head, qb);
    thread_local std::vector<detail::KeyInterval> intervals;  // reused across items
    intervals.clear();
    for (const BlockRange& range : plan.row_ranges(row))
      intervals.push_back({std::int64_t(range.begin) * plan.block_k,
                           std::min(std::int64_t(range.end) * plan.block_k, s.n_k)});
    const std::int64_t q0 = qb * plan.block_q;
    const std::int64_t q1 = std::min(s.n_q, q0 + plan.block_q);
    detail::attend_rows(in, keys, first_head, unit, q0, q1, intervals, plan.row_columns(row), out, lse);
  });
}

const char* attention_simd_target() { return detail::simd_target(); }

}  // namespace ls
