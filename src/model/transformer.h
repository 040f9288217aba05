// The decoder forward pass for every architecture we load (llama: SmolLM2; gemma3: Gemma 3),
// driven by ModelConfig: one layer body serves prefill (many tokens), chunked prefill and
// decode (one token), so nothing is written twice.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/buffer.h"
#include "kv/decode_attention.h"
#include "kv/kv_cache.h"
#include "model/layer_attention.h"
#include "model/matmul.h"
#include "model/model_config.h"
#include "model/ops.h"

namespace ls {

class GgufFile;

struct LayerWeights {
  const float* attn_norm = nullptr;            // [embedding]
  WeightMatrix qkv;                            // [(heads + 2 kv_heads) · head_dim][embedding]: Q, K, V rows
  const float* q_norm = nullptr;               // [head_dim] (QK-norm), or nullptr
  const float* k_norm = nullptr;               // [head_dim]
  WeightMatrix output;                         // [embedding][heads · head_dim]
  const float* post_attention_norm = nullptr;  // [embedding] (post-norms), or nullptr
  const float* ffn_norm = nullptr;             // [embedding]
  WeightMatrix gate_up;                        // [2 ffn][embedding]: gate rows, then up rows
  WeightMatrix down;                           // [embedding][ffn]
  const float* post_ffw_norm = nullptr;        // [embedding], or nullptr
};

// What one or more decode steps did in attention (summed over steps).
struct DecodeStats {
  std::int64_t steps = 0;
  std::int64_t keys_attended = 0;   // keys attended, summed over layers and KV heads
  std::int64_t kv_bytes_read = 0;   // K/V rows read by attention + summaries and keys read by selectors
  double attention_ms = 0.0;        // selection and attention, every layer
  double select_ms = 0.0;           // of attention_ms, in the selector

  void add(const DecodeStats& o) {
    steps += o.steps, keys_attended += o.keys_attended, kv_bytes_read += o.kv_bytes_read;
    attention_ms += o.attention_ms, select_ms += o.select_ms;
  }
};

struct PrefillStats {
  double attention_ms = 0.0;  // time inside the layer attention calls, plan building excluded
  double estimate_ms = 0.0;   // plan building inside those calls (LayerAttention::estimate_ms)
};

class Transformer {
 public:
  // `file` must outlive the model: Q4_K matrices read their exact blocks from its mapping for
  // the fp32 route. Every other weight is repacked or copied, and its pages released.
  explicit Transformer(const GgufFile& file);

  const ModelConfig& config() const { return config_; }
  std::int64_t weight_bytes() const;  // repacked weights held in memory
  // A cache for `capacity` positions; local (sliding-window) layers keep only their window.
  KvCache make_cache(std::int64_t capacity, KvType key_type = KvType::F16, KvType value_type = KvType::F16) const;

  // Runs the tokens at positions cache.size() .. cache.size() + n - 1 through every layer,
  // appending them to the cache (an empty cache: a prompt; a filled one: its continuation), and
  // writes the logits of the last token to logits [vocab]. With ubatch > 0 the tokens go through
  // the model in chunks of at most `ubatch` (llama.cpp's -ub); each chunk's queries attend to
  // the cache plus the chunk. Sparse methods (hooks.attention) run on global layers; local
  // layers always run the dense sliding-window kernel.
  PrefillStats prefill(std::span<const std::int32_t> tokens, KvCache& cache, float* logits,
                       const PrefillHooks& hooks = {}, std::int64_t ubatch = 0);
  // Runs one token at position cache.size(), appends it to the cache, writes logits [vocab].
  // A selector (methods/decode_method.h) picks the keys each global layer attends to (the
  // cache must keep the summaries it needs: KvCache::keep_summaries); local layers and a null
  // selector attend densely. Adds what attention did to `stats` when given.
  void decode(std::int32_t token, KvCache& cache, float* logits, DecodeSelector* selector = nullptr,
              DecodeStats* stats = nullptr);

  // Context parallelism (model/context_parallel.h): while set, every layer's attention, in
  // prefill and decode, goes through `context`, and the cache keeps only what it stores().
  void set_context(ContextAttention* context) { context_ = context; }
  ContextAttention* context() const { return context_; }

  // Forward pass knobs for benchmarks and tests.
  void set_matmul_route(MatmulRoute route) { route_ = route; }
  // Cached keys per segment of a dense continuation (default 4096; see attend_after_cache).
  void set_cache_segment(std::int64_t keys) { cache_segment_ = std::max<std::int64_t>(1, keys); }

