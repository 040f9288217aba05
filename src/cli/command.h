// Subcommands of the `longsparse` CLI. Each lives in its own file and registers itself:
//   LS_REGISTER_COMMAND(bench, "Time attention kernels and methods", setup_bench);
// where setup_bench(CLI::App&) adds its options and its callback. The CLI layer is thin: it
// parses flags and calls the layers below.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace ls::cli {

struct Command {
  std::string name;
  std::string help;
  std::function<void(CLI::App&)> setup;  // adds options and sets the callback
};

std::vector<Command>& commands();

// Exit status a subcommand callback sets (0 by default).
int& exit_status();

// Parses argv (argv[0] is the program name) into one subcommand and runs it: llama.cpp's
// multi-letter short flags (-ctk, -ctv, -ub) are accepted, and the return value is the exit
// status. Errors are printed as "longsparse: error: ..." and give 1, unless `rethrow`: then
// exceptions propagate to the caller (the Python module turns them into Python exceptions),
// a flag CLI11 rejects as an ls::Error with its message; `--help` and `--version` still print
// and return 0.
int run_cli(int argc, char** argv, bool rethrow = false);

#define LS_REGISTER_COMMAND(name, help, setup)                                     \
  static const bool ls_command_registered_##name = [] {                           \
    ::ls::cli::commands().push_back({#name, help, setup});                        \
    return true;                                                                  \
  }()

}  // namespace ls::cli
