// The attention step of prefill, per layer, behind a small interface: the forward pass hands
// over one layer's post-RoPE Q/K/V and gets the output back. Dense attention is the default;
// a sparse policy (a method building a Plan per layer, run by the plan executor, with some
// layers kept dense) implements the same interface without touching the forward pass.
#pragma once

#include <cstdint>
#include <functional>

#include "attn/attention.h"
#include "attn/distance_cap.h"
#include "kv/kv_cache.h"

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

// Attention when the sequence's keys are spread over processes (context parallelism,
// model/context_parallel.h). Set on the model (Transformer::set_context), it replaces the
// attention of every layer, global and local, in prefill and decode; the forward pass around
// it is unchanged.
class ContextAttention {
 public:
  virtual ~ContextAttention() = default;
  // out [heads][m][dim] for a batch of m tokens at positions [p0, p0 + m): `in` holds the
  // batch's queries, keys and values (n_q = n_k = m, the layer's window); `cache` this
  // process's keys of earlier positions (the batch is not in it yet); `method` the layer's
  // sparse method (nullptr: dense).
  virtual void prefill(int layer, const AttnInput& in, std::int64_t p0, const KvCache& cache, LayerAttention* method,
                       float* out) = 0;
  // What a decode step attended to, summed over the processes.
  struct Decoded {
    std::int64_t keys = 0;          // keys attended (over the KV heads)
    std::int64_t select_bytes = 0;  // summaries and keys the selectors read
    double select_ms = 0.0;         // this process's selector
  };
  // out [heads][dim] for the token `query` at position p, whose key and value this process
  // has already written to `cache` when stores(p). `selector` (nullptr: dense) selects among
  // the keys this process holds.
  virtual Decoded decode(const DecodeQuery& query, std::int64_t p, const KvCache& cache, DecodeSelector* selector,
                         float* out) = 0;
  // Whether this process keeps the keys and values of the batch starting at position p0.
  virtual bool stores(std::int64_t p0) const = 0;
};

// Receives each layer's post-RoPE Q, K, V during prefill (for capture and analysis tools).
using CaptureFn = std::function<void(int layer, const AttnInput& in)>;

// Receives the logits of every position of a prefill, a block of rows at a time:
// logits [rows][vocab] of positions first .. first + rows - 1 (valid during the call only).
// The blocks keep the memory bounded: 8192 positions of a 49152-token vocabulary would be
// 1.6 GB at once.
using LogitsFn = std::function<void(std::int64_t first, std::int64_t rows, const float* logits)>;

struct PrefillHooks {
  LayerAttention* attention = nullptr;  // nullptr: dense
  CaptureFn capture;                    // empty: none
  LogitsFn logits;                      // empty: only the last position's logits are computed
  std::int64_t logits_from = 0;         // with `logits`: the first position that gets them
};

}  // namespace ls
