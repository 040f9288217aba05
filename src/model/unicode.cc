// UTF-8 decoding and code-point classes; the class table itself is generated
// (unicode_tables.cc).
#include "model/unicode.h"

#include <algorithm>
#include <array>

namespace ls::unicode {

extern const char kUnicodeVersion[];
extern const std::uint32_t kClassRuns[];  // [kClassRunCount] first code point << 2 | class
extern const std::size_t kClassRunCount;

namespace {

CharClass lookup_class(char32_t cp) {
  const std::uint32_t key = (static_cast<std::uint32_t>(cp) << 2) | 3u;
  const std::uint32_t* end = kClassRuns + kClassRunCount;
  const std::uint32_t* it = std::upper_bound(kClassRuns, end, key);
  return static_cast<CharClass>(*(it - 1) & 3u);  // kClassRuns[0] starts at U+0000
}

// Text is mostly ASCII: answer it from a small table.
const std::array<CharClass, 128>& ascii_classes() {
  static const std::array<CharClass, 128> table = [] {
    std::array<CharClass, 128> t{};
    for (char32_t cp = 0; cp < 128; ++cp) t[cp] = lookup_class(cp);
    return t;
  }();
  return table;
}

// True when `tail` (which does not decode) is the start of a valid sequence whose remaining
// bytes have not arrived yet. Only the lead byte and the second byte constrain validity
// (overlongs, surrogates, > U+10FFFF), so padding with 0x80 decides it once two bytes are here.
bool could_complete(std::string_view tail) {
  const unsigned char lead = static_cast<unsigned char>(tail[0]);
  std::size_t need;
  if (lead >= 0xC2 && lead <= 0xDF) need = 2;
  else if (lead >= 0xE0 && lead <= 0xEF) need = 3;
  else if (lead >= 0xF0 && lead <= 0xF4) need = 4;
  else return false;
  if (tail.size() >= need) return false;
  if (tail.size() == 1) return true;
  std::string padded(tail);
  padded.append(need - tail.size(), '\x80');
  return decode_utf8(padded, 0).valid;
}

}  // namespace

CharClass char_class(char32_t cp) {
  if (cp < 128) return ascii_classes()[cp];
  if (cp > 0x10FFFF) return CharClass::Other;
  return lookup_class(cp);
}

Utf8Char decode_utf8(std::string_view text, std::size_t pos) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(pos);
  if (lead < 0x80) return {lead, 1, true};
  const Utf8Char invalid{lead, 1, false};
  std::size_t length;
  char32_t cp;
  char32_t min_cp;
  if ((lead & 0xE0) == 0xC0) {
    length = 2, cp = lead & 0x1F, min_cp = 0x80;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3, cp = lead & 0x0F, min_cp = 0x800;
  } else if ((lead & 0xF8) == 0xF0) {
    length = 4, cp = lead & 0x07, min_cp = 0x10000;
  } else {
    return invalid;
  }
  if (pos + length > text.size()) return invalid;
  for (std::size_t i = 1; i < length; ++i) {
    const unsigned char next = byte(pos + i);
    if ((next & 0xC0) != 0x80) return invalid;
    cp = (cp << 6) | (next & 0x3F);
  }
  if (cp < min_cp || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return invalid;
  return {cp, static_cast<std::uint8_t>(length), true};
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

void drain_utf8(std::string& pending, std::string& out, bool final) {
  std::size_t pos = 0;
  while (pos < pending.size()) {
    const Utf8Char c = decode_utf8(pending, pos);
    if (c.valid) {
      out.append(pending, pos, c.length);
      pos += c.length;
      continue;
    }
    out.append("\xEF\xBF\xBD");  // U+FFFD
    if (could_complete(std::string_view(pending).substr(pos))) {
      if (!final) {
        out.resize(out.size() - 3);
        break;  // wait for the rest of the character
      }
      pos = pending.size();  // a character cut off at the end: one replacement for all of it
      break;
    }
    pos += 1;  // a byte that cannot start a character
  }
  pending.erase(0, pos);
}

std::string replace_invalid_utf8(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 8);
  for (std::size_t pos = 0; pos < text.size();) {
    const Utf8Char c = decode_utf8(text, pos);
    if (c.valid) {
      out.append(text.substr(pos, c.length));
    } else {
      out.append("\xEF\xBF\xBD");
    }
    pos += c.length;
  }
  return out;
}

bool is_valid_utf8(std::string_view text) {
  for (std::size_t pos = 0; pos < text.size();) {
    const Utf8Char c = decode_utf8(text, pos);
    if (!c.valid) return false;
    pos += c.length;
  }
  return true;
}

std::string_view table_version() { return kUnicodeVersion; }

}  // namespace ls::unicode
