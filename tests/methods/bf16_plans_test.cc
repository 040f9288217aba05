// The dynamic prefill methods with bf16 scores against fp32 scores: on attention shaped like a
// real layer's (RoPE, locality, a sink, heavy keys), every method's plan keeps its recall
// within 0.01 and its density within 0.02 of the fp32 plan's, on each bf16 kernel the CPU runs.
// Density may move more than recall: where the ranking reaches entries of nearly equal and
// small mass (here vertical-slash's farther diagonals), bf16 rounding reorders them, and a
// diagonal near the corner holds fewer pairs than one near the main diagonal.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>

#include "methods/estimate_util.h"
#include "planted_input.h"

namespace ls {
namespace {

// Queries and keys with rotary position embedding (θ = 10000, as SmolLM2): a shared direction
// per KV head, rotated by position, gives each query a score that falls off with distance and
// oscillates beyond (local and slash-like structure); noise of the same size makes the scores
// differ head by head and row by row. Key 0 is a sink and every 97th key a heavy key, through
// the two lowest-frequency channel pairs (they turn by < 0.6 rad over 4096 positions), so
// every query sees them: vertical lines. Logits span ~15 units, as in real layers.
testing::PlantedInput rope_input(int heads, int kv_heads, std::int64_t n, std::uint64_t seed) {
  testing::PlantedInput p;
  p.shape.heads = heads;
  p.shape.kv_heads = kv_heads;
  p.shape.n_q = p.shape.n_k = n;
  p.shape.dim = 64;
  const int dim = 64, half = dim / 2;
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  p.q.resize(std::size_t(heads) * n * dim);
  p.k.resize(std::size_t(kv_heads) * n * dim);
  p.v.resize(p.k.size());
  for (float& x : p.v) x = normal(rng);
  auto rotate = [&](float* row, std::int64_t position) {  // NeoX layout: channel c pairs with c + half
    for (int f = 0; f < half; ++f) {
      const double angle = double(position) * std::pow(10000.0, -2.0 * f / dim);
      const double x = row[f], y = row[f + half];
      row[f] = float(x * std::cos(angle) - y * std::sin(angle));
      row[f + half] = float(x * std::sin(angle) + y * std::cos(angle));
    }
  };
  std::vector<float> shared(dim);
  for (int g = 0; g < kv_heads; ++g) {
    for (float& x : shared) x = normal(rng);
    for (std::int64_t j = 0; j < n; ++j) {
      float* row = p.k.data() + (std::size_t(g) * n + j) * dim;
      for (int c = 0; c < dim; ++c) row[c] = 1.2f * shared[c] + 0.8f * normal(rng);
      const float heavy = j == 0 ? 10.0f : j % 97 == 0 ? 4.0f : 0.0f;
      for (int c : {half - 2, half - 1, dim - 2, dim - 1}) row[c] += heavy;
      rotate(row, j);
    }
    for (int h = g * (heads / kv_heads); h < (g + 1) * (heads / kv_heads); ++h)
      for (std::int64_t i = 0; i < n; ++i) {
        float* row = p.q.data() + (std::size_t(h) * n + i) * dim;
        for (int c = 0; c < dim; ++c) row[c] = 1.6f * shared[c] + 0.8f * normal(rng);
        for (int c : {half - 2, half - 1, dim - 2, dim - 1}) row[c] += 2.0f;
        rotate(row, i);
      }
  }
  return p;
}

// Every method that builds its plan from score GEMMs (estimate::scores_packed / scores_abt),
// at budgets that leave it sparse on this input; block-sparse's pooled dot products are fp32
// whatever the setting (its plans must not move at all).
const char* const kSpecs[] = {
    "vertical-slash:v=256,s=512",
    "vertical-slash:v=128,s=256,cover=exact",
    "flexprefill:gamma=0.9",
    "flexprefill:gamma=0.95,tau=1",
    "xattention:stride=8,tau=0.9",
    "xattention:stride=16,tau=0.95",
    "anchor:theta=8",
    "anchor:theta=12,region=paper",  // the official region is 0.77 dense here
    "block-gate:threshold=0.002",
    "block-gate:top_k=8",
    "block-sparse:topk=16",
};

constexpr double kRecallBound = 0.01, kDensityBound = 0.02;

void check_plans_move_little(estimate::ScoreKernel kernel) {
  const auto p = rope_input(4, 2, 4096, 31);
  for (const char* spec : kSpecs) {
    Plan fp32, bf16;
    {
      estimate::ScopedScoreKernel scoped(estimate::ScoreKernel::Fp32);
      fp32 = testing::build(spec, p);
    }
    {
      estimate::ScopedScoreKernel scoped(kernel);
      ASSERT_EQ(estimate::score_kernel(), kernel);
      bf16 = testing::build(spec, p);
    }
    validate(bf16);
    const double density_fp32 = density(fp32), density_bf16 = density(bf16);
    const double recall_fp32 = testing::recall(p, fp32, 37).mean, recall_bf16 = testing::recall(p, bf16, 37).mean;
    // The scores must decide something here, or the comparison says nothing.
    EXPECT_LT(density_fp32, 0.75) << spec;
    EXPECT_LT(recall_fp32, 0.9999) << spec;
    EXPECT_NEAR(density_bf16, density_fp32, kDensityBound) << spec;
    EXPECT_NEAR(recall_bf16, recall_fp32, kRecallBound) << spec;
    if (std::string(spec).starts_with("block-sparse")) {
      EXPECT_TRUE(testing::same_plan(fp32, bf16)) << spec;
    }
    std::printf("%-40s density %.4f -> %.4f, recall %.4f -> %.4f\n", spec, density_fp32, density_bf16, recall_fp32,
                recall_bf16);
  }
}

TEST(Bf16Plans, MoveLittleOnAvx512) {
  if (!estimate::cpu_runs(estimate::ScoreKernel::Avx512Bf16)) GTEST_SKIP() << "no AVX-512 BF16 on this CPU (or LONGSPARSE_ISA is below avx512-vnni)";
  check_plans_move_little(estimate::ScoreKernel::Avx512Bf16);
}

TEST(Bf16Plans, MoveLittleOnAmx) {
  if (!estimate::amx_available()) GTEST_SKIP() << "no AMX on this CPU (or the OS does not grant it)";
  check_plans_move_little(estimate::ScoreKernel::AmxBf16);
}

}  // namespace
}  // namespace ls
