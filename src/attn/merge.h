// Merging partial attentions: the attention of the same query rows over disjoint key sets,
// each given as its normalised output and the log-sum-exp of its scaled scores (what
// plan_attention and attention_at return), combine into the attention over the union:
//   lse = log(exp(lse_a) + exp(lse_b)),  out = exp(lse_a − lse)·out_a + exp(lse_b − lse)·out_b.
// Context parallelism (ring and Star Attention, model/context_parallel.h) merges each rank's
// part this way. A part with lse = −inf saw no key and leaves the other unchanged.
#pragma once

#include <cstdint>

namespace ls {

// out, lse [rows][dim], [rows]: the running result, updated in place with the part
// part_out [rows][dim], part_lse [rows]. Rows are independent (any layout of heads × queries).
// The log-sum-exps are double (attention_at's), and the weighted sum is formed in double.
void merge_attention(float* out, double* lse, const float* part_out, const double* part_lse, std::int64_t rows,
                     int dim);

}  // namespace ls
