// Google Benchmark: the dense flash kernel, the plan executor at fixed densities, and an
// OpenBLAS sgemm as the roofline, all in one process. GFLOP/s count 4·dim flops per computed
// causal query-key pair (2·M·N·K for sgemm). Run with OPENBLAS_CORETYPE=Cooperlake (or
// SkylakeX) set, or OpenBLAS falls back to SSE3 kernels on this CPU; the context line
// blas_core says which kernel ran.
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <random>
#include <vector>

#include "attn/flash.h"
#include "attn/plan.h"
#include "core/buffer.h"
#include "core/parallel.h"

namespace ls {
namespace {

struct Layer {
  AttnShape shape;
  Buffer<float> q, k, v, out;  // [heads][n][dim], [kv_heads][n][dim] ×2, [heads][n][dim]
  AttnInput in;

  Layer(std::int64_t n, int heads, int kv_heads, int dim) {
    shape.heads = heads;
    shape.kv_heads = kv_heads;
    shape.n_q = shape.n_k = n;
    shape.dim = dim;
    q.reset(std::size_t(heads) * n * dim);
    k.reset(std::size_t(kv_heads) * n * dim);
    v.reset(k.size());
    out.reset(q.size(), true);
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    for (Buffer<float>* b : {&q, &k, &v})
      for (float& x : *b) x = uniform(rng);
    in = {q.data(), k.data(), v.data(), shape};
  }
};

// The diagonal block of every row plus each earlier block with probability `keep`.
Plan random_block_plan(const AttnShape& s, double keep) {
  std::mt19937_64 rng(7);
  std::bernoulli_distribution coin(keep);
  PlanBuilder b(s.heads, s.kv_heads, s.n_q, s.n_k);
  for (std::int64_t r = 0; r < b.rows(); ++r) {
    b.add_diagonal(r);
    for (std::int64_t block = 0; block < b.q_block_of_row(r); ++block)
      if (coin(rng)) b.add_blocks(r, block, block + 1);
  }
  return b.finish();
}

void set_threads(benchmark::State& state, int index) {
  set_num_threads(int(state.range(index)));
  openblas_set_num_threads(int(state.range(index)));
}

// Args: n, heads, kv_heads, dim, threads.
void BM_FlashDense(benchmark::State& state) {
  set_threads(state, 4);
  Layer layer(state.range(0), int(state.range(1)), int(state.range(2)), int(state.range(3)));
  for (auto _ : state) flash_attention(layer.in, layer.out.data());
  state.counters["GFLOP/s"] = benchmark::Counter(layer.shape.causal_pairs() * 4.0 * layer.shape.dim,
                                                 benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

// Args: n, heads, kv_heads, dim, threads, keep probability in percent.
void BM_PlanExecutor(benchmark::State& state) {
  set_threads(state, 4);
  Layer layer(state.range(0), int(state.range(1)), int(state.range(2)), int(state.range(3)));
  const Plan plan = random_block_plan(layer.shape, double(state.range(5)) / 100.0);
  for (auto _ : state) plan_attention(layer.in, plan, layer.out.data());
  const double plan_density = density(plan);
  state.counters["density"] = plan_density;
  state.counters["GFLOP/s"] = benchmark::Counter(plan_density * layer.shape.causal_pairs() * 4.0 * layer.shape.dim,
                                                 benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

// Args: size (M = N = K), threads.
void BM_Sgemm(benchmark::State& state) {
  set_threads(state, 1);
  const int n = int(state.range(0));
  Buffer<float> a(std::size_t(n) * n, true), b(std::size_t(n) * n, true), c(std::size_t(n) * n, true);
  for (auto _ : state)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * n * n * double(n), benchmark::Counter::kIsIterationInvariantRate,
                                                 benchmark::Counter::kIs1000);
}

const bool context_added = [] {
  benchmark::AddCustomContext("blas_core", openblas_get_corename());
  benchmark::AddCustomContext("attention_simd", attention_simd_target());
  return true;
}();

BENCHMARK(BM_FlashDense)->Args({2048, 9, 3, 64, 2})->Args({2048, 4, 1, 256, 2})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_PlanExecutor)
    ->Args({2048, 9, 3, 64, 2, 10})
    ->Args({2048, 9, 3, 64, 2, 2})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_Sgemm)->Args({1024, 2})->Args({2048, 2})->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace ls
