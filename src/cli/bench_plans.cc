// The bench-only plan generators and the registry fallback of `bench attention --plan`.
#include "cli/bench_plans.h"

#include <algorithm>
#include <charconv>
#include <map>
#include <random>

#include "core/error.h"
#include "core/timer.h"
#include "methods/registry.h"

namespace ls::cli {

namespace {

// Values of a generator spec, checked against the generator's keys.
class GeneratorParams {
 public:
  GeneratorParams(const MethodSpec& spec, std::map<std::string, std::string> defaults) : values_(std::move(defaults)) {
    for (const auto& [key, value] : spec.values) {
      if (!values_.count(key)) {
        std::string valid;
        for (const auto& [name, _] : values_) valid += (valid.empty() ? "" : ", ") + name;
        fail("unknown parameter '{}' for plan generator {}; valid: {}", key, spec.name, valid);
      }
      values_[key] = value;
    }
  }
  double number(const std::string& key, double min, double max) const {
    const std::string& text = values_.at(key);
    double value = 0.0;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    LS_CHECK(error == std::errc() && end == text.data() + text.size() && value >= min && value <= max,
             "plan parameter {}={} must be a number in [{}, {}]", key, text, min, max);
    return value;
  }
  std::int64_t integer(const std::string& key, std::int64_t min, std::int64_t max) const {
    const double value = number(key, double(min), double(max));
    LS_CHECK(value == double(std::int64_t(value)), "plan parameter {}={} must be an integer", key, values_.at(key));
    return std::int64_t(value);
  }
  std::string canonical(const std::string& name) const {
    std::string text = name;
    char sep = ':';
    for (const auto& [key, value] : values_) {
      text += sep + key + "=" + value;
      sep = ',';
    }
    return text;
  }

 private:
  std::map<std::string, std::string> values_;
};

Plan window_plan(const AttnShape& s, std::int64_t sink, std::int64_t window) {
  PlanBuilder b(s.heads, s.kv_heads, s.n_q, s.n_k);
  for (std::int64_t r = 0; r < b.rows(); ++r) {
    b.add_diagonal(r);
    b.add_sink(r, sink);
    b.add_window(r, window);
  }
  return b.finish();
}

// Each off-diagonal causal block is kept with probability p, chosen so that the expected
// density (diagonal blocks included) is `target`.
Plan random_blocks_plan(const AttnShape& s, double target, std::uint64_t seed) {
  PlanBuilder diagonal(s.heads, s.kv_heads, s.n_q, s.n_k);
  for (std::int64_t r = 0; r < diagonal.rows(); ++r) diagonal.add_diagonal(r);
  const double base = density(diagonal.finish(), s.window);
  const double keep = std::clamp((target - base) / (1.0 - base), 0.0, 1.0);
  std::mt19937_64 rng(seed);
  std::bernoulli_distribution coin(keep);
  PlanBuilder b(s.heads, s.kv_heads, s.n_q, s.n_k);
  const Plan& shape = b.shape();
  for (std::int64_t r = 0; r < b.rows(); ++r) {
    const std::int64_t qb = b.q_block_of_row(r);
    b.add_diagonal(r);
    const std::int64_t first = shape.first_position(qb) / shape.block_k;
    for (std::int64_t block = 0; block < first; ++block)
      if (coin(rng)) b.add_blocks(r, block, block + 1);
  }
  return b.finish();
}

}  // namespace

BenchPlan make_bench_plan(const std::string& text, const AttnInput& in) {
  const AttnShape& s = in.shape;
  const MethodSpec spec = parse_method_spec(text);
  BenchPlan result;
  Timer timer;
  if (spec.name == "dense") {
    GeneratorParams params(spec, {});
    result.plan = make_dense_plan(s.heads, s.kv_heads, s.n_q, s.n_k);
    result.spec = "dense";
  } else if (spec.name == "window") {
    GeneratorParams params(spec, {{"sink", "4"}, {"window", "1024"}});
    const std::int64_t sink = params.integer("sink", 0, std::int64_t(1) << 40);
    const std::int64_t window = params.integer("window", 1, std::int64_t(1) << 40);
    result.plan = window_plan(s, std::min(sink, s.n_k), std::min(window, s.n_k));
    result.spec = params.canonical(spec.name);
  } else if (spec.name == "random-blocks") {
    GeneratorParams params(spec, {{"density", "0.1"}, {"seed", "1"}});
    result.plan = random_blocks_plan(s, params.number("density", 0.0, 1.0),
                                     std::uint64_t(params.integer("seed", 0, std::int64_t(1) << 53)));
    result.spec = params.canonical(spec.name);
  } else {
    std::unique_ptr<PrefillMethod> method;
    try {
      method = MethodRegistry::instance().make_prefill(text);
    } catch (const Error& e) {
      fail("plan '{}': not a bench generator (dense, window, random-blocks) nor a usable method: {}", text,
           e.what());
    }
    timer.restart();
    result.plan = method->build_plan(in, PlanContext{});
    result.build_ms = timer.ms();
    result.spec = method->spec().empty() ? text : method->spec();
    result.from_method = true;
    validate(result.plan);
    return result;
  }
  result.build_ms = timer.ms();
  return result;
}

}  // namespace ls::cli
