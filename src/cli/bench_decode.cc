// `longsparse bench decode` (see bench_decode.h).
//
// The synthetic cache: keys and values uniform in [-1, 1), with `needles` planted keys per KV
// head (a multiple of the group's mean query plus noise) at hashed positions, so that a
// selector has something to find and recall means something. Each timed step runs the
// selector's earlier layers untimed first (cross-layer selectors such as tidal reuse them;
// every layer reads the same synthetic cache) and then times `--layer`: selection plus the
// gather kernel. The figure is the mean over `--repeat` steps, so a selector reused across
// steps (lserve) is charged its amortised cost.
#include "cli/bench_decode.h"
#include "cli/runtime.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/buffer.h"
#include "core/error.h"
#include "core/parallel.h"
#include "core/timer.h"
#include "cli/bench_qkv.h"
#include "kv/decode_attention.h"
#include "kv/kv_cache.h"
#include "methods/registry.h"

namespace ls::cli {
namespace {

struct DecodeBenchOptions {
  std::int64_t n = 32768;
  int heads = 9, kv_heads = 3, dim = 64;
  int threads = 2, repeat = 8;
  int layer = 8, layers = 30;
  int needles = 16;
  std::string qkv;    // a capture's layer directory instead of the synthetic cache
  int queries = 16;   // with --qkv: decode steps at the capture's last positions
  std::string plan = "quest";
  std::string cache_type = "f16";
  bool compare_dense = false;
  bool json = false;
};

float hash_unit(std::uint64_t i, std::uint64_t seed) {  // [-1, 1)
  std::uint64_t x = (i + seed * 0x9E3779B97F4A7C15ull) * 0xBF58476D1CE4E5B9ull;
  x ^= x >> 31;
  x *= 0x94D049BB133111EBull;
  x ^= x >> 29;
  return float(x >> 40) * 0x1.0p-23f - 1.0f;
}

struct StepResult {
  double ms = 0, select_ms = 0;
  std::int64_t keys = 0, bytes = 0;
};

// The keys, values and queries a bench step runs on: a cache of n positions and the query
// vectors of the decode steps timed (position p attends to keys [0, p]).
struct DecodeInput {
  int heads = 0, kv_heads = 0, dim = 0, layer = 0;
  float scale = 1.0f;
  std::int64_t n = 0;
  std::vector<std::int64_t> positions;  // of the queries
  std::vector<float> queries;           // [queries][heads][dim]
};

// Synthetic: one query at n - 1; keys and values uniform, with planted needles.
DecodeInput synthetic_input(const DecodeBenchOptions& o, KvCache& cache) {
  DecodeInput in{o.heads, o.kv_heads, o.dim, o.layer, 1.0f / std::sqrt(float(o.dim)), o.n, {o.n - 1}, {}};
  const int G = o.kv_heads, D = o.dim, group = o.heads / G;
  in.queries.resize(std::size_t(o.heads) * D);
  for (std::size_t i = 0; i < in.queries.size(); ++i) in.queries[i] = hash_unit(i, 7);
  const std::vector<float>& q = in.queries;
  const std::int64_t chunk = 4096;
  Buffer<float> k(std::size_t(G * chunk * D)), v(std::size_t(G * chunk * D));
  for (std::int64_t p0 = 0; p0 < o.n; p0 += chunk) {
    const std::int64_t m = std::min(chunk, o.n - p0);
    parallel_for(G * m, [&](std::int64_t item) {
      const int g = int(item / m);
      const std::int64_t t = item % m, p = p0 + t;
      float* kr = k.data() + (g * m + t) * D;
      float* vr = v.data() + (g * m + t) * D;
      // Needle j of head g sits at a hashed position in the first 90% of the context.
      bool needle = false;
      for (int j = 0; j < o.needles && !needle; ++j)
        needle = p == std::int64_t((0.5f + 0.5f * hash_unit(j, 100 + g)) * 0.9f * float(o.n));
      for (int e = 0; e < D; ++e) {
        kr[e] = hash_unit(std::uint64_t(p * G + g) * D + e, 1);
        vr[e] = hash_unit(std::uint64_t(p * G + g) * D + e, 2);
        if (needle) {
          float mean = 0;
          for (int i = 0; i < group; ++i) mean += q[std::size_t((g * group + i) * D + e)];
          kr[e] = 0.2f * kr[e] + 12.0f * mean / float(group);
        }
      }
    }, 64);
    cache.write(0, p0, m, k.data(), v.data());
  }
  cache.set_size(o.n);
  return in;
}

// Captured: the layer's keys and values as the cache, and its last `queries` query rows.
DecodeInput captured_input(const DecodeBenchOptions& o, const QkvCapture& c, KvCache& cache) {
  const AttnShape& s = c.shape;
  LS_CHECK(s.n_q == s.n_k, "--qkv: the capture must hold a whole prompt (n_q = n_k)");
  LS_CHECK(o.queries > 0 && o.queries < s.n_k, "--queries {} for a capture of {} tokens", o.queries, s.n_k);
  DecodeInput in{s.heads, s.kv_heads, s.dim, c.layer >= 0 ? c.layer : o.layer,
                 s.scale > 0 ? s.scale : 1.0f / std::sqrt(float(s.dim)), s.n_k, {}, {}};
  for (std::int64_t p = s.n_k - o.queries; p < s.n_k; ++p) {
    in.positions.push_back(p);
    for (int h = 0; h < s.heads; ++h) {
      const float* row = c.q.data.data() + (std::int64_t(h) * s.n_q + p) * s.dim;
      in.queries.insert(in.queries.end(), row, row + s.dim);
    }
  }
  cache.write(0, 0, s.n_k, c.k.data.data(), c.v.data.data());
  cache.set_size(s.n_k);
  return in;
}

void run_decode_bench(const DecodeBenchOptions& o) {
  LS_CHECK(o.threads > 0 && o.repeat > 0, "--threads and --repeat must be positive");
  LS_CHECK(o.layers > 0, "--layers must be positive");
  const KvType type = parse_kv_type(o.cache_type);
  apply_threads(o.threads);
  std::unique_ptr<DecodeSelector> selector = MethodRegistry::instance().make_decode(o.plan);
  std::unique_ptr<DecodeSelector> dense = MethodRegistry::instance().make_decode("dense");

  QkvCapture capture;
  if (!o.qkv.empty()) capture = load_capture(o.qkv);
  const int heads = o.qkv.empty() ? o.heads : capture.shape.heads, G = o.qkv.empty() ? o.kv_heads : capture.shape.kv_heads;
  const int D = o.qkv.empty() ? o.dim : capture.shape.dim;
  const std::int64_t n = o.qkv.empty() ? o.n : capture.shape.n_k;
  LS_CHECK(n > 0 && heads > 0 && G > 0 && D > 0 && heads % G == 0,
           "bench decode: invalid shape n={} heads={} kv_heads={} dim={}", n, heads, G, D);
  LS_CHECK(o.needles >= 0 && o.needles <= n / 2, "--needles {} for {} keys", o.needles, n);
  const double bytes_needed = double(n) * G * D * (2 * 4.0 + 2.0 * double(kv_row_bytes(type, D)) / D);
  LS_CHECK(bytes_needed <= double(sysconf(_SC_PHYS_PAGES)) * double(sysconf(_SC_PAGESIZE)),
           "bench decode: n={} needs {:.1f} GiB, more than this machine's memory", n, bytes_needed / double(1 << 30));
  KvCache cache({1, G, D, n, {}, type, type});
  cache.keep_summaries(selector->needs());
  const DecodeInput in = o.qkv.empty() ? synthetic_input(o, cache) : captured_input(o, capture, cache);
  LS_CHECK(in.layer >= 0 && in.layer < o.layers, "--layer {} outside 0..{}", in.layer, o.layers - 1);
  const int group = heads / G;
  const std::size_t q_size = std::size_t(heads) * D;

  DecodeAttention attention;
  Selection selection;
  // One decode step of the query at index i: the selector's layers 0..layer, the last timed.
  auto step = [&](DecodeSelector& sel, std::size_t i, float* result) {
    const std::int64_t p = in.positions[i];
    const float* q = in.queries.data() + i * q_size;
    const LayerKeys keys = cache.layer_keys(0, p + 1);
    sel.begin_step(p);
    StepResult r;
    for (int layer = 0; layer <= in.layer; ++layer) {
      Timer timer;
      const std::int64_t read = sel.select({layer, o.layers, q, heads, in.scale}, keys, selection);
      const double select_ms = timer.ms();
      attention.run(cache, 0, q, heads, selection, in.scale, result);
      if (layer == in.layer) {
        r.ms = timer.ms();
        r.select_ms = select_ms;
        r.keys = selection.tokens();
        r.bytes = selection.tokens() * (cache.key_row_bytes() + cache.value_row_bytes()) + read;
      }
    }
    return r;
  };
  std::vector<float> out(q_size), dense_out(q_size);
  auto time_steps = [&](DecodeSelector& sel) {
    step(sel, 0, out.data());  // warm-up: first touch, scratch buffers
    StepResult total;
    const double steps = double(o.repeat) * double(in.positions.size());
    for (int r = 0; r < o.repeat; ++r)
      for (std::size_t i = 0; i < in.positions.size(); ++i) {
        const StepResult s = step(sel, i, out.data());
        total.ms += s.ms, total.select_ms += s.select_ms, total.keys += s.keys, total.bytes += s.bytes;
      }
    total.ms /= steps, total.select_ms /= steps;
    total.keys = std::int64_t(double(total.keys) / steps), total.bytes = std::int64_t(double(total.bytes) / steps);
    return total;
  };
  const StepResult sparse = time_steps(*selector);
  const StepResult reference = o.compare_dense ? time_steps(*dense) : StepResult{};

  // Recall: the dense attention mass of the selected keys, mean over query heads and steps;
  // rel_err: of the output against dense decode, over every step.
  double recall = 0, err = 0, norm = 0;
  std::vector<float> probs(static_cast<std::size_t>(n)), qh(std::size_t(G) * D);
  selector->reset();
  for (std::size_t i = 0; i < in.positions.size(); ++i) {
    step(*dense, i, dense_out.data());
    step(*selector, i, out.data());
    const std::int64_t p = in.positions[i];
    const LayerKeys keys = cache.layer_keys(0, p + 1);
    const float* q = in.queries.data() + i * q_size;
    for (int g = 0; g < G; ++g)
      for (int h = 0; h < group; ++h) {
        // One query head alone: a query of G heads whose head g is it (one head per KV head).
        std::fill(qh.begin(), qh.end(), 0.0f);
        std::copy(q + (g * group + h) * D, q + (g * group + h + 1) * D, qh.begin() + g * D);
        decode::attention_probs({in.layer, o.layers, qh.data(), G, in.scale}, keys, g, probs.data());
        for (std::int64_t k = 0; k <= p; ++k)
          if (selection.contains(g, k)) recall += probs[std::size_t(k)];
      }
    for (std::size_t e = 0; e < q_size; ++e) {
      err += double(out[e] - dense_out[e]) * double(out[e] - dense_out[e]);
      norm += double(dense_out[e]) * double(dense_out[e]);
    }
  }
  recall /= double(heads) * double(in.positions.size());
  const double rel_err = norm > 0 ? std::sqrt(err / norm) : 0.0;
  const std::int64_t dense_bytes = std::int64_t(G) * n * (cache.key_row_bytes() + cache.value_row_bytes());

  nlohmann::json j = {
      {"bench", "decode"},       {"n", n},
      {"heads", heads},          {"kv_heads", G},
      {"dim", D},                {"threads", o.threads},
      {"cache_type", kv_type_name(type)},
      {"plan", selector->spec()}, {"budget", selector->budget()},
      {"layer", in.layer},       {"layers", o.layers},
      {"tokens_attended", double(sparse.keys) / G},
      {"kv_bytes_read", sparse.bytes},
      {"dense_kv_bytes_read", dense_bytes},
      {"summary_bytes", cache.summary_bytes()},
      {"ms", sparse.ms},         {"select_ms", sparse.select_ms},
      {"recall", recall},        {"rel_err", rel_err},
      {"repeat", o.repeat},      {"queries", in.positions.size()},
  };
  if (o.qkv.empty()) j["needles"] = o.needles;
  else j["qkv"] = o.qkv;
  if (o.compare_dense) {
    j["dense_ms"] = reference.ms;
    j["speedup"] = sparse.ms > 0 ? reference.ms / sparse.ms : 0.0;
  }
  if (o.json) {
    std::printf("%s\n", j.dump().c_str());
    return;
  }
  std::printf("decode attention, n=%lld, %d heads / %d KV heads, dim %d, %s cache, %d threads, layer %d of %d%s\n",
              (long long)n, heads, G, D, kv_type_name(type), o.threads, in.layer, o.layers,
              o.qkv.empty() ? "" : (", captured " + o.qkv).c_str());
  std::printf("  %-40s %8.3f ms/step (selection %.3f ms)  %7.0f keys per KV head  %6.2f MB read  recall %.4f  "
              "rel_err %.2e\n",
              selector->spec().c_str(), sparse.ms, sparse.select_ms, double(sparse.keys) / G, sparse.bytes / 1e6,
              recall, rel_err);
  if (o.compare_dense)
    std::printf("  %-40s %8.3f ms/step  %7lld keys per KV head  %6.2f MB read  speedup %.2fx\n", "dense", reference.ms,
                (long long)n, dense_bytes / 1e6, reference.ms / sparse.ms);
}

}  // namespace

void setup_bench_decode(CLI::App& bench) {
  auto o = std::make_shared<DecodeBenchOptions>();
  CLI::App* cmd = bench.add_subcommand("decode", "Time one decode step's attention (selector + gather kernel)");
  cmd->add_option("--n", o->n, "Cached tokens")->capture_default_str();
  cmd->add_option("--heads", o->heads, "Query heads")->capture_default_str();
  cmd->add_option("--kv-heads", o->kv_heads, "KV heads (GQA)")->capture_default_str();
  cmd->add_option("--dim", o->dim, "Head dimension")->capture_default_str();
  cmd->add_option("--threads", o->threads, "Threads")->capture_default_str();
  cmd->add_option("--repeat", o->repeat, "Timed decode steps (the mean is reported)")->capture_default_str();
  cmd->add_option("--layer", o->layer, "Layer timed (earlier layers run untimed first)")->capture_default_str();
  cmd->add_option("--layers", o->layers, "Layers of the model the selector is told of")->capture_default_str();
  cmd->add_option("--needles", o->needles, "Planted keys per KV head that match the query")->capture_default_str();
  cmd->add_option("--qkv", o->qkv, "Run on a captured layer directory (longsparse capture): its keys and values are "
                  "the cache, its last --queries query rows the decode steps");
  cmd->add_option("--queries", o->queries, "With --qkv: decode steps at the capture's last positions")
      ->capture_default_str();
  cmd->add_option("--plan", o->plan, "decode selector spec (see `longsparse methods`)")->capture_default_str();
  cmd->add_option("--cache-type", o->cache_type, "KV element type: f32, f16, bf16, q8_0")->capture_default_str();
  cmd->add_flag("--compare-dense", o->compare_dense, "Also time dense decode");
  cmd->add_flag("--json", o->json, "Print one JSON object");
  cmd->callback([o, cmd] {
    if (!o->qkv.empty())
      for (const char* name : {"--n", "--heads", "--kv-heads", "--dim", "--needles"})
        LS_CHECK(cmd->get_option(name)->count() == 0, "{} does not apply with --qkv: the capture gives it", name);
    run_decode_bench(*o);
  });
}

}  // namespace ls::cli
