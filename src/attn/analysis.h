// Plan quality on sampled query rows: how much attention probability mass a plan keeps
// (recall) and how far the sparse output is from dense attention (relative L2 error).
// Exact attention rows are streamed one at a time (O(n_k) memory per row); no n×n matrix.
#pragma once

#include <cstdint>
#include <vector>

#include "attn/attention.h"
#include "attn/plan.h"

namespace ls {

struct PlanQuality {
  double recall = 0.0;      // attention mass the plan keeps, mean over sampled (head, query) rows
  double min_recall = 0.0;  // the smallest over those rows
  double rel_err = 0.0;     // ||sparse − dense||₂ / ||dense||₂ over the sampled rows; NaN without an output
  std::int64_t rows = 0;    // sampled (head, query) rows
};

// Deterministic stratified sample of min(count, n_q) distinct query rows in [0, n_q), sorted:
// one row in each of `count` equal strata, at an offset drawn from `seed`. count >= n_q
// gives every row.
std::vector<std::int64_t> sample_query_rows(std::int64_t n_q, int count, std::uint64_t seed);

// Measures `plan` on `sample_rows` sampled queries of every head. `sparse_out`
// [heads][n_q][dim] is the executor's output for the plan (may be null: rel_err is NaN).
// Causality and the window apply, as in the executor. Throws ls::Error on an invalid plan
// or a plan whose shape differs from the input.
PlanQuality measure_plan(const AttnInput& in, const Plan& plan, const float* sparse_out, int sample_rows,
                         std::uint64_t seed);

}  // namespace ls
