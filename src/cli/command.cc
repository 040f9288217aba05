// The subcommand table and the command-line entry point shared by the `longsparse` executable
// (main.cc) and the Python module's in-process CLI.
#include "cli/command.h"

#include <algorithm>
#include <cstdio>
#include <exception>
#include <string_view>

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

namespace {

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

int run_cli(int argc, char** argv, bool rethrow) {
  expand_llama_cpp_flags(argc, argv);
  exit_status() = 0;
  CLI::App app{"longsparse: long-context LLM inference with training-free sparse attention", "longsparse"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "longsparse 0.1.0");
  auto& all = commands();
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  for (const auto& command : all) command.setup(*app.add_subcommand(command.name, command.help));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (rethrow && e.get_exit_code() != 0) throw Error(e.what());  // a bad flag, not --help
    return app.exit(e);
  } catch (const std::exception& e) {
    if (rethrow) throw;
    std::fprintf(stderr, "longsparse: error: %s\n", e.what());
    return 1;
  }
  return exit_status();
}

}  // namespace ls::cli
