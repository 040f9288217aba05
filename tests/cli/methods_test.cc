// `longsparse methods`: the registry on the command line, both phases, and spec checks.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "cli_runner.h"

namespace {

using ls::testing::run_longsparse;

TEST(MethodsCli, ListsBothPhases) {
  const auto r = run_longsparse("methods --json", "", false);
  ASSERT_EQ(r.status, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output);
  int prefill = 0, decode = 0;
  for (const auto& m : j["methods"]) (m["phase"] == "decode" ? decode : prefill)++;
  EXPECT_GE(prefill, 10);
  EXPECT_GE(decode, 8);  // dense, streaming, quest, tidal, nsa-select, lserve, shadowkv, duo
}

TEST(MethodsCli, ChecksASpecInEachPhase) {
  const auto both = run_longsparse("methods streaming");
  ASSERT_EQ(both.status, 0) << both.output;
  EXPECT_THAT(both.output, testing::HasSubstr("streaming  [prefill]"));
  EXPECT_THAT(both.output, testing::HasSubstr("streaming  [decode]"));
  const auto prefill_only = run_longsparse("methods streaming:window=100");  // no decode parameter 'window'
  ASSERT_EQ(prefill_only.status, 0) << prefill_only.output;
  EXPECT_THAT(prefill_only.output, testing::Not(testing::HasSubstr("[decode]")));
  const auto impossible = run_longsparse("methods quest:budget=9");
  EXPECT_EQ(impossible.status, 1);
  EXPECT_THAT(impossible.output, testing::HasSubstr("less than one page"));
  const auto unknown = run_longsparse("methods nope");
  EXPECT_EQ(unknown.status, 1);
  EXPECT_THAT(unknown.output, testing::HasSubstr("quest"));  // the error lists every method
}

}  // namespace
