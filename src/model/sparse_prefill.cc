// Sparse prefill attention (see sparse_prefill.h).
#include "model/sparse_prefill.h"

#include "attn/distance_cap.h"
#include "attn/flash.h"
#include "attn/plan.h"
#include "core/timer.h"

namespace ls {

void SparsePrefill::prefill(int layer, const AttnInput& in, const FarVectors& far, float* out) {
  if (policy_.uniform(layer, in.shape.heads) && policy_.method(layer, 0).spec() == "dense") {
    Timer timer;
    dense_attention(in, out);
    attention_ms_ += timer.ms();
    return;
  }
  Timer estimate;
  const Plan plan = policy_.build_plan(in, layer);
  estimate_ms_ += estimate.ms();
  density_sum_ += density(plan, in.shape.window);
  ++planned_layers_;
  Timer attention;
  if (far.limit > 0)
    plan_attention_far(in, plan, far, out);
  else
    plan_attention(in, plan, out);
  attention_ms_ += attention.ms();
}

}  // namespace ls
