// Scoring a prediction against a sample's answers; every score lies in [0, 1] and an empty
// (or whitespace-only) prediction scores 0.
//   string_match_all   RULER: fraction of answers contained in the prediction (case-insensitive)
//   string_match_part  RULER: 1 if any answer is contained
//   exact              The Sparse Frontier: normalised exact match (lowercase, whitespace
//                      collapsed, a leading article dropped) of the <answer>...</answer> section
//                      (the whole prediction when it has none); several answers are matched
//                      against numbered lines "1. ...", "2) ...", scoring the fraction right
//   iou                The Sparse Frontier: |gold ∩ predicted| / |gold ∪ predicted| over sets of
//                      chapter numbers ("Chapter 3" or bare integers) or comma-separated items
#pragma once

#include <string>
#include <vector>

namespace ls::eval {

double score_prediction(const std::string& metric, const std::string& prediction,
                        const std::vector<std::string>& answers);

double string_match_all(const std::string& prediction, const std::vector<std::string>& answers);
double string_match_part(const std::string& prediction, const std::vector<std::string>& answers);
double exact_match(const std::string& prediction, const std::vector<std::string>& answers);
double set_iou(const std::string& prediction, const std::vector<std::string>& answers);

std::string normalize_answer(const std::string& text);
// The text between the first <answer> and the next </answer> (case-insensitive); the whole
// text when there is no such section.
std::string answer_section(const std::string& text);

}  // namespace ls::eval
