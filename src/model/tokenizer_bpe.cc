// Byte-level BPE on integer symbols: merges are looked up in an open-addressing table keyed by
// the (left, right) symbol pair, and each piece is merged with a heap of candidate pairs over a
// linked list of symbols, so a piece of n bytes costs O(n log n).
#include "model/tokenizer_bpe.h"

#include <algorithm>
#include <unordered_map>

#include "core/error.h"
#include "model/tokenizer.h"
#include "model/unicode.h"

namespace ls {

char32_t byte_to_symbol(std::uint8_t byte) {
  const auto printable = [](unsigned b) {
    return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
  };
  if (printable(byte)) return byte;
  // Non-printable bytes take U+0100 + (their index among the non-printable bytes).
  char32_t next = 0x100;
  for (unsigned b = 0; b < byte; ++b) next += !printable(b);
  return next;
}

namespace {

std::uint64_t pair_key(std::int32_t left, std::int32_t right) {
  return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(left)) << 32) |
         static_cast<std::uint32_t>(right);
}

std::size_t hash_slot(std::uint64_t key, std::uint32_t shift) {
  return static_cast<std::size_t>((key * 0x9E3779B97F4A7C15ull) >> shift);
}

}  // namespace

std::int32_t BpeModel::symbol_id(const std::string& text, const VocabIndex& vocab,
                                std::unordered_map<std::string, std::int32_t>& extra) {
  const std::int32_t id = vocab.find(text);
  if (id >= 0) return id;
  auto [it, inserted] = extra.emplace(
      text, vocab_size_ + static_cast<std::int32_t>(extra_symbols_.size()));
  if (inserted) extra_symbols_.push_back(text);
  return it->second;
}

BpeModel::BpeModel(const TokenizerData& data, const VocabIndex& vocab)
    : vocab_size_(static_cast<std::int32_t>(data.tokens.size())) {
  std::unordered_map<std::string, std::int32_t> extra;  // non-token symbols while building
  std::fill(std::begin(symbol_to_byte_), std::end(symbol_to_byte_), -1);
  for (int b = 0; b < 256; ++b) {
    const char32_t symbol = byte_to_symbol(static_cast<std::uint8_t>(b));
    symbol_to_byte_[symbol] = b;
    std::string text;
    unicode::append_utf8(text, symbol);
    byte_symbols_[b] = symbol_id(text, vocab, extra);
  }

  std::size_t capacity = 16;
  while (capacity < 2 * data.merges.size()) capacity *= 2;
  merge_table_.assign(capacity, MergeEntry{});
  merge_shift_ = 64 - static_cast<std::uint32_t>(__builtin_ctzll(capacity));
  for (std::size_t rank = 0; rank < data.merges.size(); ++rank) {
    const std::string& merge = data.merges[rank];
    // "A B", split at the first space after the first byte (a part may itself start with one).
    const std::size_t space = merge.size() > 1 ? merge.find(' ', 1) : std::string::npos;
    LS_CHECK(space != std::string::npos && space + 1 < merge.size(),
             "tokenizer merge {} ('{}') is not of the form 'A B'", rank, merge);
    const std::string left = merge.substr(0, space);
    const std::string right = merge.substr(space + 1);
    const std::int32_t left_id = symbol_id(left, vocab, extra);
    const std::int32_t right_id = symbol_id(right, vocab, extra);
    const std::int32_t result = symbol_id(left + right, vocab, extra);
    insert_merge(pair_key(left_id, right_id), static_cast<std::int32_t>(rank), result);
  }
}

void BpeModel::insert_merge(std::uint64_t key, std::int32_t rank, std::int32_t result) {
  const std::size_t mask = merge_table_.size() - 1;
  for (std::size_t slot = hash_slot(key, merge_shift_);; slot = (slot + 1) & mask) {
    MergeEntry& entry = merge_table_[slot];
    if (entry.key == key) return;  // a duplicate merge keeps its first (lowest) rank
    if (entry.key == kEmpty) {
      entry = {key, rank, result};
      return;
    }
  }
}

