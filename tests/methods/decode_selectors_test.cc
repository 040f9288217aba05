// Every decode selector: finds planted needle keys, attends to more keys (and never less
// attention mass) as the budget grows, falls back to dense below its minimum context, is
// deterministic, and rejects impossible specs.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"
#include "kv/kv_cache.h"
#include "methods/registry.h"

namespace ls {
namespace {

constexpr int kG = 2, kHeads = 4, kDim = 64, kLayers = 12;
constexpr std::int64_t kN = 12000;

struct Fixture {
  std::vector<float> q;
  std::vector<std::int64_t> needles;  // per KV head
  KvCache cache{{1, kG, kDim, kN, {}, KvType::F16, KvType::F16}};

  Fixture() {
    std::mt19937 rng(1);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    q.resize(kHeads * kDim);
    for (float& x : q) x = normal(rng);
    std::vector<float> k(std::size_t(kG) * kN * kDim), v(k.size());
    for (float& x : k) x = 0.5f * normal(rng);
    for (float& x : v) x = normal(rng);
    const int group = kHeads / kG;
    for (int g = 0; g < kG; ++g) {
      const std::int64_t p = 1500 + 4321 * g;  // far from the sink and the recent window
      needles.push_back(p);
      for (int e = 0; e < kDim; ++e) {
        float mean = 0;
        for (int i = 0; i < group; ++i) mean += q[(g * group + i) * kDim + e];
        k[(g * kN + p) * kDim + e] = 1.5f * mean / group;
      }
    }
    cache.keep_summaries({kSummaryPageMinMax | kSummaryBlockMean, 16, 16});
    cache.write(0, 0, kN, k.data(), v.data());
    cache.set_size(kN);
  }

