#include "attn/plan.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace ls {
namespace {

TEST(Plan, DenseHasDensityOneAndValidates) {
  for (std::int64_t n : {1, 63, 64, 65, 300}) {
    Plan plan = make_dense_plan(6, 2, n, n);
    EXPECT_NO_THROW(validate(plan));
    EXPECT_DOUBLE_EQ(density(plan), 1.0) << n;
  }
  Plan tail = make_dense_plan(4, 4, 10, 200);  // decode-like: few queries at the end
  EXPECT_NO_THROW(validate(tail));
  EXPECT_DOUBLE_EQ(density(tail), 1.0);
}

TEST(Plan, BuilderNormalisesRanges) {
  PlanBuilder b(1, 1, 256, 256);
  std::int64_t row = 3;  // last query block: key blocks 0..3 are causal
  b.add_blocks(row, 2, 3);
  b.add_blocks(row, 0, 1);
  b.add_blocks(row, 1, 2);  // adjacent: merges into [0, 3)
  b.add_diagonal(row);      // block 3: merges into [0, 4)
  b.add_column(row, 5);     // inside a range: dropped
  for (std::int64_t r = 0; r < 3; ++r) b.add_diagonal(r);
  b.add_column(0, 200);  // future of row 0: dropped
  b.add_sink(2, 4);
  Plan plan = b.finish();
  ASSERT_NO_THROW(validate(plan));
  ASSERT_EQ(plan.row_ranges(3).size(), 1u);
  EXPECT_EQ(plan.row_ranges(3)[0], (BlockRange{0, 4}));
  EXPECT_TRUE(plan.row_columns(3).empty());
  EXPECT_TRUE(plan.row_columns(0).empty());
  EXPECT_EQ(plan.row_columns(2).size(), 4u);
  EXPECT_TRUE(plan.selects(0, 130, 3));
  EXPECT_FALSE(plan.selects(0, 130, 70));
}

TEST(Plan, DensityCountsCausalPairs) {
  // n = 128, two query blocks. Row 1 keeps only its diagonal block: 64*65/2 of its
  // 64*64 + 64*65/2 causal pairs. Row 0 is dense.
  PlanBuilder b(1, 1, 128, 128);
  b.add_diagonal(0);
  b.add_diagonal(1);
  Plan plan = b.finish();
  double all = 128.0 * 129.0 / 2.0;
  double kept = 2 * (64.0 * 65.0 / 2.0);
  EXPECT_NEAR(density(plan), kept / all, 1e-12);
}

TEST(Plan, ValidationRejectsBrokenPlans) {
  Plan good = make_dense_plan(1, 1, 128, 128);
  Plan p = good;
  p.ranges[0].end = 5;
  EXPECT_THROW(validate(p), Error);  // out of range
  p = good;
  p.ranges[1] = {0, 1};
  p.ranges[0] = {0, 2};
  EXPECT_THROW(validate(p), Error);  // overlapping
  PlanBuilder b(1, 1, 128, 128);
  b.add_diagonal(0);
  b.add_blocks(1, 0, 1);  // row 1 without block 1
  EXPECT_THROW(validate(b.finish()), Error);
}

}  // namespace
}  // namespace ls
