// The hyper-parameters of a decoder model, read from GGUF metadata (docs/MODELS.md §1.2, §3).
// The forward pass reads only this struct; architecture differences are data here, not
// branches through the code.
#pragma once

#include <cstdint>
#include <string>

namespace ls {

class GgufFile;

struct ModelConfig {
  std::string architecture;       // general.architecture ("llama")
  std::string name;               // general.name
  int layers = 0;                 // {arch}.block_count
  int embedding = 0;              // {arch}.embedding_length
  int heads = 0;                  // {arch}.attention.head_count
  int kv_heads = 0;               // {arch}.attention.head_count_kv (defaults to heads)
  int head_dim = 0;               // embedding / heads unless attention.key_length says otherwise
  int ffn = 0;                    // {arch}.feed_forward_length
  int vocab = 0;                  // rows of token_embd
  std::int64_t context_length = 0;  // {arch}.context_length: the trained context
  int rope_dims = 0;              // {arch}.rope.dimension_count (defaults to head_dim)
  double rope_theta = 10000.0;    // {arch}.rope.freq_base
  float rms_eps = 1e-5f;          // {arch}.attention.layer_norm_rms_epsilon
  bool tied_embeddings = true;    // no output.weight: token_embd is also the LM head

  // Reads and checks the metadata; throws ls::Error for an unsupported architecture or
  // inconsistent values, naming the key.
  static ModelConfig from_gguf(const GgufFile& file);
  std::string summary() const;
};

}  // namespace ls
