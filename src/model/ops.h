// Element-wise and row operations of the transformer forward pass (fp32, vectorised).
#pragma once

#include <cstdint>

#include "core/buffer.h"

namespace ls {

// out[i] = x[i] / sqrt(mean(x²) + eps) · weight[i] for one row of n (out may alias x).
void rms_norm(const float* x, const float* weight, std::int64_t n, float eps, float* out);

// out[i] = silu(gate[i]) · up[i] = gate[i] / (1 + exp(-gate[i])) · up[i].
void silu_mul(const float* gate, const float* up, std::int64_t n, float* out);

// out[i] = gelu(gate[i]) · up[i] with the tanh form of GELU:
// gelu(x) = x/2 · (1 + tanh(√(2/π) · (x + 0.044715 x³))).
void gelu_tanh_mul(const float* gate, const float* up, std::int64_t n, float* out);

// x[i] = cap · tanh(x[i] / cap) (logit soft-capping).
void softcap(float* x, std::int64_t n, float cap);

// x[i] += y[i].
void add_inplace(float* x, const float* y, std::int64_t n);

// Rotary position embedding: pair i of the first `rope_dims` elements of a head turns by angle
// position · theta^(-2i / rope_dims). The pairs are (x[2i], x[2i+1]) in llama's "NORM" style
// (GGUF llama files permute the Q/K rows so that this equals HF's rotate-half on the original
// weights: docs/MODELS.md §3) and (x[i], x[i + rope_dims/2]) in the "NEOX" style (Gemma 3).
// The cos/sin table is computed in double and grows with the positions asked for.
class Rope {
 public:
  Rope() = default;
  Rope(int rope_dims, double theta, bool neox = false) : rope_dims_(rope_dims), theta_(theta), neox_(neox) {}

  // Makes positions [0, positions) available.
  void reserve(std::int64_t positions);
  // Rotates `heads` consecutive head vectors of `head_dim` floats at `position`.
  void apply(float* x, int heads, int head_dim, std::int64_t position) const;

 private:
  int rope_dims_ = 0;
  double theta_ = 10000.0;
  bool neox_ = false;
  std::int64_t positions_ = 0;
  Buffer<float> cos_sin_;  // [positions][rope_dims / 2][2]
};

}  // namespace ls
