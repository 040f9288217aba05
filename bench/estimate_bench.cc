// The estimates' score GEMMs on one core: estimate::scores_packed (m query rows × n packed keys
// × depth) in fp32 and on each bf16 kernel the CPU runs, and the packing of the keys. Shapes of
// the methods at 8k tokens and head dim 64: 48 queries (the last-query estimate's work item),
// 64 and 128 (query blocks, FlexPrefill's last block) × 8192 keys × 64; XAttention's tiles
// (stride 8: 64 query tiles × 1024 key tiles × 512). GFLOP/s count 2·m·n·depth.
//   build/estimate_bench --benchmark_filter=Scores --benchmark_repetitions=5
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "methods/estimate_util.h"

namespace {

using ls::estimate::ScoreKernel;

const ScoreKernel kKernels[] = {ScoreKernel::Fp32, ScoreKernel::Avx512Bf16, ScoreKernel::AmxBf16};

std::vector<float> normal_values(std::size_t count, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> v(count);
  for (float& x : v) x = normal(rng);
  return v;
}

// Args: kernel (0 fp32, 1 avx512-bf16, 2 amx-bf16), m, n, depth.
void BM_ScoresPacked(benchmark::State& state) {
  const ScoreKernel kernel = kKernels[state.range(0)];
  const std::int64_t m = state.range(1), n = state.range(2), k = state.range(3);
  if (!ls::estimate::cpu_runs(kernel)) {
    state.SkipWithError("this CPU does not run the kernel");
    return;
  }
  ls::estimate::ScopedScoreKernel scoped(kernel);
  state.SetLabel(ls::estimate::score_kernel_name(kernel));
  const std::vector<float> a = normal_values(std::size_t(m * k), 1), b = normal_values(std::size_t(n * k), 2);
  ls::estimate::PackedRows packed;
  packed.pack(b.data(), k, n, k);
  std::vector<float> c(std::size_t(m * (n + 16)));
  for (auto _ : state) {
    ls::estimate::scores_packed(a.data(), k, m, packed, 0, n, c.data(), n + 16, 0.125f);
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  const double flops = 2.0 * double(m) * double(n) * double(k) * double(state.iterations());
  state.counters["GFLOP/s"] = benchmark::Counter(flops, benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
}

// Packing n keys of `depth` channels (one KV head; pack_keys does this per head in parallel).
void BM_PackRows(benchmark::State& state) {
  const ScoreKernel kernel = kKernels[state.range(0)];
  const std::int64_t n = state.range(1), k = state.range(2);
  if (!ls::estimate::cpu_runs(kernel)) {
    state.SkipWithError("this CPU does not run the kernel");
    return;
  }
  ls::estimate::ScopedScoreKernel scoped(kernel);
  state.SetLabel(ls::estimate::score_kernel_name(kernel));
  const std::vector<float> b = normal_values(std::size_t(n * k), 2);
  ls::estimate::PackedRows packed;
  for (auto _ : state) {
    packed.pack(b.data(), k, n, k);
    benchmark::ClobberMemory();
  }
  state.counters["keys/s"] =
      benchmark::Counter(double(n) * double(state.iterations()), benchmark::Counter::kIsRate);
}

void ScoreShapes(benchmark::internal::Benchmark* b) {
  for (int kernel = 0; kernel < 3; ++kernel) {
    for (int m : {48, 64, 128}) b->Args({kernel, m, 8192, 64});
    b->Args({kernel, 64, 1024, 512});  // XAttention stride 8 at 8k
    b->Args({kernel, 16, 128, 64});    // pooled blocks (FlexPrefill, block-gate, anchor)
  }
}

void PackShapes(benchmark::internal::Benchmark* b) {
  for (int kernel = 0; kernel < 3; ++kernel) {
    b->Args({kernel, 8192, 64});
    b->Args({kernel, 1024, 512});
  }
}

BENCHMARK(BM_ScoresPacked)->Apply(ScoreShapes)->ArgNames({"kernel", "m", "n", "depth"});
BENCHMARK(BM_PackRows)->Apply(PackShapes)->ArgNames({"kernel", "n", "depth"});

}  // namespace
