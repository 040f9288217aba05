// `longsparse methods`: lists every method with phase, parameters and paper; a bad spec is an
// error (exit 1) that lists what is valid.
#include <gtest/gtest.h>

#include "cli_runner.h"
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "methods/registry.h"

namespace ls {
namespace {

using CliRun = ls::testing::CliResult;

CliRun run_cli(const std::string& args) {
  return ls::testing::run_longsparse(args);
}

TEST(MethodsCli, ListsEveryRegisteredMethodAsJson) {
  CliRun run = run_cli("methods --json");
  ASSERT_EQ(run.status, 0) << run.output;
  nlohmann::json json = nlohmann::json::parse(run.output);
  auto registered = MethodRegistry::instance().list();
  ASSERT_EQ(json["methods"].size(), registered.size());
  for (std::size_t i = 0; i < registered.size(); ++i) {
    const auto& m = json["methods"][i];
    EXPECT_EQ(m["name"], registered[i]->name);
    EXPECT_EQ(m["phase"], registered[i]->phase);
    EXPECT_FALSE(m["paper"].get<std::string>().empty());
    ASSERT_EQ(m["params"].size(), registered[i]->params.size());
    for (std::size_t p = 0; p < registered[i]->params.size(); ++p) {
      EXPECT_EQ(m["params"][p]["name"], registered[i]->params[p].name);
      EXPECT_EQ(m["params"][p]["default"], registered[i]->params[p].default_value);
      EXPECT_FALSE(m["params"][p]["meaning"].get<std::string>().empty());
    }
  }
  for (const char* name : {"streaming", "lambda", "power", "vertical-slash", "block-sparse", "dense"})
    EXPECT_NE(run.output.find(std::string("\"") + name + "\""), std::string::npos) << name;
}

TEST(MethodsCli, TextListingShowsDefaultsAndPapers) {
  CliRun run = run_cli("methods");
  ASSERT_EQ(run.status, 0) << run.output;
  EXPECT_NE(run.output.find("vertical-slash"), std::string::npos);
  EXPECT_NE(run.output.find("6096"), std::string::npos);
  EXPECT_NE(run.output.find("MInference"), std::string::npos);
  EXPECT_NE(run.output.find("LM-Infinite"), std::string::npos);
}

TEST(MethodsCli, ResolvesAValidSpec) {
  CliRun run = run_cli("methods 'vertical-slash:v=200' --json");
  ASSERT_EQ(run.status, 0) << run.output;
  nlohmann::json json = nlohmann::json::parse(run.output);
  EXPECT_EQ(json["spec"], "vertical-slash:v=200,s=6096,last_q=64,cover=official");
  EXPECT_EQ(json["params"][0]["value"], "200");
}

TEST(MethodsCli, BadSpecsAreErrorsListingWhatIsValid) {
  CliRun unknown = run_cli("methods no-such-method");
  EXPECT_EQ(unknown.status, 1);
  EXPECT_NE(unknown.output.find("unknown method 'no-such-method'"), std::string::npos) << unknown.output;
  EXPECT_NE(unknown.output.find("vertical-slash"), std::string::npos) << unknown.output;

  CliRun key = run_cli("methods 'streaming:windw=10'");
  EXPECT_EQ(key.status, 1);
  EXPECT_NE(key.output.find("valid: sink, window, tri, tri_last"), std::string::npos) << key.output;

  CliRun range = run_cli("methods 'power:block=8'");
  EXPECT_EQ(range.status, 1);
  EXPECT_NE(range.output.find("out of range [16, 4096]"), std::string::npos) << range.output;

  CliRun choice = run_cli("methods 'vertical-slash:cover=tiles'");
  EXPECT_EQ(choice.status, 1);
  EXPECT_NE(choice.output.find("official, exact, blocks"), std::string::npos) << choice.output;

  CliRun type = run_cli("methods 'block-sparse:topk=2.5'");
  EXPECT_EQ(type.status, 1);
  EXPECT_NE(type.output.find("must be an integer"), std::string::npos) << type.output;
}

}  // namespace
}  // namespace ls
