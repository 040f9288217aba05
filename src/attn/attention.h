// Shapes and inputs of one layer's attention (docs/DESIGN.md §3).
//   Q [heads][n_q][dim], K and V [kv_heads][n_k][dim], output [heads][n_q][dim];
//   rows contiguous, head-major. Query head h reads KV head h / (heads / kv_heads).
//   The n_q queries sit at the last n_q positions of the n_k keys: query i has position
//   n_k - n_q + i and sees keys 0..position (causal), or only the last `window` of them.
#pragma once

#include <cmath>
#include <cstdint>

namespace ls {

struct AttnShape {
  int heads = 1;            // H query heads
  int kv_heads = 1;         // G KV heads; heads % kv_heads == 0
  std::int64_t n_q = 0;     // queries (the last n_q positions)
  std::int64_t n_k = 0;     // keys and values
  int dim = 64;             // head dimension
  float scale = 0.0f;       // softmax scale; 0 means 1/sqrt(dim)
  std::int64_t window = 0;  // > 0: a query at position p sees keys p-window+1 .. p only

  int group() const { return heads / kv_heads; }
  int kv_head_of(int head) const { return head / group(); }
  std::int64_t position(std::int64_t query) const { return n_k - n_q + query; }
  float softmax_scale() const { return scale > 0.0f ? scale : 1.0f / std::sqrt(float(dim)); }
  // First key a query at position p may see.
  std::int64_t first_key(std::int64_t p) const { return window > 0 && p >= window ? p - window + 1 : 0; }
  // Keys a query at position p sees: the causal (and windowed) count.
  std::int64_t visible_keys(std::int64_t p) const { return p + 1 - first_key(p); }
  // Query-key pairs of dense causal attention over all heads (windowed when window > 0).
  double causal_pairs() const;
  void validate() const;  // throws ls::Error on an impossible shape
};

// Pointers into caller-owned memory in the layout above.
struct AttnInput {
  const float* q = nullptr;
  const float* k = nullptr;
  const float* v = nullptr;
  AttnShape shape;

  const float* q_row(int head, std::int64_t query) const {
    return q + (std::int64_t(head) * shape.n_q + query) * shape.dim;
  }
  const float* k_row(int kv_head, std::int64_t key) const {
    return k + (std::int64_t(kv_head) * shape.n_k + key) * shape.dim;
  }
  const float* v_row(int kv_head, std::int64_t key) const {
    return v + (std::int64_t(kv_head) * shape.n_k + key) * shape.dim;
  }
};

}  // namespace ls
