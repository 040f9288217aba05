// `longsparse bench decode`: times one decode step's attention (selection + gather kernel)
// over a synthetic KV cache, against dense decode in the same process.
#pragma once

#include <CLI/CLI.hpp>

namespace ls::cli {

void setup_bench_decode(CLI::App& bench);

}  // namespace ls::cli
