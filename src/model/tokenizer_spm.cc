// SentencePiece-style BPE: a linked list of symbols (initially UTF-8 characters) and a heap of
// adjacent pairs whose concatenation is a token, ordered by that token's score.
#include "model/tokenizer_spm.h"

#include <algorithm>

#include "core/error.h"
#include "model/tokenizer.h"

namespace ls {
namespace {

constexpr std::string_view kSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's space

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// The byte of a "<0xXX>" token, or -1.
int byte_token_value(std::string_view text) {
  if (text.size() != 6 || text.substr(0, 3) != "<0x" || text[5] != '>') return -1;
  const int hi = hex_digit(text[3]), lo = hex_digit(text[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

// Characters are cut by the length their lead byte announces, without validating the rest,
// as llama.cpp does: malformed input then gets the same byte-fallback tokens there and here.
std::size_t sequence_length(unsigned char lead) {
  if (lead < 0xC0) return 1;  // ASCII, or a stray continuation byte
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  return 4;
}

}  // namespace

SpmModel::SpmModel(const TokenizerData& data, const VocabIndex& vocab) : data_(&data), vocab_(&vocab) {
  LS_CHECK(data.scores.size() == data.tokens.size(),
           "SentencePiece tokenizer needs one score per token (tokenizer.ggml.scores has {}, "
           "tokenizer.ggml.tokens has {})", data.scores.size(), data.tokens.size());
  std::fill(std::begin(byte_tokens_), std::end(byte_tokens_), -1);
  for (int b = 0; b < 256; ++b) {
    byte_tokens_[b] = vocab.find(fmt::format("<0x{:02X}>", b));
  }
}

void SpmModel::encode_fragment(std::string_view raw, std::vector<std::int32_t>& out) const {
  thread_local std::string text;  // raw with every ' ' replaced by U+2581
  text.clear();
  for (const char c : raw) {
    if (c == ' ') {
      text.append(kSpace);
    } else {
      text.push_back(c);
    }
  }
  if (text.empty()) return;

  // Symbols: byte offset and length in `text`, linked by prev/next indices.
  struct Symbol {
    std::uint32_t offset, length;
    std::int32_t prev, next;
  };
  thread_local std::vector<Symbol> symbols;
  symbols.clear();
  for (std::size_t pos = 0; pos < text.size();) {
    const std::size_t length = std::min(sequence_length(static_cast<unsigned char>(text[pos])), text.size() - pos);
    const auto index = static_cast<std::int32_t>(symbols.size());
    symbols.push_back({static_cast<std::uint32_t>(pos), static_cast<std::uint32_t>(length), index - 1, index + 1});
    pos += length;
  }
  const auto count = static_cast<std::int32_t>(symbols.size());

  struct Candidate {
    float score;
    std::int32_t left, right;
    std::uint32_t length;  // bytes of the pair, to detect stale entries
    bool operator<(const Candidate& o) const {  // max-heap: high score, then leftmost
      return score != o.score ? score < o.score : left > o.left;
    }
  };
  thread_local std::vector<Candidate> heap;
  heap.clear();
  const auto consider = [&](std::int32_t left) {
    if (left < 0) return;
    const std::int32_t right = symbols[left].next;
    if (right >= count) return;
    const std::uint32_t length = symbols[left].length + symbols[right].length;
    const std::int32_t token = vocab_->find(std::string_view(text).substr(symbols[left].offset, length));
    if (token < 0) return;
    heap.push_back({data_->scores[token], left, right, length});
    std::push_heap(heap.begin(), heap.end());
  };
  for (std::int32_t i = 0; i + 1 < count; ++i) consider(i);

  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end());
    const Candidate top = heap.back();
    heap.pop_back();
    Symbol& left = symbols[top.left];
    Symbol& right = symbols[top.right];
    if (left.length == 0 || right.length == 0 || left.next != top.right ||
        left.length + right.length != top.length) {
      continue;
    }
    left.length += right.length;
    right.length = 0;
    left.next = right.next;
    if (left.next < count) symbols[left.next].prev = top.left;
    consider(left.prev);
    consider(top.left);
  }

  for (std::int32_t i = 0; i < count; i = symbols[i].next) {
    const std::string_view piece = std::string_view(text).substr(symbols[i].offset, symbols[i].length);
    const std::int32_t token = vocab_->find(piece);
    if (token >= 0) {
      out.push_back(token);
      continue;
    }
    for (const char c : piece) {
      const std::int32_t byte_token = byte_tokens_[static_cast<std::uint8_t>(c)];
      if (byte_token >= 0) {
        out.push_back(byte_token);
      } else {
        LS_CHECK(data_->unk >= 0, "byte 0x{:02x} has no token and the vocabulary has no UNK token",
                 static_cast<unsigned>(static_cast<std::uint8_t>(c)));
        out.push_back(data_->unk);
      }
    }
  }
}

std::string SpmModel::token_bytes(std::int32_t id) const {
  const std::string& text = data_->tokens[id];
  if (!data_->token_types.empty() && static_cast<TokenType>(data_->token_types[id]) == TokenType::Byte) {
    const int value = byte_token_value(text);
    if (value >= 0) return std::string(1, static_cast<char>(value));
  }
  std::string bytes;
  bytes.reserve(text.size());
  for (std::size_t pos = 0; pos < text.size();) {
    if (text.compare(pos, kSpace.size(), kSpace) == 0) {
      bytes.push_back(' ');
      pos += kSpace.size();
    } else {
      bytes.push_back(text[pos++]);
    }
  }
  return bytes;
}

}  // namespace ls
