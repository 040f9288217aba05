// UTF-8 decoding and the code-point classes (letter, number, whitespace) the pre-tokenizers
// need. The class table is generated from the Unicode Character Database by
// scripts/gen-unicode-tables.py (src/model/unicode_tables.cc).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace ls::unicode {

enum class CharClass : std::uint8_t { Other = 0, Letter = 1, Number = 2, Space = 3 };

// Class of a code point: Letter = general category L*, Number = N*, Space = White_Space.
// Values above U+10FFFF are Other.
CharClass char_class(char32_t cp);

// One decoded UTF-8 sequence: the code point and its length in bytes. An invalid or truncated
// sequence decodes as one byte with `valid` false (its code point is then the byte value and
// its class is Other), so that every byte of any input belongs to exactly one character.
struct Utf8Char {
  char32_t cp = 0;
  std::uint8_t length = 1;
  bool valid = true;
};
Utf8Char decode_utf8(std::string_view text, std::size_t pos);

// Appends the UTF-8 encoding of `cp` (which must be <= U+10FFFF).
void append_utf8(std::string& out, char32_t cp);

// Streaming helper: moves the decodable prefix of `pending` to `out` as well-formed UTF-8.
// A byte that cannot start or continue a character becomes U+FFFD. A valid but incomplete
// sequence at the end stays in `pending` for the next call, unless `final` (then it becomes
// one U+FFFD).
void drain_utf8(std::string& pending, std::string& out, bool final);

// `text` with every byte that is not part of a well-formed sequence replaced by U+FFFD.
std::string replace_invalid_utf8(std::string_view text);

// True when `text` is well-formed UTF-8 (no overlongs, surrogates or values above U+10FFFF).
bool is_valid_utf8(std::string_view text);

// The Unicode version the class table was generated from.
std::string_view table_version();

}  // namespace ls::unicode
