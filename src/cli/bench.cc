// `longsparse bench attention`: times the plan executor on one synthetic layer (random Q/K/V),
// optionally against the dense flash kernel and an OpenBLAS sgemm measured in the same
// process, so the figures are ratios that survive a noisy machine.
#include <cblas.h>

#include <time.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "attn/analysis.h"
#include "attn/flash.h"
#include "cli/bench_decode.h"
#include "cli/runtime.h"
#include "cli/bench_plans.h"
#include "cli/bench_qkv.h"
#include "cli/command.h"
#include "core/buffer.h"
#include "core/error.h"
#include "core/parallel.h"
#include "core/timer.h"

namespace ls::cli {

namespace {

struct AttentionOptions {
  std::int64_t n = 8192;
  int heads = 9;
  int kv_heads = 3;
  int dim = 64;
  int threads = 2;
  int repeat = 3;
  std::int64_t window = 0;
  std::string plan = "dense";
  bool json = false;
  bool compare_dense = false;
  bool roofline = false;
  int quality_rows = 0;
  int sgemm_size = 2048;
};

// Deterministic values in [-1, 1): a hash of the element index, filled in parallel.
void fill_random(Buffer<float>& buffer, std::uint64_t seed) {
  const std::int64_t n = std::int64_t(buffer.size());
  parallel_for((n + 4095) / 4096, [&](std::int64_t chunk) {
    for (std::int64_t i = chunk * 4096; i < std::min(n, (chunk + 1) * 4096); ++i) {
      std::uint64_t x = (std::uint64_t(i) + seed * 0x9E3779B97F4A7C15ull) * 0xBF58476D1CE4E5B9ull;
      x ^= x >> 31;
      x *= 0x94D049BB133111EBull;
      x ^= x >> 29;
      buffer[i] = float(x >> 40) * 0x1.0p-23f - 1.0f;
    }
  }, 1);
}

double process_cpu_ms() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return double(t.tv_sec) * 1e3 + double(t.tv_nsec) * 1e-6;
}

// Median wall-clock and CPU time (all threads) of `repeat` calls after one untimed warm-up call
// (first-touch page faults, per-thread scratch, idle cores waking up). On a shared, loaded
// machine the CPU time still says how fast the code runs while it has a core.
struct Timing {
  double ms = 0.0;
  double cpu_ms = 0.0;
};

template <typename Fn>
Timing time_runs(int repeat, Fn&& fn) {
  fn();
  std::vector<double> wall, cpu;
  for (int r = 0; r < repeat; ++r) {
    const double cpu0 = process_cpu_ms();
    Timer timer;
    fn();
    wall.push_back(timer.ms());
    cpu.push_back(process_cpu_ms() - cpu0);
  }
  return {median(wall), median(cpu)};
}

// Times C = A·B with M = N = K = size.
Timing time_sgemm(int size, int repeat) {
  Buffer<float> a(std::size_t(size) * size), b(std::size_t(size) * size), c(std::size_t(size) * size, true);
  fill_random(a, 11);
  fill_random(b, 12);
  auto run = [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, size, size, size, 1.0f, a.data(), size, b.data(), size,
                0.0f, c.data(), size);
  };
  return time_runs(repeat, run);
}

double gflops(double flop, double ms) { return flop / (ms * 1e-3) / 1e9; }

