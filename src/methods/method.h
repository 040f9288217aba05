// A sparse attention method: an estimate that decides which query-key pairs matter, turned
// into a Plan the shared executor runs (docs/DESIGN.md §1). One method per file; each file
// registers itself with the registry (registry.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "attn/attention.h"
#include "attn/plan.h"

namespace ls {

// What a method may know about where it runs, beyond the attention input itself.
struct PlanContext {
  int layer = -1;  // model layer, or -1 outside a model
};

class PrefillMethod {
 public:
  virtual ~PrefillMethod() = default;
  // Builds the plan for one layer's prefill. Must be deterministic, and the returned plan
  // must pass validate().
  virtual Plan build_plan(const AttnInput& in, const PlanContext& context) const = 0;
  // Methods that also change positions (LM-Infinite caps the relative distance seen by RoPE)
  // report the cap here so the model can apply it; 0 means no cap.
  virtual std::int64_t rope_distance_limit() const { return 0; }
  // The canonical spec, "name:key=value,..." with every parameter spelled out.
  const std::string& spec() const { return spec_; }
  void set_spec(std::string spec) { spec_ = std::move(spec); }

 private:
  std::string spec_;
};

}  // namespace ls
