// `longsparse explain` on a planted capture: one head whose last queries attend to a "needle"
// key far back, the others local. A window plan loses the needle on exactly that head, the
// dense plan keeps all of it; bad positions are clear errors.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli_runner.h"
#include "core/npy.h"

namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr int kHeads = 4, kDim = 16;
constexpr std::int64_t kTokens = 600, kNeedle = 100;

// q [4][600][16], k and v [2][600][16]: keys are distinct unit-ish vectors; head 1's queries
// point at the needle key (so dense attention sends them most of its mass), the other heads'
// queries are near zero (attention spread evenly).
fs::path planted_capture() {
  const fs::path dir = fs::temp_directory_path() / "ls_explain_test" / "layer0";
  fs::create_directories(dir);
  std::vector<float> q(std::size_t(kHeads * kTokens * kDim), 0.01f), k(std::size_t(2 * kTokens * kDim)),
      v(k.size(), 0.5f);
  for (std::int64_t t = 0; t < kTokens; ++t)
    for (int c = 0; c < kDim; ++c)
      for (int g = 0; g < 2; ++g) k[std::size_t((g * kTokens + t) * kDim + c)] = ((t * 7 + c * 3) % 11) * 0.05f;
  for (int c = 0; c < kDim; ++c) k[std::size_t(kNeedle * kDim + c)] = c % 2 ? 3.0f : -3.0f;  // KV head 0
  for (std::int64_t t = 0; t < kTokens; ++t)
    for (int c = 0; c < kDim; ++c) q[std::size_t((1 * kTokens + t) * kDim + c)] = c % 2 ? 3.0f : -3.0f;
  ls::write_npy((dir / "q.npy").string(), q.data(), {kHeads, kTokens, kDim});
  ls::write_npy((dir / "k.npy").string(), k.data(), {2, kTokens, kDim});
  ls::write_npy((dir / "v.npy").string(), v.data(), {2, kTokens, kDim});
  return dir;
}

TEST(Explain, NamesTheHeadWhosePlanDropsTheNeedle) {
  const fs::path dir = planted_capture();
  const auto window = ls::testing::run_longsparse("explain --qkv " + dir.string() +
                                                  " --plan streaming:sink=4,window=128 --positions 100-100 --json",
                                                  "", false);
  ASSERT_EQ(window.status, 0) << window.output;
  const nlohmann::json w = nlohmann::json::parse(window.output);
  EXPECT_EQ(w["attending_heads"], nlohmann::json::array({1}));
  EXPECT_EQ(w["losing_heads"], nlohmann::json::array({1}));
  EXPECT_GT(w["heads"][1]["dense_mass"].get<double>(), 0.9);
  EXPECT_EQ(w["heads"][1]["kept_mass"].get<double>(), 0.0);
  EXPECT_EQ(w["heads"][1]["kept_positions"].get<double>(), 0.0);
  EXPECT_LT(w["heads"][0]["dense_mass"].get<double>(), 0.05);

  const auto dense = ls::testing::run_longsparse(
      "explain --qkv " + dir.string() + " --plan dense --positions 90-110 --json", "", false);
  ASSERT_EQ(dense.status, 0) << dense.output;
  const nlohmann::json d = nlohmann::json::parse(dense.output);
  EXPECT_TRUE(d["losing_heads"].empty());
  for (const auto& h : d["heads"]) {
    EXPECT_DOUBLE_EQ(h["kept_mass"].get<double>(), h["dense_mass"].get<double>());
    EXPECT_NEAR(h["recall"].get<double>(), 1.0, 1e-9);
    EXPECT_EQ(h["kept_positions"].get<double>(), 1.0);
  }

  const auto table = ls::testing::run_longsparse(
      "explain --qkv " + dir.string() + " --plan streaming:sink=4,window=128 --positions 100");
  ASSERT_EQ(table.status, 0) << table.output;
  EXPECT_THAT(table.output, HasSubstr("loses the positions"));
  EXPECT_THAT(table.output, HasSubstr("less than half of it on 1: heads 1"));
}

TEST(Explain, BadPositionsAreErrors) {
  const fs::path dir = planted_capture();
  for (const char* bad : {"700", "20-10", "a-b", "5-", "-3"}) {
    const auto r = ls::testing::run_longsparse("explain --qkv " + dir.string() + " --positions " + bad);
    EXPECT_NE(r.status, 0) << bad;
    EXPECT_THAT(r.output, HasSubstr("--positions")) << bad;
  }
  const auto r = ls::testing::run_longsparse("explain --qkv " + dir.string() + " --positions 1 --plan nope");
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.output, HasSubstr("nope"));
}

}  // namespace
