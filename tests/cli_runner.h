// Runs the built `longsparse` binary from a test, the way a user would, and returns its exit
// status and output. Shared by every test that drives the CLI.
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

namespace ls::testing {

struct CliResult {
  int status = -1;     // exit status; -1 when the command did not exit normally
  std::string output;  // stdout, and stderr too unless it was dropped
};

// `args` and `env` use shell syntax ("-p 'two words'", "LONGSPARSE_MODELS=/tmp/x").
inline CliResult run_longsparse(const std::string& args, const std::string& env = "", bool with_stderr = true) {
  const std::string command =
      env + " " + LONGSPARSE_BINARY + " " + args + (with_stderr ? " 2>&1" : " 2>/dev/null");
  CliResult result;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return result;
  std::array<char, 4096> buffer;
  while (std::size_t n = std::fread(buffer.data(), 1, buffer.size(), pipe)) result.output.append(buffer.data(), n);
  const int raw = pclose(pipe);
  result.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  return result;
}

}  // namespace ls::testing
