// Attention with a cap on the relative distance RoPE sees (LM-Infinite, Han et al., NAACL
// 2024, §4): a query at position p scores a key j with p − j > limit as if the two were
// exactly `limit` apart. The caller (the forward pass, which holds the keys and queries
// before rotation) supplies vectors that make this a dot product: the queries rotated to
// position `limit` and the keys unrotated, so q_far · k_far is the score at distance `limit`
// for every pair.
#pragma once

#include <cstdint>

#include "attn/attention.h"
#include "attn/plan.h"

namespace ls {

struct FarVectors {
  std::int64_t limit = 0;    // pairs farther apart than this are scored with q, k below; 0: no cap
  const float* q = nullptr;  // [heads][n_q][dim] queries as seen from distance `limit`
  const float* k = nullptr;  // [kv_heads][n_k][dim] keys as seen from distance `limit`
};

// out [heads][n_q][dim]: attention over the keys `plan` selects (causal and windowed, as
// plan_attention), where a pair with position(i) − j > far.limit is scored far.q · far.k
// instead of q · k. With far.limit == 0, or no pair that far apart, this is plan_attention.
// Each plan row's keys that some query of the row sees beyond the cap (those below the row's
// last position − limit) are taken out of the plan and scored one query at a time, then
// merged with the executor's rows through their log-sum-exp: the extra cost is O(those keys
// · dim) per query — small for the Λ mask (its global branch), large for a dense plan with a
// small limit. Throws ls::Error when 0 < limit < plan.block_q + plan.block_k (the key blocks
// holding a row's own positions must stay in the executor's plan) or on a plan that does not
// match the input.
void plan_attention_far(const AttnInput& in, const Plan& plan, const FarVectors& far, float* out);

}  // namespace ls
