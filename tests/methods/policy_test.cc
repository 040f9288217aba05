// Policy: default spec, dense layers, per-head profiles (JSON round trip and clear errors), and
// the per-head plan assembly that lets one layer mix methods.
#include "methods/policy.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "methods/registry.h"
#include "synthetic.h"

namespace ls {
namespace {

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("longsparse_policy_" + std::to_string(::getpid()) + "_" + name))
      .string();
}

void write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

std::string error_of(auto&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Policy, DefaultSpecAndDenseLayers) {
  Policy policy("streaming:window=128");
  policy.set_dense_layers(parse_layer_list("0,2-3"));
  EXPECT_EQ(policy.spec(0, 5), "dense");
  EXPECT_EQ(policy.spec(3, 0), "dense");
  EXPECT_EQ(policy.spec(1, 0), "streaming:sink=4,window=128,tri=false,tri_last=100");
  EXPECT_EQ(policy.method(1, 0).spec(), policy.spec(1, 0));
  test::Synthetic syn(4, 2, 512, 16);
  EXPECT_DOUBLE_EQ(density(policy.build_plan(syn.input(), 0)), 1.0);
  EXPECT_LT(density(policy.build_plan(syn.input(), 1)), 0.6);
  EXPECT_THROW(Policy("nope"), Error);
}

TEST(Policy, SpecsAreCanonicalWhateverTheirSpelling) {
  Policy policy("streaming");
  HeadProfile profile;
  profile.layers = {{{"streaming"}, {"streaming:window=2000,sink=4"}, {"dense"}}};
  policy.set_profile(profile);
  EXPECT_EQ(policy.spec(0, 0), "streaming:sink=4,window=2000,tri=false,tri_last=100");
  EXPECT_EQ(policy.spec(0, 1), policy.spec(0, 0));
  EXPECT_EQ(&policy.method(0, 0), &policy.method(0, 1));  // one method object per spec
  EXPECT_EQ(policy.method(0, 2).spec(), "dense");
  EXPECT_EQ(policy.spec(5, 1), policy.spec(0, 0));  // beyond the profile: the default
}

TEST(Policy, LayerListsParseAndRejectGarbage) {
  EXPECT_EQ(parse_layer_list("3,0-1,1"), (std::vector<int>{0, 1, 3}));
  EXPECT_EQ(parse_layer_list(""), std::vector<int>{});
  for (const char* bad : {"a", "1,", "3-1", "-2", "1;2"}) EXPECT_THROW(parse_layer_list(bad), Error) << bad;
}

TEST(Policy, MixedHeadsTakeRowsFromTheirOwnMethod) {
  test::Synthetic syn(4, 2, 700, 32, 3, 0.5f);
  auto in = syn.input();
  HeadProfile profile;
  profile.layers = {{{"streaming:sink=4,window=64"}, {"vertical-slash:v=30,s=60"}, {"power:block=128,window=1"},
                     {"dense"}}};
  Policy policy("dense");
  policy.set_profile(profile);
  EXPECT_FALSE(policy.uniform(0, 4));
  EXPECT_TRUE(policy.uniform(1, 4));  // not in the profile: default everywhere
  Plan plan = policy.build_plan(in, 0);
  ASSERT_NO_THROW(validate(plan));
  EXPECT_EQ(plan.row_heads, 4);
  EXPECT_EQ(plan.block_q, 64);  // power's 128-blocks refined to 64
  auto& registry = MethodRegistry::instance();
  for (int h = 0; h < 4; ++h) {
    Plan own = registry.make_prefill(profile.layers[0][h].spec)->build_plan(in, PlanContext{});
    for (std::int64_t i = 0; i < 700; i += 17)
      for (std::int64_t key = 0; key <= i; key += 3)
        ASSERT_EQ(plan.selects(h, i, key), own.selects(h, i, key)) << h << " " << i << " " << key;
  }
}

TEST(Policy, RefineIsExactAndRejectsNonDivisors) {
  test::Synthetic syn(2, 1, 600, 16);
  Plan coarse = MethodRegistry::instance().make_prefill("power:block=128,window=1")->build_plan(syn.input(), {});
  Plan fine = refine_plan(coarse, 32, 64);
  ASSERT_NO_THROW(validate(fine));
  for (std::int64_t i = 0; i < 600; i += 7)
    for (std::int64_t key = 0; key <= i; ++key) ASSERT_EQ(fine.selects(1, i, key), coarse.selects(1, i, key));
  EXPECT_DOUBLE_EQ(density(fine), density(coarse));
  EXPECT_THROW(refine_plan(coarse, 48, 64), Error);
}

TEST(Policy, ProfileRoundTripsThroughJson) {
  HeadProfile profile;
  profile.model = "test";
  profile.layers = {{{"vertical-slash:v=100,s=800", 0.97}, {"streaming", -1}},
                    {{"block-sparse:topk=10", 0.5}, {"dense", 1.0}}};
  std::string path = temp_path("roundtrip.json");
  save_profile(profile, path);
  HeadProfile back = load_profile(path);
  std::remove(path.c_str());
  EXPECT_EQ(back.model, "test");
  ASSERT_EQ(back.layers.size(), 2u);
  EXPECT_EQ(back.layers[0][0].spec, "vertical-slash:v=100,s=800,last_q=64,cover=official");  // canonical
  EXPECT_DOUBLE_EQ(back.layers[0][0].recall, 0.97);
  EXPECT_EQ(back.layers[0][1].recall, -1);
  EXPECT_EQ(back.layers[1][0].spec, "block-sparse:topk=10,block=64");
}

TEST(Policy, BadProfilesGiveClearErrors) {
  std::string path = temp_path("bad.json");
  auto load = [&](const std::string& text) {
    write(path, text);
    return error_of([&] { load_profile(path); });
  };
  EXPECT_NE(error_of([] { load_profile("/nonexistent/profile.json"); }).find("cannot open"), std::string::npos);
  EXPECT_NE(load("{not json").find("not valid JSON"), std::string::npos);
  EXPECT_NE(load(R"({"layers": []})").find("format"), std::string::npos);
  const std::string head = R"({"format": "longsparse-head-profile", "version": 1, "layers": )";
  EXPECT_NE(load(head + "[]}").find("non-empty"), std::string::npos);
  EXPECT_NE(load(head + R"([[{"spec": "dense"}], [{"spec": "dense"}, {"spec": "dense"}]]})").find("layer 1 has 2 heads"),
            std::string::npos);
  std::string unknown = load(head + R"([[{"spec": "dense"}, {"spec": "vertical-slash:q=3"}]]})");
  EXPECT_NE(unknown.find("layer 0 head 1"), std::string::npos) << unknown;
  EXPECT_NE(unknown.find("valid: v, s, last_q, cover"), std::string::npos) << unknown;
  EXPECT_NE(load(head + R"([[{"spec": 3}]]})").find("needs a \"spec\" string"), std::string::npos);
  EXPECT_NE(load(R"({"format": "longsparse-head-profile", "version": 7, "layers": [[{"spec": "dense"}]]})")
                .find("unsupported version 7"),
            std::string::npos);
  std::remove(path.c_str());
  // A profile whose head count does not match the layer is an error, not a silent mix-up.
  HeadProfile two_heads;
  two_heads.layers = {{{"dense"}, {"streaming"}}};
  Policy policy;
  policy.set_profile(two_heads);
  test::Synthetic syn(4, 2, 256, 16);
  EXPECT_NE(error_of([&] { policy.build_plan(syn.input(), 0); }).find("2 heads per layer"), std::string::npos);
}

}  // namespace
}  // namespace ls
