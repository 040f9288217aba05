// Pattern search: heads with a known best pattern must get it; sampling and the official
// winner mapping behave as documented.
#include "methods/pattern_search.h"

#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "methods/registry.h"
#include "synthetic.h"

namespace ls {
namespace {

std::string name_of(const std::string& spec) { return parse_method_spec(spec).name; }

// n = 2048, three heads (one per KV head):
//   head 0 attends along a diagonal 1200 behind the query: outside any sink + 800 window;
//   head 1 routes query block b to key block b/2: a block pattern no fixed line follows;
//   head 2 attends to 4 sink tokens and its ~150 nearest keys: an A-shape.
test::Synthetic planted() {
  const std::int64_t n = 2048;
  test::Synthetic syn(3, 3, n, 32, 13, 0.0f);
  test::plant_key_positions(syn, 0, {0, 1, 2, 3});
  test::plant_diagonal(syn, 0, 0, 1200, 6.0, 16.0);
  test::plant_diagonal(syn, 0, 2, 0, 4.0, 60.0);
  syn.plant_keys(3, {0, 1, 2, 3}, -40.0f, 0);  // the sinks are head 2's only
  syn.plant_keys(3, {0, 1, 2, 3}, 1.0f, 2);
  const double step = 2.0 * M_PI / 40.0, amp = 800.0 * syn.unscale();
  for (std::int64_t i = 0; i < n; ++i) {
    const double target = double((i / 64) / 2) * step;
    syn.q_row(1, i)[4] = float(amp * std::cos(target));
    syn.q_row(1, i)[5] = float(amp * std::sin(target));
  }
  for (int g = 0; g < 3; ++g)
    for (std::int64_t j = 0; j < n; ++j) {
      syn.k_row(g, j)[4] = float(std::cos(double(j / 64) * step));
      syn.k_row(g, j)[5] = float(std::sin(double(j / 64) * step));
    }
  return syn;
}

PatternSearchOptions options_for_2k() {
  PatternSearchOptions options;
  options.candidates = default_pattern_candidates();
  options.candidates.back() = "block-sparse:topk=4";  // topk=100 is dense at 32 blocks
  return options;
}

TEST(PatternSearch, EachHeadGetsItsPlantedPattern) {
  test::Synthetic syn = planted();
  auto result = search_patterns(syn.input(), options_for_2k());
  ASSERT_EQ(result.size(), 3u);
  EXPECT_EQ(name_of(result[0].spec), "vertical-slash") << result[0].spec;
  EXPECT_EQ(name_of(result[1].spec), "block-sparse") << result[1].spec;
  EXPECT_EQ(name_of(result[2].spec), "streaming") << result[2].spec;
  for (int h = 0; h < 3; ++h) {
    EXPECT_GT(result[h].recall, 0.97) << h;
    ASSERT_EQ(result[h].candidate_recall.size(), 6u);
    for (double r : result[h].candidate_recall) EXPECT_LE(r, result[h].recall + 1e-12);
  }
  EXPECT_LT(result[0].candidate_recall[0], 0.5);  // the A-shape misses head 0's diagonal
  EXPECT_LT(result[1].candidate_recall[1], 0.8);  // vertical-slash misses much of head 1's routing
  // v=3500 is dense at 2k tokens: it is scored but cannot win.
  EXPECT_GT(result[0].candidate_recall[4], 0.999);
  EXPECT_EQ(result[0].spec.find("v=3500"), std::string::npos);
}

TEST(PatternSearch, MinferenceMappingRewritesWinners) {
  test::Synthetic syn = planted();
  PatternSearchOptions options = options_for_2k();
  options.minference_mapping = true;
  auto result = search_patterns(syn.input(), options);
  EXPECT_EQ(result[1].spec, "vertical-slash:v=1000,s=6096,last_q=64,cover=official");
  EXPECT_EQ(result[2].spec, "vertical-slash:v=100,s=800,last_q=64,cover=official");
  EXPECT_EQ(name_of(result[0].spec), "vertical-slash");
}

TEST(PatternSearch, SamplesRowsBeyondTheStartPosition) {
  AttnShape s;
  s.n_q = s.n_k = 32768;
  auto rows = sample_queries(s, 2500, 64);
  EXPECT_EQ(rows.size(), 64u);
  EXPECT_EQ(rows.front(), 2500);
  EXPECT_EQ(rows.back(), 32767);
  EXPECT_TRUE(std::is_sorted(rows.begin(), rows.end()));
  s.n_q = s.n_k = 900;  // shorter input: from n/3 on
  rows = sample_queries(s, 2500, 64);
  EXPECT_EQ(rows.front(), 300);
  s.n_q = 10;  // chunked: only the last 10 positions are queries
  rows = sample_queries(s, 2500, 64);
  EXPECT_EQ(rows.size(), 10u);
  EXPECT_THROW(sample_queries(s, 2500, 0), Error);
}

TEST(PatternSearch, RejectsBadCandidates) {
  test::Synthetic syn(1, 1, 256, 16);
  PatternSearchOptions options;
  options.candidates = {"streaming:nope=1"};
  EXPECT_THROW(search_patterns(syn.input(), options), Error);
  options.candidates.clear();
  EXPECT_THROW(search_patterns(syn.input(), options), Error);
}

}  // namespace
}  // namespace ls
