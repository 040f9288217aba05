// SentencePiece-style BPE with scores and byte fallback (`tokenizer.ggml.model = llama`,
// Gemma 3; docs/MODELS.md §5.2): spaces become U+2581, characters are merged pairwise by the
// score of the token their concatenation forms (highest first, ties leftmost), and characters
// without a token fall back to <0xXX> byte tokens.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "model/vocab_index.h"

namespace ls {

struct TokenizerData;

class SpmModel {
 public:
  SpmModel(const TokenizerData& data, const VocabIndex& vocab);

  // Appends the ids of one raw-text fragment (spaces not yet replaced).
  void encode_fragment(std::string_view text, std::vector<std::int32_t>& out) const;

  // The bytes a token stands for: "▁" → ' ', <0xXX> → that byte.
  std::string token_bytes(std::int32_t id) const;

 private:
  const TokenizerData* data_;
  const VocabIndex* vocab_;
  std::int32_t byte_tokens_[256];  // [byte] id of <0xXX>, or -1
};

}  // namespace ls
