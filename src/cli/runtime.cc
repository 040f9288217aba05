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

nlohmann::json kernels_json() {
  nlohmann::json k = {
      {"cpu", cpu_name()},
      {"matmul", int8_kernel_name()},
      {"attention", attention_simd_target()},
      {"estimate", estimate::score_precision()},
      {"blas_core", openblas_get_corename()},
  };
  if (const char* replaced = std::getenv("LONGSPARSE_REPLACED_BLAS_CORETYPE")) k["blas_core_replaced"] = replaced;
  return k;
}

std::string kernels_line() {
  const char* replaced = std::getenv("LONGSPARSE_REPLACED_BLAS_CORETYPE");
  return fmt::format("cpu {}; matmul int8 {}; attention {}; estimates {}; BLAS core {}{}", cpu_name(),
                     int8_kernel_name(), attention_simd_target(), estimate::score_precision(),
                     openblas_get_corename(),
                     replaced ? fmt::format(" (replacing OPENBLAS_CORETYPE={})", replaced) : std::string());
}

}  // namespace ls::cli
