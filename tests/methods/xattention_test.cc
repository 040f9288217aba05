// xattention: planted dominant blocks are kept, tau is monotone, plans are valid and
// deterministic, short sequences are dense, and the plan's output matches dense attention
// when it keeps (almost) all the mass.
#include <gtest/gtest.h>

#include "core/error.h"
#include "planted_input.h"

namespace ls {
namespace {

using testing::Pattern;

TEST(XAttention, KeepsPlantedBlocks) {
  for (Pattern pattern : {Pattern::Stripe, Pattern::TwoPhase}) {
    auto p = testing::make_planted(pattern, 4, 2, 1024, 11);
    bool deterministic = false;
    Plan plan = testing::build_checked("xattention", p, &deterministic);
    EXPECT_TRUE(deterministic);
    EXPECT_EQ(plan.block_q, 128);
    EXPECT_EQ(testing::planted_coverage(p, plan, pattern), 1.0) << int(pattern);
    EXPECT_LT(density(plan), 0.8) << "the estimate should drop blocks the planted queries ignore";
    EXPECT_GT(testing::recall(p, plan).mean, 0.95);
  }
}

TEST(XAttention, Stride16AlsoKeepsPlantedBlocks) {
  auto p = testing::make_planted(Pattern::TwoPhase, 2, 1, 1024, 12);
  bool deterministic = false;
  Plan plan = testing::build_checked("xattention:stride=16", p, &deterministic);
  EXPECT_TRUE(deterministic);
  EXPECT_EQ(testing::planted_coverage(p, plan, Pattern::TwoPhase), 1.0);
}

TEST(XAttention, LargerTauNeverLosesRecall) {
  // Weak planting, so that tau decides which blocks are kept.
  auto p = testing::make_planted(Pattern::TwoPhase, 2, 1, 1024, 13, 4.0f);
  Plan previous;
  double previous_recall = 0.0, first_density = -1.0, last_density = 0.0;
  for (double tau : {0.3, 0.6, 0.8, 0.9, 0.97}) {
    Plan plan = testing::build(fmt::format("xattention:tau={}", tau), p);
    validate(plan);
    const double r = testing::recall(p, plan).mean;
    if (tau > 0.3) {
      EXPECT_TRUE(testing::is_superset(plan, previous, p.shape)) << tau;
      EXPECT_GE(r, previous_recall) << tau;
    }
    last_density = density(plan);
    if (first_density < 0) first_density = last_density;
    previous_recall = r;
    previous = std::move(plan);
  }
  EXPECT_LT(first_density, last_density) << "tau should change the plan on this input";
}

TEST(XAttention, ShortSequencesAreDense) {
  auto p = testing::make_planted(Pattern::Stripe, 2, 2, 256, 14);
  EXPECT_EQ(density(testing::build("xattention", p)), 1.0);
}

TEST(XAttention, ChunkedPrefillAndOddLengths) {
  auto p = testing::make_planted(Pattern::TwoPhase, 2, 1, 1003, 15, 12.0f, 300);
  bool deterministic = false;
  Plan plan = testing::build_checked("xattention", p, &deterministic);
  EXPECT_TRUE(deterministic);
  EXPECT_EQ(testing::planted_coverage(p, plan, Pattern::TwoPhase), 1.0);
}

TEST(XAttention, OutputMatchesDenseWhenRecallIsFull) {
  auto p = testing::make_planted(Pattern::TwoPhase, 1, 1, 768, 16);
  Plan plan = testing::build("xattention", p);
  ASSERT_GT(testing::recall(p, plan, 4).min, 0.999);
  EXPECT_LT(testing::output_error(p, plan), 1e-2);
}

TEST(XAttention, RejectsStrideThatDoesNotDivideBlock) {
  EXPECT_THROW(MethodRegistry::instance().make_prefill("xattention:stride=12"), Error);
  EXPECT_THROW(MethodRegistry::instance().make_prefill("xattention:tau=1.5"), Error);
}

}  // namespace
}  // namespace ls
