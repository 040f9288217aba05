// `longsparse tokenize` end to end on the default model: ids, pieces, special-token handling,
// the chat wrapper and errors for bad input.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "cli_runner.h"
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace {

using ::testing::HasSubstr;

using Result = ls::testing::CliResult;

Result run_tokenize(const std::string& args) {
  return ls::testing::run_longsparse("tokenize " + args);
}

std::vector<int> ids_of(const Result& r) { return nlohmann::json::parse(r.output).get<std::vector<int>>(); }

TEST(TokenizeCommand, JsonIds) {
  const Result r = run_tokenize("-m smollm2 -p 'Hello world! 123' --json");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(ids_of(r), (std::vector<int>{19556, 905, 17, 216, 33, 34, 35}));
}

TEST(TokenizeCommand, TextListsPieces) {
  const Result r = run_tokenize("-m smollm2 -p 'Hello world!'");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("  19556 'Hello'\n"));
  EXPECT_THAT(r.output, HasSubstr("    905 ' world'\n"));
  EXPECT_THAT(r.output, HasSubstr("3 tokens\n"));
}

TEST(TokenizeCommand, SpecialTokensUnlessNoSpecial) {
  const Result special = run_tokenize("-m smollm2 -p '<|im_end|>' --json");
  ASSERT_EQ(special.status, 0) << special.output;
  EXPECT_EQ(ids_of(special), (std::vector<int>{2}));
  const Result plain = run_tokenize("-m smollm2 -p '<|im_end|>' --json --no-special");
  ASSERT_EQ(plain.status, 0) << plain.output;
  EXPECT_GT(ids_of(plain).size(), 1u);
}

TEST(TokenizeCommand, ChatWrapsTheTextAsAUserTurn) {
  const Result r = run_tokenize("-m smollm2 -p Hi --chat --json");
  ASSERT_EQ(r.status, 0) << r.output;
  const auto ids = ids_of(r);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids.front(), 1);  // <|im_start|> of the default system turn
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 1), 3);
}

TEST(TokenizeCommand, BadInputIsAClearError) {
  Result r = run_tokenize("-m smollm2");
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.output, HasSubstr("-p TEXT or -f FILE"));
  r = run_tokenize("-m /nonexistent/model.gguf -p hi");
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.output, HasSubstr("longsparse: error:"));
  r = run_tokenize("-m smollm2 -f /nonexistent/prompt.txt");
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.output, HasSubstr("cannot read prompt file"));
  r = run_tokenize("-m smollm2 -p a -f b");
  EXPECT_NE(r.status, 0);
}

}  // namespace
