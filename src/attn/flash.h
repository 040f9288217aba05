// Fast CPU attention: the dense flash-attention kernel and the plan executor.
//
// Both are one flash loop (tiles of Q·Kᵀ in registers, online softmax, P·V accumulate; see
// flash_tile.cc) over the keys a work item attends to; memory is O(n·d), never n². Work
// items are (GQA group of query heads, query block), so K and V tiles are loaded once for all
// the query heads that share them, and run on ls::parallel_for threads.
#pragma once

#include "attn/attention.h"
#include "attn/plan.h"

namespace ls {

// Queries per block of the dense kernel's work items.
inline constexpr int kFlashQueryBlock = 64;

// out [heads][n_q][dim]: causal (and windowed when shape.window > 0) attention.
void flash_attention(const AttnInput& in, float* out);

// out [heads][n_q][dim]: attention over the keys `plan` selects, always restricted to the
// causal (and windowed) keys. Throws ls::Error if the plan is invalid (validate()) or does
// not match the input's shape. A dense plan gives flash_attention's output.
void plan_attention(const AttnInput& in, const Plan& plan, float* out);
// The same, also writing each row's log-sum-exp of its scaled scores to lse [heads][n_q]
// (natural log; −inf for a row that sees no key), so partial attentions can be merged.
void plan_attention(const AttnInput& in, const Plan& plan, float* out, float* lse);

// The SIMD target the kernels were compiled for, for reports ("AVX3_SPR", "AVX2", ...).
const char* attention_simd_target();

}  // namespace ls
