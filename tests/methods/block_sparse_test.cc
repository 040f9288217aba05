// block-sparse: dominant key blocks planted per query head must be the ones kept; top-k is
// monotone; topk covering every block gives the dense plan.
#include <gtest/gtest.h>

#include <algorithm>

#include "attn/reference.h"
#include "methods/pattern_search.h"
#include "methods/registry.h"
#include "synthetic.h"

namespace ls {
namespace {

Plan build(const std::string& spec, const AttnInput& in) {
  Plan plan = MethodRegistry::instance().make_prefill(spec)->build_plan(in, PlanContext{});
  validate(plan);
  return plan;
}

std::vector<std::int64_t> keys_of_blocks(std::initializer_list<std::int64_t> blocks) {
  std::vector<std::int64_t> keys;
  for (std::int64_t b : blocks)
    for (std::int64_t j = b * 64; j < (b + 1) * 64; ++j) keys.push_back(j);
  return keys;
}

std::vector<std::int64_t> rows_of(const AttnShape& s, std::int64_t step) {
  std::vector<std::int64_t> rows;
  for (std::int64_t i = 0; i < s.n_q; i += step) rows.push_back(i);
  rows.push_back(s.n_q - 1);
  return rows;
}

// 4 query heads on 2 KV heads, n = 1024 (16 blocks). Heads 0, 2, 3 attend to key blocks 2, 5,
// 9; head 1 (same KV head as head 0) to blocks 3 and 7.
test::Synthetic planted() {
  test::Synthetic syn(4, 2, 1024, 32, 5);
  for (int h : {0, 2, 3}) syn.plant_keys(0, keys_of_blocks({2, 5, 9}), 12.0f, h);
  syn.plant_keys(1, keys_of_blocks({3, 7}), 12.0f, 1);
  return syn;
}

TEST(BlockSparse, KeepsThePlantedBlocksPerQueryHead) {
  test::Synthetic syn = planted();
  auto in = syn.input();
  Plan plan = build("block-sparse:topk=3", in);
  EXPECT_EQ(plan.row_heads, 4);
  for (std::int64_t qb = 10; qb < 16; ++qb) {
    auto ranges = plan.row_ranges(plan.row(0, qb));
    std::vector<BlockRange> want{{2, 3}, {5, 6}, {9, 10}, {std::int32_t(qb), std::int32_t(qb + 1)}};
    if (qb == 10) want = {{2, 3}, {5, 6}, {9, 11}};  // 9 and the diagonal 10 merge
    EXPECT_EQ(std::vector<BlockRange>(ranges.begin(), ranges.end()), want) << qb;
    auto head1 = plan.row_ranges(plan.row(1, qb));
    EXPECT_TRUE(std::any_of(head1.begin(), head1.end(), [](const BlockRange& r) { return r.begin <= 3 && 3 < r.end; }));
    EXPECT_TRUE(std::any_of(head1.begin(), head1.end(), [](const BlockRange& r) { return r.begin <= 7 && 7 < r.end; }));
  }
  auto per_row = plan_recall_rows(in, plan, rows_of(in.shape, 1));
  for (int h = 0; h < 4; ++h) EXPECT_GT(*std::min_element(per_row[h].begin(), per_row[h].end()), 0.999) << h;
  EXPECT_LT(density(plan), 0.5);

  std::vector<float> dense(in.shape.heads * in.shape.n_q * in.shape.dim), sparse(dense.size());
  reference_attention(in, dense.data());
  reference_plan_attention(in, plan, sparse.data());
  EXPECT_LT(test::max_abs_diff(dense, sparse), 1e-3);
}

TEST(BlockSparse, TooFewBlocksLoseMass) {
  test::Synthetic syn = planted();
  auto in = syn.input();
  Plan plan = build("block-sparse:topk=1", in);
  EXPECT_LT(plan_recall(in, plan, rows_of(in.shape, 5))[0], 0.8);  // head 0 needs three blocks
}

TEST(BlockSparse, LargerTopkNeverLowersRecall) {
  test::Synthetic syn(2, 1, 900, 32, 9, 0.6f);
  auto in = syn.input();
  std::vector<double> last(2, 0.0);
  for (int topk : {1, 2, 3, 5, 8, 13}) {
    Plan plan = build("block-sparse:topk=" + std::to_string(topk), in);
    auto recall = plan_recall(in, plan, rows_of(in.shape, 7));
    for (int h = 0; h < 2; ++h) EXPECT_GE(recall[h] + 1e-12, last[h]) << topk;
    last = recall;
  }
  EXPECT_LT(last[0], 1.0);
}

TEST(BlockSparse, DenseWhenTopkCoversEveryBlockAndDeterministic) {
  test::Synthetic syn(2, 2, 1000, 16);
  EXPECT_DOUBLE_EQ(density(build("block-sparse", syn.input())), 1.0);  // 16 blocks < 100
  EXPECT_DOUBLE_EQ(density(build("block-sparse:topk=16", syn.input())), 1.0);
  Plan a = build("block-sparse:topk=4", syn.input()), b = build("block-sparse:topk=4", syn.input());
  EXPECT_LT(density(a), 0.6);
  EXPECT_EQ(a.ranges, b.ranges);
  EXPECT_EQ(a.range_offsets, b.range_offsets);
  Plan coarse = build("block-sparse:topk=2,block=128", syn.input());
  EXPECT_EQ(coarse.block_k, 128);
}

}  // namespace
}  // namespace ls
