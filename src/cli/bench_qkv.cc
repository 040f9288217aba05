// `longsparse bench attention --qkv DIR --plan SPEC[;SPEC...] [--check]` (bench_qkv.h).
// speedup = dense_ms / (estimate_ms + attn_ms): the estimate is part of the sparse cost.
#include "cli/bench_qkv.h"
#include "cli/runtime.h"

#include <fmt/format.h>

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "attn/analysis.h"
#include "attn/flash.h"
#include "attn/plan_io.h"
#include "cli/bench_plans.h"
#include "cli/command.h"
#include "core/buffer.h"
#include "core/error.h"
#include "core/npy.h"
#include "core/parallel.h"
#include "core/timer.h"
#include "methods/estimate_util.h"
#include "methods/registry.h"

namespace ls::cli {

QkvCapture load_capture(const std::string& dir) {
  const std::filesystem::path root(dir);
  LS_CHECK(std::filesystem::is_directory(root), "--qkv '{}' is not a directory (give a capture's layer<L> directory)",
           dir);
  for (const char* name : {"q.npy", "k.npy", "v.npy"})
    LS_CHECK(std::filesystem::is_regular_file(root / name), "--qkv '{}' has no {} (is it a capture's layer<L> directory?)",
             dir, name);
  QkvCapture c;
  c.q = read_npy((root / "q.npy").string());
  c.k = read_npy((root / "k.npy").string());
  c.v = read_npy((root / "v.npy").string());
  LS_CHECK(c.q.shape.size() == 3 && c.k.shape.size() == 3 && c.v.shape == c.k.shape,
           "--qkv '{}': q must be [heads][n][dim] and k, v the same [kv_heads][n][dim]", dir);
  LS_CHECK(c.q.shape[1] == c.k.shape[1] && c.q.shape[2] == c.k.shape[2],
           "--qkv '{}': q is [{}][{}][{}] but k is [{}][{}][{}]", dir, c.q.shape[0], c.q.shape[1], c.q.shape[2],
           c.k.shape[0], c.k.shape[1], c.k.shape[2]);
  c.shape.heads = int(c.q.shape[0]);
  c.shape.kv_heads = int(c.k.shape[0]);
  c.shape.n_q = c.q.shape[1];
  c.shape.n_k = c.k.shape[1];
  c.shape.dim = int(c.q.shape[2]);
  const std::filesystem::path manifest_path = root / "manifest.json";
  if (std::filesystem::is_regular_file(manifest_path)) {
    std::ifstream file(manifest_path);
    nlohmann::json manifest;
    try {
      manifest = nlohmann::json::parse(file);
      c.layer = manifest.value("layer", -1);
      c.shape.scale = manifest.value("softmax_scale", 0.0f);
      c.shape.window = manifest.value("window", std::int64_t(0));
    } catch (const nlohmann::json::exception& e) {
      fail("--qkv '{}': manifest.json is not valid: {}", dir, e.what());
    }
  }
  c.shape.validate();
  return c;
}

namespace {

std::vector<std::string> split_specs(const std::string& text) {
  std::vector<std::string> specs;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t end = std::min(text.find(';', start), text.size());
    if (end > start) specs.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  LS_CHECK(!specs.empty(), "--plan names no plan");
  return specs;
}

// One plan and its build time; registered methods get the captured layer as context.
struct BuiltPlan {
  Plan plan;
  std::string spec;
  double estimate_ms = 0.0;  // median build time; 0 for the bench-only generators
};

template <typename Fn>
std::vector<double> times_of(int repeat, Fn&& fn) {
  fn();  // warm-up: first-touch page faults, per-thread scratch, idle cores waking up
  std::vector<double> times;
  for (int r = 0; r < repeat; ++r) {
    Timer timer;
    fn();
    times.push_back(timer.ms());
  }
  return times;
}

BuiltPlan build(const std::string& text, const AttnInput& in, int layer, int repeat) {
  const MethodSpec parsed = parse_method_spec(text);
  if (parsed.name == "window" || parsed.name == "random-blocks") {
    BenchPlan p = make_bench_plan(text, in);
    return {std::move(p.plan), p.spec, 0.0};
  }
  std::unique_ptr<PrefillMethod> method;
  try {
    method = MethodRegistry::instance().make_prefill(text);
  } catch (const Error& e) {
    fail("plan '{}': not a bench generator (window, random-blocks) nor a usable method: {}", text, e.what());
  }
  BuiltPlan result;
  const std::vector<double> times = times_of(repeat, [&] { result.plan = method->build_plan(in, PlanContext{layer}); });
  validate(result.plan);
  result.estimate_ms = median(times);
  result.spec = method->spec().empty() ? text : method->spec();
  return result;
}

}  // namespace

void run_qkv_bench(const QkvBenchOptions& o) {
  LS_CHECK(o.threads > 0, "--threads must be positive, got {}", o.threads);
  LS_CHECK(o.repeat > 0, "--repeat must be positive, got {}", o.repeat);
  LS_CHECK(o.quality_rows >= 0, "--quality must be >= 0, got {}", o.quality_rows);
  const std::vector<std::string> specs = split_specs(o.plans);
  LS_CHECK(o.save_plan.empty() || specs.size() == 1, "--save-plan saves one plan, but --plan lists {}", specs.size());
  const QkvCapture capture = load_capture(o.dir);
  const AttnShape& shape = capture.shape;
  const AttnInput in{capture.q.data.data(), capture.k.data.data(), capture.v.data.data(), shape};
  const int rows = o.quality_rows > 0 ? o.quality_rows : 64;
  apply_threads(o.threads);

  Buffer<float> dense(std::size_t(capture.q.elements()), true);  // [heads][n][dim]
  Buffer<float> out(dense.size(), true);                         // [heads][n][dim]
  // Dense is timed before the plans and again after them when there are several, so a load
  // change on the machine during the run shows up in both (each after its warm-up call).
  std::vector<double> dense_times = times_of(o.repeat, [&] { flash_attention(in, dense.data()); });

  std::vector<nlohmann::ordered_json> results;
  bool failed = false;
  for (const std::string& text : specs) {
    nlohmann::ordered_json r;
    r["qkv"] = o.dir;
    r["layer"] = capture.layer;
    r["tokens"] = shape.n_k;
    r["heads"] = shape.heads;
    r["kv_heads"] = shape.kv_heads;
    r["dim"] = shape.dim;
    r["plan"] = text;
    try {
      BuiltPlan built = build(text, in, capture.layer, o.repeat);
      const double attn_ms = median(times_of(o.repeat, [&] { plan_attention(in, built.plan, out.data()); }));
      r["plan"] = built.spec;
      r["density"] = density(built.plan, shape.window);
      if (!o.save_plan.empty()) {
        save_plan(built.plan, o.save_plan, {built.spec, capture.layer, shape.window});
        r["saved_plan"] = o.save_plan;
      }
      if (o.check) {
        const PlanQuality quality = measure_plan(in, built.plan, out.data(), rows, 1);
        r["recall"] = quality.recall;
        r["min_recall"] = quality.min_recall;
        r["rel_err"] = quality.rel_err;
        r["sampled_rows"] = quality.rows;
      }
      r["estimate_ms"] = built.estimate_ms;
      r["attn_ms"] = attn_ms;
      r["estimate_fraction"] = attn_ms > 0 ? built.estimate_ms / attn_ms : 0.0;
    } catch (const Error& e) {
      // One bad spec among several must not lose the others' measurements; a single one is
      // an ordinary error.
      if (specs.size() == 1) throw;
      r["error"] = e.what();
      failed = true;
      std::fprintf(stderr, "longsparse: error: %s\n", e.what());
    }
    results.push_back(std::move(r));
  }
  if (specs.size() > 1) {
    const std::vector<double> more = times_of(o.repeat, [&] { flash_attention(in, dense.data()); });
    dense_times.insert(dense_times.end(), more.begin(), more.end());
  }
  const double dense_ms = median(dense_times);
  for (auto& r : results) {
    if (r.contains("error")) continue;
    const double estimate = r["estimate_ms"].get<double>(), attn = r["attn_ms"].get<double>();
    r["dense_ms"] = dense_ms;
    r["speedup"] = dense_ms / (estimate + attn);
    r["attn_speedup"] = dense_ms / attn;
    r["threads"] = o.threads;
    r["repeat"] = o.repeat;
    r["estimate_precision"] = estimate::score_precision();
  }

  if (failed) exit_status() = 1;
  if (o.json) {
    for (const auto& r : results) std::printf("%s\n", r.dump().c_str());
    return;
  }
  std::printf("longsparse bench attention --qkv %s   (layer %d, n=%lld, heads=%d, kv_heads=%d, dim=%d; %d threads; "
              "median of %d; estimate scores in %s)\n",
              o.dir.c_str(), capture.layer, (long long)shape.n_k, shape.heads, shape.kv_heads, shape.dim, o.threads,
              o.repeat, estimate::score_precision());
  int width = 4;
  for (const auto& r : results) width = std::max(width, int(r["plan"].get<std::string>().size()));
  std::printf("%-*s %8s %8s %9s %11s %9s %9s %8s\n", width, "plan", "density", "recall", "rel_err", "estimate ms",
              "attn ms", "dense ms", "speedup");
  for (const auto& r : results) {
    if (r.contains("error")) {
      std::printf("%-*s failed: %s\n", width, r["plan"].get<std::string>().c_str(), r["error"].get<std::string>().c_str());
      continue;
    }
    const std::string recall = o.check ? fmt::format("{:.4f}", r["recall"].get<double>()) : "-";
    const std::string rel_err = o.check ? fmt::format("{:.2e}", r["rel_err"].get<double>()) : "-";
    std::printf("%-*s %8.4f %8s %9s %11.2f %9.2f %9.2f %7.2fx\n", width, r["plan"].get<std::string>().c_str(),
                r["density"].get<double>(), recall.c_str(), rel_err.c_str(), r["estimate_ms"].get<double>(),
                r["attn_ms"].get<double>(), dense_ms, r["speedup"].get<double>());
  }
  if (o.check) std::printf("(recall and rel_err on %d sampled query rows per head)\n", rows);
  std::printf("(speedup = dense ms / (estimate ms + attn ms))\n");
}

}  // namespace ls::cli
