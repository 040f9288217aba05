// Model hyper-parameters from GGUF metadata (see model_config.h).
#include "model/model_config.h"

#include <fmt/format.h>

#include "core/error.h"
#include "model/gguf.h"

namespace ls {

ModelConfig ModelConfig::from_gguf(const GgufFile& file) {
  ModelConfig c;
  c.architecture = file.get_string("general.architecture", "");
  LS_CHECK(!c.architecture.empty(), "{}: no general.architecture in the metadata", file.path());
  LS_CHECK(c.architecture == "llama",
           "{}: model architecture '{}' is not supported (supported: llama)", file.path(), c.architecture);
  const std::string a = c.architecture + ".";
  auto required = [&](const std::string& key) {
    std::int64_t v = file.get_int(a + key, -1);
    LS_CHECK(v > 0, "{}: missing or invalid metadata key {}{}", file.path(), a, key);
    return v;
  };
  c.name = file.get_string("general.name", "");
  c.layers = static_cast<int>(required("block_count"));
  c.embedding = static_cast<int>(required("embedding_length"));
  c.heads = static_cast<int>(required("attention.head_count"));
  c.kv_heads = static_cast<int>(file.get_int(a + "attention.head_count_kv", c.heads));
  c.ffn = static_cast<int>(required("feed_forward_length"));
  c.context_length = required("context_length");
  LS_CHECK(c.embedding % c.heads == 0, "{}: embedding {} is not a multiple of {} heads", file.path(),
           c.embedding, c.heads);
  c.head_dim = static_cast<int>(file.get_int(a + "attention.key_length", c.embedding / c.heads));
  LS_CHECK(file.get_int(a + "attention.value_length", c.head_dim) == c.head_dim,
           "{}: different key and value head sizes are not supported", file.path());
  LS_CHECK(c.heads * c.head_dim == c.embedding, "{}: {} heads × {} ≠ embedding {} is not supported",
           file.path(), c.heads, c.head_dim, c.embedding);
  LS_CHECK(c.kv_heads > 0 && c.heads % c.kv_heads == 0, "{}: {} heads cannot share {} KV heads", file.path(),
           c.heads, c.kv_heads);
  c.rope_dims = static_cast<int>(file.get_int(a + "rope.dimension_count", c.head_dim));
  LS_CHECK(c.rope_dims > 0 && c.rope_dims <= c.head_dim && c.rope_dims % 2 == 0,
           "{}: invalid {}rope.dimension_count {}", file.path(), a, c.rope_dims);
  c.rope_theta = file.get_float(a + "rope.freq_base", 10000.0);
  LS_CHECK(c.rope_theta > 0.0, "{}: invalid {}rope.freq_base", file.path(), a);
  const std::string scaling = file.get_string(a + "rope.scaling.type", "none");
  LS_CHECK(scaling == "none", "{}: RoPE scaling '{}' is not supported", file.path(), scaling);
  c.rms_eps = static_cast<float>(file.get_float(a + "attention.layer_norm_rms_epsilon", 1e-5));
  LS_CHECK(c.rms_eps > 0.0f, "{}: invalid RMSNorm epsilon", file.path());

  const GgufTensor& embd = file.tensor("token_embd.weight");
  LS_CHECK(embd.dims.size() == 2 && embd.dims[0] == c.embedding, "{}: token_embd.weight has the wrong shape",
           file.path());
  c.vocab = static_cast<int>(embd.dims[1]);
  c.tied_embeddings = file.find_tensor("output.weight") == nullptr;
  return c;
}

std::string ModelConfig::summary() const {
  return fmt::format("{} ({}): {} layers, embedding {}, {} heads / {} KV heads × {}, FFN {}, vocab {}, "
                     "context {}, RoPE θ {} over {} dims, RMSNorm ε {}",
                     name.empty() ? "unnamed" : name, architecture, layers, embedding, heads, kv_heads,
                     head_dim, ffn, vocab, context_length, rope_theta, rope_dims, rms_eps);
}

}  // namespace ls
