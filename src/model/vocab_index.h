// Lookup from vocabulary text to token id, shared by the tokenizer algorithms.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace ls {

class VocabIndex {
 public:
  // `tokens` must outlive the index and stay where it is (the index holds views into it).
  // With duplicate entries the lowest id wins.
  explicit VocabIndex(const std::vector<std::string>& tokens) {
    ids_.reserve(tokens.size());
    for (std::size_t i = 0; i < tokens.size(); ++i) ids_.emplace(tokens[i], static_cast<std::int32_t>(i));
  }
  std::int32_t find(std::string_view text) const {  // -1 when absent
    const auto it = ids_.find(text);
    return it == ids_.end() ? -1 : it->second;
  }

 private:
  std::unordered_map<std::string_view, std::int32_t> ids_;
};

}  // namespace ls
