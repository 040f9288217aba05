// The duo decode selector and its calibration: a head that retrieves a far key scores a high
// streaming error and becomes a retrieval head; retrieval heads attend to every key,
// streaming heads to sinks + recent keys; profiles round-trip and bad ones are errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <unistd.h>

#include "core/error.h"
#include "kv/kv_cache.h"
#include "methods/decode/duo.h"
#include "methods/registry.h"

namespace ls {
namespace {

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("ls_duo_" + std::to_string(::getpid()) + "_" + name)).string();
}

// Two KV heads, one query head each. Head 0's queries all match key 10 (far from every
// sampled row's recent window); head 1's keys are noise, so its attention is spread evenly and
// its output, a mean of many values, changes little when only sink + recent are averaged.
TEST(Duo, RetrievingHeadScoresHigherAndIsKept) {
  const int D = 16;
  const std::int64_t n = 2048;
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> q(2 * n * D), k(2 * n * D), v(2 * n * D);
  for (auto* x : {&q, &k, &v})
    for (float& e : *x) e = 0.3f * normal(rng);
  for (std::int64_t t = 0; t < n; ++t)
    for (int e = 0; e < D; ++e) q[t * D + e] = e == 0 ? 4.0f : 0.0f;  // head 0 asks for channel 0
  for (int e = 0; e < D; ++e) k[10 * D + e] = e == 0 ? 4.0f : 0.0f;  // its value is as small as any other
  AttnInput in{q.data(), k.data(), v.data(), {2, 2, n, n, D, 1.0f, 0}};
  const auto scores = score_streaming_error(in, 4, 64, 16);
  ASSERT_EQ(scores.size(), 2u);
  EXPECT_GT(scores[0], 0.5);
  EXPECT_GT(scores[0], 3 * scores[1]);

  DuoProfile profile;
  profile.scores = {scores, {0.0, 0.0}};
  profile.retrieval_fraction = 0.25;
  choose_retrieval_heads(profile);
  EXPECT_EQ(profile.retrieval, (std::vector<std::vector<bool>>{{true, false}, {false, false}}));
  const std::string path = temp_path("round.json");
  save_duo_profile(profile, path);
  const DuoProfile back = load_duo_profile(path);
  EXPECT_EQ(back.retrieval, profile.retrieval);
  EXPECT_EQ(back.scores, profile.scores);

  // The selector: layer 0's KV head 0 dense, head 1 sink 4 + recent 60.
  auto duo = MethodRegistry::instance().make_decode("duo:file=" + path + ",sink=4,recent=60");
  EXPECT_EQ(duo->budget(), 64);
  KvCache cache({1, 2, D, 1000, {}, KvType::F32, KvType::F32});
  std::vector<float> rows(2 * 1000 * D, 0.5f);
  cache.write(0, 0, 1000, rows.data(), rows.data());
  cache.set_size(1000);
  Selection sel;
  duo->select({0, 2, q.data(), 2, 1.0f}, cache.layer_keys(0, 1000), sel);
  EXPECT_EQ(sel.tokens(0), 1000);
  EXPECT_EQ(sel.tokens(1), 64);
  EXPECT_TRUE(sel.contains(1, 3) && sel.contains(1, 999) && !sel.contains(1, 500));
  // A model of another shape is an error naming both.
  EXPECT_THROW(duo->select({0, 3, q.data(), 2, 1.0f}, cache.layer_keys(0, 1000), sel), Error);
  std::filesystem::remove(path);
}

TEST(Duo, BadProfilesAreErrors) {
  EXPECT_THROW(MethodRegistry::instance().make_decode("duo"), Error);  // no file
  EXPECT_THROW(MethodRegistry::instance().make_decode("duo:file=/nonexistent/heads.json"), Error);
  const std::string path = temp_path("bad.json");
  for (const char* text : {"{", R"({"sink": 4})", R"({"sink": 4, "recent": 8, "retrieval_fraction": 0.5,
                            "layers": [{"scores": [0.1, 0.2], "retrieval": [true]}]})"}) {
    std::ofstream(path) << text;
    EXPECT_THROW(load_duo_profile(path), Error) << text;
  }
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace ls
