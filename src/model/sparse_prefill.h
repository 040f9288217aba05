// Sparse prefill attention for the forward pass: in each layer a method (from the registry,
// e.g. "flexprefill:gamma=0.9") builds a Plan from that layer's Q/K/V and the plan executor
// runs it; listed layers stay dense. Plugs into the forward pass as a LayerAttention.
#pragma once

#include <memory>
#include <set>
#include <string_view>

#include "methods/method.h"
#include "model/layer_attention.h"

namespace ls {

class SparsePrefill final : public LayerAttention {
 public:
  SparsePrefill(std::unique_ptr<PrefillMethod> method, std::set<int> dense_layers);
  void prefill(int layer, const AttnInput& in, float* out) override;

  const PrefillMethod& method() const { return *method_; }
  double estimate_ms() const { return estimate_ms_; }      // building plans
  double attention_ms() const { return attention_ms_; }    // executing plans and dense layers
  int planned_layers() const { return planned_layers_; }
  // Mean plan density over the layers that ran a plan (dense layers excluded); 1 when none did.
  double mean_density() const { return planned_layers_ ? density_sum_ / planned_layers_ : 1.0; }

 private:
  std::unique_ptr<PrefillMethod> method_;
  std::set<int> dense_layers_;
  double estimate_ms_ = 0.0, attention_ms_ = 0.0, density_sum_ = 0.0;
  int planned_layers_ = 0;
};

// "0,1,5" → {0, 1, 5}; "" → {}. Throws ls::Error naming a bad entry or one outside [0, layers).
std::set<int> parse_layer_list(std::string_view list, int layers);

}  // namespace ls
