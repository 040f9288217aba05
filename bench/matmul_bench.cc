// Quantized matmul routes on the SmolLM2-135M and Gemma 3 270M shapes: our int8 kernels vs
// dequantize + OpenBLAS sgemm, for decode (1 activation row) and prefill (many rows). Random
// weights in the GGUF block layouts. The int8 kernels are the best this CPU runs, or
// LONGSPARSE_ISA's (avx512-vnni, avx-vnni, avx2, generic); the label names them. Counter
// "MAC/s": multiply-accumulates per second.
//   build/bench/matmul_bench --benchmark_min_time=0.2
//   LONGSPARSE_ISA=avx2 build/bench/matmul_bench --benchmark_filter=route:1
#include <benchmark/benchmark.h>

#include <cstring>
#include <random>
#include <vector>

#include "core/parallel.h"
#include "model/matmul.h"

namespace ls {
namespace {

// A random weight in file layout: Q4_1 (20 bytes per 32), Q8_0 (34 bytes per 32) or Q6_K
// (210 bytes per 256, its fp16 d last).
std::vector<std::uint8_t> random_weight(GgmlType type, std::int64_t rows, std::int64_t cols) {
  const std::int64_t block_bytes = type == GgmlType::Q4_1 ? 20 : type == GgmlType::Q8_0 ? 34 : 210;
  const std::int64_t block_elements = type == GgmlType::Q6_K ? 256 : 32;
  std::vector<std::uint8_t> bytes(rows * cols / block_elements * block_bytes);
  std::mt19937 rng(1);
  for (auto& b : bytes) b = static_cast<std::uint8_t>(rng());
  const std::uint16_t d = 0x2000, m = 0xA000;  // small fp16 scale and min: finite values
  for (std::size_t off = 0; off < bytes.size(); off += block_bytes) {
    if (type == GgmlType::Q6_K) {
      std::memcpy(&bytes[off + 208], &d, 2);
      continue;
    }
    std::memcpy(&bytes[off], &d, 2);
    if (type == GgmlType::Q4_1) std::memcpy(&bytes[off + 2], &m, 2);
  }
  return bytes;
}

// Args: rows (outputs), cols (inputs), activation rows m, route (1 int8, 2 sgemm), type (3 Q4_1,
// 8 Q8_0, 14 Q6_K).
void BM_Matmul(benchmark::State& state) {
  const std::int64_t rows = state.range(0), cols = state.range(1), m = state.range(2);
  const auto route = static_cast<MatmulRoute>(state.range(3));
  const auto type = static_cast<GgmlType>(state.range(4));
  set_blas_threads(num_threads());
  std::vector<std::uint8_t> bytes = random_weight(type, rows, cols);
  WeightMatrix w = WeightMatrix::from_part({type, rows, cols, bytes.data()});
  std::vector<float> x(m * cols), y(m * rows);
  std::mt19937 rng(2);
  std::normal_distribution<float> normal;
  for (float& v : x) v = normal(rng);
  Matmul matmul;
  for (auto _ : state) {
    matmul.run(w, x.data(), m, y.data(), route);
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["MAC/s"] = benchmark::Counter(double(rows) * cols * m, benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(std::string(route == MatmulRoute::Int8 ? int8_kernel_name() : "sgemm") + " " +
                 ggml_type_name(type));
}

constexpr int kInt8 = static_cast<int>(MatmulRoute::Int8);
constexpr int kSgemm = static_cast<int>(MatmulRoute::Sgemm);
constexpr int kQ4_1 = static_cast<int>(GgmlType::Q4_1);
constexpr int kQ8_0 = static_cast<int>(GgmlType::Q8_0);
constexpr int kQ6_K = static_cast<int>(GgmlType::Q6_K);

void Shapes(benchmark::internal::Benchmark* b) {
  for (int route : {kInt8, kSgemm}) {
    for (std::int64_t m : {1, 4, 16, 64, 512}) {
      b->Args({3072, 576, m, route, kQ4_1});  // ffn gate+up
      b->Args({576, 1536, m, route, kQ4_1});  // ffn down
    }
    b->Args({49152, 576, 1, route, kQ8_0});   // tied LM head, decode
    for (std::int64_t m : {1, 512}) {
      b->Args({1536, 640, m, route, kQ8_0});  // Gemma 3 Q/K/V (Q5_0 in the file: Q8_0 tiles)
      b->Args({640, 2048, m, route, kQ6_K});  // Gemma 3 ffn down
    }
  }
}

BENCHMARK(BM_Matmul)->Apply(Shapes)->ArgNames({"rows", "cols", "m", "route", "type"})->UseRealTime();

}  // namespace
}  // namespace ls
