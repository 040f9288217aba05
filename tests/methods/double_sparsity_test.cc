// The double-sparsity decode selector and its label cache: finds a planted needle through the
// needle's largest channels, attends to more keys (and never less attention mass) as the
// budget grows, keeps labels that match a rebuild after any sequence of writes, rejects
// missing or mismatched channel files; and the calibration statistic picks the channels whose
// q·k products are largest.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "kv/kv_cache.h"
#include "methods/decode/double_sparsity.h"
#include "methods/registry.h"

namespace ls {
namespace {

namespace fs = std::filesystem;

constexpr int kG = 2, kHeads = 4, kDim = 64, kChannels = 8;
constexpr std::int64_t kN = 12000;

std::string temp_path(const std::string& name) {
  return (fs::temp_directory_path() / ("ls_ds_test_" + std::to_string(::getpid()) + "_" + name)).string();
}

// A channels file for `layers` layers of `kv_heads` heads, every head given `heads[g]`.
std::string write_channels(const std::string& name, int layers, const std::vector<std::vector<int>>& heads,
                           int dim = kDim) {
  LabelChannels labels;
  labels.model = "test";
  labels.kv_heads = int(heads.size());
  labels.head_dim = dim;
  labels.channels = int(heads.front().size());
  labels.heads.assign(std::size_t(layers), heads);
  const std::string path = temp_path(name);
  save_label_channels(labels, path);
  return path;
}

// The fixture of decode_selectors_test.cc (random keys, one needle per KV head planted as a
// multiple of the group's mean query), with the label channels of each head chosen as the
// needle's largest channels.
struct Fixture {
  std::vector<float> q, k, v;
  std::vector<std::int64_t> needles;
  std::vector<std::vector<int>> channels;  // per KV head
  std::string file;
  KvCache cache{{1, kG, kDim, kN, {}, KvType::F16, KvType::F16}};

  Fixture() {
    std::mt19937 rng(1);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    q.resize(kHeads * kDim);
    for (float& x : q) x = normal(rng);
    k.resize(std::size_t(kG) * kN * kDim);
    v.resize(k.size());
    for (float& x : k) x = 0.5f * normal(rng);
    for (float& x : v) x = normal(rng);
    const int group = kHeads / kG;
    for (int g = 0; g < kG; ++g) {
      const std::int64_t p = 1500 + 4321 * g;
      needles.push_back(p);
      float* needle = k.data() + (g * kN + p) * kDim;
      for (int e = 0; e < kDim; ++e) {
        float mean = 0;
        for (int i = 0; i < group; ++i) mean += q[(g * group + i) * kDim + e];
        needle[e] = 1.5f * mean / group;
      }
      std::vector<double> magnitude(kDim);
      for (int e = 0; e < kDim; ++e) magnitude[e] = std::fabs(needle[e]);
      channels.push_back(top_channels(magnitude, kChannels));
    }
    file = write_channels("fixture.json", 1, channels);
    cache.write(0, 0, kN, k.data(), v.data());
    cache.set_size(kN);
  }
  ~Fixture() { fs::remove(file); }

