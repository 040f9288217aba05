// Element-wise and row operations of the transformer forward pass (fp32, vectorised).
#pragma once

#include <cstdint>
#include <vector>

#include "core/error.h"

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
// cos/sin of position p come from two tables in double, of p mod 256 and of the multiples of
// 256 (angle addition, then rounded to float): 3 KB per 1,024 positions instead of a table of
// every position (Gemma 3 at 32k: 0.8 MB instead of 33 MB per RoPE base).
class Rope {
 public:
  static constexpr int kMaxPairs = 256;  // rope_dims up to 512
  Rope() = default;
  Rope(int rope_dims, double theta, bool neox = false) : rope_dims_(rope_dims), theta_(theta), neox_(neox) {
    LS_CHECK(rope_dims > 0 && rope_dims % 2 == 0 && rope_dims / 2 <= kMaxPairs,
             "RoPE over {} dimensions: must be even and at most {}", rope_dims, 2 * kMaxPairs);
  }

  // Makes positions [0, positions) available.
  void reserve(std::int64_t positions);
  // Rotates `heads` consecutive head vectors of `head_dim` floats at `position` (inverse: by
  // minus the angle, undoing apply at that position).
  void apply(float* x, int heads, int head_dim, std::int64_t position, bool inverse = false) const;

 private:
  int rope_dims_ = 0;
  double theta_ = 10000.0;
  bool neox_ = false;
  static constexpr std::int64_t kFine = 256;
  std::int64_t positions_ = 0;
  std::vector<double> inv_freq_;  // [rope_dims / 2]: theta^(-2i / rope_dims)
  std::vector<double> fine_;      // [kFine][rope_dims / 2][2]: cos, sin of r·f
  std::vector<double> coarse_;    // [positions / kFine, rounded up][rope_dims / 2][2]: of c·kFine·f
};

}  // namespace ls
