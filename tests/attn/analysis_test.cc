// Plan analysis (recall, output error on sampled rows) against brute-force computations.
#include "attn/analysis.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "attn/flash.h"
#include "attn/reference.h"
#include "attn_test_util.h"
#include "core/error.h"

namespace ls {
namespace {

using testing::make_shape;
using testing::RandomAttention;

TEST(SampleQueryRows, StratifiedDeterministicAndDistinct) {
  auto rows = sample_query_rows(1000, 16, 5);
  ASSERT_EQ(rows.size(), 16u);
  for (std::size_t j = 0; j < rows.size(); ++j) {
    EXPECT_GE(rows[j], std::int64_t(j) * 1000 / 16);  // one row per stratum
    EXPECT_LT(rows[j], std::int64_t(j + 1) * 1000 / 16 + 1);
  }
  EXPECT_EQ(rows, sample_query_rows(1000, 16, 5));
  EXPECT_NE(rows, sample_query_rows(1000, 16, 6));
  auto all = sample_query_rows(10, 50, 1);
  ASSERT_EQ(all.size(), 10u);
  for (std::int64_t i = 0; i < 10; ++i) EXPECT_EQ(all[i], i);
  EXPECT_THROW(sample_query_rows(10, 0, 1), Error);
}

TEST(MeasurePlan, DensePlanHasFullRecallAndNoError) {
  for (const AttnShape& shape : {make_shape(6, 2, 200, 200, 64), make_shape(4, 1, 90, 160, 128, 33)}) {
    RandomAttention data(shape, 3);
    Plan plan = make_dense_plan(shape.heads, shape.kv_heads, shape.n_q, shape.n_k);
    std::vector<float> out(data.out_size());
    plan_attention(data.in, plan, out.data());
    PlanQuality q = measure_plan(data.in, plan, out.data(), 24, 9);
    EXPECT_EQ(q.rows, 24 * shape.heads);
    EXPECT_NEAR(q.recall, 1.0, 1e-12);
    EXPECT_NEAR(q.min_recall, 1.0, 1e-12);
    EXPECT_LT(q.rel_err, 1e-6);  // fp32 kernel output against the exact double rows
    EXPECT_TRUE(std::isnan(measure_plan(data.in, plan, nullptr, 8, 9).rel_err));
  }
}

// Brute force over every row: probabilities from the definition, membership from
// Plan::selects, outputs from the reference implementations.
TEST(MeasurePlan, MatchesBruteForceOnASmallInput) {
  AttnShape shape = make_shape(4, 2, 96, 130, 64, 70);
  RandomAttention data(shape, 17, 2.0f);
  std::mt19937_64 rng(4);
  PlanBuilder b(shape.heads, shape.heads, shape.n_q, shape.n_k, 32, 16);
  for (std::int64_t r = 0; r < b.rows(); ++r) {
    b.add_diagonal(r);
    b.add_blocks(r, std::int64_t(rng() % b.k_blocks()), std::int64_t(rng() % b.k_blocks()) + 1);
    for (int i = 0; i < 10; ++i) b.add_column(r, std::int64_t(rng() % shape.n_k));
  }
  Plan plan = b.finish();

  double recall = 0.0, min_recall = 1.0;
  for (int h = 0; h < shape.heads; ++h) {
    for (std::int64_t i = 0; i < shape.n_q; ++i) {
      const std::int64_t pos = shape.position(i);
      std::vector<double> score;
      for (std::int64_t key = shape.first_key(pos); key <= pos; ++key) {
        double dot = 0.0;
        for (int c = 0; c < shape.dim; ++c)
          dot += double(data.in.q_row(h, i)[c]) * double(data.in.k_row(shape.kv_head_of(h), key)[c]);
        score.push_back(dot * shape.softmax_scale());
      }
      double top = *std::max_element(score.begin(), score.end()), total = 0.0, kept = 0.0;
      for (std::int64_t key = shape.first_key(pos), j = 0; key <= pos; ++key, ++j) {
        const double w = std::exp(score[j] - top);
        total += w;
        if (plan.selects(h, i, key)) kept += w;
      }
      recall += kept / total;
      min_recall = std::min(min_recall, kept / total);
    }
  }
  recall /= double(shape.heads * shape.n_q);

  std::vector<float> dense(data.out_size()), sparse(data.out_size());
  reference_attention(data.in, dense.data());
  reference_plan_attention(data.in, plan, sparse.data());
  double err2 = 0.0, norm2 = 0.0;
  for (std::size_t i = 0; i < dense.size(); ++i) {
    err2 += (double(sparse[i]) - dense[i]) * (double(sparse[i]) - dense[i]);
    norm2 += double(dense[i]) * dense[i];
  }

  PlanQuality q = measure_plan(data.in, plan, sparse.data(), int(shape.n_q), 1);
  EXPECT_EQ(q.rows, shape.heads * shape.n_q);
  EXPECT_NEAR(q.recall, recall, 1e-12);
  EXPECT_NEAR(q.min_recall, min_recall, 1e-12);
  EXPECT_LT(q.recall, 0.999);  // the plan really drops mass
  EXPECT_GT(q.rel_err, 1e-3);
  EXPECT_NEAR(q.rel_err, std::sqrt(err2 / norm2), 1e-5 * std::sqrt(err2 / norm2) + 1e-7);
}

TEST(MeasurePlan, RejectsMismatchedPlans) {
  AttnShape shape = make_shape(2, 1, 64, 64, 64);
  RandomAttention data(shape, 1);
  Plan wrong = make_dense_plan(2, 1, 32, 64);
  EXPECT_THROW(measure_plan(data.in, wrong, nullptr, 8, 1), Error);
  Plan broken = make_dense_plan(2, 1, 64, 64);
  broken.ranges.clear();
  EXPECT_THROW(measure_plan(data.in, broken, nullptr, 8, 1), Error);
}

}  // namespace
}  // namespace ls
