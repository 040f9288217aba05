// longsparse: long-context LLM inference with training-free sparse attention.
#include <string>
#include <string_view>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "cli/command.h"
#include "core/cpu.h"
#include "core/error.h"

namespace {

// What the libraries read from the environment when they load (before main), set by
// re-executing ourselves once (LONGSPARSE_NO_REEXEC marks the second run):
//  - OPENBLAS_CORETYPE. Debian's OpenBLAS mis-detects recent CPUs and falls back to slow
//    kernels, and machine images set the variable to Haswell on AVX-512 CPUs, which halves
//    sgemm there. We choose from CPUID: Cooperlake (AVX-512 BF16), SkylakeX (AVX-512),
//    Haswell (AVX2), replacing a different value (LONGSPARSE_KEEP_BLAS_CORETYPE=1 keeps it;
//    LONGSPARSE_REPLACED_BLAS_CORETYPE tells the run summary what was replaced). Only F32,
//    F16 and BF16 weights still multiply through BLAS.
//  - OpenMP's wait between parallel regions (unless OMP_WAIT_POLICY or GOMP_SPINCOUNT is set).
//    Threads spin by default up to 300,000 iterations before they sleep. On an idle machine a
//    short spin bridges the gaps between the ~150 regions of one decode step (20,000
//    iterations: 1.7x the decode speed of sleeping at once); on a machine where other
//    processes want the cores, a spinning thread takes the core the thread it waits for needs
//    (decode measured 4 instead of 50 tokens/s beside another busy program, docs/model.md). So
//    we look at the machine as we start: when other processes are runnable
//    (/proc/stat procs_running, the least of ten samples over 0.1 s) the threads sleep at once
//    (OMP_WAIT_POLICY=passive), otherwise they spin up to 20,000 iterations
//    (GOMP_SPINCOUNT=20000). LONGSPARSE_OMP_WAIT tells the run summary which, and why.
// Threads of this process that are running or runnable (state R in /proc/self/task/*/stat):
// the libraries start theirs before main, and OpenBLAS's spin for a while.
int own_runnable_threads() {
  int count = 0;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task", std::filesystem::directory_options::skip_permission_denied)) {
    std::FILE* f = std::fopen((task.path() / "stat").c_str(), "r");
    if (!f) continue;
    char buffer[512];
    const std::size_t n = std::fread(buffer, 1, sizeof buffer - 1, f);
    std::fclose(f);
    buffer[n] = '\0';
    const char* close = std::strrchr(buffer, ')');  // the state follows "(comm)"
    if (close && close[1] == ' ' && close[2] == 'R') ++count;
  }
  return count;
}

// Runnable tasks of other processes: /proc/stat's procs_running minus our own, the least of
// twenty samples 10 ms apart, so that what only starts with us (the other end of a pipe, a
// shell, an interpreter's start-up) does not count; 0 when unknown. Costs 0.2 s once, only
// for the commands that run a model and only when the environment sets no wait policy.
int other_runnable_processes() {
  int least = -1;
  try {
    for (int i = 0; i < 20; ++i) {
      if (i) usleep(10000);
      std::FILE* f = std::fopen("/proc/stat", "r");
      if (!f) return 0;
      char line[256];
      int running = -1;
      while (std::fgets(line, sizeof line, f))
        if (std::sscanf(line, "procs_running %d", &running) == 1) break;
      std::fclose(f);
      if (running < 1) return 0;
      const int others = std::max(0, running - std::max(1, own_runnable_threads()));
      least = least < 0 ? others : std::min(least, others);
    }
  } catch (const std::filesystem::filesystem_error&) {
    return 0;
  }
  return std::max(least, 0);
}

void prepare_environment(char** argv) {
  if (std::getenv("LONGSPARSE_NO_REEXEC")) return;
  bool changed = false;
  const ls::CpuFeatures& cpu = ls::cpu_features();
  const char* core = cpu.avx512bf16 ? "Cooperlake" : cpu.avx512f ? "SkylakeX" : cpu.avx2 ? "Haswell" : nullptr;
  const char* current = std::getenv("OPENBLAS_CORETYPE");
  if (core && !std::getenv("LONGSPARSE_KEEP_BLAS_CORETYPE") && (!current || std::strcmp(current, core) != 0)) {
    if (current) setenv("LONGSPARSE_REPLACED_BLAS_CORETYPE", current, 1);
    setenv("OPENBLAS_CORETYPE", core, 1);
    changed = true;
  }
  if (!std::getenv("OMP_WAIT_POLICY") && !std::getenv("GOMP_SPINCOUNT")) {
    // Commands that only read files or print (info, tokenize, methods, gen, report, help) do
    // not wait for the sample.
    static const char* const kLight[] = {"info", "tokenize", "methods", "gen", "report", "--help", "-h", "--version"};
    const bool light = !argv[1] || std::any_of(std::begin(kLight), std::end(kLight),
                                               [&](const char* c) { return std::strcmp(argv[1], c) == 0; });
    const int others = light ? 0 : other_runnable_processes();
    if (others > 0) {
      setenv("OMP_WAIT_POLICY", "passive", 1);
      setenv("LONGSPARSE_OMP_WAIT", ("passive (" + std::to_string(others) + " other runnable at start)").c_str(), 1);
    } else {
      setenv("GOMP_SPINCOUNT", "20000", 1);
      setenv("LONGSPARSE_OMP_WAIT", "spin 20000 (machine idle at start)", 1);
    }
    changed = true;
  }
  if (!changed) return;
  setenv("LONGSPARSE_NO_REEXEC", "1", 1);
  execv("/proc/self/exe", argv);  // returns only on failure; then carry on as we are
}

}  // namespace

int main(int argc, char** argv) {
  prepare_environment(argv);
  return ls::cli::run_cli(argc, argv);
}
