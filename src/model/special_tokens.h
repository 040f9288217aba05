// Splits text on special-token strings before the tokenizer algorithm sees it: user-defined
// tokens always, control (and unknown) tokens only when asked to (parse_special).
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace ls {

struct TokenizerData;

class SpecialTokenSplitter {
 public:
  explicit SpecialTokenSplitter(const TokenizerData& data);

  // A fragment is either a special token (token >= 0) or raw text [begin, end) (token = -1).
  struct Fragment {
    std::int32_t token = -1;
    std::uint32_t begin = 0;
    std::uint32_t end = 0;
  };

  // Fragments of `text` in order. Longer tokens win over shorter ones anywhere in the text
  // (the longest is split out first, then the next longest in what remains), occurrences of one
  // token are taken left to right; among tokens of equal length the lower id goes first.
  void split(std::string_view text, bool parse_special, std::vector<Fragment>& out) const;

 private:
  // A byte trie over the special strings; node 0 is the root.
  struct Node {
    std::vector<std::pair<std::uint8_t, std::int32_t>> children;  // sorted by byte
    std::int32_t token = -1;      // the token ending here, or -1
    bool always = false;          // user-defined: split even without parse_special
  };
  std::int32_t child(std::int32_t node, std::uint8_t byte) const;
  std::vector<Node> nodes_;
  std::int32_t root_children_[256];  // [byte] child of the root, or -1 (hot path)
  bool any_ = false;
};

}  // namespace ls
