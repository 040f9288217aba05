// flexprefill: vertical-slash heads keep a planted vertical stripe, query-aware heads keep
// query-dependent dominant blocks, gamma is monotone, plans are valid and deterministic,
// sequences up to max(2·block, min_budget) run dense, and the output matches dense attention
// when the plan keeps all the mass.
#include <gtest/gtest.h>

#include "planted_input.h"

namespace ls {
namespace {

using testing::Pattern;

// n = 1024 with 64-token blocks gives 16 blocks, so budgets of 4 blocks are a real choice.
constexpr const char* kSmall = "flexprefill:block=64,min_budget=256";

TEST(FlexPrefill, VerticalSlashHeadKeepsPlantedStripe) {
  auto p = testing::make_planted(Pattern::Stripe, 4, 2, 1024, 21);
  bool deterministic = false;
  Plan plan = testing::build_checked(std::string(kSmall) + ",tau=0", p, &deterministic);
  EXPECT_TRUE(deterministic);
  EXPECT_EQ(testing::planted_coverage(p, plan, Pattern::Stripe), 1.0);
  EXPECT_LT(density(plan), 0.6);
}

TEST(FlexPrefill, QueryAwareHeadKeepsQueryDependentBlocks) {
  auto p = testing::make_planted(Pattern::TwoPhase, 4, 2, 1024, 22);
  bool deterministic = false;
  Plan query_aware = testing::build_checked(std::string(kSmall) + ",tau=1", p, &deterministic);
  EXPECT_TRUE(deterministic);
  EXPECT_EQ(testing::planted_coverage(p, query_aware, Pattern::TwoPhase), 1.0);
  // Vertical-slash alone, driven by the last queries, cannot follow the first phase; the
  // default tau recognises this head as query-aware.
  Plan vertical_slash = testing::build(std::string(kSmall) + ",tau=0", p);
  EXPECT_LT(testing::planted_coverage(p, vertical_slash, Pattern::TwoPhase), 1.0);
  Plan by_default = testing::build(kSmall, p);
  EXPECT_EQ(testing::planted_coverage(p, by_default, Pattern::TwoPhase), 1.0);
}

TEST(FlexPrefill, LargerGammaNeverLosesRecall) {
  auto p = testing::make_planted(Pattern::TwoPhase, 2, 1, 1024, 23, 4.0f);
  for (const char* tau : {"0", "1"}) {
    Plan previous;
    double previous_recall = 0.0, first_density = -1.0, last_density = 0.0;
    for (double gamma : {0.3, 0.6, 0.9, 0.99}) {
      Plan plan = testing::build(fmt::format("{},tau={},gamma={}", kSmall, tau, gamma), p);
      validate(plan);
      const double r = testing::recall(p, plan).mean;
      if (first_density >= 0) {
        EXPECT_TRUE(testing::is_superset(plan, previous, p.shape)) << tau << " " << gamma;
        EXPECT_GE(r, previous_recall) << tau << " " << gamma;
      }
      last_density = density(plan);
      if (first_density < 0) first_density = last_density;
      previous_recall = r;
      previous = std::move(plan);
    }
    EXPECT_LT(first_density, last_density) << "gamma should change the plan (tau " << tau << ")";
  }
}

TEST(FlexPrefill, MaxBudgetCapsTheVerticalAndSlashParts) {
  auto p = testing::make_planted(Pattern::Stripe, 2, 1, 1024, 24, 4.0f);
  Plan capped = testing::build(std::string(kSmall) + ",tau=0,gamma=0.99,max_budget=128", p);
  Plan free = testing::build(std::string(kSmall) + ",tau=0,gamma=0.99", p);
  validate(capped);
  EXPECT_LT(density(capped), density(free));
  EXPECT_TRUE(testing::is_superset(free, capped, p.shape));
}

TEST(FlexPrefill, ShortSequencesRunDense) {
  // Official rule: n ≤ max(2·block, ceil(min_budget / block)·block) → dense.
  auto at_limit = testing::make_planted(Pattern::Stripe, 2, 1, 512, 25);
  EXPECT_EQ(density(testing::build("flexprefill", at_limit)), 1.0);
  auto small_blocks = testing::make_planted(Pattern::Stripe, 2, 1, 128, 25);
  EXPECT_EQ(density(testing::build("flexprefill:block=64,min_budget=0", small_blocks)), 1.0);
  auto longer = testing::make_planted(Pattern::Stripe, 2, 1, 1024, 25);
  EXPECT_LT(density(testing::build("flexprefill", longer)), 1.0);
}

TEST(FlexPrefill, ChunkedPrefillAndOddLengths) {
  auto p = testing::make_planted(Pattern::Stripe, 2, 1, 1001, 26, 12.0f, 333);
  bool deterministic = false;
  Plan plan = testing::build_checked(std::string(kSmall) + ",tau=0", p, &deterministic);
  EXPECT_TRUE(deterministic);
  EXPECT_EQ(testing::planted_coverage(p, plan, Pattern::Stripe), 1.0);
}

TEST(FlexPrefill, OutputMatchesDenseWhenRecallIsFull) {
  auto p = testing::make_planted(Pattern::TwoPhase, 1, 1, 768, 27);
  Plan plan = testing::build("flexprefill", p);
  ASSERT_LT(density(plan), 1.0);
  ASSERT_GT(testing::recall(p, plan, 4).min, 0.999);
  EXPECT_LT(testing::output_error(p, plan), 1e-2);
}

}  // namespace
}  // namespace ls
