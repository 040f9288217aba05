// Lookup from vocabulary text to token id, shared by the tokenizer algorithms. SentencePiece
// merging asks for every adjacent pair of symbols, mostly pairs that are not tokens, in a
// vocabulary of up to 262k entries, so this is an open-addressing table of (hash, id) slots:
// a miss usually costs one cache line, a hit one more for the string compare.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ls {

class VocabIndex {
 public:
  // `tokens` must outlive the index and stay where it is. With duplicate entries the lowest
  // id wins.
  explicit VocabIndex(const std::vector<std::string>& tokens) : tokens_(&tokens) {
    std::size_t capacity = 16;
    while (capacity < 2 * tokens.size()) capacity *= 2;
    slots_.assign(capacity, Slot{});
    mask_ = capacity - 1;
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      const std::uint64_t h = hash(tokens[i]);
      for (std::size_t s = h & mask_;; s = (s + 1) & mask_) {
        Slot& slot = slots_[s];
        if (slot.id < 0) {
          slot = {static_cast<std::uint32_t>(h >> 32), static_cast<std::int32_t>(i)};
          break;
        }
        if (slot.tag == static_cast<std::uint32_t>(h >> 32) && tokens[slot.id] == tokens[i]) break;
      }
    }
  }

  std::int32_t find(std::string_view text) const {  // -1 when absent
    const std::uint64_t h = hash(text);
    const auto tag = static_cast<std::uint32_t>(h >> 32);
    for (std::size_t s = h & mask_;; s = (s + 1) & mask_) {
      const Slot& slot = slots_[s];
      if (slot.id < 0) return -1;
      if (slot.tag == tag && (*tokens_)[slot.id] == text) return slot.id;
    }
  }

 private:
  // FNV-1a, then a final mix so that both the low bits (slot) and high bits (tag) are good.
  static std::uint64_t hash(std::string_view text) {
    std::uint64_t h = 0xcbf29ce484222325ull;
    for (const char c : text) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    return h ^ (h >> 33);
  }

  struct Slot {
    std::uint32_t tag = 0;  // high half of the hash
    std::int32_t id = -1;   // -1: empty
  };
  const std::vector<std::string>* tokens_;
  std::vector<Slot> slots_;  // [capacity], a power of two at least twice the vocabulary
  std::size_t mask_ = 0;
};

}  // namespace ls
