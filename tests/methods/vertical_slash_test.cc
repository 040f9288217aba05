// vertical-slash: planted columns and diagonals must be found, per query head; budgets are
// monotone; below its minimum length the method is dense, as MInference's code is in effect.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include "attn/reference.h"
#include "methods/estimate_util.h"
#include "methods/pattern_search.h"
#include "methods/registry.h"
#include "synthetic.h"

namespace ls {
namespace {

// The planted diagonals are quadratic forms whose terms reach ~10⁶ and cancel to a logit of a
// few units (synthetic.h): they need fp32 products, so the estimate runs in fp32 here. Real
// attention has no such cancellation; the bf16 (AMX) estimate is tested on it in
// estimate_util_test.cc and through FlexPrefill, which shares it.
Plan build(const std::string& spec, const AttnInput& in) {
  estimate::ScopedScorePrecision fp32(false);
  Plan plan = MethodRegistry::instance().make_prefill(spec)->build_plan(in, PlanContext{});
  validate(plan);
  return plan;
}

std::vector<std::int64_t> every_row(const AttnShape& s, std::int64_t step = 5) {
  std::vector<std::int64_t> rows;
  for (std::int64_t i = 0; i < s.n_q; i += step) rows.push_back(i);
  rows.push_back(s.n_q - 1);
  return rows;
}

// Heads 0..3 on 2 KV heads. Head 1 and head 2 attend along diagonals at offsets 300 and 600,
// heads 0 and 3 locally; every head also attends to keys 200, 517, 800; head 1 alone to 650.
test::Synthetic planted() {
  test::Synthetic syn(4, 2, 1024, 32, 7);
  test::plant_key_positions(syn, 0, {200, 517, 650, 800});
  const std::int64_t offsets[4] = {0, 300, 600, 0};
  for (int h = 0; h < 4; ++h) test::plant_diagonal(syn, 0, h, offsets[h], 6.0, 12.0);
  syn.plant_keys(4, {200, 517, 800}, 1.0f);
  syn.plant_keys(5, {650}, 1.0f, 1);
  for (int h : {0, 2, 3}) syn.plant_keys(6, {650}, -30.0f, h);  // 650 is free of the diagonal penalty
  return syn;
}

TEST(VerticalSlash, FindsPlantedColumnsAndDiagonalsPerQueryHead) {
  test::Synthetic syn = planted();
  auto in = syn.input();
  Plan plan = build("vertical-slash:v=40,s=140,cover=exact", in);
  EXPECT_EQ(plan.row_heads, 4);  // per query head
  for (std::int64_t i : {900, 960, 1023}) {
    for (int h = 0; h < 4; ++h)
      for (std::int64_t key : {200, 517, 800}) EXPECT_TRUE(plan.selects(h, i, key)) << h << " " << key;
    EXPECT_TRUE(plan.selects(1, i, i - 300));
    EXPECT_TRUE(plan.selects(2, i, i - 600));
    EXPECT_FALSE(plan.selects(0, i, i - 300));
    EXPECT_FALSE(plan.selects(0, i, i - 600));
    EXPECT_TRUE(plan.selects(1, i, 650));
  }
  EXPECT_FALSE(plan.selects(0, 900, 650));  // head 0 shares K with head 1 but does not look there
  auto recall = plan_recall(in, plan, every_row(in.shape));
  for (int h = 0; h < 4; ++h) EXPECT_GT(recall[h], 0.995) << h;
  EXPECT_LT(density(plan), 0.7);  // n = 1024: the 100 forced diagonals alone are ~20%

  // The columns also raise the sums of the 64 diagonals through them (as seen from the last
  // queries), which compete with the diagonals' Gaussian tails for the slash budget. With a
  // budget above 100 forced + 4·64 such offsets + the tails, every row keeps all its mass and
  // executing the plan reproduces dense attention.
  Plan wide = build("vertical-slash:v=40,s=420,cover=exact", in);
  auto per_row = plan_recall_rows(in, wide, every_row(in.shape, 1));
  for (int h = 0; h < 4; ++h) EXPECT_GT(*std::min_element(per_row[h].begin(), per_row[h].end()), 0.9999) << h;
  std::vector<float> dense(in.shape.heads * in.shape.n_q * in.shape.dim), sparse(dense.size());
  reference_attention(in, dense.data());
  reference_plan_attention(in, wide, sparse.data());
  EXPECT_LT(test::max_abs_diff(dense, sparse), 1e-3);
}

TEST(VerticalSlash, TooSmallABudgetMissesTheFarDiagonal) {
  test::Synthetic syn = planted();
  auto in = syn.input();
  Plan plan = build("vertical-slash:v=30,s=50,cover=exact", in);
  auto recall = plan_recall(in, plan, every_row(in.shape));
  EXPECT_LT(recall[1], 0.8);  // head 1's diagonal at 300 is outside the 50 nearest offsets
}

// blocks and official both cover at least the diagonals' own keys (exact): blocks rounds runs
// out to aligned blocks, the official kernel grows ranges by whole 64-key steps and shifts
// windows near key 0 right.
TEST(VerticalSlash, BlockAndOfficialCoversAreSupersetsOfTheExactKeySet) {
  test::Synthetic syn = planted();
  auto in = syn.input();
  Plan exact = build("vertical-slash:v=40,s=140,cover=exact", in);
  for (const char* cover : {"blocks", "official"}) {
    Plan wider = build(fmt::format("vertical-slash:v=40,s=140,cover={}", cover), in);
    for (int h = 0; h < 4; ++h)
      for (std::int64_t i = 0; i < 1024; i += 37)
        for (std::int64_t key = 0; key <= i; key += 3)
          if (exact.selects(h, i, key)) {
            ASSERT_TRUE(wider.selects(h, i, key)) << cover << " " << h << " " << i << " " << key;
          }
    EXPECT_GT(density(wider), density(exact)) << cover;
    auto rw = plan_recall(in, wider, every_row(in.shape));
    auto re = plan_recall(in, exact, every_row(in.shape));
    for (int h = 0; h < 4; ++h) EXPECT_GE(rw[h] + 1e-12, re[h]) << cover;
  }
}

TEST(VerticalSlash, LargerBudgetsNeverLowerRecall) {
  test::Synthetic syn(2, 1, 768, 32, 11, 0.6f);  // unstructured: recall well below 1
  auto in = syn.input();
  auto rows = every_row(in.shape, 13);
  for (const char* cover : {"exact", "blocks"}) {
    std::vector<double> last(2, 0.0);
    for (int v : {30, 40, 100, 300}) {
      Plan plan = build(fmt::format("vertical-slash:v={},s=60,cover={}", v, cover), in);
      auto recall = plan_recall(in, plan, rows);
      for (int h = 0; h < 2; ++h) EXPECT_GE(recall[h] + 1e-12, last[h]) << cover << " v=" << v;
      last = recall;
    }
    last.assign(2, 0.0);
    for (int s : {50, 100, 120, 300, 700}) {
      Plan plan = build(fmt::format("vertical-slash:v=30,s={},cover={}", s, cover), in);
      auto recall = plan_recall(in, plan, rows);
      for (int h = 0; h < 2; ++h) EXPECT_GE(recall[h] + 1e-12, last[h]) << cover << " s=" << s;
      last = recall;
    }
  }
}

TEST(VerticalSlash, DenseBelowItsMinimumLength) {
  test::Synthetic syn(2, 1, 1024, 16);
  Plan plan = build("vertical-slash", syn.input());  // s = 6096 >= n: every diagonal kept
  EXPECT_DOUBLE_EQ(density(plan), 1.0);
  Plan v_all = build("vertical-slash:v=1024,s=60", syn.input());
  EXPECT_DOUBLE_EQ(density(v_all), 1.0);
  Plan sparse = build("vertical-slash:v=30,s=60", syn.input());
  EXPECT_LT(density(sparse), 0.5);
}

TEST(VerticalSlash, DeterministicAndHandlesFewQueries) {
  test::Synthetic syn = planted();
  Plan a = build("vertical-slash:v=40,s=140", syn.input());
  Plan b = build("vertical-slash:v=40,s=140", syn.input());
  EXPECT_EQ(a.ranges, b.ranges);
  EXPECT_EQ(a.columns, b.columns);
  EXPECT_EQ(a.range_offsets, b.range_offsets);
  // Chunked prefill: 10 queries at the end (fewer than last_q) still give a valid plan.
  syn.shape.n_q = 10;
  syn.q.resize(std::size_t(4) * 10 * 32);
  Plan tail = build("vertical-slash:v=40,s=140", syn.input());
  EXPECT_EQ(tail.q_blocks(), 1);
  EXPECT_LT(density(tail), 1.0);
}

}  // namespace
}  // namespace ls
