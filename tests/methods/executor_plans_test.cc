// The plans of every method in this area run on the shared executor (attn/flash.h) and give the
// same output as the reference restricted to the plan: block sizes other than 64 (power's 256,
// block-sparse's 128), per-query-head rows, gathered columns (vertical-slash cover=exact),
// per-head assembled plans and chunked queries.
#include <gtest/gtest.h>

#include "attn/flash.h"
#include "attn/reference.h"
#include "methods/policy.h"
#include "methods/registry.h"
#include "synthetic.h"

namespace ls {
namespace {

void expect_executor_matches_reference(const AttnInput& in, const Plan& plan, const std::string& what) {
  ASSERT_NO_THROW(validate(plan)) << what;
  std::vector<float> fast(std::size_t(in.shape.heads) * in.shape.n_q * in.shape.dim), slow(fast.size());
  plan_attention(in, plan, fast.data());
  reference_plan_attention(in, plan, slow.data());
  EXPECT_LT(test::max_abs_diff(fast, slow), 2e-4) << what;
}

TEST(ExecutorOnMethodPlans, EveryMethodMatchesTheReference) {
  test::Synthetic syn(4, 2, 520, 32, 21, 0.7f);
  auto in = syn.input();
  for (const char* spec : {"streaming:sink=4,window=100", "streaming:sink=70,window=64,tri=true",
                           "lambda:global=10,local=200", "power", "power:block=64,window=2",
                           "vertical-slash:v=40,s=120", "vertical-slash:v=40,s=120,cover=exact",
                           "block-sparse:topk=3", "block-sparse:topk=2,block=128"}) {
    Plan plan = MethodRegistry::instance().make_prefill(spec)->build_plan(in, PlanContext{});
    expect_executor_matches_reference(in, plan, spec);
  }
}

TEST(ExecutorOnMethodPlans, AssembledAndChunkedPlans) {
  test::Synthetic syn(4, 2, 640, 32, 22, 0.7f);
  HeadProfile profile;
  profile.layers = {{{"power:block=128,window=1"}, {"vertical-slash:v=30,s=60,cover=exact"}, {"dense"},
                     {"block-sparse:topk=2"}}};
  Policy policy;
  policy.set_profile(profile);
  expect_executor_matches_reference(syn.input(), policy.build_plan(syn.input(), 0), "assembled");

  syn.shape.n_q = 150;  // the last 150 positions of 640 are queries
  syn.q.resize(std::size_t(4) * 150 * 32);
  for (const char* spec : {"streaming:sink=4,window=100", "power:block=64,window=1", "vertical-slash:v=30,s=60",
                           "block-sparse:topk=2"}) {
    Plan plan = MethodRegistry::instance().make_prefill(spec)->build_plan(syn.input(), PlanContext{});
    expect_executor_matches_reference(syn.input(), plan, std::string("chunked ") + spec);
  }
}

}  // namespace
}  // namespace ls
