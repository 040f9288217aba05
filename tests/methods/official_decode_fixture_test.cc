// Decode selections equal to the official code's on the same keys and query. Each fixture's
// decode_selections.json (tests/data/official/NAME, written by
// scripts/fidelity/official_decode_selections.py; repositories, commits and functions in the
// file and docs/fidelity.md) holds, for a context of t tokens (keys [0, t) of k.npy, the query
// row t - 1 of q.npy's heads), the keys the authors' selection code let the query attend to.
// Our selector, given the same keys and query and the matching parameters, must select exactly
// those keys (Jaccard 1.0). The official Quest and Double Sparsity select per query head (MHA):
// each query head is run here as its own KV head's only query head. ShadowKV is also checked
// for a GQA group (the fixture's query heads of its one KV head), as its code max-reduces them.
#include <gtest/gtest.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/npy.h"
#include "kv/kv_cache.h"
#include "methods/decode/double_sparsity.h"
#include "methods/registry.h"

namespace ls {
namespace {

std::string fixture_dir(const std::string& name) {
  const char* data = std::getenv("LONGSPARSE_TEST_DATA");
  return std::string(data ? data : LONGSPARSE_SOURCE_DIR "/tests/data") + "/official/" + name;
}

struct Fixture {
  nlohmann::json decode;
  NpyArray q, k;  // [heads][n][dim], [1][n][dim]
  int heads = 0, dim = 0;
  std::int64_t n = 0;

  explicit Fixture(const std::string& name) {
    const std::string dir = fixture_dir(name);
    std::ifstream file(dir + "/decode_selections.json");
    if (!file) throw std::runtime_error("missing fixture " + dir + "/decode_selections.json");
    decode = nlohmann::json::parse(file);
    q = read_npy(dir + "/q.npy");
    k = read_npy(dir + "/k.npy");
    heads = int(q.shape.at(0));
    n = q.shape.at(1);
    dim = int(q.shape.at(2));
  }