  // Runs layers 0..layer of one step (cross-layer selectors see their selection layers).
  Selection select(DecodeSelector& s, int layer = 7) {  // 7: after tidal's re-selection layer (6)
    Selection out;
    if (!cache.keeps(s.needs())) cache.keep_summaries(s.needs());
    s.begin_step(kN - 1);
    const LayerKeys keys = cache.layer_keys(0, kN);
    for (int l = 0; l <= layer; ++l) s.select({l, kLayers, q.data(), kHeads, 0.125f}, keys, out);
    return out;
  }
  // Dense attention mass of the selection, mean over query heads.
  double recall(const Selection& sel) {
    const LayerKeys keys = cache.layer_keys(0, kN);
    std::vector<float> probs(kN);
    double total = 0;
    for (int g = 0; g < kG; ++g) {
      decode::attention_probs({0, kLayers, q.data(), kHeads, 0.125f}, keys, g, probs.data());
      for (std::int64_t p = 0; p < kN; ++p)
        if (sel.contains(g, p)) total += probs[p];
    }
    return total / kHeads;
  }
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

std::string with_budget(const std::string& name, std::int64_t budget) {
  std::string spec = name + ":budget=" + std::to_string(budget);
  if (name == "nsa-select") spec += ",min_context=4096";
  return spec;
}

const char* const kSparse[] = {"quest", "tidal", "nsa-select", "lserve", "shadowkv"};

TEST(DecodeSelectors, FindPlantedNeedles) {
  Fixture& f = fixture();
  for (const char* name : kSparse) {
    auto s = MethodRegistry::instance().make_decode(with_budget(name, 1024));
    const Selection sel = f.select(*s);
    for (int g = 0; g < kG; ++g) {
      EXPECT_TRUE(sel.contains(g, f.needles[g])) << name << " head " << g;
      EXPECT_LE(sel.tokens(g), 1024) << name;
      EXPECT_TRUE(sel.contains(g, kN - 1)) << name << ": the new token";
    }
  }
  // Sink + window cannot see the needle: the test's needles are really away from both.
  auto streaming = MethodRegistry::instance().make_decode("streaming:budget=1024");
  EXPECT_FALSE(f.select(*streaming).contains(0, f.needles[0]));
}

TEST(DecodeSelectors, LargerBudgetNeverAttendsLess) {
  Fixture& f = fixture();
  for (const char* name : {"quest", "tidal", "nsa-select", "lserve", "shadowkv", "streaming"}) {
    std::int64_t last_tokens = 0;
    double last_recall = 0;
    for (std::int64_t budget : {512, 1024, 2048, 4096}) {
      auto s = MethodRegistry::instance().make_decode(with_budget(name, budget));
      const Selection sel = f.select(*s);
      const double r = f.recall(sel);
      EXPECT_GE(sel.tokens(), last_tokens) << name << " budget " << budget;
      EXPECT_GE(r, last_recall - 1e-6) << name << " budget " << budget;
      EXPECT_LE(sel.tokens(), kG * budget) << name;
      EXPECT_GT(sel.tokens(), kG * budget * 3 / 4) << name << ": the budget is used";
      last_tokens = sel.tokens();
      last_recall = r;
    }
  }
}

TEST(DecodeSelectors, DenseBelowMinimumContextAndInDenseLayers) {
  Fixture& f = fixture();
  auto dense_tokens = [&](const std::string& spec, int layer) {
    auto s = MethodRegistry::instance().make_decode(spec);
    return f.select(*s, layer).tokens() == kG * kN;
  };
  EXPECT_TRUE(dense_tokens("quest:budget=1024", 1));  // the first two layers
  EXPECT_FALSE(dense_tokens("quest:budget=1024", 2));
  EXPECT_TRUE(dense_tokens("nsa-select:budget=2048,min_context=16384", 6));
  EXPECT_TRUE(dense_tokens("quest:budget=12000", 6));  // the budget covers the context
  EXPECT_TRUE(dense_tokens("streaming:budget=20000", 6));
  EXPECT_TRUE(dense_tokens("shadowkv:budget=12000", 6));
  EXPECT_TRUE(dense_tokens("tidal:budget=1024", 2));  // a selection layer attends densely
  EXPECT_FALSE(dense_tokens("tidal:budget=1024", 3));
}

TEST(DecodeSelectors, DeterministicAcrossRunsAndThreads) {
  Fixture& f = fixture();
  for (const char* name : kSparse) {
    set_num_threads(1);
    auto a = MethodRegistry::instance().make_decode(with_budget(name, 2048));
    const Selection one = f.select(*a);
    set_num_threads(2);
    auto b = MethodRegistry::instance().make_decode(with_budget(name, 2048));
    const Selection two = f.select(*b);
    ASSERT_EQ(one.offsets(), two.offsets()) << name;
    for (std::size_t i = 0; i < one.ranges().size(); ++i) {
      EXPECT_EQ(one.ranges()[i].begin, two.ranges()[i].begin) << name;
      EXPECT_EQ(one.ranges()[i].end, two.ranges()[i].end) << name;
    }
  }
  set_num_threads(0);
}

// LServe keeps its selection for `reuse` steps, then selects again.
TEST(DecodeSelectors, LServeReusesItsSelection) {
  Fixture& f = fixture();
  auto s = MethodRegistry::instance().make_decode("lserve:budget=1024,reuse=3");
  const Selection first = f.select(*s);
  // Another query: the reused steps keep the first selection, the fourth step changes it.
  std::vector<float> saved = f.q;
  for (float& x : f.q) x = -x;
  const Selection second = f.select(*s), third = f.select(*s), fourth = f.select(*s);
  f.q = saved;
  EXPECT_EQ(first.ranges().size(), second.ranges().size());
  EXPECT_EQ(first.tokens(), third.tokens());
  bool same = first.ranges().size() == fourth.ranges().size();
  for (std::size_t i = 0; same && i < first.ranges().size(); ++i)
    same = first.ranges()[i].begin == fourth.ranges()[i].begin;
  EXPECT_FALSE(same);
}

TEST(DecodeSelectors, BadSpecsAreClearErrors) {
  auto& r = MethodRegistry::instance();
  EXPECT_THROW(r.make_decode("quest:budget=8"), Error);  // less than one page
  EXPECT_THROW(r.make_decode("quest:budget=1024,x=1"), Error);
  EXPECT_THROW(r.make_decode("nsa-select:block=40"), Error);
  EXPECT_THROW(r.make_decode("lserve:physical=60"), Error);
  EXPECT_THROW(r.make_decode("streaming:budget=4,sink=4"), Error);
  EXPECT_THROW(r.make_decode("shadowkv:budget=400"), Error);  // outliers + local take 416
  try {
    r.make_decode("flexprefill");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("prefill method"), std::string::npos) << e.what();
  }
  EXPECT_THROW(r.make_prefill("quest"), Error);
  EXPECT_EQ(r.make_decode("streaming")->spec(), "streaming:budget=2048,sink=4,shift=false");
  EXPECT_EQ(r.make_prefill("streaming")->spec().rfind("streaming:sink=4", 0), 0u);  // the prefill one
}

}  // namespace
}  // namespace ls
