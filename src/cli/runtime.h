// What every command that runs the model sets up the same way: the thread count, and the
// names of the kernels that run (for summaries and JSON, so every figure names its paths).
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace ls {
class DecodeSelector;
class KvCache;
class SparsePrefill;
struct GenerateResult;
struct ModelConfig;
}  // namespace ls

namespace ls::cli {

// -t: 0 means every core this process may run on; more than that is capped to it with a
// warning on stderr (threads beyond the cores only wait for each other). Sets OpenMP's and
// OpenBLAS's thread counts; returns the count in use.
int apply_threads(int requested);

// {"cpu", "matmul" (int8 kernels), "attention" (SIMD target), "estimate" (score precision),
// "blas_core", "blas_core_replaced" when the environment's OPENBLAS_CORETYPE was replaced,
// "omp_wait" (how OpenMP's threads wait, and why)}.
nlohmann::json kernels_json();
// One line for summaries: "cpu AMD EPYC; matmul int8 avx512-vnni; attention AVX3_ZEN4; ...".
std::string kernels_line();

// The fields of `run --json` about one generation: text and tokens, prefill and decode timings,
// the methods that ran (null `sparse` / `selector`: dense), the cache's types and bytes, the
// layer pattern, threads, kernels and peak RSS. The Python module's Model.generate returns
// the same object.
nlohmann::json generation_json(const GenerateResult& result, const KvCache& cache, const ModelConfig& config,
                               const SparsePrefill* sparse, const DecodeSelector* selector);

}  // namespace ls::cli
