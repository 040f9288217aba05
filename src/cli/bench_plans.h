// Plans for `longsparse bench attention --plan SPEC`: three bench-only generators
//   dense                               every causal block
//   window:sink=S,window=W              S sink columns + the last W keys of every query
//   random-blocks:density=X,seed=S      the diagonal plus random key blocks, density ≈ X
// and, for any other name, a registered prefill method ("streaming:sink=4", ...).
#pragma once

#include <string>

#include "attn/attention.h"
#include "attn/plan.h"

namespace ls::cli {

struct BenchPlan {
  Plan plan;
  std::string spec;          // canonical spec
  bool from_method = false;  // built by a registered method (its build time is an estimate cost)
  double build_ms = 0.0;     // time spent building the plan
};

// Throws ls::Error on a malformed spec, an unknown key or value, or an unknown method.
BenchPlan make_bench_plan(const std::string& spec, const AttnInput& in);

}  // namespace ls::cli
