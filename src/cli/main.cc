// longsparse: long-context LLM inference with training-free sparse attention.
#include <string_view>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "cli/command.h"
#include "core/error.h"

namespace ls::cli {

std::vector<Command>& commands() {
  static std::vector<Command> all;
  return all;
}

int& exit_status() {
  static int status = 0;
  return status;
}

}  // namespace ls::cli

namespace {

// Debian's OpenBLAS mis-detects this CPU family and falls back to SSE3 kernels unless
// OPENBLAS_CORETYPE is set before the library initialises (at load time, before main). When
// the CPU has AVX-512 and the variable is unset, re-execute ourselves once with it set.
void ensure_blas_coretype(char** argv) {
  if (std::getenv("OPENBLAS_CORETYPE") || std::getenv("LONGSPARSE_NO_REEXEC")) return;
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx512f")) return;
  setenv("OPENBLAS_CORETYPE", __builtin_cpu_supports("avx512bf16") ? "Cooperlake" : "SkylakeX", 1);
  setenv("LONGSPARSE_NO_REEXEC", "1", 1);
  execv("/proc/self/exe", argv);  // returns only on failure; then carry on as we are
}

// llama.cpp's short flags with more than one letter, which CLI11 cannot declare, become their
// long forms before parsing.
void expand_llama_cpp_flags(int argc, char** argv) {
  static char ctk[] = "--cache-type-k", ctv[] = "--cache-type-v", ub[] = "--ubatch";
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "-ctk") argv[i] = ctk;
    else if (arg == "-ctv") argv[i] = ctv;
    else if (arg == "-ub") argv[i] = ub;
  }
}

}  // namespace

int main(int argc, char** argv) {
  ensure_blas_coretype(argv);
  expand_llama_cpp_flags(argc, argv);
  CLI::App app{"longsparse: long-context LLM inference with training-free sparse attention", "longsparse"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "longsparse 0.1.0");
  auto& all = ls::cli::commands();
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  for (const auto& command : all) command.setup(*app.add_subcommand(command.name, command.help));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const ls::Error& e) {
    std::fprintf(stderr, "longsparse: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "longsparse: error: %s\n", e.what());
    return 1;
  }
  return ls::cli::exit_status();
}
