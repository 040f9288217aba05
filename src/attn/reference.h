// Naive reference attention for tests: one query row at a time, double accumulation,
// exact softmax. O(n_k) memory per row; never used on a hot path.
#pragma once

#include "attn/attention.h"
#include "attn/plan.h"

namespace ls {

// out [heads][n_q][dim]: causal (and windowed when shape.window > 0) attention.
void reference_attention(const AttnInput& in, float* out);

// The same restricted to the keys the plan selects (causality and window still apply).
void reference_plan_attention(const AttnInput& in, const Plan& plan, float* out);

}  // namespace ls
