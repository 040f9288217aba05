// The decoder forward pass. Reads top to bottom: loading, then one batch of tokens through
// every layer (prefill, a chunk of it, or one decode step), then the entry points.
//
// Per layer (ModelConfig says which optional steps a model has):
//   h = RMSNorm(x)·attn_norm;  q, k, v = Wqkv·h;  [QK-norm: q, k = RMSNorm(q)·q_norm, RMSNorm(k)·k_norm]
//   RoPE(q, k) with the layer's base;  a = attention(q, k, v) (local layers: sliding window)
//   o = Wo·a;  [post-norm: o = RMSNorm(o)·post_attention_norm];  x += o
//   h = RMSNorm(x)·ffn_norm;  f = Wdown·(act(Wgate·h) ⊙ Wup·h);  [post-norm: f = RMSNorm(f)·post_ffw_norm];  x += f
// with x = embedding·embedding_scale in front and, for the last position (or every position,
// in blocks of rows, for PrefillHooks::logits), logits = lm_head·(RMSNorm(x)·output_norm)
// [soft-capped] at the end.
#include "model/transformer.h"

#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "attn/flash.h"
#include "attn/merge.h"
#include "core/error.h"
#include "core/parallel.h"
#include "core/timer.h"
#include "model/gguf.h"

namespace ls {

namespace {

// The projections and the FFN run over sub-chunks of this many tokens of a batch, so
// activations beyond the residual stream and Q/K/V stay small; the weights are dequantized
// per sub-chunk, which costs 1/kChunk of the product.
constexpr std::int64_t kChunk = 512;

// PrefillHooks::logits gets blocks of at most this many floats (64 MB): 341 rows of SmolLM2's
// 49152-token vocabulary, 64 of Gemma 3's 262144.
constexpr std::int64_t kLogitBlockFloats = std::int64_t(1) << 24;

// A 2-D weight [rows][cols] (GGUF dims [cols, rows]), checked against the expected shape.
struct Shape {
  std::string name;
  std::int64_t rows, cols;
};

WeightPart weight(const GgufFile& file, const Shape& s) {
  const GgufTensor& t = file.tensor(s.name);
  LS_CHECK(t.dims.size() == 2 && t.dims[0] == s.cols && t.dims[1] == s.rows,
           "{}: tensor {} has shape [{}], expected [{}, {}]", file.path(), s.name,
           fmt::join(t.dims, ", "), s.cols, s.rows);
  return {t.type, s.rows, s.cols, t.data};
}

// The tensors stacked into one matrix (repacked, or dequantized to fp32). The matrix owns its
// data, so the file's pages of those tensors are released: the process does not hold the
// weights twice.
WeightMatrix matrix(const GgufFile& file, std::initializer_list<Shape> shapes) {
  std::vector<WeightPart> parts;
  for (const Shape& s : shapes) parts.push_back(weight(file, s));
  return WeightMatrix::from_parts(parts, [&file](const void* data, std::size_t bytes) {
    file.release_pages(data, bytes);
  });
}

// An F32 norm weight [n], copied (its pages are shared with the matrices around it).
std::vector<float> norm_weight(const GgufFile& file, const std::string& name, std::int64_t n) {
  const GgufTensor& t = file.tensor(name);
  LS_CHECK(t.type == GgmlType::F32 && t.dims.size() == 1 && t.dims[0] == n,
           "{}: norm weight {} must be F32 [{}]", file.path(), name, n);
  const auto* data = reinterpret_cast<const float*>(t.data);
  return {data, data + n};
}

}  // namespace

Transformer::Transformer(const GgufFile& file) : config_(ModelConfig::from_gguf(file)) {
  const ModelConfig& c = config_;
  const std::int64_t q_dim = std::int64_t(c.heads) * c.head_dim, kv_dim = std::int64_t(c.kv_heads) * c.head_dim;
  const std::int64_t E = c.embedding;
  const auto norm = [&](const std::string& name, std::int64_t n) {
    return norms_.emplace_back(norm_weight(file, name, n)).data();  // inner buffers never move
  };
  for (int i = 0; i < c.layers; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    LayerWeights l;
    l.attn_norm = norm(p + "attn_norm.weight", E);
    l.qkv = matrix(file, {{p + "attn_q.weight", q_dim, E}, {p + "attn_k.weight", kv_dim, E},
                          {p + "attn_v.weight", kv_dim, E}});
    if (c.qk_norm) {
      l.q_norm = norm(p + "attn_q_norm.weight", c.head_dim);
      l.k_norm = norm(p + "attn_k_norm.weight", c.head_dim);
    }
    l.output = matrix(file, {{p + "attn_output.weight", E, q_dim}});
    if (c.post_norms) {
      l.post_attention_norm = norm(p + "post_attention_norm.weight", E);
      l.post_ffw_norm = norm(p + "post_ffw_norm.weight", E);
    }
    l.ffn_norm = norm(p + "ffn_norm.weight", E);
    l.gate_up = matrix(file, {{p + "ffn_gate.weight", c.ffn, E}, {p + "ffn_up.weight", c.ffn, E}});
    l.down = matrix(file, {{p + "ffn_down.weight", E, c.ffn}});
    layers_.push_back(std::move(l));
  }
  output_norm_ = norm("output_norm.weight", E);
  // Tied embeddings: the token lookup reads the LM head's rows.
  lm_head_ = matrix(file, {{c.tied_embeddings ? "token_embd.weight" : "output.weight", c.vocab, E}});
  if (!c.tied_embeddings) embeddings_ = matrix(file, {{"token_embd.weight", c.vocab, E}});
  std::vector<double> bases;
  for (const LayerConfig& l : c.layer) {
    auto it = std::find(bases.begin(), bases.end(), l.rope_theta);
    if (it == bases.end()) {
      bases.push_back(l.rope_theta);
      ropes_.emplace_back(c.rope_dims, l.rope_theta, c.rope_style == RopeStyle::Neox);
      it = bases.end() - 1;
    }
    rope_of_.push_back(static_cast<int>(it - bases.begin()));
  }
  file.release_all_pages();  // everything the model reads is its own now
}

std::int64_t Transformer::weight_bytes() const {
  std::int64_t bytes = lm_head_.bytes() + embeddings_.bytes();
  for (const LayerWeights& l : layers_)
    bytes += l.qkv.bytes() + l.output.bytes() + l.gate_up.bytes() + l.down.bytes();
  return bytes;
}

KvCache Transformer::make_cache(std::int64_t capacity, KvType key_type, KvType value_type) const {
  return KvCache({config_.layers, config_.kv_heads, config_.head_dim, capacity, config_.cache_windows(), key_type,
                  value_type});
}

void Transformer::embed(std::int32_t token, float* out) const {
  LS_CHECK(token >= 0 && token < config_.vocab, "token id {} outside the vocabulary (0..{})", token,
           config_.vocab - 1);
  (config_.tied_embeddings ? lm_head_ : embeddings_).dequantize_rows(token, 1, out);
  if (config_.embedding_scale != 1.0f)
    for (int i = 0; i < config_.embedding; ++i) out[i] *= config_.embedding_scale;
}

void Transformer::logits_of(const float* x, float* logits) {
  rms_norm(x, output_norm_, config_.embedding, config_.rms_eps, norm_.data());
  matmul_.run(lm_head_, norm_.data(), 1, logits, route_);
  if (config_.final_softcap > 0.0f) softcap(logits, config_.vocab, config_.final_softcap);
}

void Transformer::all_logits(std::int64_t m, std::int64_t p0, const PrefillHooks& hooks) {
  const std::int64_t E = config_.embedding, V = config_.vocab;
  const std::int64_t begin = std::clamp<std::int64_t>(hooks.logits_from - p0, 0, m);
  if (begin == m) return;
  // At most kChunk rows: norm_ holds that many.
  const std::int64_t rows = std::clamp<std::int64_t>(kLogitBlockFloats / V, 1, std::min(m, kChunk));
  logit_rows_.ensure(rows * V);
  for (std::int64_t r0 = begin; r0 < m; r0 += rows) {
    const std::int64_t n = std::min(rows, m - r0);
    parallel_for(n, [&](std::int64_t t) {
      rms_norm(x_.data() + (r0 + t) * E, output_norm_, E, config_.rms_eps, norm_.data() + t * E);
    }, 16);
    matmul_.run(lm_head_, norm_.data(), n, logit_rows_.data(), route_);
    if (config_.final_softcap > 0.0f)
      parallel_for(n, [&](std::int64_t t) { softcap(logit_rows_.data() + t * V, V, config_.final_softcap); }, 1);
    hooks.logits(p0 + r0, n, logit_rows_.data());
  }
}

void Transformer::project_qkv(int layer, std::int64_t t0, std::int64_t m, std::int64_t batch, std::int64_t p0,
                              std::int64_t limit) {
  const ModelConfig& c = config_;
  const LayerWeights& w = layers_[layer];
  const Rope& rope = ropes_[rope_of_[layer]];
  const std::int64_t E = c.embedding, D = c.head_dim;
  const int H = c.heads, G = c.kv_heads;
  const std::int64_t q_dim = H * D, kv_dim = G * D, qkv_dim = q_dim + 2 * kv_dim;
  const float* x = x_.data();
  parallel_for(m, [&](std::int64_t t) {
    rms_norm(x + (t0 + t) * E, w.attn_norm, E, c.rms_eps, norm_.data() + t * E);
  }, 16);
  matmul_.run(w.qkv, norm_.data(), m, qkv_.data(), route_);
  parallel_for(m, [&](std::int64_t t) {
    const std::int64_t i = t0 + t, pos = p0 + i;  // index in the batch, position in the sequence
    float* row = qkv_.data() + t * qkv_dim;
    if (w.q_norm) {
      for (int h = 0; h < H; ++h) rms_norm(row + h * D, w.q_norm, D, c.rms_eps, row + h * D);
      for (int g = 0; g < G; ++g) rms_norm(row + q_dim + g * D, w.k_norm, D, c.rms_eps, row + q_dim + g * D);
    }
    if (limit > 0) {
      for (int h = 0; h < H; ++h) {
        float* q_far = q_far_.data() + (h * batch + i) * D;
        std::memcpy(q_far, row + h * D, D * 4);
        rope.apply(q_far, 1, D, limit);
      }
      for (int g = 0; g < G; ++g) std::memcpy(k_far_.data() + (g * batch + i) * D, row + q_dim + g * D, D * 4);
    }
    rope.apply(row, H, D, pos);
    rope.apply(row + q_dim, G, D, pos);
    for (int h = 0; h < H; ++h) std::memcpy(q_heads_.data() + (h * batch + i) * D, row + h * D, D * 4);
    for (int g = 0; g < G; ++g) {
      std::memcpy(k_new_.data() + (g * batch + i) * D, row + q_dim + g * D, D * 4);
      std::memcpy(v_new_.data() + (g * batch + i) * D, row + q_dim + kv_dim + g * D, D * 4);
    }
  }, 16);
}

void Transformer::finish_layer(int layer, std::int64_t t0, std::int64_t m, std::int64_t batch) {
  const ModelConfig& c = config_;
  const LayerWeights& w = layers_[layer];
  const std::int64_t E = c.embedding, D = c.head_dim, F = c.ffn, q_dim = std::int64_t(c.heads) * D;
  float* x = x_.data();
  parallel_for(m, [&](std::int64_t t) {
    for (int h = 0; h < c.heads; ++h)
      std::memcpy(mixed_.data() + t * q_dim + h * D, attn_.data() + (h * batch + t0 + t) * D, D * 4);
  }, 16);
  matmul_.run(w.output, mixed_.data(), m, proj_.data(), route_);
  parallel_for(m, [&](std::int64_t t) {
    float* o = proj_.data() + t * E;
    if (w.post_attention_norm) rms_norm(o, w.post_attention_norm, E, c.rms_eps, o);
    float* xt = x + (t0 + t) * E;
    add_inplace(xt, o, E);
    rms_norm(xt, w.ffn_norm, E, c.rms_eps, norm_.data() + t * E);
  }, 16);
  matmul_.run(w.gate_up, norm_.data(), m, gate_up_.data(), route_);
  parallel_for(m, [&](std::int64_t t) {
    const float* gu = gate_up_.data() + t * 2 * F;
    if (c.activation == Activation::GeluTanh) gelu_tanh_mul(gu, gu + F, F, hidden_.data() + t * F);
    else silu_mul(gu, gu + F, F, hidden_.data() + t * F);
  }, 16);
  matmul_.run(w.down, hidden_.data(), m, proj_.data(), route_);
  parallel_for(m, [&](std::int64_t t) {
    float* f = proj_.data() + t * E;
    if (w.post_ffw_norm) rms_norm(f, w.post_ffw_norm, E, c.rms_eps, f);
    add_inplace(x + (t0 + t) * E, f, E);
  }, 16);
}

PrefillStats Transformer::forward(std::span<const std::int32_t> tokens, KvCache& cache, float* logits,
                                  const PrefillHooks& hooks, bool decode_step, DecodeSelector* selector,
                                  DecodeStats* decode_stats) {
  const ModelConfig& c = config_;
  const std::int64_t m = static_cast<std::int64_t>(tokens.size()), p0 = cache.size();
  const std::int64_t E = c.embedding, D = c.head_dim, F = c.ffn;
  const int H = c.heads, G = c.kv_heads;
  const std::int64_t q_dim = H * D, kv_dim = G * D, qkv_dim = q_dim + 2 * kv_dim;
  for (Rope& rope : ropes_) rope.reserve(p0 + m);  // the positions used, not the whole cache
  const std::int64_t chunk = std::min(m, kChunk);
  x_.ensure(m * E);
  q_heads_.ensure(m * q_dim);
  k_new_.ensure(m * kv_dim);
  v_new_.ensure(m * kv_dim);
  attn_.ensure(m * q_dim);
  norm_.ensure(chunk * E);
  qkv_.ensure(chunk * qkv_dim);
  mixed_.ensure(chunk * q_dim);
  proj_.ensure(chunk * E);
  gate_up_.ensure(chunk * 2 * F);
  hidden_.ensure(chunk * F);
  PrefillStats stats;

  for (std::int32_t token : tokens)  // checked here: an exception must not leave a parallel region
    LS_CHECK(token >= 0 && token < c.vocab, "token id {} outside the vocabulary (0..{})", token, c.vocab - 1);
  parallel_for(m, [&](std::int64_t t) { embed(tokens[t], x_.data() + t * E); }, 64);

  for (int layer = 0; layer < c.layers; ++layer) {
    const LayerConfig& lc = c.layer[layer];
    // Local layers always run the sliding-window kernel; a sparse method runs on global ones.
    LayerAttention& attention = lc.local() || !hooks.attention ? dense_attention_ : *hooks.attention;

    // A distance cap (LM-Infinite) needs the queries as seen from the cap and the keys before
    // rotation: q_far · k_far is the score of any pair at distance `limit`.
    const std::int64_t limit = lc.local() ? 0 : attention.distance_limit(layer, H);
    const bool capped = !decode_step && limit > 0 && p0 + m - 1 > limit;
    // At decode the selector may cap distances (StreamingLLM's position shift, InfLLM).
    const std::int64_t decode_limit = decode_step && selector && !lc.local() ? selector->rope_distance_limit() : 0;
    const bool decode_capped = decode_limit > 0 && p0 > decode_limit;
    LS_CHECK(!context_ || (limit == 0 && decode_limit == 0),
             "context parallelism runs no RoPE distance cap (lambda, a decode selector's position shift)");
    LS_CHECK(!capped || p0 == 0,
             "a RoPE distance cap (lambda) needs the whole prompt in one batch: drop --ubatch or shorten the prompt");
    if (capped || decode_capped) {
      q_far_.ensure(m * q_dim);
      k_far_.ensure(m * kv_dim);
    }
    const std::int64_t rotate_to = capped ? limit : decode_capped ? decode_limit : 0;
    for (std::int64_t c0 = 0; c0 < m; c0 += chunk) project_qkv(layer, c0, std::min(chunk, m - c0), m, p0, rotate_to);
    // A decode step: the new token's query, and what its attention read.
    const DecodeQuery query{layer, c.layers, q_heads_.data(), H, c.attention_scale};
    const auto count_decode = [&](std::int64_t keys, std::int64_t select_bytes, double select_ms, double ms) {
      if (!decode_stats) return;
      decode_stats->keys_attended += keys;
      decode_stats->kv_bytes_read += keys * (cache.key_row_bytes() + cache.value_row_bytes()) + select_bytes;
      decode_stats->attention_ms += ms;
      decode_stats->select_ms += select_ms;
    };

    // A continuation's queries see the cached keys from here on (a local layer: its window)
    // followed by the batch's own.
    const std::int64_t first_cached = lc.local() ? std::max<std::int64_t>(0, p0 - lc.window + 1) : 0;

    if (context_) {
      // Context parallelism: the keys of other positions live in other processes.
      const bool stores = context_->stores(p0);
      Timer attention_timer;
      if (decode_step) {
        if (stores) cache.write(layer, p0, m, k_new_.data(), v_new_.data());
        const ContextAttention::Decoded d =
            context_->decode(query, p0, cache, cache.is_ring(layer) ? nullptr : selector, attn_.data());
        count_decode(d.keys, d.select_bytes, d.select_ms, attention_timer.ms());  // every rank's keys
      } else {
        const AttnInput in{q_heads_.data(), k_new_.data(), v_new_.data(),
                           {H, G, m, m, static_cast<int>(D), c.attention_scale, lc.window}};
        if (hooks.capture) hooks.capture(layer, in);
        const double planned = attention.estimate_ms();
        context_->prefill(layer, in, p0, cache, &attention == &dense_attention_ ? nullptr : &attention, attn_.data());
        const double planning = attention.estimate_ms() - planned;
        stats.attention_ms += attention_timer.ms() - planning;
        stats.estimate_ms += planning;
        if (stores) cache.write(layer, p0, m, k_new_.data(), v_new_.data());
      }
    } else if (!decode_step && first_cached < p0 && &attention == &dense_attention_ && !hooks.capture) {
      Timer attention_timer;
      attend_after_cache(layer, first_cached, p0, m, cache);
      stats.attention_ms += attention_timer.ms();
      cache.write(layer, p0, m, k_new_.data(), v_new_.data());
    } else if (decode_step) {
      cache.write(layer, p0, m, k_new_.data(), v_new_.data());
      Timer attention_timer;
      std::int64_t select_bytes = 0;
      double select_ms = 0.0;
      if (selector && !cache.is_ring(layer)) {
        const LayerKeys keys = cache.layer_keys(layer, p0 + 1);
        select_bytes = selector->select(query, keys, selection_);
        select_ms = attention_timer.ms();
      } else {
        selection_.set_dense(G, p0 + 1, cache.first_held(layer, p0 + 1));
      }
      DecodeFar far;
      if (decode_capped) {
        const Rope& rope = ropes_[rope_of_[layer]];
        far = {decode_limit, q_far_.data(), [&rope, D](std::int64_t p, float* row) { rope.apply(row, 1, int(D), p, true); }};
      }
      decode_attention_.run(cache, layer, q_heads_.data(), H, selection_, c.attention_scale, attn_.data(), far);
      count_decode(selection_.tokens(), select_bytes, select_ms, attention_timer.ms());
    } else {
      // A sparse method (or a capture) sees all n_k keys at once, in one fp32 array.
      const std::int64_t n_k = p0 + m - first_cached;
      const float* k = k_new_.data();
      const float* v = v_new_.data();
      if (first_cached < p0) {
        k_ctx_.ensure(G * n_k * D);
        v_ctx_.ensure(G * n_k * D);
        cache.read(layer, first_cached, p0, k_ctx_.data(), v_ctx_.data(), n_k);
        for (int g = 0; g < G; ++g) {
          std::memcpy(k_ctx_.data() + (g * n_k + p0 - first_cached) * D, k_new_.data() + g * m * D, m * D * 4);
          std::memcpy(v_ctx_.data() + (g * n_k + p0 - first_cached) * D, v_new_.data() + g * m * D, m * D * 4);
        }
        k = k_ctx_.data();
        v = v_ctx_.data();
      }
      const AttnInput in{q_heads_.data(), k, v,
                         {H, G, m, n_k, static_cast<int>(D), c.attention_scale, lc.window}};
      if (hooks.capture) hooks.capture(layer, in);
      const double planned = attention.estimate_ms();
      Timer attention_timer;
      const FarVectors far = capped ? FarVectors{limit, q_far_.data(), k_far_.data()} : FarVectors{};
      attention.prefill(layer, in, far, attn_.data());
      const double planning = attention.estimate_ms() - planned;
      stats.attention_ms += attention_timer.ms() - planning;
      stats.estimate_ms += planning;
      cache.write(layer, p0, m, k_new_.data(), v_new_.data());
    }

    for (std::int64_t c0 = 0; c0 < m; c0 += chunk) finish_layer(layer, c0, std::min(chunk, m - c0), m);
  }
  cache.set_size(p0 + m);
  if (!decode_step && hooks.logits) all_logits(m, p0, hooks);
  logits_of(x_.data() + (m - 1) * E, logits);
  return stats;
}

void Transformer::attend_after_cache(int layer, std::int64_t first, std::int64_t p0, std::int64_t m,
                                     const KvCache& cache) {
  const ModelConfig& c = config_;
  const LayerConfig& lc = c.layer[layer];
  const int H = c.heads, G = c.kv_heads, D = int(c.head_dim);
  const std::int64_t rows = std::int64_t(H) * m;
  lse_.ensure(rows);
  part_.ensure(rows * D);
  part_lse_.ensure(rows);
  // The batch's own keys, causal.
  const AttnInput own{q_heads_.data(), k_new_.data(), v_new_.data(), {H, G, m, m, D, c.attention_scale, lc.window}};
  attention_at(own, 0, attn_.data(), lse_.data());
  // The cached keys, cache_segment_ at a time: every one lies before every query.
  const std::int64_t segment = std::min(p0 - first, cache_segment_);
  k_seg_.ensure(G * segment * D);
  v_seg_.ensure(G * segment * D);
  for (std::int64_t a = first; a < p0; a += segment) {
    const std::int64_t b = std::min(p0, a + segment);
    cache.read(layer, a, b, k_seg_.data(), v_seg_.data());
    const AttnInput past{q_heads_.data(), k_seg_.data(), v_seg_.data(),
                         {H, G, m, b - a, D, c.attention_scale, lc.window}};
    attention_at(past, p0 - a, part_.data(), part_lse_.data());
    merge_attention(attn_.data(), lse_.data(), part_.data(), part_lse_.data(), rows, D);
  }
}

PrefillStats Transformer::prefill(std::span<const std::int32_t> tokens, KvCache& cache, float* logits,
                                  const PrefillHooks& hooks, std::int64_t ubatch) {
  const std::int64_t n = static_cast<std::int64_t>(tokens.size());
  LS_CHECK(n > 0, "empty prompt");
  LS_CHECK(ubatch >= 0, "invalid ubatch {}", ubatch);
  LS_CHECK(cache.size() + n <= cache.capacity(), "prompt of {} tokens{} exceeds the context of {}", n,
           cache.size() ? fmt::format(" after {} cached", cache.size()) : std::string(), cache.capacity());
  const std::int64_t step = ubatch > 0 ? ubatch : n;
  PrefillStats stats;
  for (std::int64_t t0 = 0; t0 < n; t0 += step) {
    const PrefillStats s = forward(tokens.subspan(t0, std::min(step, n - t0)), cache, logits, hooks, false);
    stats.attention_ms += s.attention_ms;
    stats.estimate_ms += s.estimate_ms;
  }
  return stats;
}

void Transformer::decode(std::int32_t token, KvCache& cache, float* logits, DecodeSelector* selector,
                         DecodeStats* stats) {
  LS_CHECK(cache.size() < cache.capacity(), "context full: {} tokens", cache.capacity());
  if (selector) {
    LS_CHECK(cache.keeps(selector->needs()), "decode selector {} needs page summaries the cache does not keep (KvCache::keep_summaries)",
             selector->spec());
    selector->begin_step(cache.size());
  }
  forward({&token, 1}, cache, logits, {}, true, selector, stats);
  if (stats) ++stats->steps;
}

}  // namespace ls
