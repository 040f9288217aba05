// The llama forward pass. Reads top to bottom: loading, then prefill (whole prompt, layer by
// layer), then decode (one token against the cache).
//
// Per layer:  h = RMSNorm(x)·attn_norm;  q, k, v = Wqkv·h;  RoPE(q, k);
//             x += Wo·attention(q, k, v);  h = RMSNorm(x)·ffn_norm;
//             x += Wdown·(silu(Wgate·h) ⊙ Wup·h)
// then logits = lm_head·(RMSNorm(x)·output_norm) for the last position only.
#include "model/llama.h"

#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "core/error.h"
#include "core/parallel.h"
#include "core/timer.h"
#include "model/gguf.h"

namespace ls {

namespace {

// Prefill runs the projections and the FFN over chunks of this many tokens, so activations
// beyond the residual stream and Q/K/V stay small; the weights are dequantized per chunk,
// which costs 1/kChunk of the product.
constexpr std::int64_t kChunk = 512;

// A 2-D weight [rows][cols] (GGUF dims [cols, rows]), checked against the expected shape.
WeightPart weight(const GgufFile& file, const std::string& name, std::int64_t rows, std::int64_t cols) {
  const GgufTensor& t = file.tensor(name);
  LS_CHECK(t.dims.size() == 2 && t.dims[0] == cols && t.dims[1] == rows,
           "{}: tensor {} has shape [{}], expected [{}, {}]", file.path(), name,
           fmt::join(t.dims, ", "), cols, rows);
  return {t.type, rows, cols, t.data};
}

const float* norm_weight(const GgufFile& file, const std::string& name, std::int64_t n) {
  const GgufTensor& t = file.tensor(name);
  LS_CHECK(t.type == GgmlType::F32 && t.dims.size() == 1 && t.dims[0] == n,
           "{}: norm weight {} must be F32 [{}]", file.path(), name, n);
  return reinterpret_cast<const float*>(t.data);
}

}  // namespace

LlamaModel::LlamaModel(const GgufFile& file) : config_(ModelConfig::from_gguf(file)) {
  const ModelConfig& c = config_;
  const std::int64_t q_dim = std::int64_t(c.heads) * c.head_dim, kv_dim = std::int64_t(c.kv_heads) * c.head_dim;
  for (int i = 0; i < c.layers; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    LlamaLayerWeights l;
    l.attn_norm = norm_weight(file, p + "attn_norm.weight", c.embedding);
    const WeightPart qkv[] = {weight(file, p + "attn_q.weight", q_dim, c.embedding),
                              weight(file, p + "attn_k.weight", kv_dim, c.embedding),
                              weight(file, p + "attn_v.weight", kv_dim, c.embedding)};
    l.qkv = WeightMatrix::from_parts(qkv);
    l.output = WeightMatrix::from_part(weight(file, p + "attn_output.weight", c.embedding, q_dim));
    l.ffn_norm = norm_weight(file, p + "ffn_norm.weight", c.embedding);
    const WeightPart gate_up[] = {weight(file, p + "ffn_gate.weight", c.ffn, c.embedding),
                                  weight(file, p + "ffn_up.weight", c.ffn, c.embedding)};
    l.gate_up = WeightMatrix::from_parts(gate_up);
    l.down = WeightMatrix::from_part(weight(file, p + "ffn_down.weight", c.embedding, c.ffn));
    layers_.push_back(std::move(l));
  }
  output_norm_ = norm_weight(file, "output_norm.weight", c.embedding);
  embeddings_ = weight(file, "token_embd.weight", c.vocab, c.embedding);
  lm_head_ = WeightMatrix::from_part(
      c.tied_embeddings ? embeddings_ : weight(file, "output.weight", c.vocab, c.embedding));
  rope_ = Rope(c.rope_dims, c.rope_theta);
}

std::int64_t LlamaModel::weight_bytes() const {
  std::int64_t bytes = lm_head_.bytes();
  for (const LlamaLayerWeights& l : layers_)
    bytes += l.qkv.bytes() + l.output.bytes() + l.gate_up.bytes() + l.down.bytes();
  return bytes;
}

KvCache LlamaModel::make_cache(std::int64_t capacity) const {
  return KvCache({config_.layers, config_.kv_heads, config_.head_dim, capacity});
}

void LlamaModel::embed(std::int32_t token, float* out) const {
  LS_CHECK(token >= 0 && token < config_.vocab, "token id {} outside the vocabulary (0..{})", token,
           config_.vocab - 1);
  dequantize_part_row(embeddings_, token, out);
}

void LlamaModel::logits_of(const float* x, float* logits) {
  rms_norm(x, output_norm_, config_.embedding, config_.rms_eps, norm_.data());
  matmul_.run(lm_head_, norm_.data(), 1, logits, route_);
}

PrefillStats LlamaModel::prefill(std::span<const std::int32_t> tokens, KvCache& cache, float* logits,
                                 const PrefillHooks& hooks) {
  const ModelConfig& c = config_;
  const std::int64_t n = static_cast<std::int64_t>(tokens.size()), E = c.embedding, D = c.head_dim;
  const int H = c.heads, G = c.kv_heads;
  const std::int64_t q_dim = H * D, kv_dim = G * D, qkv_dim = q_dim + 2 * kv_dim, F = c.ffn;
  LS_CHECK(n > 0, "empty prompt");
  LS_CHECK(cache.size() == 0, "prefill needs an empty KV cache");
  LS_CHECK(n <= cache.capacity(), "prompt of {} tokens exceeds the context of {}", n, cache.capacity());
  rope_.reserve(cache.capacity());
  LayerAttention& attention = hooks.attention ? *hooks.attention : dense_attention_;
  const std::int64_t chunk = std::min(n, kChunk);
  x_.ensure(n * E);
  q_heads_.ensure(n * q_dim);
  k_heads_.ensure(n * kv_dim);
  v_heads_.ensure(n * kv_dim);
  attn_.ensure(n * q_dim);
  norm_.ensure(chunk * E);
  qkv_.ensure(chunk * qkv_dim);
  mixed_.ensure(chunk * q_dim);
  proj_.ensure(chunk * E);
  gate_up_.ensure(chunk * 2 * F);
  hidden_.ensure(chunk * F);
  float* x = x_.data();
  PrefillStats stats;

  for (std::int32_t token : tokens)  // checked here: an exception must not leave a parallel region
    LS_CHECK(token >= 0 && token < c.vocab, "token id {} outside the vocabulary (0..{})", token, c.vocab - 1);
  parallel_for(n, [&](std::int64_t t) { embed(tokens[t], x + t * E); }, 64);

  for (int layer = 0; layer < c.layers; ++layer) {
    const LlamaLayerWeights& w = layers_[layer];

    // A distance cap (LM-Infinite) needs the queries as seen from the cap and the keys before
    // rotation: q_far · k_far is the score of any pair at distance `limit`.
    const std::int64_t limit = attention.distance_limit(layer, H);
    const bool capped = limit > 0 && n - 1 > limit;
    if (capped) {
      q_far_.ensure(n * q_dim);
      k_far_.ensure(n * kv_dim);
    }

    // Attention input: normalise, project, rotate, and lay Q/K/V out head-major.
    for (std::int64_t c0 = 0; c0 < n; c0 += chunk) {
      const std::int64_t m = std::min(chunk, n - c0);
      parallel_for(m, [&](std::int64_t t) {
        rms_norm(x + (c0 + t) * E, w.attn_norm, E, c.rms_eps, norm_.data() + t * E);
      }, 16);
      matmul_.run(w.qkv, norm_.data(), m, qkv_.data(), route_);
      parallel_for(m, [&](std::int64_t t) {
        const std::int64_t pos = c0 + t;
        float* row = qkv_.data() + t * qkv_dim;
        if (capped) {
          for (int h = 0; h < H; ++h) {
            float* q_far = q_far_.data() + (h * n + pos) * D;
            std::memcpy(q_far, row + h * D, D * 4);
            rope_.apply(q_far, 1, D, limit);
          }
          for (int g = 0; g < G; ++g)
            std::memcpy(k_far_.data() + (g * n + pos) * D, row + q_dim + g * D, D * 4);
        }
        rope_.apply(row, H, D, pos);
        rope_.apply(row + q_dim, G, D, pos);
        for (int h = 0; h < H; ++h) std::memcpy(q_heads_.data() + (h * n + pos) * D, row + h * D, D * 4);
        for (int g = 0; g < G; ++g) {
          std::memcpy(k_heads_.data() + (g * n + pos) * D, row + q_dim + g * D, D * 4);
          std::memcpy(v_heads_.data() + (g * n + pos) * D, row + q_dim + kv_dim + g * D, D * 4);
        }
      }, 16);
    }

    const AttnInput in{q_heads_.data(), k_heads_.data(), v_heads_.data(),
                       {H, G, n, n, static_cast<int>(D), 1.0f / std::sqrt(float(D)), 0}};
    if (hooks.capture) hooks.capture(layer, in);
    Timer attention_timer;
    const FarVectors far = capped ? FarVectors{limit, q_far_.data(), k_far_.data()} : FarVectors{};
    attention.prefill(layer, in, far, attn_.data());
    stats.attention_ms += attention_timer.ms();
    cache.write(layer, 0, n, k_heads_.data(), v_heads_.data());

    // Output projection, residual, FFN, residual.
    for (std::int64_t c0 = 0; c0 < n; c0 += chunk) {
      const std::int64_t m = std::min(chunk, n - c0);
      parallel_for(m, [&](std::int64_t t) {
        for (int h = 0; h < H; ++h)
          std::memcpy(mixed_.data() + t * q_dim + h * D, attn_.data() + (h * n + c0 + t) * D, D * 4);
      }, 16);
      matmul_.run(w.output, mixed_.data(), m, proj_.data(), route_);
      parallel_for(m, [&](std::int64_t t) {
        float* xt = x + (c0 + t) * E;
        add_inplace(xt, proj_.data() + t * E, E);
        rms_norm(xt, w.ffn_norm, E, c.rms_eps, norm_.data() + t * E);
      }, 16);
      matmul_.run(w.gate_up, norm_.data(), m, gate_up_.data(), route_);
      parallel_for(m, [&](std::int64_t t) {
        const float* gu = gate_up_.data() + t * 2 * F;
        silu_mul(gu, gu + F, F, hidden_.data() + t * F);
      }, 16);
      matmul_.run(w.down, hidden_.data(), m, proj_.data(), route_);
      parallel_for(m, [&](std::int64_t t) { add_inplace(x + (c0 + t) * E, proj_.data() + t * E, E); }, 16);
    }
  }
  cache.set_size(n);
  logits_of(x + (n - 1) * E, logits);
  return stats;
}

void LlamaModel::decode(std::int32_t token, KvCache& cache, float* logits) {
  const ModelConfig& c = config_;
  const std::int64_t E = c.embedding, D = c.head_dim, F = c.ffn;
  const int H = c.heads, G = c.kv_heads;
  const std::int64_t q_dim = H * D, kv_dim = G * D, pos = cache.size();
  LS_CHECK(pos < cache.capacity(), "context full: {} tokens", cache.capacity());
  rope_.reserve(cache.capacity());
  x_.ensure(E);
  norm_.ensure(E);
  qkv_.ensure(q_dim + 2 * kv_dim);
  mixed_.ensure(q_dim);
  proj_.ensure(E);
  gate_up_.ensure(2 * F);
  hidden_.ensure(F);
  float* x = x_.data();
  const MatmulRoute route = route_ == MatmulRoute::Sgemm ? route_ : MatmulRoute::Int8;

  embed(token, x);
  for (int layer = 0; layer < c.layers; ++layer) {
    const LlamaLayerWeights& w = layers_[layer];
    rms_norm(x, w.attn_norm, E, c.rms_eps, norm_.data());
    matmul_.run(w.qkv, norm_.data(), 1, qkv_.data(), route);
    float* q = qkv_.data();
    rope_.apply(q, H, D, pos);
    rope_.apply(q + q_dim, G, D, pos);
    cache.write_token(layer, pos, q + q_dim, q + q_dim + kv_dim);
    decode_attention_.run(cache, layer, q, H, pos + 1, 1.0f / std::sqrt(float(D)), mixed_.data());
    matmul_.run(w.output, mixed_.data(), 1, proj_.data(), route);
    add_inplace(x, proj_.data(), E);

    rms_norm(x, w.ffn_norm, E, c.rms_eps, norm_.data());
    matmul_.run(w.gate_up, norm_.data(), 1, gate_up_.data(), route);
    silu_mul(gate_up_.data(), gate_up_.data() + F, F, hidden_.data());
    matmul_.run(w.down, hidden_.data(), 1, proj_.data(), route);
    add_inplace(x, proj_.data(), E);
  }
  cache.set_size(pos + 1);
  logits_of(x, logits);
}

}  // namespace ls