const BpeModel::MergeEntry* BpeModel::find_merge(std::int32_t left, std::int32_t right) const {
  const std::uint64_t key = pair_key(left, right);
  const std::size_t mask = merge_table_.size() - 1;
  for (std::size_t slot = hash_slot(key, merge_shift_);; slot = (slot + 1) & mask) {
    const MergeEntry& entry = merge_table_[slot];
    if (entry.key == key) return &entry;
    if (entry.key == kEmpty) return nullptr;
  }
}

void BpeModel::encode_piece(std::string_view piece, std::vector<std::int32_t>& out) const {
  const auto emit_bytes = [&](std::size_t begin, std::size_t end) {
    for (std::size_t i = begin; i < end; ++i) {
      const std::int32_t symbol = byte_symbols_[static_cast<std::uint8_t>(piece[i])];
      // A byte without a token is dropped, as llama.cpp does: SmolLM2's UNK is <|endoftext|>,
      // which would end the document in the middle of the prompt.
      if (symbol < vocab_size_) out.push_back(symbol);
    }
  };
  const std::size_t n = piece.size();
  if (n == 0) return;
  if (n == 1) {
    emit_bytes(0, 1);
    return;
  }

  // Symbols form a linked list over byte positions; symbol i covers bytes [i, next[i]).
  struct Candidate {
    std::int32_t rank;
    std::int32_t left;   // byte position of the left symbol
    std::int32_t right;  // byte position of the right symbol
    std::int32_t size;   // bytes of both together, to detect stale entries
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : left > o.left;
    }
  };
  thread_local std::vector<std::int32_t> symbol, prev, next;  // [n] scratch
  thread_local std::vector<Candidate> heap;  // min-heap on (rank, left)
  symbol.resize(n);
  prev.resize(n);
  next.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    symbol[i] = byte_symbols_[static_cast<std::uint8_t>(piece[i])];
    prev[i] = static_cast<std::int32_t>(i) - 1;
    next[i] = static_cast<std::int32_t>(i + 1);
  }
  heap.clear();
  const std::greater<> later;
  const auto consider = [&](std::int32_t left) {
    const std::int32_t right = next[left];
    if (right >= static_cast<std::int32_t>(n)) return;
    if (const MergeEntry* merge = find_merge(symbol[left], symbol[right])) {
      const std::int32_t end = next[right];
      heap.push_back({merge->rank, left, right, end - left});
      std::push_heap(heap.begin(), heap.end(), later);
    }
  };
  for (std::int32_t i = 0; i + 1 < static_cast<std::int32_t>(n); ++i) consider(i);

  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), later);
    const Candidate top = heap.back();
    heap.pop_back();
    // Stale when either side has been merged since: sizes or adjacency changed.
    if (symbol[top.left] < 0 || symbol[top.right] < 0 || next[top.left] != top.right ||
        next[top.right] - top.left != top.size) {
      continue;
    }
    const MergeEntry* merge = find_merge(symbol[top.left], symbol[top.right]);
    if (merge == nullptr || merge->rank != top.rank) continue;
    symbol[top.left] = merge->result;
    symbol[top.right] = -1;
    next[top.left] = next[top.right];
    if (next[top.left] < static_cast<std::int32_t>(n)) prev[next[top.left]] = top.left;
    if (prev[top.left] >= 0) consider(prev[top.left]);
    consider(top.left);
  }

  for (std::int32_t i = 0; i < static_cast<std::int32_t>(n); i = next[i]) {
    if (symbol[i] < vocab_size_) {
      out.push_back(symbol[i]);
    } else {
      emit_bytes(i, next[i]);
    }
  }
}

std::string BpeModel::symbols_to_bytes(std::string_view text) const {
  std::string bytes;
  bytes.reserve(text.size());
  for (std::size_t pos = 0; pos < text.size();) {
    const unicode::Utf8Char c = unicode::decode_utf8(text, pos);
    if (c.valid && c.cp < 512 && symbol_to_byte_[c.cp] >= 0) {
      bytes.push_back(static_cast<char>(symbol_to_byte_[c.cp]));
    } else {
      bytes.append(text.substr(pos, c.length));
    }
    pos += c.length;
  }
  return bytes;
}

}  // namespace ls
