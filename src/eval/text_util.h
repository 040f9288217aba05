// Small string helpers shared by the generators and scorers.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace ls::eval {

// Replaces every "{name}" in `text` by its value (the Python str.format subset RULER's templates use).
std::string substitute(std::string text, const std::vector<std::pair<std::string, std::string>>& values);

// Python's str.replace: every occurrence, left to right, non-overlapping.
std::string replace_all(std::string text, const std::string& from, const std::string& to);

std::string join(const std::vector<std::string>& parts, const std::string& separator);

std::string to_lower(std::string text);

}  // namespace ls::eval
