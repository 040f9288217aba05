// The plan executor: the dense kernel's flash loop over a Plan's key-block ranges and
// gathered columns. Causality and the window are enforced by the tile engine whatever the
// plan selects.
#include <algorithm>
#include <numeric>
#include <vector>

#include "attn/flash.h"
#include "attn/flash_tile.h"
#include "core/error.h"
#include "core/parallel.h"

namespace ls {

void check_attention_input(const AttnInput& in, const float* out);  // flash.cc

void plan_attention(const AttnInput& in, const Plan& plan, float* out) {
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
  // the whole GQA group, so K/V tiles are loaded once per group.
  const int heads_per_row = plan.heads / plan.row_heads;
  const int unit = std::gcd(heads_per_row, s.group());
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
    detail::attend_rows(in, keys, first_head, unit, q0, q1, intervals, plan.row_columns(row), out);
  });
}

}  // namespace ls
