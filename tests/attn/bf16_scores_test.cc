// bf16 score products (set_attention_precision): the dense kernel, attention_at and the plan
// executor (block ranges and gathered columns) against the double-precision reference, within
// the bound that rounding Q and K to bf16 allows, and measurably different from fp32 (the path
// really runs). Skipped where the CPU or the build has no AVX512-BF16.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "attn/flash.h"
#include "attn/plan.h"
#include "attn/reference.h"
#include "attn_test_util.h"
#include "core/error.h"

namespace ls {
namespace {

using testing::make_shape;
using testing::max_abs_diff;
using testing::RandomAttention;

// bf16 keeps 8 significant bits: each product q_c·k_c is off by up to 2^-8 of itself, so a
// score of d unit-variance terms scaled by 1/sqrt(d) moves by about 2^-8 (a random walk of d
// errors of 2^-8/sqrt(d)). Weights then move by about that fraction and the output (values of
// unit size) by a few 1e-3; 2e-2 leaves room for the tails over every row of these shapes.
constexpr double kBf16Bound = 2e-2;

class Bf16Scores : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!attention_bf16_supported()) GTEST_SKIP() << "no AVX512-BF16 in this CPU or build";
    set_attention_precision(AttnPrecision::Bf16);
  }
  void TearDown() override { set_attention_precision(AttnPrecision::F32); }
};

TEST_F(Bf16Scores, DenseKernelStaysWithinTheBound) {
  ASSERT_EQ(attention_precision(), AttnPrecision::Bf16);
  std::uint64_t seed = 7;
  for (int dim : {64, 256}) {
    for (auto [heads, kv_heads] : {std::pair{9, 3}, std::pair{4, 1}}) {
      for (auto [n_q, n_k, window] : {std::tuple<std::int64_t, std::int64_t, std::int64_t>{131, 131, 0},
                                      {1, 200, 0}, {70, 333, 0}, {150, 150, 37}}) {
        const AttnShape shape = make_shape(heads, kv_heads, n_q, n_k, dim, window);
        RandomAttention data(shape, seed++);
        std::vector<float> expected(data.out_size()), bf16(data.out_size()), f32(data.out_size());
        reference_attention(data.in, expected.data());
        flash_attention(data.in, bf16.data());
        set_attention_precision(AttnPrecision::F32);
        flash_attention(data.in, f32.data());
        set_attention_precision(AttnPrecision::Bf16);
        const double err = max_abs_diff(expected, bf16);
        EXPECT_LT(err, kBf16Bound) << testing::describe(shape);
        EXPECT_GT(max_abs_diff(f32, bf16), 1e-5) << "bf16 products did not run: " << testing::describe(shape);
        EXPECT_LT(max_abs_diff(expected, f32), 2e-5) << testing::describe(shape);
      }
    }
  }
}

TEST_F(Bf16Scores, AttentionAtAndPlansStayWithinTheBound) {
  const AttnShape shape = make_shape(6, 2, 257, 257, 64);
  RandomAttention data(shape, 11);
  std::mt19937_64 rng(5);
  PlanBuilder b(shape.heads, 2, shape.n_q, shape.n_k, 64, 64);
  for (std::int64_t r = 0; r < b.rows(); ++r) {
    b.add_diagonal(r);
    b.add_blocks(r, 0, 1);
    for (int i = 0; i < 70; ++i) b.add_column(r, std::int64_t(rng() % shape.n_k));
  }
  const Plan plan = b.finish();
  std::vector<float> expected(data.out_size()), got(data.out_size());
  reference_plan_attention(data.in, plan, expected.data());
  plan_attention(data.in, plan, got.data());
  EXPECT_LT(max_abs_diff(expected, got), kBf16Bound);

  // attention_at: a block of queries against keys entirely in the past.
  std::vector<double> lse(std::size_t(shape.heads) * shape.n_q);
  attention_at(data.in, shape.n_k, got.data(), lse.data());
  std::vector<float> full_expected(data.out_size());
  reference_attention(AttnInput{data.in.q, data.in.k, data.in.v,
                                make_shape(shape.heads, shape.kv_heads, shape.n_q, shape.n_k, shape.dim)},
                      full_expected.data());
  // Every query sees every key: the last query's row of the causal reference is that.
  for (int h = 0; h < shape.heads; ++h) {
    const std::int64_t last = shape.n_q - 1;
    for (int c = 0; c < shape.dim; ++c) {
      const std::size_t i = (std::size_t(h) * shape.n_q + last) * shape.dim + c;
      EXPECT_NEAR(got[i], full_expected[i], kBf16Bound);
    }
  }
}

TEST(Bf16ScoresErrors, NamesAreParsedAndUnsupportedIsAnError) {
  EXPECT_EQ(parse_attention_precision("bf16"), AttnPrecision::Bf16);
  EXPECT_EQ(parse_attention_precision("f32"), AttnPrecision::F32);
  EXPECT_THROW(parse_attention_precision("fp8"), Error);
  if (!attention_bf16_supported()) {
    EXPECT_THROW(set_attention_precision(AttnPrecision::Bf16), Error);
    EXPECT_EQ(attention_precision(), AttnPrecision::F32);
  }
  set_attention_precision(AttnPrecision::F32);
  EXPECT_EQ(attention_precision(), AttnPrecision::F32);
}

}  // namespace
}  // namespace ls
