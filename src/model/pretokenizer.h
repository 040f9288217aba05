// Pre-tokenizers: split text into pieces before byte-level BPE runs on each piece on its own.
// The GPT-2 regex and the `smollm` variant (docs/MODELS.md §5.1) are implemented by hand over
// the Unicode classes of model/unicode.h, so no regex library is involved.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace ls {

enum class PreTokenizer {
  // GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  Gpt2,
  // First every \p{N} code point becomes a piece of its own, then GPT-2 on what is left.
  SmolLM,
};

// The pre-tokenizer for a GGUF `tokenizer.ggml.pre` name; throws ls::Error naming the
// supported ones when `name` is not one of them.
PreTokenizer pre_tokenizer_from_name(std::string_view name);

// A piece is the byte range [begin, end) of the text.
struct TextSpan {
  std::uint32_t begin = 0;
  std::uint32_t end = 0;
};

// Appends the pieces of `text`, in order; together they cover `text` exactly. Bytes that are not
// valid UTF-8 count as single characters of class "other" (neither letter, number nor space).
void pre_tokenize(PreTokenizer kind, std::string_view text, std::vector<TextSpan>& pieces);

}  // namespace ls