void run_attention_bench(const AttentionOptions& opt) {
  LS_CHECK(opt.threads > 0, "--threads must be positive, got {}", opt.threads);
  LS_CHECK(opt.repeat > 0, "--repeat must be positive, got {}", opt.repeat);
  LS_CHECK(opt.quality_rows >= 0, "--quality must be >= 0, got {}", opt.quality_rows);
  AttnShape shape;
  shape.heads = opt.heads;
  shape.kv_heads = opt.kv_heads;
  shape.n_q = opt.n;
  shape.n_k = opt.n;
  shape.dim = opt.dim;
  shape.window = opt.window;
  shape.validate();
  LS_CHECK(!opt.roofline || opt.sgemm_size > 0, "--sgemm-size must be positive, got {}", opt.sgemm_size);
  // Q, K, V and two outputs, in fp32.
  const double bytes = 4.0 * double(opt.n) * opt.dim * (3.0 * opt.heads + 2.0 * opt.kv_heads);
  LS_CHECK(bytes <= double(sysconf(_SC_PHYS_PAGES)) * double(sysconf(_SC_PAGESIZE)),
           "bench attention: n={} needs {:.1f} GiB for Q/K/V/outputs, more than this machine's memory", opt.n,
           bytes / double(1 << 30));

  apply_threads(opt.threads);

  Buffer<float> q(std::size_t(shape.heads) * shape.n_q * shape.dim);     // [heads][n][dim]
  Buffer<float> k(std::size_t(shape.kv_heads) * shape.n_k * shape.dim);  // [kv_heads][n][dim]
  Buffer<float> v(k.size());                                             // [kv_heads][n][dim]
  Buffer<float> out(q.size(), true);                                     // [heads][n][dim]
  fill_random(q, 1);
  fill_random(k, 2);
  fill_random(v, 3);
  AttnInput in{q.data(), k.data(), v.data(), shape};

  BenchPlan plan = make_bench_plan(opt.plan, in);
  const double plan_density = density(plan.plan, shape.window);
  const double flop = plan_density * shape.causal_pairs() * 4.0 * shape.dim;

  nlohmann::ordered_json result;
  result["plan"] = plan.spec;
  result["n"] = opt.n;
  result["heads"] = opt.heads;
  result["kv_heads"] = opt.kv_heads;
  result["dim"] = opt.dim;
  result["window"] = opt.window;
  result["threads"] = opt.threads;
  result["repeat"] = opt.repeat;
  result["simd"] = attention_simd_target();
  result["blas_core"] = openblas_get_corename();
  result["density"] = plan_density;
  if (plan.from_method) result["estimate_ms"] = plan.build_ms;

  const Timing run = time_runs(opt.repeat, [&] { plan_attention(in, plan.plan, out.data()); });
  const double ms = run.ms;
  result["ms"] = ms;
  result["gflops"] = gflops(flop, ms);
  result["cpu_ms"] = run.cpu_ms;
  result["gflops_per_cpu_s"] = gflops(flop, run.cpu_ms);

  if (opt.compare_dense) {
    Buffer<float> dense(q.size(), true);
    const Timing dense_run = time_runs(opt.repeat, [&] { flash_attention(in, dense.data()); });
    const double dense_flop = shape.causal_pairs() * 4.0 * shape.dim;
    result["dense_ms"] = dense_run.ms;
    result["dense_gflops"] = gflops(dense_flop, dense_run.ms);
    result["dense_cpu_ms"] = dense_run.cpu_ms;
    result["dense_gflops_per_cpu_s"] = gflops(dense_flop, dense_run.cpu_ms);
    result["speedup"] = dense_run.ms / ms;
    result["cpu_speedup"] = dense_run.cpu_ms / run.cpu_ms;
    if (plan_density == 1.0) {
      double worst = 0.0;
      for (std::size_t i = 0; i < out.size(); ++i) worst = std::max(worst, double(std::fabs(out[i] - dense[i])));
      result["max_abs_diff_vs_dense"] = worst;
    }
  }
  if (opt.roofline) {
    const Timing sgemm_run = time_sgemm(opt.sgemm_size, opt.repeat);
    const double sgemm_flop = 2.0 * double(opt.sgemm_size) * opt.sgemm_size * opt.sgemm_size;
    const double sgemm = gflops(sgemm_flop, sgemm_run.ms), sgemm_cpu = gflops(sgemm_flop, sgemm_run.cpu_ms);
    result["sgemm_size"] = opt.sgemm_size;
    result["sgemm_gflops"] = sgemm;
    result["sgemm_gflops_per_cpu_s"] = sgemm_cpu;
    result["fraction_of_sgemm"] = result["gflops"].get<double>() / sgemm;
    result["cpu_fraction_of_sgemm"] = result["gflops_per_cpu_s"].get<double>() / sgemm_cpu;
    if (opt.compare_dense) {
      result["dense_fraction_of_sgemm"] = result["dense_gflops"].get<double>() / sgemm;
      result["dense_cpu_fraction_of_sgemm"] = result["dense_gflops_per_cpu_s"].get<double>() / sgemm_cpu;
    }
  }
  if (opt.quality_rows > 0) {
    const PlanQuality quality = measure_plan(in, plan.plan, out.data(), opt.quality_rows, 1);
    result["recall"] = quality.recall;
    result["min_recall"] = quality.min_recall;
    result["rel_err"] = quality.rel_err;
  }

  if (opt.json) {
    std::printf("%s\n", result.dump().c_str());
    return;
  }
  auto number = [&](const char* key) { return result[key].get<double>(); };
  std::printf("longsparse bench attention   (kernels: %s; OpenBLAS core: %s; %d threads; median of %d)\n",
              attention_simd_target(), openblas_get_corename(), opt.threads, opt.repeat);
  std::printf("  shape     n=%lld  heads=%d  kv_heads=%d  dim=%d%s\n", (long long)opt.n, opt.heads, opt.kv_heads,
              opt.dim, opt.window > 0 ? fmt::format("  window={}", opt.window).c_str() : "");
  std::printf("  plan      %s   density %.4f\n", plan.spec.c_str(), plan_density);
  if (plan.from_method) std::printf("  estimate  %10.2f ms   (plan building)\n", plan.build_ms);
  std::printf("              wall ms    GFLOP/s      CPU ms  GFLOP/CPU-s\n");
  std::printf("  executor  %9.2f  %9.1f   %9.2f  %11.1f\n", ms, number("gflops"), number("cpu_ms"),
              number("gflops_per_cpu_s"));
  if (opt.compare_dense) {
    std::printf("  dense     %9.2f  %9.1f   %9.2f  %11.1f   executor speed-up %.2fx (CPU time %.2fx)\n",
                number("dense_ms"), number("dense_gflops"), number("dense_cpu_ms"), number("dense_gflops_per_cpu_s"),
                number("speedup"), number("cpu_speedup"));
    if (result.contains("max_abs_diff_vs_dense"))
      std::printf("            executor vs dense kernel: max |diff| %.2e\n", number("max_abs_diff_vs_dense"));
  }
  if (opt.roofline) {
    std::printf("  sgemm %d^3 (OpenBLAS): %.1f GFLOP/s, %.1f GFLOP/CPU-s\n", opt.sgemm_size, number("sgemm_gflops"),
                number("sgemm_gflops_per_cpu_s"));
    std::printf("  fraction of sgemm: executor %.2f (CPU time %.2f)", number("fraction_of_sgemm"),
                number("cpu_fraction_of_sgemm"));
    if (opt.compare_dense)
      std::printf(", dense %.2f (CPU time %.2f)", number("dense_fraction_of_sgemm"), number("dense_cpu_fraction_of_sgemm"));
    std::printf("\n");
  }
  if (opt.quality_rows > 0)
    std::printf("  quality   recall %.4f (min %.4f), rel. L2 error %.2e on %d sampled rows per head\n",
                number("recall"), number("min_recall"), number("rel_err"), opt.quality_rows);
  std::printf("  (GFLOP/s count 4·dim flops per computed causal query-key pair; CPU time sums all threads)\n");
}

