// Unicode classes and UTF-8 helpers, and the GPT-2 / smollm pre-tokenizers on hand-worked
// examples (each checked against what the regex of docs/MODELS.md §5.1 matches).
#include "model/pretokenizer.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/error.h"
#include "model/unicode.h"

namespace ls {
namespace {

using unicode::CharClass;

std::vector<std::string> pieces_of(PreTokenizer kind, std::string_view text) {
  std::vector<TextSpan> spans;
  pre_tokenize(kind, text, spans);
  std::vector<std::string> out;
  for (const TextSpan& s : spans) out.emplace_back(text.substr(s.begin, s.end - s.begin));
  return out;
}

using Pieces = std::vector<std::string>;

TEST(Unicode, ClassesFollowTheCharacterDatabase) {
  EXPECT_EQ(unicode::char_class(U'a'), CharClass::Letter);
  EXPECT_EQ(unicode::char_class(U'Z'), CharClass::Letter);
  EXPECT_EQ(unicode::char_class(U'\u00e9'), CharClass::Letter);   // é, Ll
  EXPECT_EQ(unicode::char_class(U'\u4e2d'), CharClass::Letter);   // 中, Lo
  EXPECT_EQ(unicode::char_class(U'\u02b0'), CharClass::Letter);   // ʰ, Lm
  EXPECT_EQ(unicode::char_class(U'7'), CharClass::Number);
  EXPECT_EQ(unicode::char_class(U'\u00b2'), CharClass::Number);   // ², No
  EXPECT_EQ(unicode::char_class(U'\u216b'), CharClass::Number);   // Ⅻ, Nl
  EXPECT_EQ(unicode::char_class(U'\u0663'), CharClass::Number);   // Arabic-Indic three, Nd
  EXPECT_EQ(unicode::char_class(U' '), CharClass::Space);
  EXPECT_EQ(unicode::char_class(U'\t'), CharClass::Space);
  EXPECT_EQ(unicode::char_class(U'\u0085'), CharClass::Space);
  EXPECT_EQ(unicode::char_class(U'\u00a0'), CharClass::Space);
  EXPECT_EQ(unicode::char_class(U'\u3000'), CharClass::Space);
  EXPECT_EQ(unicode::char_class(U'\u200b'), CharClass::Other);    // zero-width space is Cf
  EXPECT_EQ(unicode::char_class(U'\u001c'), CharClass::Other);    // not White_Space
  EXPECT_EQ(unicode::char_class(U'!'), CharClass::Other);
  EXPECT_EQ(unicode::char_class(U'\U0001f600'), CharClass::Other);  // 😀, So
  EXPECT_EQ(unicode::char_class(U'\U00020000'), CharClass::Letter);  // CJK extension B
  EXPECT_EQ(unicode::char_class(0x10FFFF), CharClass::Other);
  EXPECT_EQ(unicode::char_class(0x110000), CharClass::Other);
}

TEST(Unicode, DecodeRejectsMalformedSequences) {
  EXPECT_EQ(unicode::decode_utf8("\xE2\x82\xAC", 0).cp, U'\u20ac');
  EXPECT_EQ(unicode::decode_utf8("\xF0\x9F\x98\x80", 0).length, 4);
  EXPECT_FALSE(unicode::decode_utf8("\xC0\x80", 0).valid);          // overlong
  EXPECT_FALSE(unicode::decode_utf8("\xED\xA0\x80", 0).valid);      // surrogate
  EXPECT_FALSE(unicode::decode_utf8("\xF4\x90\x80\x80", 0).valid);  // above U+10FFFF
  EXPECT_FALSE(unicode::decode_utf8("\xE2\x82", 0).valid);          // truncated
  EXPECT_FALSE(unicode::decode_utf8("\x80", 0).valid);              // lone continuation
  EXPECT_EQ(unicode::decode_utf8("\x80", 0).length, 1);
  EXPECT_TRUE(unicode::is_valid_utf8("Caf\xC3\xA9 \xF0\x9F\x98\x80"));
  EXPECT_FALSE(unicode::is_valid_utf8("Caf\xC3"));
  std::string s;
  unicode::append_utf8(s, U'\U0001f600');
  unicode::append_utf8(s, U'\u00e9');
  EXPECT_EQ(s, "\xF0\x9F\x98\x80\xC3\xA9");
}

TEST(Unicode, DrainHoldsIncompleteSequencesAndReplacesInvalidBytes) {
  std::string pending = "ab\xF0\x9F";
  std::string out;
  unicode::drain_utf8(pending, out, false);
  EXPECT_EQ(out, "ab");
  EXPECT_EQ(pending, "\xF0\x9F");
  pending += "\x98\x80";
  unicode::drain_utf8(pending, out, false);
  EXPECT_EQ(out, "ab\xF0\x9F\x98\x80");
  EXPECT_TRUE(pending.empty());
  // Bytes that can never start a character are replaced at once.
  out.clear();
  pending = "\x80x\xC0";
  unicode::drain_utf8(pending, out, false);
  EXPECT_EQ(out, "\xEF\xBF\xBDx\xEF\xBF\xBD");
  EXPECT_TRUE(pending.empty());
  // E0 80 can never complete (overlong); E0 A0 can.
  out.clear();
  pending = "\xE0\x80";
  unicode::drain_utf8(pending, out, false);
  EXPECT_EQ(out, "\xEF\xBF\xBD\xEF\xBF\xBD");
  out.clear();
  pending = "\xE0\xA0";
  unicode::drain_utf8(pending, out, false);
  EXPECT_EQ(out, "");
  unicode::drain_utf8(pending, out, true);  // the end: the cut-off character is one U+FFFD
  EXPECT_EQ(out, "\xEF\xBF\xBD");
  EXPECT_TRUE(pending.empty());
}

TEST(Unicode, ReplaceInvalid) {
  EXPECT_EQ(unicode::replace_invalid_utf8("ok \xC3\xA9"), "ok \xC3\xA9");
  EXPECT_EQ(unicode::replace_invalid_utf8("a\xFF b\xC3"), "a\xEF\xBF\xBD b\xEF\xBF\xBD");
  EXPECT_EQ(unicode::replace_invalid_utf8("\xE2\x82x"), "\xEF\xBF\xBD\xEF\xBF\xBDx");
}

TEST(PreTokenizer, SmolLMSplitsEveryDigit) {
  EXPECT_EQ(pieces_of(PreTokenizer::SmolLM, "Hello world! 123"), (Pieces{"Hello", " world", "!", " ", "1", "2", "3"}));
  EXPECT_EQ(pieces_of(PreTokenizer::Gpt2, "Hello world! 123"), (Pieces{"Hello", " world", "!", " 123"}));
  EXPECT_EQ(pieces_of(PreTokenizer::SmolLM, "x\u00b2+3.14"), (Pieces{"x", "\u00b2", "+", "3", ".", "1", "4"}));
  EXPECT_EQ(pieces_of(PreTokenizer::SmolLM, "abc12def"), (Pieces{"abc", "1", "2", "def"}));
}

TEST(PreTokenizer, WhitespaceRuns) {
  EXPECT_EQ(pieces_of(PreTokenizer::SmolLM, "  multiple   spaces"), (Pieces{" ", " multiple", "  ", " spaces"}));
  EXPECT_EQ(pieces_of(PreTokenizer::SmolLM, "a\nb"), (Pieces{"a", "\n", "b"}));
  EXPECT_EQ(pieces_of(PreTokenizer::SmolLM, "x  \n\ny"), (Pieces{"x", "  \n", "\n", "y"}));
  EXPECT_EQ(pieces_of(PreTokenizer::SmolLM, "trail  "), (Pieces{"trail", "  "}));
  EXPECT_EQ(pieces_of(PreTokenizer::SmolLM, "\n\n\n"), (Pieces{"\n\n\n"}));
  EXPECT_EQ(pieces_of(PreTokenizer::SmolLM, "tab\tsep"), (Pieces{"tab", "\t", "sep"}));
  EXPECT_EQ(pieces_of(PreTokenizer::SmolLM, "a \u3000b"), (Pieces{"a", " ", "\u3000", "b"}));
  // The piece before a digit ends there, so its trailing spaces end a "text".
  EXPECT_EQ(pieces_of(PreTokenizer::SmolLM, "is  42"), (Pieces{"is", "  ", "4", "2"}));
}

TEST(PreTokenizer, ContractionsAndPunctuation) {
  EXPECT_EQ(pieces_of(PreTokenizer::SmolLM, "don't we'll I'M they've"),
            (Pieces{"don", "'t", " we", "'ll", " I", "'", "M", " they", "'ve"}));
  EXPECT_EQ(pieces_of(PreTokenizer::SmolLM, "?!'s"), (Pieces{"?!'", "s"}));
  EXPECT_EQ(pieces_of(PreTokenizer::SmolLM, "it 's"), (Pieces{"it", " '", "s"}));
  EXPECT_EQ(pieces_of(PreTokenizer::SmolLM, "'"), (Pieces{"'"}));
  EXPECT_EQ(pieces_of(PreTokenizer::SmolLM, "Caf\u00e9 d\u00e9j\u00e0 vu."), (Pieces{"Caf\u00e9", " d\u00e9j\u00e0", " vu", "."}));
  EXPECT_EQ(pieces_of(PreTokenizer::SmolLM, "\u65e5\u672c\u8a9e\U0001f600\U0001f680 ok"),
            (Pieces{"\u65e5\u672c\u8a9e", "\U0001f600\U0001f680", " ok"}));
}

TEST(PreTokenizer, InvalidBytesAreCharactersOfTheirOwn) {
  EXPECT_EQ(pieces_of(PreTokenizer::SmolLM, "a\xff\xfe b"), (Pieces{"a", "\xff\xfe", " b"}));
  EXPECT_EQ(pieces_of(PreTokenizer::SmolLM, " \xC3"), (Pieces{" \xC3"}));
}

TEST(PreTokenizer, PiecesCoverTheText) {
  const std::string alphabet[] = {"a", "Z", " ", "  ", "\n", "\t", "'", "'s", "1", "!", "\u00e9", "\u4e2d", "\U0001f600", "\xff", "\u00a0"};
  std::uint64_t state = 12345;
  for (int trial = 0; trial < 500; ++trial) {
    std::string text;
    const int length = trial % 40;
    for (int i = 0; i < length; ++i) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      text += alphabet[(state >> 33) % std::size(alphabet)];
    }
    for (const PreTokenizer kind : {PreTokenizer::SmolLM, PreTokenizer::Gpt2}) {
      std::string joined;
      for (const std::string& piece : pieces_of(kind, text)) {
        ASSERT_FALSE(piece.empty());
        joined += piece;
      }
      ASSERT_EQ(joined, text);
    }
  }
}

TEST(PreTokenizer, Names) {
  EXPECT_EQ(pre_tokenizer_from_name("smollm"), PreTokenizer::SmolLM);
  EXPECT_EQ(pre_tokenizer_from_name("gpt2"), PreTokenizer::Gpt2);
  EXPECT_THROW(pre_tokenizer_from_name("llama-bpe"), Error);
}

}  // namespace
}  // namespace ls
