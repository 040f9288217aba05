// Model hyper-parameters from GGUF metadata (see model_config.h).
#include "model/model_config.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "model/gguf.h"

namespace ls {

namespace {

// Gemma 3's local layers: llama.cpp's set_swa_pattern(6), layer i is local when i % 6 < 5,
// unless the file states the pattern ({arch}.attention.sliding_window_pattern: a period, or
// one bool per layer, true = local).
std::vector<bool> gemma3_local_layers(const GgufFile& file, const std::string& a, int layers) {
  std::vector<bool> local(layers);
  const GgufValue* pattern = file.find(a + "attention.sliding_window_pattern");
  if (pattern && pattern->type == GgufValue::Type::Array) {
    const GgufArray& items = pattern->as_array(a + "attention.sliding_window_pattern");
    LS_CHECK(int(items.size()) == layers, "{}: {}attention.sliding_window_pattern has {} entries for {} layers",
             file.path(), a, items.size(), layers);
    for (int i = 0; i < layers; ++i) local[i] = items[i].as_bool(a + "attention.sliding_window_pattern");
    return local;
  }
  const std::int64_t period = file.get_int(a + "attention.sliding_window_pattern", 6);
  LS_CHECK(period > 0, "{}: invalid {}attention.sliding_window_pattern {}", file.path(), a, period);
  for (int i = 0; i < layers; ++i) local[i] = i % period < period - 1;
  return local;
}

}  // namespace

ModelConfig ModelConfig::from_gguf(const GgufFile& file) {
  ModelConfig c;
  c.architecture = file.get_string("general.architecture", "");
  LS_CHECK(!c.architecture.empty(), "{}: no general.architecture in the metadata", file.path());
  LS_CHECK(c.architecture == "llama" || c.architecture == "gemma3",
           "{}: model architecture '{}' is not supported (supported: llama, gemma3)", file.path(), c.architecture);
  const bool gemma = c.architecture == "gemma3";
  const std::string a = c.architecture + ".";
  auto required = [&](const std::string& key) {
    std::int64_t v = file.get_int(a + key, -1);
    LS_CHECK(v > 0, "{}: missing or invalid metadata key {}{}", file.path(), a, key);
    return v;
  };
  c.name = file.get_string("general.name", "");
  c.finetune = file.get_string("general.finetune", "");
  c.layers = static_cast<int>(required("block_count"));
  c.embedding = static_cast<int>(required("embedding_length"));
  c.heads = static_cast<int>(required("attention.head_count"));
  c.kv_heads = static_cast<int>(file.get_int(a + "attention.head_count_kv", c.heads));
  c.ffn = static_cast<int>(required("feed_forward_length"));
  c.context_length = required("context_length");
  if (gemma) {
    // Gemma's heads are wider than embedding / heads: the file must say how wide.
    c.head_dim = static_cast<int>(required("attention.key_length"));
    LS_CHECK(required("attention.value_length") == c.head_dim,
             "{}: different key and value head sizes are not supported", file.path());
  } else {
    LS_CHECK(c.embedding % c.heads == 0, "{}: embedding {} is not a multiple of {} heads", file.path(),
             c.embedding, c.heads);
    c.head_dim = static_cast<int>(file.get_int(a + "attention.key_length", c.embedding / c.heads));
    LS_CHECK(file.get_int(a + "attention.value_length", c.head_dim) == c.head_dim,
             "{}: different key and value head sizes are not supported", file.path());
    LS_CHECK(c.heads * c.head_dim == c.embedding, "{}: {} heads × {} ≠ embedding {} is not supported",
             file.path(), c.heads, c.head_dim, c.embedding);
  }
  LS_CHECK(c.head_dim > 0 && c.head_dim % 2 == 0, "{}: invalid head size {}", file.path(), c.head_dim);
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
  c.attention_scale = static_cast<float>(file.get_float(a + "attention.scale", 1.0 / std::sqrt(double(c.head_dim))));
  LS_CHECK(c.attention_scale > 0.0f, "{}: invalid {}attention.scale", file.path(), a);
  c.final_softcap = static_cast<float>(file.get_float(a + "final_logit_softcapping", 0.0));
  LS_CHECK(c.final_softcap >= 0.0f, "{}: invalid {}final_logit_softcapping", file.path(), a);
  LS_CHECK(file.get_float(a + "attn_logit_softcapping", 0.0) == 0.0,
           "{}: attention logit soft-capping is not supported", file.path());

  c.layer.assign(c.layers, LayerConfig{0, c.rope_theta});
  if (gemma) {
    c.rope_style = RopeStyle::Neox;
    c.activation = Activation::GeluTanh;
    c.qk_norm = true;
    c.post_norms = true;
    c.embedding_scale = std::sqrt(float(c.embedding));
    c.sliding_window = required("attention.sliding_window");
    // llama.cpp fixes the local base at 10k (rope_freq_base_train_swa); newer files state it.
    const double local_theta = file.get_float(a + "rope.freq_base_swa", 10000.0);
    LS_CHECK(local_theta > 0.0, "{}: invalid {}rope.freq_base_swa", file.path(), a);
    const std::vector<bool> local = gemma3_local_layers(file, a, c.layers);
    for (int i = 0; i < c.layers; ++i)
      if (local[i]) c.layer[i] = LayerConfig{c.sliding_window, local_theta};
  }

  const GgufTensor& embd = file.tensor("token_embd.weight");
  LS_CHECK(embd.dims.size() == 2 && embd.dims[0] == c.embedding, "{}: token_embd.weight has the wrong shape",
           file.path());
  c.vocab = static_cast<int>(embd.dims[1]);
  c.tied_embeddings = file.find_tensor("output.weight") == nullptr;
  return c;
}

std::string ModelConfig::layer_pattern() const {
  std::string s;
  for (const LayerConfig& l : layer) s += l.local() ? 'L' : 'G';
  return s;
}

std::vector<int> ModelConfig::global_layers() const {
  std::vector<int> out;
  for (int i = 0; i < layers; ++i)
    if (!layer[i].local()) out.push_back(i);
  return out;
}

std::vector<std::int64_t> ModelConfig::cache_windows() const {
  std::vector<std::int64_t> out;
  for (const LayerConfig& l : layer) out.push_back(l.window);
  return out;
}

std::string ModelConfig::summary() const {
  std::string s = fmt::format("{} ({}): {} layers, embedding {}, {} heads / {} KV heads × {}, FFN {}, vocab {}, "
                              "context {}, RoPE θ {} over {} dims, RMSNorm ε {}",
                              name.empty() ? "unnamed" : name, architecture, layers, embedding, heads, kv_heads,
                              head_dim, ffn, vocab, context_length, rope_theta, rope_dims, rms_eps);
  const auto local = std::find_if(layer.begin(), layer.end(), [](const LayerConfig& l) { return l.local(); });
  if (local != layer.end()) {
    const std::vector<int> global = global_layers();
    s += fmt::format("; {} local layers (window {}, RoPE θ {}), global layers {}", layers - int(global.size()),
                     local->window, local->rope_theta, fmt::join(global, ","));
  }
  return s;
}

}  // namespace ls
