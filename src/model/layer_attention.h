// The attention step of prefill, per layer, behind a small interface: the forward pass hands
// over one layer's post-RoPE Q/K/V and gets the output back. Dense attention is the default;
// a sparse policy (a method building a Plan per layer, run by the plan executor, with some
// layers kept dense) implements the same interface without touching the forward pass.
#pragma once

#include <functional>

#include "attn/attention.h"
#include "attn/distance_cap.h"

namespace ls {

class LayerAttention {
 public:
  virtual ~LayerAttention() = default;
  // The cap on the relative distance RoPE sees in this layer (LM-Infinite; 0: none). When it
  // is positive and the prompt is longer than the cap, the forward pass hands prefill the
  // queries rotated to the cap and the unrotated keys in `far` (attn/distance_cap.h);
  // otherwise far.limit is 0.
  virtual std::int64_t distance_limit(int /*layer*/, int /*heads*/) const { return 0; }
  // out [heads][n_q][dim] = causal attention of `in` for model layer `layer`.
  virtual void prefill(int layer, const AttnInput& in, const FarVectors& far, float* out) = 0;
  // Time spent building plans inside prefill calls so far (ms), so that callers timing a call
  // can tell the plan building from the attention itself.
  virtual double estimate_ms() const { return 0.0; }
};

// Dense causal attention: the single place that picks the dense kernel.
void dense_attention(const AttnInput& in, float* out);

class DenseLayerAttention final : public LayerAttention {
 public:
  void prefill(int, const AttnInput& in, const FarVectors&, float* out) override { dense_attention(in, out); }
};

// Receives each layer's post-RoPE Q, K, V during prefill (for capture and analysis tools).
using CaptureFn = std::function<void(int layer, const AttnInput& in)>;

struct PrefillHooks {
  LayerAttention* attention = nullptr;  // nullptr: dense
  CaptureFn capture;                    // empty: none
};

}  // namespace ls