  // The decode query of a context of t tokens: row t - 1 of the given query heads.
  std::vector<float> query(std::int64_t t, const std::vector<int>& of) const {
    std::vector<float> out;
    for (int h : of) {
      const float* row = q.data.data() + (std::int64_t(h) * n + t - 1) * dim;
      out.insert(out.end(), row, row + dim);
    }
    return out;
  }
};

// passkey1334: 1334 and 1024 tokens; prose1024: 1024 and 1000 (3 and 2 query heads).
const std::vector<const Fixture*>& fixtures() {
  static const Fixture passkey("passkey1334"), prose("prose1024");
  static const std::vector<const Fixture*> all = {&passkey, &prose};
  return all;
}

using Keys = std::set<std::int64_t>;

Keys keys_of(const nlohmann::json& ranges) {
  Keys out;
  for (const nlohmann::json& r : ranges)
    for (std::int64_t p = r[0].get<std::int64_t>(); p < r[1].get<std::int64_t>(); ++p) out.insert(p);
  return out;
}

double jaccard(const Keys& a, const Keys& b) {
  std::size_t both = 0;
  for (std::int64_t x : a) both += b.count(x);
  const std::size_t either = a.size() + b.size() - both;
  return either ? double(both) / double(either) : 1.0;
}

std::string describe(const Keys& ours, const Keys& official) {
  std::vector<std::int64_t> extra, missing;
  for (std::int64_t x : ours)
    if (!official.count(x)) extra.push_back(x);
  for (std::int64_t x : official)
    if (!ours.count(x)) missing.push_back(x);
  auto first = [](const std::vector<std::int64_t>& v) {
    std::string s;
    for (std::size_t i = 0; i < v.size() && i < 8; ++i) s += fmt::format("{}{}", i ? "," : "", v[i]);
    return s + (v.size() > 8 ? ",…" : "");
  };
  return fmt::format("Jaccard {:.4f}: {} keys ours only [{}], {} official only [{}]", jaccard(ours, official),
                     extra.size(), first(extra), missing.size(), first(missing));
}

// Runs `spec` over keys [0, t) of the fixture (one KV head, one layer) for the decode query of
// the given query heads, and returns the keys it selects.
Keys select(const Fixture& f, const std::string& spec, std::int64_t t, const std::vector<int>& of, float scale) {
  auto s = MethodRegistry::instance().make_decode(spec);
  KvCache cache{{1, 1, f.dim, t, {}, KvType::F16, KvType::F16}};  // the fixture's values are float16: exact
  cache.keep_summaries(s->needs());
  const std::vector<float> v(std::size_t(t) * f.dim, 0.0f);
  cache.write(0, 0, t, f.k.data.data(), v.data());  // KV head 0's rows [0, t)
  cache.set_size(t);
  const std::vector<float> q = f.query(t, of);
  Selection out;
  s->begin_step(t - 1);
  s->select({0, 1, q.data(), int(of.size()), scale}, cache.layer_keys(0, t), out);
  Keys keys;
  for (std::int64_t r = out.offsets()[0]; r < out.offsets()[1]; ++r)
    for (std::int64_t p = out.ranges()[r].begin; p < out.ranges()[r].end; ++p) keys.insert(p);
  return keys;
}

std::vector<const nlohmann::json*> cases(const Fixture& f, const std::string& method) {
  std::vector<const nlohmann::json*> out;
  for (const nlohmann::json& c : f.decode["cases"])
    if (c["method"] == method) out.push_back(&c);
  return out;
}

// The fixture covers a context that is not a multiple of the page/chunk sizes and one that is.
TEST(OfficialDecodeSelections, FixturesCoverRaggedAndWholeLengths) {
  std::set<std::int64_t> lengths;
  for (const Fixture* f : fixtures())
    for (const char* m : {"quest", "double-sparsity", "shadowkv"}) {
      const auto cs = cases(*f, m);
      EXPECT_GE(cs.size(), 6u) << m;
      for (const nlohmann::json* c : cs) lengths.insert((*c)["tokens"].get<std::int64_t>());
    }
  EXPECT_EQ(lengths, (std::set<std::int64_t>{1000, 1024, 1334}));
}

// Quest's evaluation code (evaluation/quest_attention.py): per query head, the top
// max(3, token_budget/16) pages by Σ_c max(q_c·min_c, q_c·max_c), the partial current page
// ranked with the others: `current=ranked`.
TEST(OfficialDecodeSelections, QuestRankedIsTheOfficialEvaluationCode) {
  for (const Fixture* fixture : fixtures()) {
    const Fixture& f = *fixture;
    for (const nlohmann::json* c : cases(f, "quest")) {
      const std::int64_t t = (*c)["tokens"], budget = (*c)["params"]["token_budget"];
      ASSERT_EQ((*c)["params"]["chunk_size"], 16);
      ASSERT_GE(budget, 48);  // max(3, budget/16) is budget/16
      for (int h = 0; h < f.heads; ++h) {
        const std::string spec = fmt::format("quest:budget={},page=16,dense_layers=0,current=ranked", budget);
        const Keys ours = select(f, spec, t, {h}, 0.125f), official = keys_of((*c)["heads"][h]);
        EXPECT_EQ(ours, official) << spec << " t=" << t << " head " << h << ": " << describe(ours, official);
      }
    }
  }
}

// Our default (current=always, Quest's kernels: the current page attended, the top
// budget/16 - 1 of the others) equals the evaluation code's selection exactly when that kept
// the current page, and otherwise holds the current page in place of one page the evaluation
// code kept.
TEST(OfficialDecodeSelections, QuestDefaultKeepsTheCurrentPageAsItsKernelsDo) {
  int differing = 0;
  for (const Fixture* fixture : fixtures()) {
    const Fixture& f = *fixture;
    for (const nlohmann::json* c : cases(f, "quest")) {
      const std::int64_t t = (*c)["tokens"], budget = (*c)["params"]["token_budget"];
      const std::int64_t current = (t - 1) / 16 * 16;
      for (int h = 0; h < f.heads; ++h) {
        const std::string spec = fmt::format("quest:budget={},page=16,dense_layers=0", budget);
        const Keys ours = select(f, spec, t, {h}, 0.125f), official = keys_of((*c)["heads"][h]);
        if (official.count(t - 1)) {
          EXPECT_EQ(ours, official) << spec << " t=" << t << " head " << h << ": " << describe(ours, official);
        } else {
          ++differing;
          Keys ours_only, official_only, page;
          for (std::int64_t p : ours)
            if (!official.count(p)) ours_only.insert(p);
          for (std::int64_t p : official)
            if (!ours.count(p)) official_only.insert(p);
          for (std::int64_t p = current; p < t; ++p) page.insert(p);
          EXPECT_EQ(ours_only, page) << spec << ": " << describe(ours, official);  // the current page
          ASSERT_EQ(official_only.size(), 16u) << spec << ": " << describe(ours, official);  // one whole page
          EXPECT_EQ(*official_only.begin() % 16, 0) << spec;
          EXPECT_EQ(*official_only.rbegin(), *official_only.begin() + 15) << spec;
        }
      }
    }
  }
  // Budget 64, head 1, at t = 1024 (passkey1334) and t = 1000 (prose1024): the current page
  // is not among the evaluation code's top 4.
  EXPECT_EQ(differing, 2);
}

// Double Sparsity (LongBench/modify_llama.py, label_bits 16): per query head, the top
// heavy_const keys by q·k over the head's label channels, the new token ranked with the
// others: our default, `current=ranked` (the fixture is one layer, so dense_layers=0: the
// official forwards' dense layers 0 and 1 are our default too). `current=always` keeps the
// new token and the top budget - 1 others: equal when the official top set holds the new
// token, else that token in place of one key of the official set.
TEST(OfficialDecodeSelections, DoubleSparsityRankedIsTheOfficialLongBenchCode) {
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("ls_official_ds_" + std::to_string(::getpid()) + ".json")).string();
  int differing = 0;
  for (const Fixture* fixture : fixtures()) {
    const Fixture& f = *fixture;
    for (const nlohmann::json* c : cases(f, "double-sparsity")) {
      const std::int64_t t = (*c)["tokens"], heavy = (*c)["params"]["heavy_const"];
      const int channels = (*c)["params"]["label_channels"];
      for (int h = 0; h < f.heads; ++h) {
        LabelChannels labels;
        labels.kv_heads = 1;
        labels.head_dim = f.dim;
        labels.channels = channels;
        labels.heads = {{(*c)["channels_per_head"][h].get<std::vector<int>>()}};
        ASSERT_EQ(int(labels.heads[0][0].size()), channels);
        save_label_channels(labels, path);
        const Keys official = keys_of((*c)["heads"][h]);
        const std::string spec =
            fmt::format("double-sparsity:budget={},channels={},file={},dense_layers=0", heavy, channels, path);
        const std::string where = fmt::format("budget={},channels={} t={} head {}", heavy, channels, t, h);
        const Keys ranked = select(f, spec, t, {h}, 0.125f);
        EXPECT_EQ(ranked, official) << where << ": " << describe(ranked, official);
        const Keys ours = select(f, spec + ",current=always", t, {h}, 0.125f);
        if (official.count(t - 1)) {
          EXPECT_EQ(ours, official) << where << ": " << describe(ours, official);
        } else {
          ++differing;
          EXPECT_EQ(ours.size(), official.size()) << where;
          EXPECT_TRUE(ours.count(t - 1)) << where;
          std::size_t shared = 0;
          for (std::int64_t p : ours) shared += official.count(p);
          EXPECT_EQ(shared, official.size() - 1) << where << ": " << describe(ours, official);
        }
      }
    }
  }
  // prose1024 at t = 1024 with 8 channels: budget 128 (both heads) and 256 (head 1).
  EXPECT_EQ(differing, 3);
  std::filesystem::remove(path);
}

// ShadowKV (models/kv_cache.py, ShadowKVCache): prefill of keys [0, t - 1), then the newest
// token's query selects sparse_budget/8 chunks among the landmarks of the non-outlier chunks;
// the 48 outlier chunks and the tail from the local chunks on (and the new token) are exact.
// Our budget counts all of them: sparse_budget + 48·8 + the tail.
TEST(OfficialDecodeSelections, ShadowKvIsTheOfficialAccuracyCache) {
  for (const Fixture* fixture : fixtures()) {
    const Fixture& f = *fixture;
    for (const nlohmann::json* c : cases(f, "shadowkv")) {
      const std::int64_t t = (*c)["tokens"], sparse = (*c)["params"]["sparse_budget"];
      const std::int64_t tail_begin = (*c)["exact_tail"][0], chunks = (*c)["chunks"];
      ASSERT_EQ(tail_begin, chunks * 8);
      ASSERT_EQ((*c)["outlier_chunks"].size(), 48u);
      Keys official = keys_of((*c)["selected"]);
      for (const nlohmann::json& o : (*c)["outlier_chunks"])
        for (std::int64_t p = o.get<std::int64_t>() * 8; p < o.get<std::int64_t>() * 8 + 8; ++p) official.insert(p);
      for (std::int64_t p = tail_begin; p < t; ++p) official.insert(p);
      const std::int64_t budget = sparse + 48 * 8 + (t - tail_begin);
      const std::string spec = fmt::format("shadowkv:budget={},chunk=8,outliers=48,local=4", budget);
      const bool gqa = (*c)["group"] == "gqa";
      std::vector<int> of;
      if (gqa)
        for (int h = 0; h < f.heads; ++h) of.push_back(h);
      else
        of.push_back((*c)["head"].get<int>());
      // The official scores are scaled by 1/sqrt(128) whatever the head dimension; with one
      // query head the scale cannot change the ranking, with a group it can.
      const Keys ours = select(f, spec, t, of, 1.0f / std::sqrt(128.0f));
      EXPECT_EQ(ours.size(), official.size()) << spec;
      EXPECT_EQ(ours, official) << spec << " t=" << t << (gqa ? " gqa" : fmt::format(" head {}", of[0])) << ": "
                                << describe(ours, official);
    }
  }
}

}  // namespace
}  // namespace ls
