// streaming, lambda and power: the static patterns. Their masks are known exactly, so the plans
// are checked pair by pair against the papers' token or block rules, and recall on inputs whose
// mass lies inside the pattern must be ≈ 1.
#include <gtest/gtest.h>

#include <vector>

#include "attn/reference.h"
#include "core/error.h"
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

std::vector<std::int64_t> all_queries(const AttnShape& s) {
  std::vector<std::int64_t> rows;
  for (std::int64_t i = 0; i < s.n_q; i += 7) rows.push_back(i);
  rows.push_back(s.n_q - 1);
  return rows;
}

double min_of(const std::vector<double>& xs) { return *std::min_element(xs.begin(), xs.end()); }

TEST(Streaming, CoversSinkAndWindowAndLittleElse) {
  test::Synthetic syn(2, 1, 700, 32);
  const std::int64_t sink = 10, window = 150;
  Plan plan = build("streaming:sink=10,window=150", syn.input());
  for (std::int64_t i = 0; i < 700; i += 3) {
    for (std::int64_t key = 0; key <= i; ++key) {
      const bool wanted = key < sink || i - key < window;
      const bool selected = plan.selects(1, i, key);
      if (wanted) {
        ASSERT_TRUE(selected) << i << " " << key;
      } else if (i - key >= window + 2 * plan.block_k) {
        // Over-selection is bounded by block coverage: at most one block on each side.
        ASSERT_FALSE(selected) << i << " " << key;
      }
    }
  }
  EXPECT_LT(density(plan), 0.6);
}

TEST(Streaming, RecallIsOneWhenMassIsInSinkAndWindow) {
  test::Synthetic syn(2, 2, 1024, 32);
  syn.plant_locality(0, 6.0, 48.0, 4, 0.0f);  // mass within ~2·48 keys of the query, plus 4 sinks
  auto in = syn.input();
  Plan plan = build("streaming:sink=4,window=160", in);
  EXPECT_GT(min_of(plan_recall(in, plan, all_queries(in.shape))), 0.999);
  EXPECT_LT(density(plan), 0.45);
  // Executing the plan reproduces dense attention.
  std::vector<float> dense(in.shape.heads * in.shape.n_q * in.shape.dim), sparse(dense.size());
  reference_attention(in, dense.data());
  reference_plan_attention(in, plan, sparse.data());
  double max_err = 0;
  for (std::size_t i = 0; i < dense.size(); ++i) max_err = std::max(max_err, double(std::abs(dense[i] - sparse[i])));
  EXPECT_LT(max_err, 1e-3);
  // A window far too small loses mass: the test can fail.
  Plan small = build("streaming:sink=4,window=1", in);
  EXPECT_LT(min_of(plan_recall(in, small, all_queries(in.shape))), 0.9);
}

TEST(Streaming, LargerWindowNeverLowersRecall) {
  test::Synthetic syn(2, 1, 900, 32, 3, 0.5f);
  syn.plant_locality(0, 2.0, 200.0, 8, 1.0f);
  auto in = syn.input();
  std::vector<double> last(2, 0.0);
  for (int window : {16, 64, 100, 256, 400, 900}) {
    Plan plan = build("streaming:sink=8,window=" + std::to_string(window), in);
    auto recall = plan_recall(in, plan, all_queries(in.shape));
    for (int h = 0; h < 2; ++h) {
      EXPECT_GE(recall[h] + 1e-12, last[h]) << window;
      last[h] = recall[h];
    }
  }
  EXPECT_GT(last[0], 0.999);  // window = n: dense
}

TEST(Streaming, TriShapeMakesTheLastQueriesDense) {
  test::Synthetic syn(1, 1, 600, 16);
  Plan plan = build("streaming:sink=4,window=64,tri=true,tri_last=100", syn.input());
  for (std::int64_t i = 500; i < 600; ++i)
    for (std::int64_t key = 0; key <= i; key += 5) ASSERT_TRUE(plan.selects(0, i, key)) << i << " " << key;
  EXPECT_FALSE(plan.selects(0, 300, 100));  // earlier rows keep the A-shape
  Plan a_shape = build("streaming:sink=4,window=64", syn.input());
  EXPECT_GT(density(plan), density(a_shape));
}

