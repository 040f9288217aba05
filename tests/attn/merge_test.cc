// Partial attentions and their merge (attn/merge.h, attention_at in attn/flash.h): the
// building blocks of ring and Star Attention. Blocks of queries against blocks of keys,
// merged through their log-sum-exp, equal attention over the union, checked against the
// double-precision reference.
#include "attn/merge.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "attn/flash.h"
#include "attn/reference.h"
#include "attn_test_util.h"
#include "core/error.h"

namespace ls {
namespace {

using testing::make_shape;
using testing::max_abs_diff;
using testing::RandomAttention;

// Rows [begin, begin + count) of every head of a head-major [heads][n][dim] array.
std::vector<float> rows_of(const float* data, int heads, std::int64_t n, int dim, std::int64_t begin,
                           std::int64_t count) {
  std::vector<float> out(std::size_t(heads) * count * dim);
  for (int h = 0; h < heads; ++h)
    std::copy_n(data + (h * n + begin) * dim, count * dim, out.data() + std::size_t(h) * count * dim);
  return out;
}

// Double-precision attention of query (head h, position p) over the keys `keys` (positions
// in the frame of `in`), and its log-sum-exp.
double reference_row(const AttnInput& in, int h, const float* q, const std::vector<std::int64_t>& keys, float* out) {
  const AttnShape& s = in.shape;
  const int g = s.kv_head_of(h);
  std::vector<double> scores;
  double max = -INFINITY;
  for (std::int64_t j : keys) {
    double dot = 0;
    for (int c = 0; c < s.dim; ++c) dot += double(q[c]) * in.k_row(g, j)[c];
    scores.push_back(dot * s.softmax_scale());
    max = std::max(max, scores.back());
  }
  double sum = 0;
  std::vector<double> acc(s.dim, 0.0);
  for (std::size_t i = 0; i < keys.size(); ++i) {
    const double w = std::exp(scores[i] - max);
    sum += w;
    for (int c = 0; c < s.dim; ++c) acc[c] += w * in.v_row(g, keys[i])[c];
  }
  for (int c = 0; c < s.dim; ++c) out[c] = float(acc[c] / sum);
  return max + std::log(sum);
}

// Ring attention on one process: the queries of each block attend to their own block
// (causal) and to every earlier block, the parts merged; equals attention over the whole.
void expect_blocks_equal_whole(std::int64_t window) {
  const std::int64_t n = 300;
  const std::vector<std::int64_t> begin = {0, 90, 91, 200, 300};  // uneven, one block of 1 token
  const AttnShape shape = make_shape(6, 2, n, n, 64, window);
  RandomAttention data(shape, 5 + window, 1.5f);
  std::vector<float> expected(data.out_size()), got(data.out_size());
  reference_attention(data.in, expected.data());
  const int H = shape.heads, G = shape.kv_heads, D = shape.dim;
  for (std::size_t b = 0; b + 1 < begin.size(); ++b) {
    const std::int64_t s = begin[b], m = begin[b + 1] - s;
    std::vector<float> q = rows_of(data.q.data(), H, n, D, s, m);
    std::vector<float> out(std::size_t(H) * m * D), part(out.size());
    std::vector<double> lse(std::size_t(H) * m), part_lse(lse.size());
    for (std::size_t j = 0; j <= b; ++j) {
      const std::int64_t ks = begin[j], kn = begin[j + 1] - ks;
      std::vector<float> k = rows_of(data.k.data(), G, n, D, ks, kn), v = rows_of(data.v.data(), G, n, D, ks, kn);
      const AttnInput in{q.data(), k.data(), v.data(), make_shape(H, G, m, kn, D, window)};
      if (j == b) {
        attention_at(in, 0, part.data(), part_lse.data());
      } else {
        attention_at(in, s - ks, part.data(), part_lse.data());
      }
      if (j == 0) {
        out = part, lse = part_lse;
      } else {
        merge_attention(out.data(), lse.data(), part.data(), part_lse.data(), std::int64_t(H) * m, D);
      }
    }
    for (int h = 0; h < H; ++h)
      std::copy_n(out.data() + std::size_t(h) * m * D, m * D, got.data() + (h * n + s) * D);
  }
  EXPECT_LT(max_abs_diff(expected, got), 2e-5) << "window " << window;
}

TEST(MergeAttention, RingBlocksEqualWholeAttention) { expect_blocks_equal_whole(0); }

TEST(MergeAttention, RingBlocksEqualWholeAttentionInAWindow) {
  expect_blocks_equal_whole(70);  // blocks beyond the window contribute nothing
  expect_blocks_equal_whole(1);
}

// Star Attention's phase 1 for one block: the anchor (positions [0, a)) merged with the
// block's own causal attention, against a double-precision softmax over exactly those keys;
// the merged log-sum-exp too.
TEST(MergeAttention, StarAnchorMergeMatchesDoubleReference) {
  const std::int64_t n = 260, a = 40, s = 150, m = n - s;
  const AttnShape shape = make_shape(4, 2, n, n, 64);
  RandomAttention data(shape, 17, 2.0f);
  const int H = 4, G = 2, D = 64;
  std::vector<float> q = rows_of(data.q.data(), H, n, D, s, m);
  std::vector<float> k_own = rows_of(data.k.data(), G, n, D, s, m), v_own = rows_of(data.v.data(), G, n, D, s, m);
  std::vector<float> k_anchor = rows_of(data.k.data(), G, n, D, 0, a), v_anchor = rows_of(data.v.data(), G, n, D, 0, a);
  std::vector<float> out(std::size_t(H) * m * D), part(out.size());
  std::vector<double> lse(std::size_t(H) * m), part_lse(lse.size());
  attention_at({q.data(), k_own.data(), v_own.data(), make_shape(H, G, m, m, D)}, 0, out.data(), lse.data());
  attention_at({q.data(), k_anchor.data(), v_anchor.data(), make_shape(H, G, m, a, D)}, s, part.data(),
               part_lse.data());
  merge_attention(out.data(), lse.data(), part.data(), part_lse.data(), std::int64_t(H) * m, D);
  double worst = 0, worst_lse = 0;
  std::vector<float> row(D);
  for (int h = 0; h < H; ++h) {
    for (std::int64_t i = 0; i < m; ++i) {
      std::vector<std::int64_t> keys;
      for (std::int64_t j = 0; j < a; ++j) keys.push_back(j);
      for (std::int64_t j = s; j <= s + i; ++j) keys.push_back(j);
      const double l = reference_row(data.in, h, data.in.q_row(h, s + i), keys, row.data());
      worst_lse = std::max(worst_lse, std::fabs(l - lse[h * m + i]));
      for (int c = 0; c < D; ++c) worst = std::max(worst, std::fabs(double(row[c]) - out[(h * m + i) * D + c]));
    }
  }
  EXPECT_LT(worst, 2e-5);
  EXPECT_LT(worst_lse, 1e-5);
}

TEST(MergeAttention, APartThatSawNoKeyChangesNothing) {
  std::vector<float> out = {1, 2, 3, 4};
  std::vector<double> lse = {0.5, -1.0};
  const std::vector<float> part = {9, 9, 9, 9};
  const std::vector<double> none = {-INFINITY, -INFINITY};
  merge_attention(out.data(), lse.data(), part.data(), none.data(), 2, 2);
  EXPECT_EQ(out, (std::vector<float>{1, 2, 3, 4}));
  EXPECT_EQ(lse, (std::vector<double>{0.5, -1.0}));
  // And an empty running result takes the part as it is.
  std::vector<float> empty_out(4, 0.0f);
  std::vector<double> empty_lse = none;
  const std::vector<double> part_lse = {0.25, 3.0};
  merge_attention(empty_out.data(), empty_lse.data(), out.data(), part_lse.data(), 2, 2);
  EXPECT_EQ(empty_out, out);
  EXPECT_EQ(empty_lse, part_lse);
}

TEST(MergeAttention, EqualPartsAddLn2) {
  std::vector<float> out = {1, -1};
  std::vector<double> lse = {2.0};
  const std::vector<float> part = {3, 1};
  const std::vector<double> part_lse = {2.0};
  merge_attention(out.data(), lse.data(), part.data(), part_lse.data(), 1, 2);
  EXPECT_FLOAT_EQ(out[0], 2.0f);
  EXPECT_FLOAT_EQ(out[1], 0.0f);
  EXPECT_DOUBLE_EQ(lse[0], 2.0 + std::log(2.0));
}

TEST(AttentionAt, RowsBeyondTheWindowSeeNothing) {
  // Keys at positions 0..49, queries at 200..209 with a window of 100: no key is visible.
  const AttnShape shape = make_shape(2, 1, 10, 50, 64, 100);
  RandomAttention data(shape, 3);
  std::vector<float> out(data.out_size(), 7.0f);
  std::vector<double> lse(20, 7.0);
  attention_at(data.in, 200, out.data(), lse.data());
  for (float x : out) EXPECT_EQ(x, 0.0f);
  for (double x : lse) EXPECT_EQ(x, -std::numeric_limits<double>::infinity());
}

TEST(AttentionAt, AtTheCausalPlacementEqualsFlashAttention) {
  const AttnShape shape = make_shape(4, 2, 77, 130, 64, 33);
  RandomAttention data(shape, 4);
  std::vector<float> expected(data.out_size()), got(data.out_size());
  std::vector<double> lse(4 * 77);
  flash_attention(data.in, expected.data());
  attention_at(data.in, 130 - 77, got.data(), lse.data());
  EXPECT_EQ(max_abs_diff(expected, got), 0.0);
}

TEST(AttentionAt, RefusesQueriesBeforeTheirCausalPlacement) {
  const AttnShape shape = make_shape(2, 1, 10, 50, 64);
  RandomAttention data(shape, 3);
  std::vector<float> out(data.out_size());
  std::vector<double> lse(20);
  EXPECT_THROW(attention_at(data.in, 39, out.data(), lse.data()), Error);
  EXPECT_THROW(attention_at(data.in, 40, out.data(), nullptr), Error);
}

}  // namespace
}  // namespace ls
