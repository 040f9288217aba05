// The plan executor against the plan-masked reference, and against the dense kernel.
#include <gtest/gtest.h>

#include <random>

#include "attn/flash.h"
#include "attn/plan.h"
#include "attn/reference.h"
#include "attn_test_util.h"
#include "core/error.h"
#include "simd_targets.h"

namespace ls {
namespace {

using testing::make_shape;
using testing::max_abs_diff;
using testing::RandomAttention;

// A random valid plan: each row keeps its diagonal plus random block ranges, random
// columns and sometimes a sink.
Plan random_plan(const AttnShape& s, int row_heads, int block_q, int block_k, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  PlanBuilder b(s.heads, row_heads, s.n_q, s.n_k, block_q, block_k);
  for (std::int64_t r = 0; r < b.rows(); ++r) {
    b.add_diagonal(r);
    const std::int64_t ranges = rng() % 4;
    for (std::int64_t i = 0; i < ranges; ++i) {
      std::int64_t begin = std::int64_t(rng() % b.k_blocks());
      b.add_blocks(r, begin, begin + 1 + std::int64_t(rng() % 3));
    }
    const std::int64_t columns = rng() % 90;
    for (std::int64_t i = 0; i < columns; ++i) b.add_column(r, std::int64_t(rng() % s.n_k));
    if (rng() % 3 == 0) b.add_sink(r, 4);
  }
  return b.finish();
}

struct PlanCase {
  AttnShape shape;
  int row_heads;
  int block_q;
  int block_k;
};

TEST(PlanExecutor, RandomPlansMatchReference) {
  std::vector<PlanCase> cases = {
      {make_shape(3, 1, 200, 200, 64), 1, 64, 64},
      {make_shape(3, 1, 200, 200, 64), 3, 64, 64},
      {make_shape(6, 2, 257, 257, 64), 2, 128, 128},
      {make_shape(6, 2, 257, 257, 64, 90), 6, 64, 128},
      {make_shape(4, 4, 150, 150, 128), 4, 128, 64},
      {make_shape(2, 1, 100, 230, 128), 1, 64, 64},
      {make_shape(4, 1, 120, 120, 256, 50), 4, 32, 48},
      {make_shape(2, 2, 90, 90, 64), 2, 50, 30},
      {make_shape(2, 1, 70, 70, 80), 2, 7, 1},
      {make_shape(6, 3, 100, 100, 64), 2, 64, 64},  // plan rows span two KV heads
  };
  std::uint64_t seed = 100;
  for (const PlanCase& c : cases) {
    for (int repeat = 0; repeat < 3; ++repeat, ++seed) {
      RandomAttention data(c.shape, seed);
      Plan plan = random_plan(c.shape, c.row_heads, c.block_q, c.block_k, seed);
      std::vector<float> expected(data.out_size()), got(data.out_size(), -7.0f);
      reference_plan_attention(data.in, plan, expected.data());
      plan_attention(data.in, plan, got.data());
      EXPECT_LT(max_abs_diff(expected, got), 2e-5)
          << testing::describe(c.shape) << " row_heads=" << c.row_heads << " blocks " << c.block_q << "x"
          << c.block_k << " " << ls::describe(plan);
    }
  }
}

// Block ranges, gathered columns (tiles of them partly filled) and sinks on every Highway
// target the CPU runs, odd shapes.
TEST(PlanExecutor, EverySimdTargetMatchesReference) {
  const PlanCase cases[] = {
      {make_shape(3, 1, 157, 157, 64), 1, 64, 64},
      {make_shape(6, 2, 201, 233, 80, 70), 2, 32, 48},
      {make_shape(4, 4, 99, 99, 128), 4, 50, 30},
      {make_shape(2, 1, 70, 70, 48), 2, 7, 1},
  };
  testing::for_each_simd_target([&] {
    std::uint64_t seed = 300;
    for (const PlanCase& c : cases) {
      RandomAttention data(c.shape, seed);
      const Plan plan = random_plan(c.shape, c.row_heads, c.block_q, c.block_k, seed++);
      std::vector<float> expected(data.out_size()), got(data.out_size(), -7.0f);
      reference_plan_attention(data.in, plan, expected.data());
      plan_attention(data.in, plan, got.data());
      EXPECT_LT(max_abs_diff(expected, got), 2e-5) << testing::describe(c.shape) << " " << ls::describe(plan);
    }
  });
}

TEST(PlanExecutor, DensePlanGivesTheDenseKernelOutput) {
  for (const AttnShape& shape : {make_shape(6, 2, 300, 300, 64), make_shape(4, 1, 130, 200, 128, 70),
                                 make_shape(2, 2, 100, 100, 256), make_shape(16, 1, 150, 150, 256)}) {
    RandomAttention data(shape, 7);
    std::vector<float> dense(data.out_size());
    flash_attention(data.in, dense.data());
    for (int row_heads : {shape.kv_heads, shape.heads}) {
      for (int block : {64, 128}) {
        Plan plan = make_dense_plan(shape.heads, row_heads, shape.n_q, shape.n_k, block, block);
        std::vector<float> got(data.out_size());
        plan_attention(data.in, plan, got.data());
        EXPECT_LT(max_abs_diff(dense, got), 1e-6) << testing::describe(shape) << " block " << block;
      }
    }
  }
}

TEST(PlanExecutor, CausalityAndWindowHoldWhateverThePlanSays) {
  // A hand-made plan selecting every block and future columns; the executor must still
  // give windowed causal attention.
  AttnShape shape = make_shape(2, 1, 128, 128, 64, 20);
  RandomAttention data(shape, 9);
  Plan plan = make_dense_plan(2, 1, 128, 128);
  plan.ranges = {{0, 2}, {0, 2}};  // both rows: every key block, including the future
  std::vector<float> expected(data.out_size()), got(data.out_size());
  reference_attention(data.in, expected.data());
  plan_attention(data.in, plan, got.data());
  EXPECT_LT(max_abs_diff(expected, got), 2e-5);
}

TEST(PlanExecutor, RejectsInvalidPlans) {
  AttnShape shape = make_shape(2, 1, 128, 128, 64);
  RandomAttention data(shape, 3);
  std::vector<float> out(data.out_size());
  Plan good = make_dense_plan(2, 1, 128, 128);
  Plan p = good;
  p.ranges[0].end = 7;  // beyond the key blocks
  EXPECT_THROW(plan_attention(data.in, p, out.data()), Error);
  p = good;
  p.range_offsets.pop_back();
  EXPECT_THROW(plan_attention(data.in, p, out.data()), Error);
  PlanBuilder b(2, 1, 128, 128);
  b.add_diagonal(0);
  b.add_blocks(1, 0, 1);  // row 1 lacks its diagonal block
  EXPECT_THROW(plan_attention(data.in, b.finish(), out.data()), Error);
  Plan other = make_dense_plan(2, 1, 100, 128);  // wrong n_q
  EXPECT_THROW(plan_attention(data.in, other, out.data()), Error);
  p = good;
  p.columns = {5};
  p.column_offsets = {0, 1, 1};  // a column inside a range
  EXPECT_THROW(plan_attention(data.in, p, out.data()), Error);
}

}  // namespace
}  // namespace ls