 private:
  // One batch of m tokens at positions p0 = cache.size() .. p0 + m - 1.
  PrefillStats forward(std::span<const std::int32_t> tokens, KvCache& cache, float* logits,
                       const PrefillHooks& hooks, bool decode_step, DecodeSelector* selector = nullptr,
                       DecodeStats* decode_stats = nullptr);
  // Norm, projection, QK-norm and RoPE of tokens [t0, t0 + m) of the batch, into the head-major
  // q_heads_, k_new_, v_new_ (and the distance-cap vectors when `limit` > 0).
  void project_qkv(int layer, std::int64_t t0, std::int64_t m, std::int64_t batch, std::int64_t p0,
                   std::int64_t limit);
  // Output projection, residual, FFN, residual for tokens [t0, t0 + m) of the batch.
  void finish_layer(int layer, std::int64_t t0, std::int64_t m, std::int64_t batch);
  // Dense attention of the batch (m queries at positions p0 ..) over the cached keys
  // [first, p0) and its own, into attn_: the cache is read segment by segment in its stored
  // type, each segment's attention merged by log-sum-exp, so no fp32 copy of the whole
  // cached context is made.
  void attend_after_cache(int layer, std::int64_t first, std::int64_t p0, std::int64_t m, const KvCache& cache);
  void embed(std::int32_t token, float* out) const;
  void logits_of(const float* x, float* logits);
  // hooks.logits for the batch's rows of x_ (positions p0 .. p0 + m - 1) from position
  // hooks.logits_from on, in blocks of logit_rows_.
  void all_logits(std::int64_t m, std::int64_t p0, const PrefillHooks& hooks);

  ModelConfig config_;
  std::vector<LayerWeights> layers_;
  const float* output_norm_ = nullptr;  // [embedding]
  WeightMatrix embeddings_;             // [vocab][embedding]: token_embd, when not tied to lm_head_
  std::vector<std::vector<float>> norms_;  // the norm weights (copies: nothing reads the file)
  WeightMatrix lm_head_;                // [vocab][embedding]: output, or token_embd when tied
  std::vector<Rope> ropes_;             // one per distinct base; rope_of_[layer] indexes it
  std::vector<int> rope_of_;
  Matmul matmul_;
  MatmulRoute route_ = MatmulRoute::Auto;
  // 4096 keys: 4 MB of fp32 K and V for Gemma 3's one KV head of 256, long enough that the
  // kernel's per-call costs vanish.
  std::int64_t cache_segment_ = 4096;
  ContextAttention* context_ = nullptr;
  DecodeAttention decode_attention_;
  Selection selection_;
  DenseLayerAttention dense_attention_;

  // Batch activations, O(batch · embedding).
  Buffer<float> x_;        // [batch][embedding] residual stream
  Buffer<float> q_heads_;  // [heads][batch][head_dim]
  Buffer<float> k_new_;    // [kv_heads][batch][head_dim] the batch's keys and values
  Buffer<float> v_new_;
  Buffer<float> k_ctx_;    // [kv_heads][n_k][head_dim] cached keys + the batch's (a sparse method's continuation)
  Buffer<float> v_ctx_;
  Buffer<float> k_seg_;    // [kv_heads][segment][head_dim] one segment of cached keys (dense continuation)
  Buffer<float> v_seg_;
  Buffer<float> part_;     // [heads][batch][head_dim] attention over one segment
  Buffer<double> lse_;     // [heads][batch] log-sum-exp of the running result and of the part
  Buffer<double> part_lse_;
  Buffer<float> attn_;     // [heads][batch][head_dim] attention output
  Buffer<float> q_far_;    // [heads][batch][head_dim] queries rotated to the distance cap (layers with one)
  Buffer<float> k_far_;    // [kv_heads][batch][head_dim] keys before rotation (layers with one)
  // Per sub-chunk of the batch.
  Buffer<float> norm_;     // [chunk][embedding]
  Buffer<float> qkv_;      // [chunk][(heads + 2 kv_heads) · head_dim]
  Buffer<float> mixed_;    // [chunk][heads · head_dim] attention output, token-major
  Buffer<float> proj_;     // [chunk][embedding]
  Buffer<float> gate_up_;  // [chunk][2 ffn]
  Buffer<float> hidden_;   // [chunk][ffn]
  Buffer<float> logit_rows_;  // [logit block][vocab], only with PrefillHooks::logits
};

}  // namespace ls
