// The GPT-2 pre-tokenizer regex written out as a scanner, and the smollm digit split in front
// of it. Each alternative of the regex is tried in order at the current position, as the
// backtracking regex would; a character no alternative matches becomes a piece of its own.
#include "model/pretokenizer.h"

#include <string>

#include "core/error.h"
#include "model/unicode.h"

namespace ls {
namespace {

using unicode::CharClass;

struct Char {
  std::uint32_t offset;  // byte offset in the text
  std::uint32_t length;  // bytes
  char32_t cp;
  CharClass cls;
};

void decode_chars(std::string_view text, std::vector<Char>& chars) {
  chars.clear();
  chars.reserve(text.size());
  for (std::size_t pos = 0; pos < text.size();) {
    const unicode::Utf8Char c = unicode::decode_utf8(text, pos);
    const CharClass cls = c.valid ? unicode::char_class(c.cp) : CharClass::Other;
    chars.push_back({static_cast<std::uint32_t>(pos), c.length, c.valid ? c.cp : 0xFFFD, cls});
    pos += c.length;
  }
}

// Length in characters of the contraction ('s 't 're 've 'm 'll 'd, lower case only) at
// `pos`, or 0. `end` bounds the lookahead: the regex never looks past the current piece.
std::size_t contraction_length(const std::vector<Char>& chars, std::size_t pos, std::size_t end) {
  if (chars[pos].cp != U'\'' || pos + 1 >= end) return 0;
  const char32_t a = chars[pos + 1].cp;
  if (a == U's' || a == U't' || a == U'm' || a == U'd') return 2;
  if (pos + 2 >= end) return 0;
  const char32_t b = chars[pos + 2].cp;
  if ((a == U'r' && b == U'e') || (a == U'v' && b == U'e') || (a == U'l' && b == U'l')) return 3;
  return 0;
}

// GPT-2 regex over chars [begin, end), which the caller treats as a whole text (the end is
// the end of input for the lookahead of \s+(?!\S)).
void split_gpt2(const std::vector<Char>& chars, std::size_t begin, std::size_t end,
                std::vector<TextSpan>& pieces) {
  const auto emit = [&](std::size_t first, std::size_t last) {  // characters [first, last)
    pieces.push_back({chars[first].offset, chars[last - 1].offset + chars[last - 1].length});
  };
  std::size_t pos = begin;
  while (pos < end) {
    if (const std::size_t n = contraction_length(chars, pos, end)) {
      emit(pos, pos + n);
      pos += n;
      continue;
    }
    // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: an optional U+0020, then a run of one class.
    std::size_t run = pos;
    if (chars[pos].cp == U' ' && pos + 1 < end && chars[pos + 1].cls != CharClass::Space) ++run;
    const CharClass cls = chars[run].cls;
    if (cls != CharClass::Space) {
      std::size_t stop = run + 1;
      while (stop < end && chars[stop].cls == cls) ++stop;
      emit(pos, stop);
      pos = stop;
      continue;
    }
    // `\s+(?!\S)`: whitespace not followed by a non-space, i.e. all of a run that ends the
    // text, else all but its last character (which then starts the next piece). A single
    // whitespace character before a non-space matches only the final `\s+`.
    std::size_t stop = pos + 1;
    while (stop < end && chars[stop].cls == CharClass::Space) ++stop;
    if (stop < end && stop - pos > 1) --stop;
    emit(pos, stop);
    pos = stop;
  }
}

}  // namespace

PreTokenizer pre_tokenizer_from_name(std::string_view name) {
  if (name == "smollm") return PreTokenizer::SmolLM;
  if (name == "gpt2" || name == "gpt-2") return PreTokenizer::Gpt2;
  fail("unsupported pre-tokenizer '{}' (tokenizer.ggml.pre); supported: smollm, gpt2", name);
}

void pre_tokenize(PreTokenizer kind, std::string_view text, std::vector<TextSpan>& pieces) {
  LS_CHECK(text.size() < (std::size_t{1} << 32), "text of {} bytes is too long to tokenize", text.size());
  thread_local std::vector<Char> chars;  // scratch reused across calls
  decode_chars(text, chars);
  const std::size_t n = chars.size();
  if (kind == PreTokenizer::Gpt2) {
    split_gpt2(chars, 0, n, pieces);
    return;
  }
  // SmolLM: every number character is a piece; the stretches between them go through GPT-2
  // separately, each as if it were the whole text.
  std::size_t start = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (chars[i].cls != CharClass::Number) continue;
    if (start < i) split_gpt2(chars, start, i, pieces);
    pieces.push_back({chars[i].offset, chars[i].offset + chars[i].length});
    start = i + 1;
  }
  if (start < n) split_gpt2(chars, start, n, pieces);
}

}  // namespace ls