TEST(Streaming, DeterministicAndCanonicalSpec) {
  test::Synthetic syn(4, 2, 333, 16);
  Plan a = build("streaming", syn.input()), b = build("streaming", syn.input());
  EXPECT_EQ(a.ranges, b.ranges);
  EXPECT_EQ(a.columns, b.columns);
  EXPECT_EQ(MethodRegistry::instance().make_prefill("streaming")->spec(),
            "streaming:sink=4,window=2000,tri=false,tri_last=100");
  // n = 333 < window 2000: every causal pair is inside the window.
  EXPECT_DOUBLE_EQ(density(a), 1.0);
  EXPECT_THROW(MethodRegistry::instance().make_prefill("streaming:window=0"), Error);
}

TEST(Lambda, IsGlobalPlusLocalAndReportsTheDistanceLimit) {
  auto method = MethodRegistry::instance().make_prefill("lambda:global=20,local=128,limit=128");
  EXPECT_EQ(method->rope_distance_limit(), 128);
  EXPECT_EQ(MethodRegistry::instance().make_prefill("lambda")->rope_distance_limit(), 4096);
  EXPECT_EQ(MethodRegistry::instance().make_prefill("lambda:limit=0")->rope_distance_limit(), 0);
  EXPECT_EQ(MethodRegistry::instance().make_prefill("dense")->rope_distance_limit(), 0);
  EXPECT_THROW(MethodRegistry::instance().make_prefill("lambda:limit=100"), Error);  // below two blocks
  test::Synthetic syn(2, 1, 800, 16);
  Plan plan = method->build_plan(syn.input(), PlanContext{});
  validate(plan);
  Plan same = build("streaming:sink=20,window=128", syn.input());
  EXPECT_EQ(plan.ranges, same.ranges);
  EXPECT_EQ(plan.columns, same.columns);
  for (std::int64_t i = 0; i < 800; i += 11)
    for (std::int64_t key = 0; key <= i; ++key)
      if (key < 20 || i - key < 128) {
        ASSERT_TRUE(plan.selects(0, i, key));
      }
}

// Algorithm 1 of the PowerAttention paper, per token pair.
bool power_mask(std::int64_t q, std::int64_t k, std::int64_t block, std::int64_t window) {
  if (k > q) return false;
  const std::int64_t d = q / block - k / block;
  return k < block || d < window || (d & (d - 1)) == 0;
}

TEST(Power, MatchesAlgorithmOneExactly) {
  for (std::int64_t n : {64, 500, 1024}) {
    test::Synthetic syn(2, 2, n, 16);
    Plan plan = build("power:block=16,window=3", syn.input());
    EXPECT_EQ(plan.block_q, 16);
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t key = 0; key <= i; ++key)
        ASSERT_EQ(plan.selects(1, i, key), power_mask(i, key, 16, 3)) << n << " " << i << " " << key;
  }
}

TEST(Power, SparseAtLengthAndDenseWhenShort) {
  test::Synthetic syn(1, 1, 1024, 16);
  Plan plan = build("power:block=16,window=5", syn.input());
  // The last block (63) sees sink 0, blocks 59..63 and distances 8, 16, 32: 1 + 5 + 3 blocks.
  auto ranges = plan.row_ranges(plan.rows() - 1);
  std::int64_t blocks = 0;
  for (const BlockRange& r : ranges) blocks += r.end - r.begin;
  EXPECT_EQ(blocks, 9);
  EXPECT_LT(density(plan), 0.35);
  test::Synthetic short_input(1, 1, 1000, 16);
  EXPECT_DOUBLE_EQ(density(build("power", short_input.input())), 1.0);  // 4 blocks of 256
}

TEST(Power, ChunkedQueriesStillCoverTheMask) {
  // n_q < n_k with an unaligned start: rows straddle position blocks; the plan may over-select
  // but never misses a pair of the mask.
  test::Synthetic syn(1, 1, 400, 16);
  syn.shape.n_q = 150;
  Plan plan = build("power:block=32,window=2", syn.input());
  for (std::int64_t i = 0; i < 150; ++i) {
    const std::int64_t p = syn.shape.position(i);
    for (std::int64_t key = 0; key <= p; ++key)
      if (power_mask(p, key, 32, 2)) {
        ASSERT_TRUE(plan.selects(0, i, key)) << p << " " << key;
      }
  }
}

}  // namespace
}  // namespace ls
