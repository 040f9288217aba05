// GPT-2 byte-level BPE (docs/MODELS.md §5.1): each byte of a pre-tokenized piece becomes one
// symbol (via the GPT-2 bytes_to_unicode map), then the adjacent pair with the lowest merge
// rank is merged until no pair has a rank (ties: leftmost first).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "model/vocab_index.h"

namespace ls {

struct TokenizerData;

// The 256 symbols bytes map to: bytes 33–126, 161–172 and 174–255 map to themselves (as code
// points), the other 68, in order, to U+0100 onwards (so ' ' → 'Ġ' U+0120).
char32_t byte_to_symbol(std::uint8_t byte);

class BpeModel {
 public:
  // Throws ls::Error on a malformed merge.
  BpeModel(const TokenizerData& data, const VocabIndex& vocab);

  // Appends the ids of one piece. A final symbol that is not in the vocabulary is emitted as
  // one token per byte; a byte whose symbol is not a token either is dropped (SmolLM2 has no
  // token for 0x04, 0x06, 0x13, 0x14, 0x16, 0x1D, 0xC0, 0xC1, 0xF1, 0xF2, 0xF5–0xFF).
  void encode_piece(std::string_view piece, std::vector<std::int32_t>& out) const;

  // The bytes a normal token's text stands for ("Ġworld" → " world"). Characters outside the
  // byte map are kept as their UTF-8.
  std::string symbols_to_bytes(std::string_view text) const;

 private:
  // Symbols are token ids, plus ids >= vocab_size_ for strings a merge or a byte produces that
  // are not tokens themselves, so that every merge can run on integers.
  std::int32_t symbol_id(const std::string& text, const VocabIndex& vocab,
                         std::unordered_map<std::string, std::int32_t>& extra);

  struct MergeEntry {
    std::uint64_t key = kEmpty;  // left symbol << 32 | right symbol
    std::int32_t rank = 0;
    std::int32_t result = 0;     // symbol of the merged pair
  };
  static constexpr std::uint64_t kEmpty = ~std::uint64_t{0};
  const MergeEntry* find_merge(std::int32_t left, std::int32_t right) const;
  void insert_merge(std::uint64_t key, std::int32_t rank, std::int32_t result);

  std::int32_t vocab_size_ = 0;
  std::int32_t byte_symbols_[256];            // [byte] symbol id of a single byte
  std::vector<std::string> extra_symbols_;    // [symbol - vocab_size_] texts of non-tokens
  std::vector<MergeEntry> merge_table_;       // open addressing, size a power of two
  std::uint32_t merge_shift_ = 64;
  std::int32_t symbol_to_byte_[512];          // [code point < 512] byte, or -1
};

}  // namespace ls
