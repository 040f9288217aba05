// Fast CPU attention: the dense flash-attention kernel and the plan executor.
//
// Both are one flash loop (tiles of Q·Kᵀ in registers, online softmax, P·V accumulate; see
// flash_tile.cc) over the keys a work item attends to; memory is O(n·d), never n². Work
// items are (GQA group of query heads, query block), so K and V tiles are loaded once for all
// the query heads that share them, and run on ls::parallel_for threads.
#pragma once

#include <string>

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

// Dense attention of queries that sit later in the sequence than the end of the keys, for
// context parallelism (a block of queries against one block of keys): query i has position
// query_start + i in the keys' frame (key j at position j), sees the keys up to that
// position (and only the last shape.window of them when the window is set). query_start =
// n_k − n_q is flash_attention's placement; query_start ≥ n_k is a block of keys entirely in
// the past (n_q may then exceed n_k). Writes out [heads][n_q][dim] and each row's
// log-sum-exp of its scaled scores to lse [heads][n_q] in double precision (the merge of
// parts, attn/merge.h, weighs them by exp of lse differences: a float lse of ~30 would cost
// 2e-6 of relative weight). A row that sees no key: zeros and −inf.
void attention_at(const AttnInput& in, std::int64_t query_start, float* out, double* lse);

// The SIMD target the kernels were compiled for, for reports ("AVX3_SPR", "AVX2", ...).
const char* attention_simd_target();

// Precision of the score products Q·Kᵀ in flash_attention, plan_attention and attention_at:
// fp32 (the default), or bf16 pairs on `vdpbf16ps` (Q and K rounded to bf16, products
// accumulated in fp32; the softmax and P·V stay fp32). bf16 needs a CPU with AVX512-BF16 and a
// build whose kernels were compiled for it (the native build on such a CPU). Process-wide,
// from the next call on.
enum class AttnPrecision { F32, Bf16 };
bool attention_bf16_supported();
// Throws ls::Error for Bf16 where it is not supported, saying why.
void set_attention_precision(AttnPrecision precision);
AttnPrecision attention_precision();
// "f32" / "bf16", and the reverse (an unknown name is an error listing both).
const char* attention_precision_name(AttnPrecision precision);
AttnPrecision parse_attention_precision(const std::string& name);

}  // namespace ls
