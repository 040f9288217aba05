// Special-token splitting: every match is found with one trie walk per text position, then the
// matches are accepted longest first, skipping any that overlap one already accepted. This
// gives the result of splitting on each token in turn, longest first, without a pass over the
// text per special token (Gemma has thousands of them).
#include "model/special_tokens.h"

#include <algorithm>

#include "model/tokenizer.h"

namespace ls {

SpecialTokenSplitter::SpecialTokenSplitter(const TokenizerData& data) {
  std::fill(std::begin(root_children_), std::end(root_children_), -1);
  nodes_.emplace_back();
  for (std::size_t id = 0; id < data.token_types.size() && id < data.tokens.size(); ++id) {
    const auto type = static_cast<TokenType>(data.token_types[id]);
    const bool always = type == TokenType::UserDefined;
    if (!always && type != TokenType::Control && type != TokenType::Unknown) continue;
    const std::string& text = data.tokens[id];
    if (text.empty()) continue;
    std::int32_t node = 0;
    for (const char c : text) {
      const auto byte = static_cast<std::uint8_t>(c);
      std::int32_t next = child(node, byte);
      if (next < 0) {
        next = static_cast<std::int32_t>(nodes_.size());
        auto& children = nodes_[node].children;
        children.insert(std::lower_bound(children.begin(), children.end(), std::make_pair(byte, 0)),
                        {byte, next});
        if (node == 0) root_children_[byte] = next;
        nodes_.emplace_back();
      }
      node = next;
    }
    if (nodes_[node].token < 0) {  // duplicates: the lowest id keeps the string
      nodes_[node].token = static_cast<std::int32_t>(id);
      nodes_[node].always = always;
    }
    any_ = true;
  }
}

std::int32_t SpecialTokenSplitter::child(std::int32_t node, std::uint8_t byte) const {
  if (node == 0) return root_children_[byte];
  const auto& children = nodes_[node].children;
  const auto it = std::lower_bound(children.begin(), children.end(), std::make_pair(byte, 0));
  return it != children.end() && it->first == byte ? it->second : -1;
}

void SpecialTokenSplitter::split(std::string_view text, bool parse_special,
                                 std::vector<Fragment>& out) const {
  out.clear();
  struct Match {
    std::uint32_t begin, length;
    std::int32_t token;
  };
  std::vector<Match> matches;
  if (any_) {
    for (std::size_t pos = 0; pos < text.size(); ++pos) {
      std::int32_t node = root_children_[static_cast<std::uint8_t>(text[pos])];
      for (std::size_t end = pos + 1; node >= 0; ++end) {
        const Node& n = nodes_[node];
        if (n.token >= 0 && (parse_special || n.always)) {
          matches.push_back({static_cast<std::uint32_t>(pos), static_cast<std::uint32_t>(end - pos), n.token});
        }
        if (end == text.size()) break;
        node = child(node, static_cast<std::uint8_t>(text[end]));
      }
    }
  }
  if (matches.empty()) {
    if (!text.empty()) out.push_back({-1, 0, static_cast<std::uint32_t>(text.size())});
    return;
  }
  std::sort(matches.begin(), matches.end(), [](const Match& a, const Match& b) {
    if (a.length != b.length) return a.length > b.length;
    if (a.token != b.token) return a.token < b.token;
    return a.begin < b.begin;
  });
  std::vector<bool> taken(text.size(), false);  // [text bytes] covered by an accepted match
  std::vector<Match> accepted;
  for (const Match& m : matches) {
    if (std::any_of(taken.begin() + m.begin, taken.begin() + m.begin + m.length, [](bool t) { return t; })) {
      continue;
    }
    std::fill(taken.begin() + m.begin, taken.begin() + m.begin + m.length, true);
    accepted.push_back(m);
  }
  std::sort(accepted.begin(), accepted.end(), [](const Match& a, const Match& b) { return a.begin < b.begin; });
  std::uint32_t pos = 0;
  for (const Match& m : accepted) {
    if (pos < m.begin) out.push_back({-1, pos, m.begin});
    out.push_back({m.token, m.begin, m.begin + m.length});
    pos = m.begin + m.length;
  }
  if (pos < text.size()) out.push_back({-1, pos, static_cast<std::uint32_t>(text.size())});
}

}  // namespace ls
