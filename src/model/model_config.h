// The hyper-parameters of a decoder model, read from GGUF metadata (docs/MODELS.md §1.2, §3,
// §4). The forward pass reads only this struct: architecture differences (llama, gemma3) are
// data here, not branches spread through the code.
//
//                      llama (SmolLM2)          gemma3 (Gemma 3 270M)
//   embedding scale    1                        √embedding
//   RoPE               adjacent pairs (NORM)    halves (NEOX); local layers θ 10k, global θ from the file
//   QK-norm            no                       RMSNorm over each head's q and k before RoPE
//   norms              pre-attention, pre-FFN   the same plus post-attention and post-FFN
//   FFN                SwiGLU (SiLU)            GeGLU (tanh GELU)
//   attention          every layer global       5 local (sliding window) : 1 global
//   query scale        1/√head_dim              1/√head_dim (query_pre_attn_scalar = head_dim)
// RMSNorm is x·w in both: the converter stores Gemma's (1 + w) as w.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ls {

class GgufFile;

enum class RopeStyle { Norm, Neox };  // pairs (x[2i], x[2i+1]) / (x[i], x[i + d/2])
enum class Activation { Silu, GeluTanh };

struct LayerConfig {
  std::int64_t window = 0;   // > 0: a local layer, each query sees its last `window` keys; 0: global
  double rope_theta = 0.0;   // RoPE base of this layer
  bool local() const { return window > 0; }
};

struct ModelConfig {
  std::string architecture;       // general.architecture ("llama", "gemma3")
  std::string name;               // general.name
  std::string finetune;           // general.finetune (may be empty)
  int layers = 0;                 // {arch}.block_count
  int embedding = 0;              // {arch}.embedding_length
  int heads = 0;                  // {arch}.attention.head_count
  int kv_heads = 0;               // {arch}.attention.head_count_kv (defaults to heads)
  int head_dim = 0;               // embedding / heads unless attention.key_length says otherwise
  int ffn = 0;                    // {arch}.feed_forward_length
  int vocab = 0;                  // rows of token_embd
  std::int64_t context_length = 0;  // {arch}.context_length: the trained context
  int rope_dims = 0;              // {arch}.rope.dimension_count (defaults to head_dim)
  double rope_theta = 10000.0;    // {arch}.rope.freq_base (global layers)
  float rms_eps = 1e-5f;          // {arch}.attention.layer_norm_rms_epsilon
  bool tied_embeddings = true;    // no output.weight: token_embd is also the LM head

  RopeStyle rope_style = RopeStyle::Norm;
  Activation activation = Activation::Silu;
  bool qk_norm = false;           // blk.N.attn_{q,k}_norm
  bool post_norms = false;        // blk.N.post_attention_norm, blk.N.post_ffw_norm
  float embedding_scale = 1.0f;   // the embedding row is multiplied by this
  float attention_scale = 0.0f;   // softmax scale ({arch}.attention.scale; default 1/√head_dim)
  float final_softcap = 0.0f;     // {arch}.final_logit_softcapping; 0: none
  std::int64_t sliding_window = 0;  // {arch}.attention.sliding_window (local layers); 0: none
  std::vector<LayerConfig> layer;   // [layers]

  // Reads and checks the metadata; throws ls::Error for an unsupported architecture or
  // missing / inconsistent values, naming the key.
  static ModelConfig from_gguf(const GgufFile& file);
  std::string summary() const;
  // One letter per layer, L local / G global ("LLLLLGLLLLLG..."), and the global layers.
  std::string layer_pattern() const;
  std::vector<int> global_layers() const;
  // Per layer: the KV cache keeps this many positions (0: all), see kv/kv_cache.h.
  std::vector<std::int64_t> cache_windows() const;
};

}  // namespace ls
