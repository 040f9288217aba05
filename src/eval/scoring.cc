// Scorers of RULER (scripts/eval/synthetic/constants.py) and The Sparse Frontier (story tasks).
#include "eval/scoring.h"

#include <map>
#include <regex>
#include <set>

#include "core/error.h"
#include "eval/text_util.h"

namespace ls::eval {

namespace {
bool blank(const std::string& s) { return s.find_first_not_of(" \t\r\n") == std::string::npos; }
}  // namespace

double string_match_all(const std::string& prediction, const std::vector<std::string>& answers) {
  if (blank(prediction) || answers.empty()) return 0.0;
  const std::string pred = to_lower(prediction);
  double hits = 0;
  for (const auto& a : answers) hits += pred.find(to_lower(a)) != std::string::npos;
  return hits / double(answers.size());
}

double string_match_part(const std::string& prediction, const std::vector<std::string>& answers) {
  if (blank(prediction)) return 0.0;
  const std::string pred = to_lower(prediction);
  for (const auto& a : answers)
    if (pred.find(to_lower(a)) != std::string::npos) return 1.0;
  return 0.0;
}

std::string normalize_answer(const std::string& text) {
  std::string out;
  for (char c : to_lower(text)) {
    bool space = c == ' ' || c == '\t' || c == '\n' || c == '\r';
    if (space) {
      if (!out.empty() && out.back() != ' ') out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  for (const char* article : {"the ", "a ", "an "}) {
    std::string a = article;
    if (out.compare(0, a.size(), a) == 0) {
      out = out.substr(a.size());
      break;
    }
  }
  return out;
}

std::string answer_section(const std::string& text) {
  const std::string lower = to_lower(text);
  std::size_t open = lower.find("<answer>");
  if (open == std::string::npos) return text;
  std::size_t close = lower.find("</answer>", open + 8);
  if (close == std::string::npos) return text;
  return text.substr(open + 8, close - open - 8);
}

double exact_match(const std::string& prediction, const std::vector<std::string>& answers) {
  if (blank(prediction) || answers.empty()) return 0.0;
  const std::string section = answer_section(prediction);
  if (answers.size() == 1) return normalize_answer(section) == normalize_answer(answers[0]) ? 1.0 : 0.0;
  static const std::regex numbered(R"(^(\d+)[\.:\)]\s*(.+?)\s*$)");
  std::map<long, std::string> given;  // first answer per number
  std::size_t start = 0;
  while (start <= section.size()) {
    std::size_t end = section.find('\n', start);
    if (end == std::string::npos) end = section.size();
    std::string line = section.substr(start, end - start);
    std::size_t a = line.find_first_not_of(" \t\r"), b = line.find_last_not_of(" \t\r");
    line = a == std::string::npos ? "" : line.substr(a, b - a + 1);
    std::smatch m;
    if (std::regex_match(line, m, numbered) && m[1].length() < 9)
      given.emplace(std::stol(m[1].str()), normalize_answer(m[2].str()));
    start = end + 1;
  }
  double correct = 0;
  for (std::size_t i = 0; i < answers.size(); ++i) {
    auto it = given.find(static_cast<long>(i + 1));
    correct += it != given.end() && it->second == normalize_answer(answers[i]);
  }
  return correct / double(answers.size());
}

double set_iou(const std::string& prediction, const std::vector<std::string>& answers) {
  if (blank(prediction) || answers.empty()) return 0.0;
  const std::string section = answer_section(prediction);
  bool numeric = true;
  for (const auto& a : answers) numeric &= !a.empty() && a.find_first_not_of("0123456789") == std::string::npos;
  std::set<std::string> gold, predicted;
  if (numeric) {
    for (const auto& a : answers) gold.insert(std::to_string(std::stoll(a)));
    static const std::regex chapter(R"(chapter\s+(\d+))", std::regex::icase);
    for (auto it = std::sregex_iterator(section.begin(), section.end(), chapter); it != std::sregex_iterator(); ++it)
      if ((*it)[1].length() < 18) predicted.insert(std::to_string(std::stoll((*it)[1].str())));
    if (predicted.empty()) {
      static const std::regex number(R"(\d+)");
      for (auto it = std::sregex_iterator(section.begin(), section.end(), number); it != std::sregex_iterator(); ++it)
        if (it->length() < 18) predicted.insert(std::to_string(std::stoll(it->str())));
    }
  } else {
    for (const auto& a : answers) gold.insert(normalize_answer(a));
    std::string item;
    for (char c : section + ",") {
      if (c == ',' || c == '\n') {
        if (!normalize_answer(item).empty()) predicted.insert(normalize_answer(item));
        item.clear();
      } else {
        item.push_back(c);
      }
    }
  }
  std::size_t common = 0;
  for (const auto& g : gold) common += predicted.count(g);
  std::size_t united = gold.size() + predicted.size() - common;
  return united ? double(common) / double(united) : 0.0;
}

double score_prediction(const std::string& metric, const std::string& prediction,
                        const std::vector<std::string>& answers) {
  if (metric == "string_match_all") return string_match_all(prediction, answers);
  if (metric == "string_match_part") return string_match_part(prediction, answers);
  if (metric == "exact") return exact_match(prediction, answers);
  if (metric == "iou") return set_iou(prediction, answers);
  fail("unknown metric '{}'; valid: string_match_all, string_match_part, exact, iou", metric);
}

}  // namespace ls::eval
