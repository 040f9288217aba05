#include "cli/runtime.h"

#include <cblas.h>
#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>

#include "attn/flash.h"
#include "core/cpu.h"
#include "core/memory.h"
#include "core/parallel.h"
#include "methods/decode_method.h"
#include "methods/estimate_util.h"
#include "model/generate.h"
#include "model/matmul.h"
#include "model/model_config.h"
#include "model/sparse_prefill.h"

namespace ls::cli {

int apply_threads(int requested) {
  const int cores = available_cores();
  if (requested > cores) {
    std::fprintf(stderr, "longsparse: warning: -t %d is more than the %d cores this process may use; using %d\n",
                 requested, cores, cores);
    requested = cores;
  }
  set_num_threads(requested > 0 ? requested : cores);
  set_blas_threads(num_threads());
  return num_threads();
}

namespace {

// How OpenMP's threads wait between regions: chosen by main() at start (LONGSPARSE_OMP_WAIT),
// or what the environment set.
std::string omp_wait() {
  if (const char* chosen = std::getenv("LONGSPARSE_OMP_WAIT")) return chosen;
  if (const char* policy = std::getenv("OMP_WAIT_POLICY")) return fmt::format("OMP_WAIT_POLICY={} (environment)", policy);
  if (const char* spin = std::getenv("GOMP_SPINCOUNT")) return fmt::format("GOMP_SPINCOUNT={} (environment)", spin);
  return "OpenMP's default";
}

}  // namespace

nlohmann::json kernels_json() {
  nlohmann::json k = {
      {"cpu", cpu_name()},
      {"matmul", int8_kernel_name()},
      {"attention", attention_simd_target()},
      {"attention_scores", attention_precision_name(attention_precision())},
      {"estimate", estimate::score_precision()},
      {"blas_core", openblas_get_corename()},
  };
  if (const char* replaced = std::getenv("LONGSPARSE_REPLACED_BLAS_CORETYPE")) k["blas_core_replaced"] = replaced;
  k["omp_wait"] = omp_wait();
  return k;
}

std::string kernels_line() {
  const char* replaced = std::getenv("LONGSPARSE_REPLACED_BLAS_CORETYPE");
  return fmt::format("cpu {}; matmul int8 {}; attention {} (scores {}); estimates {}; BLAS core {}{}; OpenMP wait {}",
                     cpu_name(), int8_kernel_name(), attention_simd_target(),
                     attention_precision_name(attention_precision()), estimate::score_precision(),
                     openblas_get_corename(),
                     replaced ? fmt::format(" (replacing OPENBLAS_CORETYPE={})", replaced) : std::string(), omp_wait());
}

}  // namespace ls::cli

namespace ls::cli {

nlohmann::json generation_json(const GenerateResult& result, const KvCache& cache, const ModelConfig& config,
                               const SparsePrefill* sparse, const DecodeSelector* selector) {
  return {
      {"text", result.text},
      {"prompt_tokens", result.prompt_tokens},
      {"tokens", result.tokens},
      {"stopped_at_end", result.stopped_at_end},
      {"prefill_ms", result.prefill_ms},
      {"prefill_tok_s", result.prefill_tok_s()},
      {"prefill_attention_ms", result.attention_ms},
      {"decode_tokens", result.decode_tokens},
      {"decode_ms", result.decode_ms},
      {"decode_tok_s", result.decode_tok_s()},
      {"kv_bytes", cache.bytes_used()},
      {"kv_summary_bytes", cache.summary_bytes()},
      {"decode_method", selector ? selector->spec() : "dense"},
      {"decode_budget", selector ? selector->budget() : 0},
      {"decode_keys_attended", result.keys_attended_per_head()},
      {"decode_kv_bytes_per_token", result.kv_bytes_per_token()},
      {"decode_attention_ms", result.decode_stats.attention_ms},
      {"decode_select_ms", result.decode_stats.select_ms},
      {"kv_bytes_allocated", cache.bytes_allocated()},
      {"cache_type_k", kv_type_name(cache.key_type())},
      {"cache_type_v", kv_type_name(cache.value_type())},
      {"layer_pattern", config.layer_pattern()},
      {"prefill_layers", sparse ? nlohmann::json(config.global_layers()) : nlohmann::json::array()},
      {"prefill_method", sparse ? sparse->policy().describe() : "dense"},
      {"prefill_estimate_ms", result.estimate_ms},
      {"prefill_estimate_precision", sparse ? nlohmann::json(estimate::score_precision()) : nlohmann::json()},
      {"prefill_mean_density", sparse ? sparse->mean_density() : 1.0},
      {"threads", num_threads()},
      {"kernels", kernels_json()},
      {"peak_rss_bytes", peak_rss_bytes()},
  };
}

}  // namespace ls::cli
