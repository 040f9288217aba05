// block-gate (training-free SeerAttention gate): planted dominant blocks are kept, threshold
// and top-k are monotone, the last block rows are dense, plans are valid and deterministic,
// and the output matches dense attention when the plan keeps all the mass.
#include <gtest/gtest.h>

#include "planted_input.h"

namespace ls {
namespace {

using testing::Pattern;

TEST(BlockGate, KeepsPlantedBlocks) {
  for (const char* spec : {"block-gate", "block-gate:combine=mean"})
    for (Pattern pattern : {Pattern::Stripe, Pattern::TwoPhase}) {
      auto p = testing::make_planted(pattern, 4, 2, 1024, 31);
      bool deterministic = false;
      Plan plan = testing::build_checked(spec, p, &deterministic);
      EXPECT_TRUE(deterministic);
      EXPECT_EQ(plan.block_q, 64);
      EXPECT_EQ(testing::planted_coverage(p, plan, pattern), 1.0) << spec << " " << int(pattern);
      EXPECT_LT(density(plan), 0.7) << spec;
    }
}

TEST(BlockGate, TopKKeepsPlantedBlocks) {
  auto p = testing::make_planted(Pattern::TwoPhase, 2, 1, 1024, 32);
  Plan plan = testing::build("block-gate:top_k=2", p);
  validate(plan);
  EXPECT_EQ(testing::planted_coverage(p, plan, Pattern::TwoPhase), 1.0);
}

TEST(BlockGate, LooserSelectionNeverLosesRecall) {
  auto p = testing::make_planted(Pattern::TwoPhase, 2, 1, 1024, 33, 4.0f);
  auto check_chain = [&](const std::vector<std::string>& specs) {
    Plan previous;
    double previous_recall = 0.0, first_density = -1.0, last_density = 0.0;
    for (const std::string& spec : specs) {
      Plan plan = testing::build(spec, p);
      validate(plan);
      const double r = testing::recall(p, plan).mean;
      if (first_density >= 0) {
        EXPECT_TRUE(testing::is_superset(plan, previous, p.shape)) << spec;
        EXPECT_GE(r, previous_recall) << spec;
      }
      last_density = density(plan);
      if (first_density < 0) first_density = last_density;
      previous_recall = r;
      previous = std::move(plan);
    }
    EXPECT_LT(first_density, last_density) << specs.front();
  };
  check_chain({"block-gate:threshold=0.2", "block-gate:threshold=0.05", "block-gate:threshold=0.005",
               "block-gate:threshold=0.0005"});
  check_chain({"block-gate:top_k=1", "block-gate:top_k=2", "block-gate:top_k=4", "block-gate:top_k=8"});
}

TEST(BlockGate, LastBlockRowsAreDense) {
  auto p = testing::make_planted(Pattern::Stripe, 2, 1, 1024, 34);
  Plan plan = testing::build("block-gate:threshold=0.5", p);
  for (int h = 0; h < 2; ++h)
    for (std::int64_t qb = plan.q_blocks() - 2; qb < plan.q_blocks(); ++qb) {
      auto ranges = plan.row_ranges(plan.row(h, qb));
      ASSERT_EQ(ranges.size(), 1u);
      EXPECT_EQ(ranges[0].begin, 0);
      EXPECT_EQ(ranges[0].end, qb + 1);
    }
  // A shorter sequence is all "last rows": dense.
  auto short_input = testing::make_planted(Pattern::Stripe, 2, 1, 128, 34);
  EXPECT_EQ(density(testing::build("block-gate:threshold=0.5", short_input)), 1.0);
  Plan none_dense = testing::build("block-gate:threshold=0.5,last_dense=0", p);
  EXPECT_LT(density(none_dense), density(plan));
}

TEST(BlockGate, ChunkedPrefillAndOddLengths) {
  auto p = testing::make_planted(Pattern::TwoPhase, 2, 1, 999, 35, 12.0f, 500);
  bool deterministic = false;
  Plan plan = testing::build_checked("block-gate", p, &deterministic);
  EXPECT_TRUE(deterministic);
  EXPECT_EQ(testing::planted_coverage(p, plan, Pattern::TwoPhase), 1.0);
}

TEST(BlockGate, OutputMatchesDenseWhenRecallIsFull) {
  auto p = testing::make_planted(Pattern::TwoPhase, 1, 1, 768, 36);
  Plan plan = testing::build("block-gate", p);
  ASSERT_LT(density(plan), 1.0);
  ASSERT_GT(testing::recall(p, plan, 4).min, 0.999);
  EXPECT_LT(testing::output_error(p, plan), 1e-2);
}

TEST(BlockGate, RejectsUnknownCombine) {
  EXPECT_THROW(MethodRegistry::instance().make_prefill("block-gate:combine=sum"), Error);
}

}  // namespace
}  // namespace ls