  // The fixture is one layer, layer 0: its tests run it sparse and keep the new token unless
  // they say otherwise (the defaults, the official code's, keep layers 0 and 1 dense).
  std::unique_ptr<DecodeSelector> make(const std::string& params = "") {
    std::string spec = "double-sparsity:file=" + file;
    if (params.find("dense_layers=") == std::string::npos) spec += ",dense_layers=0";
    if (params.find("current=") == std::string::npos) spec += ",current=always";
    return MethodRegistry::instance().make_decode(spec + (params.empty() ? "" : "," + params));
  }
  Selection select(DecodeSelector& s) {
    Selection out;
    if (!cache.keeps(s.needs())) cache.keep_summaries(s.needs());
    s.begin_step(kN - 1);
    s.select({0, 1, q.data(), kHeads, 0.125f}, cache.layer_keys(0, kN), out);
    return out;
  }
  double recall(const Selection& sel) {
    const LayerKeys keys = cache.layer_keys(0, kN);
    std::vector<float> probs(kN);
    double total = 0;
    for (int g = 0; g < kG; ++g) {
      decode::attention_probs({0, 1, q.data(), kHeads, 0.125f}, keys, g, probs.data());
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

TEST(DoubleSparsity, FindsTheNeedleThroughItsLargestChannels) {
  Fixture& f = fixture();
  auto s = f.make("budget=1024");
  EXPECT_EQ(s->budget(), 1024);
  const Selection sel = f.select(*s);
  for (int g = 0; g < kG; ++g) {
    EXPECT_TRUE(sel.contains(g, f.needles[g])) << "head " << g;
    EXPECT_EQ(sel.tokens(g), 1024);
    EXPECT_TRUE(sel.contains(g, kN - 1)) << "the new token";
  }
  // Exactly the top keys by the group's summed query on the label channels.
  for (int g = 0; g < kG; ++g) {
    const float* labels = f.cache.labels(0, g);
    std::vector<float> scores(kN - 1, 0.0f);
    for (std::int64_t j = 0; j < kN - 1; ++j)
      for (int i = 0; i < kHeads / kG; ++i)
        for (int c = 0; c < kChannels; ++c)
          scores[j] += f.q[(g * kHeads / kG + i) * kDim + f.channels[g][c]] * labels[j * kChannels + c];
    const std::vector<std::int64_t> top = decode::top_k(scores.data(), kN - 1, 1023);
    std::int64_t matched = 0;
    for (std::int64_t p : top) matched += sel.contains(g, p);
    EXPECT_GE(matched, 1020) << "head " << g;  // up to rounding of near-equal scores
  }
  // Fewer channels of the file still find it (the file's channels are largest first).
  auto two = f.make("budget=1024,channels=2");
  const Selection sel2 = f.select(*two);
  for (int g = 0; g < kG; ++g) EXPECT_TRUE(sel2.contains(g, f.needles[g])) << "head " << g;
}

TEST(DoubleSparsity, LargerBudgetNeverAttendsLess) {
  Fixture& f = fixture();
  std::int64_t last_tokens = 0;
  double last_recall = 0;
  for (std::int64_t budget : {512, 1024, 2048, 4096}) {
    auto s = f.make("budget=" + std::to_string(budget));
    const Selection sel = f.select(*s);
    const double r = f.recall(sel);
    EXPECT_EQ(sel.tokens(), kG * budget);
    EXPECT_GE(sel.tokens(), last_tokens) << "budget " << budget;
    EXPECT_GE(r, last_recall - 1e-6) << "budget " << budget;
    last_tokens = sel.tokens();
    last_recall = r;
  }
}

TEST(DoubleSparsity, DefaultsAreTheOfficialCodes) {
  Fixture& f = fixture();
  auto s = MethodRegistry::instance().make_decode("double-sparsity:file=" + f.file);
  EXPECT_NE(s->spec().find("dense_layers=2"), std::string::npos) << s->spec();
  EXPECT_NE(s->spec().find("current=ranked"), std::string::npos) << s->spec();
  EXPECT_EQ(f.select(*s).tokens(), kG * kN);  // layer 0 is dense
  // Ranked: the budget holds exactly `budget` keys, the new token only if it scores among them.
  auto ranked = f.make("budget=1024,current=ranked");
  const Selection sel = f.select(*ranked);
  for (int g = 0; g < kG; ++g) {
    EXPECT_EQ(sel.tokens(g), 1024);
    EXPECT_TRUE(sel.contains(g, f.needles[g])) << "head " << g;
  }
}

TEST(DoubleSparsity, DenseBelowTheBudgetAndInDenseLayers) {
  Fixture& f = fixture();
  auto s = f.make("budget=" + std::to_string(kN));
  EXPECT_EQ(f.select(*s).tokens(), kG * kN);
  auto first = f.make("budget=512,dense_layers=1");
  EXPECT_EQ(f.select(*first).tokens(), kG * kN);
}

TEST(DoubleSparsity, LabelsAfterIncrementalWritesEqualOneWrite) {
  Fixture& f = fixture();
  SummaryNeeds needs;
  needs.kinds = kSummaryLabels | kSummaryPageMinMax;
  needs.label_channels = f.channels;
  KvCache once({1, kG, kDim, kN, {}, KvType::F16, KvType::F16});
  once.keep_summaries(needs);
  once.write(0, 0, kN, f.k.data(), f.v.data());
  once.set_size(kN);

  // Chunks of odd sizes, then tokens one by one, from head-major slices of the same keys.
  KvCache pieces({1, kG, kDim, kN, {}, KvType::F16, KvType::F16});
  pieces.keep_summaries(needs);
  std::vector<float> k, v;
  auto write = [&](std::int64_t first, std::int64_t n) {
    k.resize(std::size_t(kG * n * kDim));
    v.resize(k.size());
    for (int g = 0; g < kG; ++g) {
      std::copy_n(f.k.data() + (g * kN + first) * kDim, n * kDim, k.data() + g * n * kDim);
      std::copy_n(f.v.data() + (g * kN + first) * kDim, n * kDim, v.data() + g * n * kDim);
    }
    pieces.write(0, first, n, k.data(), v.data());
  };
  std::int64_t p = 0;
  for (std::int64_t n : {1000, 1, 37, 4000, 6900}) write(p, n), p += n;
  for (; p < kN; ++p) write(p, 1);
  pieces.set_size(kN);

  // Kept after the writes: built from what is stored.
  KvCache later = f.cache.clone();
  later.keep_summaries(needs);

  for (int g = 0; g < kG; ++g) {
    ASSERT_NE(once.labels(0, g), nullptr);
    EXPECT_EQ(std::vector<int>(once.label_channels(0, g).begin(), once.label_channels(0, g).end()), f.channels[g]);
    const std::vector<float> a(once.labels(0, g), once.labels(0, g) + kN * kChannels);
    EXPECT_EQ(a, std::vector<float>(pieces.labels(0, g), pieces.labels(0, g) + kN * kChannels)) << "head " << g;
    EXPECT_EQ(a, std::vector<float>(later.labels(0, g), later.labels(0, g) + kN * kChannels)) << "head " << g;
    // A label is the key's channel as stored (f16-rounded).
    std::vector<float> row(kDim);
    once.layer_keys(0, kN).read_keys(g, 777, 778, row.data());
    for (int c = 0; c < kChannels; ++c) EXPECT_EQ(a[777 * kChannels + c], row[f.channels[g][c]]);
    // The other summaries still agree.
    EXPECT_EQ(std::vector<float>(once.page_max(0, g), once.page_max(0, g) + kN / 16 * kDim),
              std::vector<float>(pieces.page_max(0, g), pieces.page_max(0, g) + kN / 16 * kDim));
  }
  const std::int64_t label_bytes = std::int64_t(kG) * kChannels * 4 * kN;
  const std::int64_t minmax_bytes = std::int64_t(kG) * kDim * 4 * 2 * (kN / 16);
  EXPECT_EQ(once.summary_bytes(), label_bytes + minmax_bytes);
  EXPECT_TRUE(once.keeps(needs));
  SummaryNeeds other = needs;
  other.label_channels[0][0] = (other.label_channels[0][0] + 1) % kDim;
  EXPECT_FALSE(once.keeps(other));
  EXPECT_EQ(once.clone().labels(0, 1)[5 * kChannels + 3], once.labels(0, 1)[5 * kChannels + 3]);
}

TEST(DoubleSparsity, RingLayersKeepNoLabels) {
  KvCache cache({2, 1, kDim, 1024, {0, 128}, KvType::F16, KvType::F16});
  SummaryNeeds needs;
  needs.kinds = kSummaryLabels;
  needs.label_channels = {{0, 1}, {2, 3}};
  cache.keep_summaries(needs);
  EXPECT_NE(cache.labels(0, 0), nullptr);
  EXPECT_EQ(cache.labels(1, 0), nullptr);
  EXPECT_TRUE(cache.label_channels(1, 0).empty());
}

TEST(DoubleSparsity, MissingOrMismatchedFileIsAnError) {
  auto& registry = MethodRegistry::instance();
  EXPECT_THROW(registry.make_decode("double-sparsity"), Error);  // no file=
  EXPECT_THROW(registry.make_decode("double-sparsity:file=/nonexistent/channels.json"), Error);
  const std::string bad = temp_path("bad.json");
  std::ofstream(bad) << "{\"layers\": 1, \"heads\": []}";
  EXPECT_THROW(registry.make_decode("double-sparsity:file=" + bad), Error);
  fs::remove(bad);
  const std::string outside = write_channels("outside.json", 1, {{0, 64}}, kDim);  // channel 64 of 64
  EXPECT_THROW(registry.make_decode("double-sparsity:file=" + outside), Error);
  fs::remove(outside);

  // More channels asked for than the file has.
  const std::string two = write_channels("two.json", 1, {{0, 1}, {2, 3}});
  EXPECT_THROW(registry.make_decode("double-sparsity:file=" + two + ",channels=3"), Error);
  // Three KV heads in the file, two in the cache: the cache refuses the label channels.
  const std::string three = write_channels("three.json", 1, {{0, 1}, {2, 3}, {4, 5}});
  auto s = registry.make_decode("double-sparsity:file=" + three + ",channels=2");
  KvCache cache({1, kG, kDim, 4096, {}, KvType::F16, KvType::F16});
  EXPECT_THROW(cache.keep_summaries(s->needs()), Error);
  // Right heads, wrong layer count: select names the file and both shapes.
  auto one_layer = registry.make_decode("double-sparsity:file=" + two + ",channels=2,budget=16,dense_layers=0,current=always");
  cache.keep_summaries(one_layer->needs());
  std::vector<float> k(std::size_t(kG) * 100 * kDim, 0.5f), q(std::size_t(kHeads) * kDim, 1.0f);
  cache.write(0, 0, 100, k.data(), k.data());
  cache.set_size(100);
  Selection out;
  try {
    one_layer->select({0, 30, q.data(), kHeads, 0.125f}, cache.layer_keys(0, 100), out);
    ADD_FAILURE() << "a 1-layer file ran on a 30-layer model";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(two), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(one_layer->select({0, 1, q.data(), kHeads, 0.125f}, cache.layer_keys(0, 100), out));
  EXPECT_EQ(out.tokens(), kG * 16);
  // Equal keys tie everywhere: the lowest positions win, as decode::top_k picks them.
  EXPECT_TRUE(out.contains(1, 0) && out.contains(1, 14) && out.contains(1, 99));
  EXPECT_FALSE(out.contains(1, 15));
  fs::remove(two);
  fs::remove(three);
}

TEST(DoubleSparsity, CalibrationPicksTheLargestQkChannels) {
  // Two KV heads of two query heads each; channel 5 of head 0 and channel 9 of head 1 carry
  // large q and k, channel 7 of head 0 a large q but a zero k (|q·k| = 0: not chosen).
  const int G = 2, H = 4, D = 16;
  const std::int64_t n = 50;
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 0.1f);
  std::vector<float> q(std::size_t(H) * n * D), k(std::size_t(G) * n * D), v(k.size(), 0.0f);
  for (float& x : q) x = normal(rng);
  for (float& x : k) x = normal(rng);
  for (std::int64_t t = 0; t < n; ++t) {
    for (int h = 0; h < 2; ++h) q[(h * n + t) * D + 5] = 3.0f, q[(h * n + t) * D + 7] = 10.0f;
    for (int h = 2; h < 4; ++h) q[(h * n + t) * D + 9] = -2.0f;
    k[(0 * n + t) * D + 5] = t % 2 ? 2.0f : -2.0f;
    k[(0 * n + t) * D + 7] = 0.0f;
    k[(1 * n + t) * D + 9] = 1.5f;
  }
  AttnInput in{q.data(), k.data(), v.data(), {}};
  in.shape.heads = H, in.shape.kv_heads = G, in.shape.dim = D, in.shape.n_q = n, in.shape.n_k = n;
  const auto statistic = channel_qk_statistic(in);
  ASSERT_EQ(statistic.size(), std::size_t(G));
  EXPECT_NEAR(statistic[0][5], 2 * 3.0 * 2.0, 1e-9);  // summed over the group's two query heads
  EXPECT_EQ(statistic[0][7], 0.0);
  EXPECT_EQ(top_channels(statistic[0], 1), std::vector<int>{5});
  EXPECT_EQ(top_channels(statistic[1], 1), std::vector<int>{9});
  EXPECT_EQ(top_channels(statistic[0], D).size(), std::size_t(D));
  EXPECT_THROW(top_channels(statistic[0], D + 1), Error);

  // The file round-trips.
  LabelChannels labels;
  labels.model = "synthetic";
  labels.kv_heads = G, labels.head_dim = D, labels.channels = 3;
  labels.heads = {{top_channels(statistic[0], 3), top_channels(statistic[1], 3)}};
  const std::string path = temp_path("roundtrip.json");
  save_label_channels(labels, path);
  const LabelChannels back = load_label_channels(path);
  EXPECT_EQ(back.heads, labels.heads);
  EXPECT_EQ(back.criterion, "qk");
  EXPECT_EQ(back.head_dim, D);
  fs::remove(path);
}

}  // namespace
}  // namespace ls
