// Tokenizer rules on small hand-made vocabularies, where the expected ids follow from the
// algorithm's definition: BPE merge order and byte fallback, special-token precedence,
// SentencePiece-style merging by score with byte fallback, BOS handling and input validation.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/error.h"
#include "model/tokenizer.h"
#include "model/tokenizer_bpe.h"
#include "model/unicode.h"

namespace ls {
namespace {

using Ids = std::vector<std::int32_t>;

std::string symbol_text(std::uint8_t byte) {
  std::string s;
  unicode::append_utf8(s, byte_to_symbol(byte));
  return s;
}

// A byte-level vocabulary: ids 0..255 are the bytes, then the given extra tokens.
TokenizerData byte_level(const std::vector<std::pair<std::string, TokenType>>& extra,
                         std::vector<std::string> merges) {
  TokenizerData d;
  d.model = "gpt2";
  d.pre = "smollm";
  for (int b = 0; b < 256; ++b) {
    d.tokens.push_back(symbol_text(static_cast<std::uint8_t>(b)));
    d.token_types.push_back(static_cast<std::int32_t>(TokenType::Normal));
  }
  for (const auto& [text, type] : extra) {
    d.tokens.push_back(text);
    d.token_types.push_back(static_cast<std::int32_t>(type));
  }
  d.merges = std::move(merges);
  return d;
}

TEST(ByteLevel, BytesToUnicodeMap) {
  EXPECT_EQ(byte_to_symbol('!'), U'!');
  EXPECT_EQ(byte_to_symbol('~'), U'~');
  EXPECT_EQ(byte_to_symbol(0xA1), U'\u00a1');
  EXPECT_EQ(byte_to_symbol(0xAD), U'\u0143');  // the 68th and last non-printable byte: 0x100 + 67
  EXPECT_EQ(byte_to_symbol(0x00), U'\u0100');
  EXPECT_EQ(byte_to_symbol(' '), U'\u0120');   // Ġ
  EXPECT_EQ(byte_to_symbol('\n'), U'\u010a');  // Ċ
  EXPECT_EQ(byte_to_symbol(0x7F), U'\u0121');
  std::vector<char32_t> all;
  for (int b = 0; b < 256; ++b) all.push_back(byte_to_symbol(static_cast<std::uint8_t>(b)));
  std::sort(all.begin(), all.end());
  EXPECT_EQ(std::adjacent_find(all.begin(), all.end()), all.end());  // a bijection
}

TEST(ByteLevel, MergesApplyByRankNotPosition) {
  // Merges: rank 0 "b c", rank 1 "a b", rank 2 "a bc". In "abc" the pair (b,c) merges first
  // although (a,b) is further left, then (a,bc).
  const TokenizerData d = byte_level({{"bc", TokenType::Normal}, {"ab", TokenType::Normal}, {"abc", TokenType::Normal}},
                                     {"b c", "a b", "a bc"});
  const Tokenizer t(d);
  EXPECT_EQ(t.encode("abc", false), (Ids{258}));
  EXPECT_EQ(t.encode("abab", false), (Ids{257, 257}));
  // (b,b) has no merge.
  EXPECT_EQ(t.encode("abb", false), (Ids{257, 'b'}));
  EXPECT_EQ(t.decode(t.encode("abcab cab", false)), "abcab cab");
}

TEST(ByteLevel, LeftmostWinsOnEqualRank) {
  const TokenizerData d = byte_level({{"aa", TokenType::Normal}}, {"a a"});
  const Tokenizer t(d);
  EXPECT_EQ(t.encode("aaa", false), (Ids{256, 'a'}));
  EXPECT_EQ(t.encode("aaaa", false), (Ids{256, 256}));
}

TEST(ByteLevel, MergeResultOutsideTheVocabularyFallsBackToBytes) {
  // "x y" merges to "xy", which is not a token: its bytes are emitted instead.
  const TokenizerData d = byte_level({}, {"x y"});
  const Tokenizer t(d);
  EXPECT_EQ(t.encode("xyz", false), (Ids{'x', 'y', 'z'}));
}

TEST(ByteLevel, SpaceSymbolsInMerges) {
  const std::string g = symbol_text(' ');
  const TokenizerData d = byte_level({{g + "a", TokenType::Normal}}, {g + " a"});
  const Tokenizer t(d);
  EXPECT_EQ(t.encode(" a a", false), (Ids{256, 256}));
  EXPECT_EQ(t.token_text(256), " a");
}

TEST(SpecialTokens, LongestFirstAndUserDefinedAlways) {
  const TokenizerData d = byte_level({{"<a>", TokenType::Control},
                                      {"<a><b>", TokenType::UserDefined},
                                      {"xy", TokenType::UserDefined},
                                      {"yzw", TokenType::UserDefined}},
                                     {});
  const Tokenizer t(d);
  const Ids a = {'<', 'a', '>'};
  EXPECT_EQ(t.encode("<a>", true), (Ids{256}));
  EXPECT_EQ(t.encode("<a>", false), a);
  EXPECT_EQ(t.encode("<a><b>", true), (Ids{257}));
  EXPECT_EQ(t.encode("<a><b>", false), (Ids{257}));
  EXPECT_EQ(t.encode("<a><a><b>", true), (Ids{256, 257}));
  // "yzw" is longer, so it is split out first and "xy" no longer matches.
  EXPECT_EQ(t.encode("xyzw", false), (Ids{'x', 259}));
  EXPECT_EQ(t.encode("xyxy", false), (Ids{258, 258}));
  // User-defined tokens decode verbatim; control tokens only when rendered.
  EXPECT_EQ(t.decode(Ids{258, 256}), "xy");
  EXPECT_EQ(t.decode(Ids{258, 256}, true), "xy<a>");
}

TEST(SpecialTokens, BosAddedOnceAndEos) {
  TokenizerData d = byte_level({{"<s>", TokenType::Control}, {"</s>", TokenType::Control}}, {});
  d.bos = 256;
  d.eos = 257;
  d.add_bos = true;
  d.add_eos = true;
  const Tokenizer t(d);
  EXPECT_EQ(t.encode("hi", false), (Ids{256, 'h', 'i', 257}));
  EXPECT_EQ(t.encode("<s>hi", true), (Ids{256, 'h', 'i', 257}));  // not a second BOS
  EXPECT_EQ(t.encode("", false), (Ids{256, 257}));
  EXPECT_TRUE(t.is_end_of_generation(257));
}

// A SentencePiece-style vocabulary: <unk>, <s>, </s>, the 256 byte tokens, then scored pieces.
TokenizerData sentencepiece(const std::vector<std::pair<std::string, float>>& pieces) {
  TokenizerData d;
  d.model = "llama";
  d.pre = "default";
  const auto add = [&](std::string text, float score, TokenType type) {
    d.tokens.push_back(std::move(text));
    d.scores.push_back(score);
    d.token_types.push_back(static_cast<std::int32_t>(type));
  };
  add("<unk>", 0.0f, TokenType::Unknown);
  add("<s>", 0.0f, TokenType::Control);
  add("</s>", 0.0f, TokenType::Control);
  for (int b = 0; b < 256; ++b) add(fmt::format("<0x{:02X}>", b), 0.0f, TokenType::Byte);
  for (const auto& [text, score] : pieces) add(text, score, TokenType::Normal);
  d.unk = 0;
  d.bos = 1;
  d.eos = 2;
  return d;
}

constexpr std::int32_t kFirstPiece = 259;

TEST(SentencePiece, MergesByScoreWithByteFallback) {
  const std::string sp = "\u2581";
  // Ids from 259: ▁ h e l o w r d ll he hell hello ▁w or ▁wor ld ▁world
  const std::vector<std::pair<std::string, float>> pieces = {
      {sp, -1}, {"h", -2}, {"e", -2}, {"l", -2}, {"o", -2}, {"w", -2}, {"r", -2}, {"d", -2},
      {"ll", -1}, {"he", -2}, {"hell", -3}, {"hello", -4}, {sp + "w", -5}, {"or", -6},
      {sp + "wor", -7}, {"ld", -8}, {sp + "world", -9}};
  const Tokenizer t(sentencepiece(pieces));
  const auto id = [&](std::string_view text) { return t.find_token(text); };
  EXPECT_EQ(id("hello"), kFirstPiece + 11);
  EXPECT_EQ(t.encode("hello world", false), (Ids{id("hello"), id(sp + "world")}));
  // "lll": two equal-score pairs, the left one merges.
  EXPECT_EQ(t.encode("lll", false), (Ids{id("ll"), id("l")}));
  // No token for 'é' or 'z': one byte token per UTF-8 byte (<0xC3> = 3 + 0xC3).
  EXPECT_EQ(t.encode("h\u00e9z", false), (Ids{id("h"), 3 + 0xC3, 3 + 0xA9, 3 + 'z'}));
  EXPECT_EQ(t.decode(t.encode("h\u00e9z hello", false)), "h\u00e9z hello");
  EXPECT_EQ(t.decode(t.encode("\n\t\xff", false)), "\n\t\xff");
  // A malformed character is cut by the length its lead byte announces (0xFF: four bytes),
  // so the 'h' after it is part of it and comes out as a byte token too, as in llama.cpp.
  EXPECT_EQ(t.encode("\xffh", false), (Ids{3 + 0xFF, 3 + 'h'}));
  EXPECT_EQ(t.encode("h\xff", false), (Ids{id("h"), 3 + 0xFF}));
  // Control tokens in the text.
  EXPECT_EQ(t.encode("<s>hello</s>", true), (Ids{1, id("hello"), 2}));
}

TEST(SentencePiece, SpacePrefixAndBos) {
  const std::string sp = "\u2581";
  TokenizerData d = sentencepiece({{sp, -1}, {"h", -2}, {"i", -2}, {sp + "h", -3}, {sp + "hi", -4}});
  d.add_space_prefix = true;
  d.add_bos = true;
  const Tokenizer t(d);
  const auto id = [&](std::string_view text) { return t.find_token(text); };
  EXPECT_EQ(t.encode("hi", false), (Ids{1, id(sp + "hi")}));
  EXPECT_EQ(t.encode("hi hi", false), (Ids{1, id(sp + "hi"), id(sp + "hi")}));
  EXPECT_EQ(t.encode("<s>hi", true), (Ids{1, id(sp + "hi")}));  // one BOS, prefix after the special
  EXPECT_EQ(t.decode(t.encode("hi hi", false)), "hi hi");      // the prefix space is removed again
  Tokenizer::StreamDecoder stream(t);
  std::string streamed;
  for (const std::int32_t i : t.encode("hi hi", false)) streamed += stream.push(i);
  EXPECT_EQ(streamed + stream.flush(), "hi hi");
}

TEST(TokenizerData, InvalidDataIsRejected) {
  const auto rejects = [](auto change) {
    TokenizerData d = byte_level({}, {});
    change(d);
    EXPECT_THROW(Tokenizer{d}, Error);
  };
  rejects([](TokenizerData& d) { d.model = "wordpiece"; });
  rejects([](TokenizerData& d) { d.pre = "no-such-pre"; });
  rejects([](TokenizerData& d) { d.merges = {"ab"}; });
  rejects([](TokenizerData& d) { d.merges = {"a "}; });
  rejects([](TokenizerData& d) { d.bos = 256; });
  rejects([](TokenizerData& d) { d.eos = -2; });
  rejects([](TokenizerData& d) { d.token_types.pop_back(); });
  rejects([](TokenizerData& d) { d.token_types[3] = 9; });
  rejects([](TokenizerData& d) { d.add_bos = true; });  // but no BOS id
  rejects([](TokenizerData& d) { d.tokens.clear(); d.token_types.clear(); });
  rejects([](TokenizerData& d) { d.model = "llama"; });  // no scores
  EXPECT_NO_THROW(Tokenizer{byte_level({}, {})});
}

}  // namespace
}  // namespace ls
