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

void run_decode_bench(const DecodeBenchOptions& o) {
  LS_CHECK(o.n > 0 && o.heads > 0 && o.kv_heads > 0 && o.dim > 0 && o.heads % o.kv_heads == 0,
           "bench decode: invalid shape n={} heads={} kv_heads={} dim={}", o.n, o.heads, o.kv_heads, o.dim);
  LS_CHECK(o.threads > 0 && o.repeat > 0, "--threads and --repeat must be positive");
  LS_CHECK(o.layer >= 0 && o.layer < o.layers, "--layer {} outside 0..{}", o.layer, o.layers - 1);
  LS_CHECK(o.needles >= 0 && o.needles <= o.n / 2, "--needles {} for {} keys", o.needles, o.n);
  const KvType type = parse_kv_type(o.cache_type);
  const double bytes_needed = double(o.n) * o.kv_heads * o.dim * (2 * 4.0 + 2 * kv_row_bytes(type, o.dim) / o.dim);
  LS_CHECK(bytes_needed <= double(sysconf(_SC_PHYS_PAGES)) * double(sysconf(_SC_PAGESIZE)),
           "bench decode: n={} needs {:.1f} GiB, more than this machine's memory", o.n, bytes_needed / double(1 << 30));
  set_num_threads(o.threads);

  std::unique_ptr<DecodeSelector> selector = MethodRegistry::instance().make_decode(o.plan);
  const int G = o.kv_heads, D = o.dim, group = o.heads / G;
  const float scale = 1.0f / std::sqrt(float(D));
  std::vector<float> q(std::size_t(o.heads) * D);
  for (std::size_t i = 0; i < q.size(); ++i) q[i] = hash_unit(i, 7);

  KvCache cache({1, G, D, o.n, {}, type, type});
  cache.keep_summaries(selector->needs());
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
  const LayerKeys keys = cache.layer_keys(0, o.n);

  DecodeAttention attention;
  Selection selection;
  std::vector<float> out(q.size()), dense_out(q.size());
  auto step = [&](DecodeSelector& sel, std::vector<float>& result) {
    sel.begin_step(o.n - 1);
    StepResult r;
    for (int layer = 0; layer <= o.layer; ++layer) {
      Timer timer;
      const DecodeQuery query{layer, o.layers, q.data(), o.heads, scale};
      const std::int64_t read = sel.select(query, keys, selection);
      const double select_ms = timer.ms();
      attention.run(cache, 0, q.data(), o.heads, selection, scale, result.data());
      if (layer == o.layer) {
        r.ms = timer.ms();
        r.select_ms = select_ms;
        r.keys = selection.tokens();
        r.bytes = selection.tokens() * (cache.key_row_bytes() + cache.value_row_bytes()) + read;
      }
    }
    return r;
  };
  auto time_steps = [&](DecodeSelector& sel, std::vector<float>& result) {
    step(sel, result);  // warm-up: first touch, scratch buffers
    StepResult total;
    for (int r = 0; r < o.repeat; ++r) {
      const StepResult s = step(sel, result);
      total.ms += s.ms, total.select_ms += s.select_ms, total.keys += s.keys, total.bytes += s.bytes;
    }
    total.ms /= o.repeat, total.select_ms /= o.repeat, total.keys /= o.repeat, total.bytes /= o.repeat;
    return total;
  };
  const StepResult sparse = time_steps(*selector, out);
  std::unique_ptr<DecodeSelector> dense = MethodRegistry::instance().make_decode("dense");
  const StepResult reference = o.compare_dense ? time_steps(*dense, dense_out) : StepResult{};
  if (!o.compare_dense) step(*dense, dense_out);

  // Recall: the dense attention mass of the selected keys, mean over query heads; rel_err of the output.
  step(*selector, out);
  double recall = 0, err = 0, norm = 0;
  std::vector<float> probs(std::size_t(o.n));
  for (int g = 0; g < G; ++g) {
    for (int i = 0; i < group; ++i) {
      // One query head alone: a query of G heads whose head g is it (one head per KV head).
      std::vector<float> qh(std::size_t(G) * D, 0.0f);
      std::copy(q.begin() + (g * group + i) * D, q.begin() + (g * group + i + 1) * D, qh.begin() + g * D);
      const DecodeQuery single{o.layer, o.layers, qh.data(), G, scale};
      decode::attention_probs(single, keys, g, probs.data());
      double mass = 0;
      for (std::int64_t p = 0; p < o.n; ++p)
        if (selection.contains(g, p)) mass += probs[std::size_t(p)];
      recall += mass;
    }
  }
  recall /= o.heads;
  for (std::size_t i = 0; i < out.size(); ++i) {
    err += double(out[i] - dense_out[i]) * double(out[i] - dense_out[i]);
    norm += double(dense_out[i]) * double(dense_out[i]);
  }
  const double rel_err = norm > 0 ? std::sqrt(err / norm) : 0.0;
  const std::int64_t dense_bytes = std::int64_t(G) * o.n * (cache.key_row_bytes() + cache.value_row_bytes());

  nlohmann::json j = {
      {"bench", "decode"},       {"n", o.n},
      {"heads", o.heads},        {"kv_heads", G},
      {"dim", D},                {"threads", o.threads},
      {"cache_type", kv_type_name(type)},
      {"plan", selector->spec()}, {"budget", selector->budget()},
      {"layer", o.layer},        {"layers", o.layers},
      {"tokens_attended", double(sparse.keys) / G},
      {"kv_bytes_read", sparse.bytes},
      {"dense_kv_bytes_read", dense_bytes},
      {"summary_bytes", cache.summary_bytes()},
      {"ms", sparse.ms},         {"select_ms", sparse.select_ms},
      {"recall", recall},        {"rel_err", rel_err},
      {"needles", o.needles},    {"repeat", o.repeat},
  };
  if (o.compare_dense) {
    j["dense_ms"] = reference.ms;
    j["speedup"] = sparse.ms > 0 ? reference.ms / sparse.ms : 0.0;
  }
  if (o.json) {
    std::printf("%s\n", j.dump().c_str());
    return;
  }
  std::printf("decode attention, n=%lld, %d heads / %d KV heads, dim %d, %s cache, %d threads, layer %d of %d\n",
              (long long)o.n, o.heads, G, D, kv_type_name(type), o.threads, o.layer, o.layers);
  std::printf("  %-40s %8.3f ms/step (selection %.3f ms)  %7.0f keys per KV head  %6.2f MB read  recall %.4f  "
              "rel_err %.2e\n",
              selector->spec().c_str(), sparse.ms, sparse.select_ms, double(sparse.keys) / G, sparse.bytes / 1e6,
              recall, rel_err);
  if (o.compare_dense)
    std::printf("  %-40s %8.3f ms/step  %7lld keys per KV head  %6.2f MB read  speedup %.2fx\n", "dense", reference.ms,
                (long long)o.n, dense_bytes / 1e6, reference.ms / sparse.ms);
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
  cmd->add_option("--plan", o->plan, "decode selector spec (see `longsparse methods`)")->capture_default_str();
  cmd->add_option("--cache-type", o->cache_type, "KV element type: f32, f16, bf16, q8_0")->capture_default_str();
  cmd->add_flag("--compare-dense", o->compare_dense, "Also time dense decode");
  cmd->add_flag("--json", o->json, "Print one JSON object");
  cmd->callback([o] { run_decode_bench(*o); });
}

}  // namespace ls::cli
