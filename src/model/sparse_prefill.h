// Sparse prefill attention for the forward pass: in each layer a Policy (one method spec
// everywhere, dense layers, or a per-head profile) builds a Plan from that layer's Q/K/V and
// the plan executor runs it; layers the policy keeps dense run the dense kernel. Plugs into
// the forward pass as a LayerAttention and records estimate time, attention time and density.
#pragma once

#include "methods/policy.h"
#include "model/layer_attention.h"

namespace ls {

class SparsePrefill final : public LayerAttention {
 public:
  explicit SparsePrefill(Policy policy) : policy_(std::move(policy)) {}
  std::int64_t distance_limit(int layer, int heads) const override { return policy_.distance_limit(layer, heads); }
  void prefill(int layer, const AttnInput& in, const FarVectors& far, float* out) override;

  const Policy& policy() const { return policy_; }
  void reset_stats() { estimate_ms_ = attention_ms_ = density_sum_ = 0.0, planned_layers_ = 0; }
  double estimate_ms() const override { return estimate_ms_; }  // building plans
  double attention_ms() const { return attention_ms_; }    // executing plans and dense layers
  int planned_layers() const { return planned_layers_; }
  // Mean plan density over the layers that ran a plan (dense layers excluded); 1 when none did.
  double mean_density() const { return planned_layers_ ? density_sum_ / planned_layers_ : 1.0; }

 private:
  Policy policy_;
  double estimate_ms_ = 0.0, attention_ms_ = 0.0, density_sum_ = 0.0;
  int planned_layers_ = 0;
};

}  // namespace ls