void setup_bench(CLI::App& app) {
  app.require_subcommand(1);
  auto opt = std::make_shared<AttentionOptions>();
  CLI::App* attention = app.add_subcommand("attention", "Time the attention kernels on one synthetic layer");
  attention->add_option("--n", opt->n, "Tokens (queries = keys)")->capture_default_str();
  attention->add_option("--heads", opt->heads, "Query heads")->capture_default_str();
  attention->add_option("--kv-heads", opt->kv_heads, "KV heads (GQA)")->capture_default_str();
  attention->add_option("--dim", opt->dim, "Head dimension")->capture_default_str();
  attention->add_option("--threads", opt->threads, "Threads")->capture_default_str();
  attention->add_option("--repeat", opt->repeat, "Timed repetitions (the median is reported)")->capture_default_str();
  attention->add_option("--window", opt->window, "Sliding window of the layer (0: none)")->capture_default_str();
  attention
      ->add_option("--plan", opt->plan,
                   "dense | window:sink=S,window=W | random-blocks:density=X,seed=S | a registered method spec")
      ->capture_default_str();
  attention->add_flag("--json", opt->json, "Print one JSON object");
  attention->add_flag("--compare-dense", opt->compare_dense, "Also time the dense kernel");
  attention->add_flag("--roofline", opt->roofline, "Also time an OpenBLAS sgemm in the same process");
  attention->add_option("--sgemm-size", opt->sgemm_size, "M = N = K of the roofline sgemm")->capture_default_str();
  attention->add_option("--quality", opt->quality_rows, "Sampled rows per head for recall / error (0: off)")
      ->capture_default_str();
  auto precision = std::make_shared<std::string>("f32");
  attention->add_option("--attn-precision", *precision, "score products Q·Kᵀ: f32 | bf16 (AVX512-BF16)")
      ->capture_default_str();
  auto qkv = std::make_shared<std::string>();
  auto check = std::make_shared<bool>(false);
  auto save_plan = std::make_shared<std::string>();
  attention->add_option("--qkv", *qkv, "Run on a captured layer directory (longsparse capture) instead of random "
                        "inputs; --plan may then list several specs separated by ';'");
  attention->add_flag("--check", *check, "With --qkv: measure recall and rel_err on sampled rows");
  attention->add_option("--save-plan", *save_plan,
                        "With --qkv and one --plan: write the plan's CSR form to FILE.npz (docs/capture.md)");
  attention->callback([opt, qkv, check, save_plan, attention, precision] {
    set_attention_precision(parse_attention_precision(*precision));
    if (!qkv->empty())
      for (const char* name : {"--n", "--heads", "--kv-heads", "--dim", "--window", "--compare-dense", "--roofline"})
        LS_CHECK(attention->get_option(name)->count() == 0,
                 "{} does not apply with --qkv: the shape comes from the capture and dense is always timed", name);
    if (qkv->empty()) {
      LS_CHECK(!*check, "--check needs --qkv (use --quality N on synthetic inputs)");
      LS_CHECK(save_plan->empty(), "--save-plan needs --qkv (plans are saved for a captured layer)");
      run_attention_bench(*opt);
      return;
    }
    run_qkv_bench({*qkv, opt->plan, *check, opt->quality_rows, opt->threads, opt->repeat, opt->json, *save_plan});
  });
  setup_bench_decode(app);
}

}  // namespace

LS_REGISTER_COMMAND(bench, "Time attention kernels and methods", setup_bench);

}  // namespace ls::cli
