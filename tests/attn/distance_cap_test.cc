// Attention with a RoPE distance cap against a direct double-precision evaluation of its rule.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "attn/distance_cap.h"
#include "attn/flash.h"
#include "attn/plan.h"
#include "attn_test_util.h"
#include "core/error.h"

namespace ls {
namespace {

using testing::make_shape;
using testing::max_abs_diff;
using testing::RandomAttention;

// The rule itself, one row at a time: plan keys (causal, windowed), pairs farther apart than
// `limit` scored with the far vectors.
std::vector<float> reference_far(const AttnInput& in, const Plan& plan, const FarVectors& far) {
  const AttnShape& s = in.shape;
  std::vector<float> out(std::size_t(s.heads) * s.n_q * s.dim);
  for (int h = 0; h < s.heads; ++h) {
    const int g = s.kv_head_of(h);
    for (std::int64_t i = 0; i < s.n_q; ++i) {
      const std::int64_t p = s.position(i);
      std::vector<double> scores(std::size_t(p + 1), -INFINITY);
      double top = -INFINITY;
      for (std::int64_t key = s.first_key(p); key <= p; ++key) {
        if (!plan.selects(h, i, key)) continue;
        const bool is_far = far.limit > 0 && p - key > far.limit;
        const float* q = is_far ? far.q + (std::int64_t(h) * s.n_q + i) * s.dim : in.q_row(h, i);
        const float* k = is_far ? far.k + (std::int64_t(g) * s.n_k + key) * s.dim : in.k_row(g, key);
        double dot = 0.0;
        for (int c = 0; c < s.dim; ++c) dot += double(q[c]) * double(k[c]);
        scores[key] = dot * s.softmax_scale();
        top = std::max(top, scores[key]);
      }
      std::vector<double> acc(s.dim, 0.0);
      double total = 0.0;
      for (std::int64_t key = 0; key <= p; ++key) {
        if (scores[key] == -INFINITY) continue;
        const double w = std::exp(scores[key] - top);
        total += w;
        for (int c = 0; c < s.dim; ++c) acc[c] += w * in.v_row(g, key)[c];
      }
      for (int c = 0; c < s.dim; ++c) out[(std::int64_t(h) * s.n_q + i) * s.dim + c] = float(acc[c] / total);
    }
  }
  return out;
}

// A Λ plan: sink columns, a window of blocks, the diagonal.
Plan lambda_plan(const AttnShape& s, std::int64_t global, std::int64_t local) {
  PlanBuilder b(s.heads, s.kv_heads, s.n_q, s.n_k);
  for (std::int64_t r = 0; r < b.rows(); ++r) {
    b.add_sink(r, global);
    b.add_window(r, local);
    b.add_diagonal(r);
  }
  return b.finish();
}

// Random blocks and columns anywhere in the causal past.
Plan scattered_plan(const AttnShape& s, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  PlanBuilder b(s.heads, s.heads, s.n_q, s.n_k);
  for (std::int64_t r = 0; r < b.rows(); ++r) {
    b.add_diagonal(r);
    for (int i = 0; i < 3; ++i) {
      const std::int64_t begin = std::int64_t(rng() % b.k_blocks());
      b.add_blocks(r, begin, begin + 1 + std::int64_t(rng() % 2));
    }
    for (int i = 0; i < 40; ++i) b.add_column(r, std::int64_t(rng() % s.n_k));
  }
  return b.finish();
}

struct Far {
  std::vector<float> q, k;
  FarVectors vectors;
  Far(const AttnShape& s, std::int64_t limit, std::uint64_t seed) {
    RandomAttention other(s, seed, 2.0f);
    q = other.q;
    k = other.k;
    vectors = {limit, q.data(), k.data()};
  }
};

TEST(DistanceCap, MatchesTheRuleOnLambdaAndScatteredPlans) {
  for (const AttnShape& s : {make_shape(3, 1, 700, 700, 64), make_shape(4, 2, 300, 900, 64),
                             make_shape(2, 2, 650, 650, 128, 400)}) {
    RandomAttention a(s, 7, 2.0f);
    for (std::int64_t limit : {128, 200, 257}) {
      Far far(s, limit, 11);
      for (const Plan& plan : {lambda_plan(s, 10, 128), scattered_plan(s, 3), make_dense_plan(s.heads, s.heads, s.n_q, s.n_k)}) {
        std::vector<float> out(a.out_size());
        plan_attention_far(a.in, plan, far.vectors, out.data());
        EXPECT_LT(max_abs_diff(out, reference_far(a.in, plan, far.vectors)), 2e-5)
            << testing::describe(s) << " limit=" << limit << " " << describe(plan);
      }
    }
  }
}

TEST(DistanceCap, FarVectorsChangeTheOutputOnlyBeyondTheLimit) {
  const AttnShape s = make_shape(2, 1, 600, 600, 64);
  RandomAttention a(s, 5, 2.0f);
  const Plan plan = lambda_plan(s, 16, 128);
  std::vector<float> plain(a.out_size()), capped(a.out_size());
  plan_attention(a.in, plan, plain.data());
  Far far(s, 200, 9);
  plan_attention_far(a.in, plan, far.vectors, capped.data());
  // Queries at positions <= 200 see every key within the limit: the same rows (up to
  // rounding: some of their keys take the per-query path and are merged).
  for (int h = 0; h < s.heads; ++h)
    for (std::int64_t i = 0; i <= 200; ++i)
      for (int c = 0; c < s.dim; ++c) {
        const std::size_t at = (std::size_t(h) * s.n_q + i) * s.dim + c;
        ASSERT_NEAR(plain[at], capped[at], 1e-6) << "head " << h << " query " << i;
      }
  // The last query scores its 16 sink keys with the far vectors: its row differs.
  double diff = 0.0;
  for (int c = 0; c < s.dim; ++c) diff += std::fabs(plain[(s.n_q - 1) * s.dim + c] - capped[(s.n_q - 1) * s.dim + c]);
  EXPECT_GT(diff, 1e-3);
}

TEST(DistanceCap, NoPairBeyondTheLimitIsPlanAttention) {
  const AttnShape s = make_shape(3, 3, 300, 300, 64);
  RandomAttention a(s, 1);
  const Plan plan = scattered_plan(s, 4);
  std::vector<float> plain(a.out_size()), capped(a.out_size());
  plan_attention(a.in, plan, plain.data());
  Far far(s, 299, 2);
  plan_attention_far(a.in, plan, far.vectors, capped.data());
  EXPECT_EQ(plain, capped);
}

TEST(DistanceCap, RejectsALimitBelowTwoBlocks) {
  const AttnShape s = make_shape(1, 1, 300, 300, 64);
  RandomAttention a(s, 1);
  Far far(s, 100, 2);
  std::vector<float> out(a.out_size());
  EXPECT_THROW(plan_attention_far(a.in, make_dense_plan(1, 1, 300, 300), far.vectors, out.data()), Error);
  far.vectors.limit = -1;
  EXPECT_THROW(plan_attention_far(a.in, make_dense_plan(1, 1, 300, 300), far.vectors, out.data()), Error);
}

}  // namespace
}  // namespace ls
