// anchor (AnchorAttention): keys planted far before a group become its stripes, theta is
// monotone, the anchor region is always kept, plans are valid and deterministic, sequences of
// one group and queries past the last whole group are dense, and the output matches dense
// attention when the plan keeps the mass. These run the paper's anchor region (region=paper:
// block 0 + the block before the group), whose groups are sparse from the second on; the
// official region (the default) is checked by OfficialRegion here and against the official
// kernels by official_fixture_test.cc.
#include <gtest/gtest.h>

#include "planted_input.h"

namespace ls {
namespace {

using testing::Pattern;

TEST(Anchor, PlantedKeysBecomeStripes) {
  for (Pattern pattern : {Pattern::Stripe, Pattern::TwoPhase}) {
    auto p = testing::make_planted(pattern, 4, 2, 1024, 41);
    bool deterministic = false;
    Plan plan = testing::build_checked("anchor:theta=0,region=paper", p, &deterministic);
    EXPECT_TRUE(deterministic);
    EXPECT_EQ(plan.block_q, 32);
    EXPECT_EQ(testing::planted_coverage(p, plan, pattern), 1.0) << int(pattern);
    EXPECT_LT(density(plan), 0.8);
  }
  // In the second group (queries 512..1023) the first phase's keys [192, 224) lie outside
  // the anchor region (block 0, block 15, the group): they must come in as stripes (a fully
  // selected key block is stored as a block range, the rest as gathered columns).
  auto p = testing::make_planted(Pattern::TwoPhase, 2, 1, 1024, 42);
  Plan plan = testing::build("anchor:theta=0,region=paper", p);
  Plan no_stripes = testing::build("anchor:theta=-1000,region=paper", p);
  for (int h = 0; h < 2; ++h) {
    EXPECT_TRUE(testing::selects_all(plan, h, 512, 192, 224)) << h;
    EXPECT_FALSE(no_stripes.selects(h, 512, 200)) << h;
  }
}

TEST(Anchor, AnchorRegionIsAlwaysKept) {
  auto p = testing::make_planted(Pattern::Stripe, 2, 1, 1024, 43);
  Plan plan = testing::build("anchor:theta=-1000,region=paper", p);  // no stripe can pass
  EXPECT_TRUE(plan.columns.empty());
  for (int h = 0; h < 2; ++h)
    for (std::int64_t i : {520, 700, 1023}) {
      EXPECT_TRUE(testing::selects_all(plan, h, i, 0, 32)) << i;         // block 0
      EXPECT_TRUE(testing::selects_all(plan, h, i, 480, i + 1)) << i;    // block 15 + group
      EXPECT_FALSE(plan.selects(h, i, 100)) << i;
    }
}

TEST(Anchor, LargerThetaNeverLosesRecall) {
  auto p = testing::make_planted(Pattern::TwoPhase, 2, 1, 1024, 44, 4.0f);
  Plan previous;
  double previous_recall = 0.0, first_density = -1.0, last_density = 0.0;
  for (double theta : {-4.0, -1.0, 0.0, 2.0, 12.0}) {
    Plan plan = testing::build(fmt::format("anchor:theta={},region=paper", theta), p);
    validate(plan);
    const double r = testing::recall(p, plan).mean;
    if (first_density >= 0) {
      EXPECT_TRUE(testing::is_superset(plan, previous, p.shape)) << theta;
      EXPECT_GE(r, previous_recall) << theta;
    }
    last_density = density(plan);
    if (first_density < 0) first_density = last_density;
    previous_recall = r;
    previous = std::move(plan);
  }
  EXPECT_LT(first_density, last_density);
}

TEST(Anchor, OneGroupIsDense) {
  auto p = testing::make_planted(Pattern::Stripe, 2, 1, 512, 45);
  EXPECT_EQ(density(testing::build("anchor:theta=-1000,region=paper", p)), 1.0);
  auto longer = testing::make_planted(Pattern::Stripe, 2, 1, 513, 45);
  Plan plan = testing::build("anchor:theta=-1000,region=paper", longer);
  validate(plan);
  EXPECT_EQ(plan.block_q, 32);
  // Queries past the last whole group (here 1100 − 1024 of them) run dense, as in the official
  // model integration; the whole group before them does not.
  auto partial = testing::make_planted(Pattern::Stripe, 1, 1, 1100, 45);
  Plan tail = testing::build("anchor:theta=-1000,region=paper", partial);
  EXPECT_TRUE(testing::selects_all(tail, 0, 1099, 0, 1100));
  EXPECT_TRUE(testing::selects_all(tail, 0, 1024, 0, 1025));
  EXPECT_FALSE(tail.selects(0, 1023, 100));
}

TEST(Anchor, ChunkedPrefillAndOddLengths) {
  auto p = testing::make_planted(Pattern::TwoPhase, 2, 1, 1017, 46, 12.0f, 700);
  bool deterministic = false;
  Plan plan = testing::build_checked("anchor:theta=0,region=paper", p, &deterministic);
  EXPECT_TRUE(deterministic);
  EXPECT_EQ(testing::planted_coverage(p, plan, Pattern::TwoPhase), 1.0);
}

TEST(Anchor, OutputMatchesDenseWhenRecallIsFull) {
  auto p = testing::make_planted(Pattern::TwoPhase, 1, 1, 1024, 47);
  Plan plan = testing::build("anchor:theta=0,region=paper", p);
  ASSERT_LT(density(plan), 1.0);
  ASSERT_GT(testing::recall(p, plan, 4).min, 0.999);
  EXPECT_LT(testing::output_error(p, plan), 1e-2);
}

// region=official: the first block·step keys and the group's own keys; the block just before
// the group is in neither the region nor the stripe search; the second group is dense.
TEST(Anchor, OfficialRegion) {
  auto p = testing::make_planted(Pattern::Stripe, 2, 1, 2048, 48);
  Plan plan = testing::build("anchor:theta=-1000", p);  // no stripe can pass
  validate(plan);
  EXPECT_TRUE(plan.columns.empty());
  for (int h = 0; h < 2; ++h) {
    EXPECT_TRUE(testing::selects_all(plan, h, 1023, 0, 1024)) << h;  // group 1: dense
    for (std::int64_t i : {1024, 1300, 1535, 1600, 2047}) {
      const std::int64_t group_start = i / 512 * 512;
      EXPECT_TRUE(testing::selects_all(plan, h, i, 0, 512)) << i;
      EXPECT_TRUE(testing::selects_all(plan, h, i, group_start, i + 1)) << i;
      EXPECT_FALSE(plan.selects(h, i, group_start - 1)) << i;  // the block before the group
      EXPECT_FALSE(plan.selects(h, i, 700)) << i;
    }
  }
  // With every key a stripe candidate passing, the keys between the first 512 and the block
  // before the group come in; that block still does not.
  Plan all = testing::build("anchor:theta=1000", p);
  for (int h = 0; h < 2; ++h) {
    EXPECT_TRUE(testing::selects_all(all, h, 1600, 0, 1504)) << h;
    EXPECT_FALSE(all.selects(h, 1600, 1510)) << h;
    EXPECT_TRUE(testing::selects_all(all, h, 1600, 1536, 1601)) << h;
  }
}

}  // namespace
}  // namespace ls
