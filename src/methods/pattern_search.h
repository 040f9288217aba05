// MInference's offline pattern search: for every head of a layer, try a fixed list of
// candidate patterns and keep the one whose plan recovers the most attention mass on sampled
// query rows. The result (one spec per head) feeds a per-head profile (policy.h).
//
// Paper: MInference 1.0 (Jiang et al., NeurIPS 2024) §3, kernel-aware optimal pattern search.
// Official code: microsoft/MInference minference/modules/minference_forward.py search_pattern:
// candidates A-shape (100, 800), vertical-slash (30, 800), (100, 750), (500, 700), (3500, 100)
// and block-sparse; score = mean over query rows from position 2500 on of the attention mass
// inside the candidate's mask; the best score wins.
// Differences, chosen on purpose: we score the plans our methods actually build (block
// coverage included), not idealised token masks; the block-sparse candidate is our
// block-sparse method (64-blocks, top 100) rather than the search's 32-blocks keeping 1/8; we
// sample rows instead of scoring every row (never an n×n matrix); a candidate whose plan is
// dense at the calibration length (vertical-slash v=3500 below 3.5k tokens) is left out unless
// every candidate is dense, since it would win trivially. The official search then
// rewrites an A-shape winner as vertical-slash (100, 800) and a block-sparse winner as
// vertical-slash (1000, 6096) because its kernel ran only vertical-slash;
// `minference_mapping` reproduces that, by default each head keeps its winning method.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "attn/attention.h"
#include "attn/plan.h"

namespace ls {

// The official candidate list, as specs of our methods.
std::vector<std::string> default_pattern_candidates();

struct PatternSearchOptions {
  std::vector<std::string> candidates = default_pattern_candidates();
  std::int64_t min_position = 2500;  // rows from here on; n_k / 3 when the input is shorter
  std::int64_t sample_rows = 64;     // query rows scored per head, evenly spaced
  bool minference_mapping = false;   // rewrite winners as the official search does
};

struct HeadPattern {
  std::string spec;                   // the chosen method spec
  double recall = 0.0;                // its mean attention mass kept on the sampled rows
  std::vector<double> candidate_recall;  // per candidate, in options.candidates order
};

// Query indices (0..n_q-1) to score: up to `count` evenly spaced rows whose positions are
// >= min(min_position, n_k / 3), always including the last query.
std::vector<std::int64_t> sample_queries(const AttnShape& shape, std::int64_t min_position, std::int64_t count);

// The exact softmax mass the plan keeps on each of `queries`, per query head:
// [heads][queries.size()]. Computes one softmax row at a time (O(n_k) memory per thread).
std::vector<std::vector<double>> plan_recall_rows(const AttnInput& in, const Plan& plan,
                                                  std::span<const std::int64_t> queries);
// Its mean over the queries, per query head ([heads]).
std::vector<double> plan_recall(const AttnInput& in, const Plan& plan, std::span<const std::int64_t> queries);

// One HeadPattern per query head of the layer.
std::vector<HeadPattern> search_patterns(const AttnInput& in, const PatternSearchOptions& options = {});

}  // namespace ls
