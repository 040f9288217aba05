// `longsparse explain --qkv DIR --plan SPEC --positions A-B`: why a sparse prefill loses what a
// prompt hides at key positions A..B (a needle, a passkey). For every query head: the attention
// mass that dense attention puts on those keys from the last queries (exact softmax, double),
// how much of it the plan keeps, and the share of the positions the plan computes. Heads that
// attend to the positions but whose plan drops them are the ones that lose the needle.
// Only sampled rows (the last --rows queries) are computed: never an n × n matrix.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "cli/bench_qkv.h"
#include "cli/command.h"
#include "cli/runtime.h"
#include "core/error.h"
#include "core/parallel.h"
#include "methods/estimate_util.h"
#include "methods/registry.h"

namespace ls::cli {
namespace {

struct ExplainOptions {
  std::string dir, spec = "dense", positions;
  int rows = 64;
  double min_mass = 0.05;
  int threads = 0;
  bool json = false;
};

struct HeadReport {
  double dense_mass = 0.0;  // mean over rows: dense attention mass on the positions
  double kept_mass = 0.0;   // mean over rows: the part of it the plan computes
  double recall = 0.0;      // mean over rows: all the dense mass the plan computes
  double kept_positions = 0.0;  // share of the positions the plan computes for the last query
};

std::pair<std::int64_t, std::int64_t> parse_positions(const std::string& text, std::int64_t n) {
  const auto dash = text.find('-');
  std::int64_t a = -1, b = -1;
  try {
    std::size_t used = 0;
    a = std::stoll(text.substr(0, dash), &used);
    LS_CHECK(used == (dash == std::string::npos ? text.size() : dash), "");
    b = a;
    if (dash != std::string::npos) {
      b = std::stoll(text.substr(dash + 1), &used);
      LS_CHECK(used == text.size() - dash - 1, "");
    }
  } catch (const std::exception&) {
    fail("--positions '{}': expected a key position or a range A-B", text);
  }
  LS_CHECK(a >= 0 && a <= b && b < n, "--positions {}-{}: must satisfy 0 <= A <= B < {} (the capture's tokens)", a, b,
           n);
  return {a, b};
}

void explain(const ExplainOptions& o) {
  apply_threads(o.threads);
  QkvCapture c = load_capture(o.dir);
  const AttnShape& s = c.shape;
  const auto [first, last] = parse_positions(o.positions, s.n_k);
  LS_CHECK(o.rows > 0, "--rows must be positive");
  const std::int64_t rows = std::min<std::int64_t>(o.rows, s.n_q);
  LS_CHECK(s.position(s.n_q - 1) >= first, "--positions {}-{}: no query sees them", first, last);
  AttnInput in{c.q.data.data(), c.k.data.data(), c.v.data.data(), s};
  auto method = MethodRegistry::instance().make_prefill(o.spec);
  const Plan plan = method->build_plan(in, {});

  std::vector<HeadReport> heads(s.heads);
  parallel_for(s.heads, [&](std::int64_t h) {
    std::vector<double> probs(s.n_k);
    HeadReport& r = heads[h];
    for (std::int64_t i = s.n_q - rows; i < s.n_q; ++i) {
      const std::int64_t p = s.position(i), lo = s.first_key(p);
      estimate::softmax_row(in, int(h), in.q_row(int(h), i), lo, p, probs);
      for (std::int64_t key = lo; key <= p; ++key) {
        const bool kept = plan.selects(int(h), i, key);
        if (kept) r.recall += probs[key];
        if (key >= first && key <= last) {
          r.dense_mass += probs[key];
          if (kept) r.kept_mass += probs[key];
        }
      }
    }
    r.dense_mass /= double(rows);
    r.kept_mass /= double(rows);
    r.recall /= double(rows);
    const std::int64_t i = s.n_q - 1, end = std::min(last, s.position(i));
    std::int64_t kept = 0;
    for (std::int64_t key = first; key <= end; ++key) kept += plan.selects(int(h), i, key);
    r.kept_positions = double(kept) / double(end - first + 1);
  });

  std::vector<int> attending, losing;
  for (int h = 0; h < s.heads; ++h)
    if (heads[h].dense_mass >= o.min_mass) {
      attending.push_back(h);
      if (heads[h].kept_mass < 0.5 * heads[h].dense_mass) losing.push_back(h);
    }
  if (o.json) {
    nlohmann::json out = {{"qkv", o.dir},         {"layer", c.layer},      {"plan", o.spec},
                          {"positions", {first, last}}, {"rows", rows},     {"min_mass", o.min_mass},
                          {"density", density(plan)},   {"attending_heads", attending}, {"losing_heads", losing}};
    for (int h = 0; h < s.heads; ++h)
      out["heads"].push_back({{"head", h},
                              {"kv_head", s.kv_head_of(h)},
                              {"dense_mass", heads[h].dense_mass},
                              {"kept_mass", heads[h].kept_mass},
                              {"kept_positions", heads[h].kept_positions},
                              {"recall", heads[h].recall}});
    std::printf("%s\n", out.dump().c_str());
    return;
  }
  std::printf("%s, layer %d, plan %s (density %.4f); keys %lld-%lld, the last %lld queries\n", o.dir.c_str(), c.layer,
              o.spec.c_str(), density(plan), (long long)first, (long long)last, (long long)rows);
  std::printf("%4s %4s %12s %12s %8s %14s %8s\n", "head", "kv", "dense mass", "kept mass", "kept %", "positions kept",
              "recall");
  for (int h = 0; h < s.heads; ++h) {
    const HeadReport& r = heads[h];
    std::printf("%4d %4d %12.4f %12.4f %7.1f%% %13.1f%% %8.4f%s\n", h, s.kv_head_of(h), r.dense_mass, r.kept_mass,
                r.dense_mass > 0 ? 100.0 * r.kept_mass / r.dense_mass : 100.0, 100.0 * r.kept_positions, r.recall,
                r.dense_mass >= o.min_mass && r.kept_mass < 0.5 * r.dense_mass ? "  <- loses the positions" : "");
  }
  std::printf("%zu head(s) put >= %.2f of their attention on keys %lld-%lld; the plan keeps less than half of it on "
              "%zu: %s\n",
              attending.size(), o.min_mass, (long long)first, (long long)last, losing.size(),
              losing.empty() ? "none" : fmt::format("heads {}", fmt::join(losing, ", ")).c_str());
}

void setup_explain(CLI::App& app) {
  auto o = std::make_shared<ExplainOptions>();
  app.add_option("--qkv", o->dir, "a capture's layer directory (longsparse capture)")->required();
  app.add_option("--plan", o->spec, "prefill method spec")->capture_default_str();
  app.add_option("--positions", o->positions, "key positions A-B (or one position) to explain")->required();
  app.add_option("--rows", o->rows, "last queries sampled per head")->capture_default_str();
  app.add_option("--min-mass", o->min_mass, "dense mass on the positions above which a head counts as attending")
      ->capture_default_str();
  app.add_option("-t,--threads", o->threads, "threads (default: all cores)");
  app.add_flag("--json", o->json, "one JSON object");
  app.callback([o] { explain(*o); });
}

}  // namespace

LS_REGISTER_COMMAND(explain, "Per head: the attention mass on key positions and how much of it a plan keeps",
                    setup_explain);

}  // namespace ls::cli
