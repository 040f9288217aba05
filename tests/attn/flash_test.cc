// The dense flash kernel against the double-precision reference over a grid of shapes.
#include "attn/flash.h"

#include <gtest/gtest.h>
#include <hwy/targets.h>

#include "attn/flash_tile.h"
#include "attn/reference.h"
#include "attn_test_util.h"
#include "core/cpu.h"
#include "core/error.h"
#include "core/parallel.h"
#include "core/simd.h"
#include "simd_targets.h"

namespace ls {
namespace {

using testing::make_shape;
using testing::max_abs_diff;
using testing::RandomAttention;

void expect_matches_reference(const AttnShape& shape, std::uint64_t seed, float spread = 1.0f,
                              double tolerance = 2e-5) {
  RandomAttention data(shape, seed, spread);
  std::vector<float> expected(data.out_size()), got(data.out_size(), -7.0f);
  reference_attention(data.in, expected.data());
  flash_attention(data.in, got.data());
  EXPECT_LT(max_abs_diff(expected, got), tolerance) << testing::describe(shape);
}

TEST(FlashAttention, MatchesReferenceOverShapes) {
  std::uint64_t seed = 1;
  for (int dim : {64, 128, 256}) {
    // (heads, kv_heads): GQA groups of 1, 3 and H (all heads share one KV head).
    for (auto [heads, kv_heads] : {std::pair{2, 2}, std::pair{6, 2}, std::pair{4, 1}}) {
      for (auto [n_q, n_k] : {std::pair<std::int64_t, std::int64_t>{1, 1}, {37, 37}, {130, 130}, {50, 211}, {1, 150}}) {
        for (std::int64_t window : {0, 29}) {
          if (dim == 256 && n_k > 140 && heads > 2) continue;  // keep the reference cheap
          expect_matches_reference(make_shape(heads, kv_heads, n_q, n_k, dim, window), seed++);
        }
      }
    }
  }
}

TEST(FlashAttention, LongerSequenceAndLargeWindow) {
  expect_matches_reference(make_shape(3, 1, 300, 300, 64), 11);
  expect_matches_reference(make_shape(3, 1, 300, 300, 64, 100), 12);
  expect_matches_reference(make_shape(2, 1, 129, 257, 128, 64), 13);
}

TEST(FlashAttention, LargeGroupsAreSplitIntoSeveralWorkItems) {
  // 16 query heads on one KV head at d = 256: more rows than one item's scratch budget.
  expect_matches_reference(make_shape(16, 1, 70, 70, 256), 15);
  expect_matches_reference(make_shape(32, 2, 40, 90, 128, 30), 16);
}

TEST(FlashAttention, PeakySoftmaxIsStable) {
  // Scores spread over tens of units: exercises the running-max rescaling. fp32 scores of that
  // size carry ~1e-5 absolute rounding, hence the looser tolerance.
  expect_matches_reference(make_shape(2, 1, 150, 150, 64), 21, 6.0f, 1e-4);
  expect_matches_reference(make_shape(2, 2, 100, 180, 128, 40), 22, 5.0f, 1e-4);
}

TEST(FlashAttention, OtherHeadDimsUseTheGenericPath) {
  for (int dim : {16, 32, 80, 96, 144}) expect_matches_reference(make_shape(3, 1, 90, 90, dim), 30 + dim);
}

// Every Highway target the CPU runs (AVX3, AVX2, SSE4 on this machine in the portable
// build): tile widths of 64, 32 and 16 keys against shapes that fill no tile, queries fewer
// than keys, windows, GQA groups of 1, 3 and 4, and head dims that are not a multiple of the
// four-vector column chunk.
TEST(FlashAttention, EverySimdTargetMatchesReference) {
  testing::for_each_simd_target([] {
    EXPECT_EQ(detail::key_tile() % 16, 0);
    std::uint64_t seed = 200;
    for (int dim : {16, 48, 64, 80, 128}) {
      expect_matches_reference(make_shape(3, 1, 37, 37, dim), seed++);
      expect_matches_reference(make_shape(6, 2, 83, 211, dim, 45), seed++);
      expect_matches_reference(make_shape(4, 4, 1, 97, dim), seed++);
      expect_matches_reference(make_shape(8, 2, 131, 131, dim, 17), seed++);
    }
    expect_matches_reference(make_shape(2, 1, 150, 150, 64), seed++, 6.0f, 1e-4);  // peaky rows
  });
}

// The kernels run the best target, and no better than AVX2 while the ISA is forced to avx2
// (unless the build has only one target: LONGSPARSE_NATIVE).
TEST(FlashAttention, SimdTargetFollowsTheForcedIsa) {
  const std::vector<std::int64_t> all = simd_targets();
  ASSERT_FALSE(all.empty());
  EXPECT_STREQ(attention_simd_target(), simd_target_name(all.front()));
  if (!cpu_runs(Isa::Avx2) || best_isa() == Isa::Avx2) GTEST_SKIP() << "no ISA between generic and the best";
  const Isa previous = force_isa(Isa::Avx2);
  const std::int64_t limited = simd_targets().front();
  EXPECT_STREQ(attention_simd_target(), simd_target_name(limited));
  if (all.size() > 1) {
    EXPECT_GE(limited, HWY_AVX2) << simd_target_name(limited);  // larger bits: lesser targets
  }
  force_isa(Isa::Generic);
  EXPECT_STREQ(attention_simd_target(), simd_target_name(simd_targets().front()));
  force_isa(previous);
  EXPECT_STREQ(attention_simd_target(), simd_target_name(all.front()));
}

TEST(FlashAttention, SameResultForAnyThreadCount) {
  RandomAttention data(make_shape(6, 2, 200, 200, 64), 41);
  std::vector<float> one(data.out_size()), two(data.out_size());
  const int saved = num_threads();
  set_num_threads(1);
  flash_attention(data.in, one.data());
  set_num_threads(2);
  flash_attention(data.in, two.data());
  set_num_threads(saved);
  EXPECT_EQ(one, two);
}

TEST(FlashAttention, RejectsBadInput) {
  RandomAttention data(make_shape(2, 1, 10, 10, 64), 51);
  std::vector<float> out(data.out_size());
  AttnInput bad = data.in;
  bad.shape.kv_heads = 3;  // 2 % 3 != 0
  EXPECT_THROW(flash_attention(bad, out.data()), Error);
  bad = data.in;
  bad.k = nullptr;
  EXPECT_THROW(flash_attention(bad, out.data()), Error);
  bad = data.in;
  bad.shape.dim = 40;  // not a multiple of 16
  EXPECT_THROW(flash_attention(bad, out.data()), Error);
}

}  // namespace
}  // namespace ls
