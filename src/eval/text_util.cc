// String helpers for templates and scoring.
#include "eval/text_util.h"

namespace ls::eval {

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  if (from.empty()) return text;
  std::string out;
  std::size_t pos = 0;
  for (std::size_t hit; (hit = text.find(from, pos)) != std::string::npos; pos = hit + from.size())
    out.append(text, pos, hit - pos).append(to);
  out.append(text, pos, std::string::npos);
  return out;
}

std::string substitute(std::string text, const std::vector<std::pair<std::string, std::string>>& values) {
  // One pass over the template, so substituted text (a haystack) is never scanned again.
  std::string out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t open = text.find('{', pos);
    if (open == std::string::npos) break;
    std::size_t close = text.find('}', open);
    if (close == std::string::npos) break;
    std::string name = text.substr(open + 1, close - open - 1);
    const std::string* value = nullptr;
    for (const auto& [key, v] : values)
      if (key == name) value = &v;
    out.append(text, pos, open - pos);
    if (value) {
      out += *value;
    } else {
      out.append(text, open, close + 1 - open);
    }
    pos = close + 1;
  }
  out.append(text, pos, std::string::npos);
  return out;
}

std::string join(const std::vector<std::string>& parts, const std::string& separator) {
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i) out += separator;
    out += parts[i];
  }
  return out;
}

std::string to_lower(std::string text) {
  for (char& c : text)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return text;
}

}  // namespace ls::eval
