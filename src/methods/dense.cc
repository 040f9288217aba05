// dense — every causal query-key pair; the baseline every sparse method is measured against.
// Parameters: none. GQA: one row per KV head (the same plan for every query head).
// Chunks (n_q < n_k: chunked prefill, a continuation): every key up to each query's position.
#include "methods/registry.h"

namespace ls {
namespace {

class Dense final : public PrefillMethod {
 public:
  Plan build_plan(const AttnInput& in, const PlanContext&) const override {
    return make_dense_plan(in.shape.heads, in.shape.kv_heads, in.shape.n_q, in.shape.n_k);
  }
};

MethodInfo dense_info() {
  MethodInfo info;
  info.name = "dense";
  info.phase = "prefill";
  info.paper = "full causal attention (baseline)";
  info.summary = "every causal query-key pair";
  info.make_prefill = [](const Params&) { return std::make_unique<Dense>(); };
  return info;
}

LS_REGISTER_METHOD(dense_info());

}  // namespace
}  // namespace ls
