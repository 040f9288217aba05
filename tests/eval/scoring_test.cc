// Scorers on hand-made predictions.
#include <gtest/gtest.h>

#include "core/error.h"
#include "eval/scoring.h"

namespace ls::eval {
namespace {

TEST(Scoring, StringMatchAll) {
  EXPECT_DOUBLE_EQ(string_match_all(" 1234567 and 7654321.", {"1234567", "7654321"}), 1.0);
  EXPECT_DOUBLE_EQ(string_match_all("only 1234567", {"1234567", "7654321"}), 0.5);
  EXPECT_DOUBLE_EQ(string_match_all("ABCDE fghij", {"abcde", "FGHIJ", "KLMNO", "PQRST"}), 0.5);  // case-insensitive
  EXPECT_DOUBLE_EQ(string_match_all("nothing", {"1234567"}), 0.0);
}

TEST(Scoring, StringMatchPart) {
  EXPECT_DOUBLE_EQ(string_match_part("it is 7654321", {"1234567", "7654321"}), 1.0);
  EXPECT_DOUBLE_EQ(string_match_part("it is 42", {"1234567", "7654321"}), 0.0);
}

TEST(Scoring, ExactAfterNormalisation) {
  EXPECT_DOUBLE_EQ(exact_match("<explanation>x</explanation>\n<answer>\n The  Old Brass Compass \n</answer>",
                               {"old brass compass"}), 1.0);
  EXPECT_DOUBLE_EQ(exact_match("<answer>old brass compasses</answer>", {"old brass compass"}), 0.0);
  EXPECT_DOUBLE_EQ(exact_match("an old brass compass", {"old brass compass"}), 1.0);  // no tags: whole text
  // Numbered answers: fraction right, first occurrence of a number wins.
  EXPECT_DOUBLE_EQ(exact_match("<answer>\n1. Amberfall\n2) the Kit\n3: wrong\n1. Other\n</answer>",
                               {"Amberfall", "Kit", "Nell", "Maud"}), 0.5);
}

TEST(Scoring, SetIou) {
  EXPECT_DOUBLE_EQ(set_iou("<answer>3, 7, 12</answer>", {"3", "7", "12"}), 1.0);
  EXPECT_DOUBLE_EQ(set_iou("<answer>Chapter 3, Chapter 9</answer>", {"3", "7", "12"}), 0.25);
  EXPECT_DOUBLE_EQ(set_iou("<answer>7 12 3 4</answer>", {"3", "7", "12"}), 0.75);
  EXPECT_DOUBLE_EQ(set_iou("<answer>Amberfall, kit</answer>", {"amberfall", "Kit", "Nell"}), 2.0 / 3.0);
}

TEST(Scoring, EmptyPredictionIsWrong) {
  for (const char* metric : {"string_match_all", "string_match_part", "exact", "iou"}) {
    EXPECT_DOUBLE_EQ(score_prediction(metric, "", {"1"}), 0.0) << metric;
    EXPECT_DOUBLE_EQ(score_prediction(metric, "  \n ", {"1"}), 0.0) << metric;
  }
  EXPECT_THROW(score_prediction("bleu", "x", {"x"}), Error);
}

}  // namespace
}  // namespace ls::eval
