// The gen / eval / sweep / report commands end to end (no model: approximate counter, oracle).
#include <gtest/gtest.h>

#include "cli_runner.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <sys/wait.h>
#include <unistd.h>

namespace {

using CommandResult = ls::testing::CliResult;

CommandResult run(const std::string& args) {
  return ls::testing::run_longsparse(args);
}

std::string dir() {
  auto d = std::filesystem::temp_directory_path() / ("ls_cli_eval_" + std::to_string(::getpid()));
  std::filesystem::create_directories(d);
  return d.string();
}

TEST(EvalCli, GenIsDeterministicAndEvalResumes) {
  const std::string d = dir();
  CommandResult a = run("gen -m approx --task passkey --len 1024 --samples 3 --seed 9 --depth 50");
  CommandResult b = run("gen -m approx --task passkey --len 1024 --samples 3 --seed 9 --depth 50");
  ASSERT_EQ(a.status, 0) << a.output;
  EXPECT_EQ(a.output, b.output);
  EXPECT_EQ(std::count(a.output.begin(), a.output.end(), '\n'), 3);
  std::ofstream(d + "/tasks.jsonl") << a.output;
  std::filesystem::remove(d + "/res.jsonl");
  CommandResult e1 = run("eval -m oracle --tasks " + d + "/tasks.jsonl --out " + d + "/res.jsonl");
  ASSERT_EQ(e1.status, 0) << e1.output;
  EXPECT_NE(e1.output.find("3 evaluated, 0 already"), std::string::npos) << e1.output;
  EXPECT_NE(e1.output.find("1.000"), std::string::npos) << e1.output;
  CommandResult e2 = run("eval -m oracle --tasks " + d + "/tasks.jsonl --out " + d + "/res.jsonl");
  EXPECT_NE(e2.output.find("0 evaluated, 3 already"), std::string::npos) << e2.output;
  CommandResult r = run("report " + d + "/res.jsonl --out " + d + "/report");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(std::filesystem::exists(d + "/report/report.md"));
  EXPECT_TRUE(std::filesystem::exists(d + "/report/heatmap_passkey_dense.svg"));
  std::filesystem::remove_all(d);
}

TEST(EvalCli, BadInputFailsWithLineAndField) {
  const std::string d = dir();
  std::ofstream(d + "/bad.jsonl") << R"({"id": "a", "task": "t", "length": 10, "input": "x", "answers": ["y"]})"
                                  << "\n" << R"({"id": "b", "task": "t", "length": 10, "input": 5, "answers": ["y"]})" << "\n";
  CommandResult e = run("eval -m oracle --tasks " + d + "/bad.jsonl --out " + d + "/res.jsonl");
  EXPECT_EQ(e.status, 1);
  EXPECT_NE(e.output.find("bad.jsonl:2: field 'input' must be a string"), std::string::npos) << e.output;
  CommandResult g = run("gen -m approx --task nonsense --len 1024");
  EXPECT_EQ(g.status, 1);
  EXPECT_NE(g.output.find("unknown task 'nonsense'"), std::string::npos) << g.output;
  CommandResult s = run("sweep --config " + d + "/missing.json");
  EXPECT_EQ(s.status, 1);
  EXPECT_NE(s.output.find("cannot open sweep config"), std::string::npos) << s.output;
  std::filesystem::remove_all(d);
}

}  // namespace
