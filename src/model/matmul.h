// Matrix multiplication with quantized weights: y = W·x for a batch of activation rows.
//
// Two routes (numbers and the reasons for the choice: docs/model.md):
//  - int8 (the default for every quantized weight type, prefill and decode): activations are
//    quantized per 32 to int8 (one fp32 scale and the sum of the quants per block, as
//    llama.cpp's q8 path), weights are repacked at load into tiles of 16 output rows × 32
//    columns so that one 32-bit lane accumulates one output row, and our own kernels do the
//    integer dot products: AVX-512 VNNI, AVX-VNNI, AVX2 or portable C++, whichever is the best
//    this CPU runs (core/cpu.h, chosen at run time; matmul_kernels.h).
//  - sgemm: the weight in fp32 (F32, F16 and BF16 weights, mixed stacks, or by request) and
//    OpenBLAS sgemm.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "core/buffer.h"
#include "model/matmul_kernels.h"
#include "model/ggml_type.h"

namespace ls {

// Rows of a weight in its file layout: `rows` rows of `cols` elements of `type`.
struct WeightPart {
  GgmlType type = GgmlType::F32;
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  const void* data = nullptr;  // not owned; read while a WeightMatrix is built (later too for Q4_K)
};

// A weight matrix [rows][cols] (rows = output features), possibly the rows of several
// tensors stacked (Q, K and V become one matrix, so one pass computes all three).
class WeightMatrix {
 public:
  WeightMatrix() = default;
  // Called with each range of a part's data once it has been repacked or copied, so that a
  // caller can drop its copy while a large matrix is still being built (e.g. mmap pages). Not
  // called for Q4_K parts, whose exact values the fp32 route still reads from the source.
  using ReleaseFn = std::function<void(const void* data, std::size_t bytes)>;
  static WeightMatrix from_parts(std::span<const WeightPart> parts, const ReleaseFn& release = {});
  static WeightMatrix from_part(const WeightPart& part, const ReleaseFn& release = {}) {
    return from_parts({&part, 1}, release);
  }

  std::int64_t rows() const { return rows_; }
  std::int64_t cols() const { return cols_; }
  GgmlType type() const { return type_; }
  bool has_int8_kernel() const { return packing_ != Packing::Dense; }
  std::size_t bytes() const;  // memory held by this matrix (repacked or dense copy)

  // out [count][cols] = rows first .. first+count-1 as fp32.
  void dequantize_rows(std::int64_t first, std::int64_t count, float* out) const;

 private:
  using Packing = matmul_detail::Packing;
  friend class Matmul;

  GgmlType type_ = GgmlType::F32;
  Packing packing_ = Packing::Dense;
  std::int64_t rows_ = 0;
  std::int64_t cols_ = 0;
  bool exact_tiles_ = true;  // the tiles hold the exact values (not so for Q4_K: fp16 scales)
  std::vector<WeightPart> parts_;  // the source, kept only when the tiles are not exact
  // Packed: [row groups of 16][blocks of 32 columns] tiles (matmul_kernels.h, matmul.cc).
  Buffer<std::uint8_t> packed_;
  Buffer<float> dense_;  // Dense: [rows][cols]
};

enum class MatmulRoute { Auto, Int8, Sgemm };

// Runs products, owning the scratch they need (quantized activations, dequantized weights), so
// the hot loop never allocates. Not thread-safe: one per forward pass.
class Matmul {
 public:
  // y [m][w.rows()] = x [m][w.cols()] · Wᵀ. Auto: int8 where the weight has a packing.
  void run(const WeightMatrix& w, const float* x, std::int64_t m, float* y,
           MatmulRoute route = MatmulRoute::Auto);

 private:
  void run_int8(const WeightMatrix& w, const float* x, std::int64_t m, float* y);
  void run_sgemm(const WeightMatrix& w, const float* x, std::int64_t m, float* y);

  Buffer<std::int8_t> x_quants_;      // [m][blocks * 32]
  Buffer<float> x_scales_;            // [m][blocks]
  Buffer<std::int32_t> x_sums_;       // [m][blocks]: sum of the int8 quants of each block
  Buffer<float> x_scaled_sums_;       // [m][blocks]: scale · sum (the min terms)
  Buffer<std::int32_t> x_half_sums_;  // [m][2 blocks]: the sums per half block (Q6_K)
  Buffer<float> w_dense_;          // [rows][cols] dequantized weight for sgemm
};

// The int8 kernels Matmul runs now ("avx512-vnni", "avx-vnni", "avx2" or "generic"):
// core/cpu.h's active_isa().
const char* int8_kernel_name();

// Sets the threads OpenBLAS uses (it keeps its own pool, separate from OpenMP's).
void set_blas_threads(int threads);

}  // namespace ls
