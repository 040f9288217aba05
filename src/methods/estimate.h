// Small numeric helpers shared by the dynamic methods' estimates: dot products, a softmax row,
// deterministic top-k, mean-pooled blocks. They work on one head at a time and never hold
// more than O(n) values per call, so estimates stay O(n·d) in memory.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "attn/attention.h"

namespace ls {

float dot(const float* a, const float* b, int dim);

// Indices of the k largest scores, largest first; ties go to the smaller index so that plans
// are deterministic. k is clamped to scores.size().
std::vector<std::int64_t> top_k_indices(std::span<const double> scores, std::int64_t k);

// Softmax probabilities of one query row over keys [first, last] (inclusive), written to
// probs[first..last]; entries outside are left untouched. `query` is a row of Q.
void softmax_row(const AttnInput& in, int head, const float* query, std::int64_t first, std::int64_t last,
                 std::vector<double>& probs);

// Mean of rows [begin, end) of a [rows][dim] matrix, divided by `divisor` rows (the block size
// when a ragged last block is treated as zero-padded, as MInference does).
void pool_rows(const float* rows, int dim, std::int64_t begin, std::int64_t end, double divisor, float* out);

}  // namespace ls
