// The llama decoder (SmolLM2 and other GGUF `llama` models): weights, prefill over a whole
// prompt layer by layer, and one-token decode against the KV cache.
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

struct LlamaLayerWeights {
  const float* attn_norm = nullptr;  // [embedding]
  WeightMatrix qkv;                  // [(heads + 2 kv_heads) · head_dim][embedding]: Q, K, V rows
  WeightMatrix output;               // [embedding][heads · head_dim]
  const float* ffn_norm = nullptr;   // [embedding]
  WeightMatrix gate_up;              // [2 ffn][embedding]: gate rows, then up rows
  WeightMatrix down;                 // [embedding][ffn]
};

struct PrefillStats {
  double attention_ms = 0.0;  // time inside the layer attention calls
};

class LlamaModel {
 public:
  // `file` must outlive the model (weights point into its mapping).
  explicit LlamaModel(const GgufFile& file);

  const ModelConfig& config() const { return config_; }
  std::int64_t weight_bytes() const;  // repacked weights held in memory
  KvCache make_cache(std::int64_t capacity) const;

  // Runs the prompt through every layer into an empty cache (positions 0 .. n-1) and writes
  // the logits of the last position to logits [vocab].
  PrefillStats prefill(std::span<const std::int32_t> tokens, KvCache& cache, float* logits,
                       const PrefillHooks& hooks = {});
  // Runs one token at position cache.size(), appends it to the cache, writes logits [vocab].
  void decode(std::int32_t token, KvCache& cache, float* logits);

  // Forward pass knobs for benchmarks and tests.
  void set_matmul_route(MatmulRoute route) { route_ = route; }

 private:
  void embed(std::int32_t token, float* out) const;
  void logits_of(const float* x, float* logits);

  ModelConfig config_;
  std::vector<LlamaLayerWeights> layers_;
  const float* output_norm_ = nullptr;  // [embedding]
  WeightPart embeddings_;               // [vocab][embedding]: token_embd, file layout
  WeightMatrix lm_head_;                // [vocab][embedding]: output, or token_embd when tied
  Rope rope_;
  Matmul matmul_;
  MatmulRoute route_ = MatmulRoute::Auto;
  DecodeAttention decode_attention_;
  DenseLayerAttention dense_attention_;

  // Prefill activations, O(n · embedding).
  Buffer<float> x_;        // [n][embedding] residual stream
  Buffer<float> q_heads_;  // [heads][n][head_dim]
  Buffer<float> k_heads_;  // [kv_heads][n][head_dim]
  Buffer<float> v_heads_;  // [kv_heads][n][head_dim]
  Buffer<float> attn_;     // [heads][n][head_dim] attention output
  Buffer<float> q_far_;    // [heads][n][head_dim] queries rotated to the distance cap (layers with one)
  Buffer<float> k_far_;    // [kv_heads][n][head_dim] keys before rotation (layers with one)
  // Per chunk of tokens (decode: one token).
  Buffer<float> norm_;     // [chunk][embedding]
  Buffer<float> qkv_;      // [chunk][(heads + 2 kv_heads) · head_dim]
  Buffer<float> mixed_;    // [chunk][heads · head_dim] attention output, token-major
  Buffer<float> proj_;     // [chunk][embedding]
  Buffer<float> gate_up_;  // [chunk][2 ffn]
  Buffer<float> hidden_;   // [chunk][ffn]
};

}  // namespace ls
