#include "cli/runtime.h"

#include <cblas.h>
#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>

#include "attn/flash.h"
#include "core/cpu.h"
#include "core/parallel.h"
#include "methods/estimate_util.h"
#include "model/matmul.h"

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
      {"estimate", estimate::score_precision()},
      {"blas_core", openblas_get_corename()},
  };
  if (const char* replaced = std::getenv("LONGSPARSE_REPLACED_BLAS_CORETYPE")) k["blas_core_replaced"] = replaced;
  k["omp_wait"] = omp_wait();
  return k;
}

std::string kernels_line() {
  const char* replaced = std::getenv("LONGSPARSE_REPLACED_BLAS_CORETYPE");
  return fmt::format("cpu {}; matmul int8 {}; attention {}; estimates {}; BLAS core {}{}; OpenMP wait {}", cpu_name(),
                     int8_kernel_name(), attention_simd_target(), estimate::score_precision(),
                     openblas_get_corename(),
                     replaced ? fmt::format(" (replacing OPENBLAS_CORETYPE={})", replaced) : std::string(), omp_wait());
}

}  // namespace ls::cli
