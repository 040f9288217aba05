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

// The dense kernel's work items (GQA group, query block of kFlashQueryBlock queries), each
// attending to the one key interval its queries can see, with query i at position
// query_start + i.
void dense_items(const AttnInput& in, std::int64_t query_start, float* out, double* lse) {
  const AttnShape& s = in.shape;
  const std::int64_t shift = query_start - (s.n_k - s.n_q);
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
    const detail::KeyInterval keys_seen{std::min(s.first_key(query_start + q0), s.n_k),
                                        std::min(s.n_k, query_start + q1)};
    detail::attend_rows(in, keys, first_head, unit, q0, q1, {&keys_seen, 1}, {}, out, nullptr, shift, lse);
  });
}

}  // namespace

void flash_attention(const AttnInput& in, float* out) {
  check_attention_input(in, out);
  dense_items(in, in.shape.n_k - in.shape.n_q, out, nullptr);
}

void attention_at(const AttnInput& in, std::int64_t query_start, float* out, double* lse) {
  const AttnShape& s = in.shape;
  // More queries than keys is fine here (a block of queries after a shorter block of keys).
  AttnInput checked = in;
  checked.shape.n_q = std::min(s.n_q, s.n_k);
  check_attention_input(checked, out);
  LS_CHECK(query_start >= s.n_k - s.n_q, "attention_at: queries starting at {} would precede their causal placement {}",
           query_start, s.n_k - s.n_q);
  LS_CHECK(lse, "attention_at: null log-sum-exp output");
  LS_CHECK(query_start + s.n_q < (std::int64_t(1) << 31) - 1, "attention_at: position {} exceeds 2^31",
           query_start + s.n_q);
  dense_items(in, query_start, out, lse);
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

bool attention_bf16_supported() { return detail::bf16_scores_supported(); }

void set_attention_precision(AttnPrecision precision) {
  LS_CHECK(precision != AttnPrecision::Bf16 || attention_bf16_supported(),
           "--attn-precision bf16 needs AVX512-BF16 in the CPU and in the attention kernels' build (running {}): "
           "use the native build on a CPU with avx512_bf16",
           attention_simd_target());
  detail::set_bf16_scores(precision == AttnPrecision::Bf16);
}

AttnPrecision attention_precision() { return detail::bf16_scores_on() ? AttnPrecision::Bf16 : AttnPrecision::F32; }

const char* attention_precision_name(AttnPrecision precision) {
  return precision == AttnPrecision::Bf16 ? "bf16" : "f32";
}

AttnPrecision parse_attention_precision(const std::string& name) {
  if (name == "f32") return AttnPrecision::F32;
  if (name == "bf16") return AttnPrecision::Bf16;
  fail("unknown attention precision '{}' (valid: f32, bf16)", name);
}

}  // namespace ls
