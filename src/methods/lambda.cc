// lambda — LM-Infinite's Λ-shaped mask: a global branch (the first tokens) plus a local branch
// (the most recent tokens), with relative distances capped at the training length.
//
// Paper: LM-Infinite, "Zero-Shot Extreme Length Generalization for Large Language Models"
// (Han et al., NAACL 2024), §4 (Λ-shaped attention mask and distance limit).
// Official code consulted: Glaciohound/LM-Infinite (models/lambda_attention.py: the local
// branch keeps keys p - local_branch < key <= p, the global branch the first global_branch
// keys; models/llama.py: keys of the global branch outside the local branch are scored with an
// unrotated key against the query rotated by min(limit_distance, n - 1), i.e. at relative
// distance `limit`; README: Llama-2 runs use local_branch 4096, global_branch 100 (10–100
// "gives generally similar effect"), limit_distance 4096).
// Reproduced (tests/methods/official_fixture_test.cc, docs/fidelity.md): LM-Infinite a0ce64c,
// models/lambda_attention.py: Lambda_Attention_Matrix's mask — for n > local_branch
// ("long_seq"), the local branch's pairs of local_branch-key segments keep
// p - local_branch < key <= p, and the global (stationary) branch the keys below
// global_branch outside the local branch; for n <= local_branch ("short_seq") every causal
// key. Our plan is that mask rounded out (the global keys as exact columns, the local branch
// as whole 64-key blocks); the test checks that rounding exactly.
//
// Parameters
//   global = 100   first tokens every query sees (global branch)
//   local  = 4096  most recent keys each query sees, itself included (local branch)
//   limit  = 4096  cap on the relative distance RoPE sees (the model's training length);
//                  0 disables the cap
//
// The plan is the Λ mask (global columns + local window, covered with whole 64-key blocks:
// up to 63 extra keys per query). The distance cap changes scores, not the mask, so the model
// applies it: rope_distance_limit() reports it, the forward pass hands the layer the queries
// rotated to position `limit` and the unrotated keys (model/llama.cc), and the executor scores
// every planned pair more than `limit` apart with those (attn/distance_cap.h) — the official
// code's "unrotated key against the query rotated by limit". One difference: the official code
// rotates the query by min(limit, n − 1) and applies it to every global key outside the local
// branch; we cap only pairs farther apart than `limit` (METHODS.md: distances beyond the limit
// reuse it), so below `limit` + 1 tokens lambda is exactly the Λ mask. `limit` must be at
// least 128 (two blocks) when it binds. `bench attention --qkv` runs the plan without the cap
// (captured Q/K are post-RoPE only).
// GQA: static pattern, one plan row per KV head.
// Chunks (n_q < n_k): the mask is placed by position, as in one shot. The distance cap is not:
// when it binds (a prompt longer than `limit` + 1), the model refuses a chunked prefill.
#include <algorithm>

#include "core/error.h"
#include "methods/registry.h"

namespace ls {
namespace {

class Lambda final : public PrefillMethod {
 public:
  Lambda(std::int64_t global, std::int64_t local, std::int64_t limit)
      : global_(global), local_(local), limit_(limit) {
    // The capped executor keeps the blocks holding a row's own positions (two 64-blocks).
    LS_CHECK(limit == 0 || limit >= 128, "lambda: limit must be 0 (no cap) or at least 128, got {}", limit);
  }

  Plan build_plan(const AttnInput& in, const PlanContext&) const override {
    const AttnShape& s = in.shape;
    PlanBuilder builder(s.heads, s.kv_heads, s.n_q, s.n_k);
    for (std::int64_t r = 0; r < builder.rows(); ++r) {
      builder.add_sink(r, global_);
      builder.add_window(r, local_);
      builder.add_diagonal(r);
    }
    return builder.finish();
  }

  std::int64_t rope_distance_limit() const override { return limit_; }

 private:
  std::int64_t global_, local_, limit_;
};

MethodInfo lambda_info() {
  MethodInfo info;
  info.name = "lambda";
  info.phase = "prefill";
  info.paper = "LM-Infinite (Han et al., NAACL 2024) §4, Λ-shaped mask + distance limit";
  info.summary = "global branch (first tokens) + local branch; RoPE distance capped at `limit` by the model";
  using K = ParamSpec::Kind;
  info.params = {
      {"global", "100", "first tokens every query attends to (global branch)", K::Int, 0, 1e9, {}},
      {"local", "4096", "most recent keys each query attends to, itself included (local branch)", K::Int, 1, 1e9, {}},
      {"limit", "4096", "cap on the relative position distance (training length); 0 = none, else >= 128", K::Int, 0, 1e9, {}},
  };
  info.make_prefill = [](const Params& p) {
    return std::make_unique<Lambda>(p.get_int("global"), p.get_int("local"), p.get_int("limit"));
  };
  return info;
}

LS_REGISTER_METHOD(lambda_info());

}  // namespace
}  // namespace ls
