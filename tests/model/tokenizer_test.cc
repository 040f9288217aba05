// The SmolLM2 tokenizer read from the real GGUF: reference token ids (docs/MODELS.md §5.1),
// special tokens, round trips over varied text, the streaming decoder and chat prompts.
#include "model/tokenizer.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/chat.h"
#include "model/gguf.h"
#include "model/model_path.h"
#include "model/unicode.h"

namespace ls {
namespace {

using Ids = std::vector<std::int32_t>;

const Tokenizer& smollm2() {
  static const std::unique_ptr<Tokenizer> tokenizer = [] {
    const auto file = GgufFile::open(resolve_model_path("smollm2"));
    return std::make_unique<Tokenizer>(tokenizer_data_from_gguf(*file));
  }();
  return *tokenizer;
}

// Varied text: ASCII, accents, CJK, emoji (with modifiers and flags), newlines, tabs, digits,
// contractions, unusual spaces, text that looks like special tokens, code.
const std::vector<std::string>& samples() {
  static const std::vector<std::string> texts = {
      "Hello, world!",
      "The quick brown fox jumps over the lazy dog.",
      "Caf\u00e9 d\u00e9j\u00e0 vu \u2014 na\u00efve co\u00f6perate, \u00fcber Stra\u00dfe, \u00e5\u00e6\u00f8.",
      "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3068\u4e2d\u6587\u6587\u672c\uff0c\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8.",
      "Emoji: \U0001f600\U0001f680\U0001f44d\U0001f3fd \U0001f1eb\U0001f1f7 \U0001f468\u200d\U0001f469\u200d\U0001f467 done",
      "line one\nline two\n\n\nline five\r\nwindows\ttab\t\tdouble tab",
      "Numbers 0 12 345 6789 3.14159 1,000,000 -42 1e-9 x\u00b2 \u00bd \u216b \u0663\u0664",
      "I'm sure they'll say we've done what's right, didn't they? You'd know. IT'S LOUD",
      "   leading spaces and trailing spaces   ",
      "\u00a0non-breaking\u2003em space\u3000ideographic\u200bzero width",
      "<|im_start|> is not special without parse_special <|endoftext|>",
      "def f(x):\n    return {\"key\": [x ** 2 for x in range(10)]}  # comment\n",
      "\u0391\u03b8\u03ae\u03bd\u03b1 \u041c\u043e\u0441\u043a\u0432\u0430 \u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627 \u0928\u092e\u0938\u094d\u0924\u0947",
      "",
      " ",
      "\n",
      "a",
  };
  return texts;
}

TEST(SmolLM2Tokenizer, MetadataFromTheFile) {
  const TokenizerData& data = smollm2().data();
  EXPECT_EQ(data.model, "gpt2");
  EXPECT_EQ(data.pre, "smollm");
  EXPECT_EQ(smollm2().vocab_size(), 49152);
  EXPECT_EQ(data.merges.size(), 48900u);
  EXPECT_EQ(smollm2().bos(), 1);
  EXPECT_EQ(smollm2().eos(), 2);
  EXPECT_EQ(data.unk, 0);
  EXPECT_EQ(data.pad, 2);
  EXPECT_FALSE(data.add_bos);
  EXPECT_FALSE(data.add_space_prefix);
  EXPECT_NE(data.chat_template.find("<|im_start|>"), std::string::npos);
  EXPECT_EQ(smollm2().token_type(2), TokenType::Control);
  EXPECT_EQ(smollm2().token_type(17), TokenType::Normal);
}

TEST(SmolLM2Tokenizer, ReferenceVectors) {
  const Tokenizer& t = smollm2();
  EXPECT_EQ(t.encode("Hello, we can use", true), (Ids{19556, 28, 392, 416, 722}));
  EXPECT_EQ(t.encode("The capital of France is", true), (Ids{504, 3575, 282, 4649, 314}));
  EXPECT_EQ(t.encode("Hello world! 123", true), (Ids{19556, 905, 17, 216, 33, 34, 35}));
  EXPECT_EQ(t.encode("\n", true), (Ids{198}));
  EXPECT_EQ(t.encode("Caf\u00e9 d\u00e9j\u00e0 vu.", true), (Ids{51, 1939, 2756, 32564, 90, 16739, 386, 101, 30}));
  EXPECT_EQ(t.encode("  multiple   spaces", true), (Ids{216, 2701, 256, 5600}));
  EXPECT_EQ(t.encode("You are a helpful AI assistant named SmolLM, trained by Hugging Face", true),
            (Ids{2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 308, 34519, 28, 7018, 411, 407, 19712, 8182}));
  EXPECT_TRUE(t.encode("", true).empty());
}

// Ids produced by llama.cpp's llama-tokenize (parse_special on, no BOS); provenance in
// tests/data/README.md.
TEST(SmolLM2Tokenizer, MatchesLlamaCppReferenceIds) {
  std::ifstream in(LONGSPARSE_TEST_DATA "/smollm2_tokens.json");
  ASSERT_TRUE(in) << "missing " LONGSPARSE_TEST_DATA "/smollm2_tokens.json";
  const auto cases = nlohmann::json::parse(in);
  ASSERT_GE(cases.size(), 20u);
  for (const auto& c : cases) {
    const std::string text = c.at("text").get<std::string>();
    EXPECT_EQ(smollm2().encode(text, true), c.at("ids").get<Ids>()) << nlohmann::json(text).dump();
  }
}

TEST(SmolLM2Tokenizer, TokenTexts) {
  const Tokenizer& t = smollm2();
  EXPECT_EQ(t.token_text(19556), "Hello");
  EXPECT_EQ(t.token_text(905), " world");
  EXPECT_EQ(t.vocab_entry(905), "\u0120world");
  EXPECT_EQ(t.token_text(216), " ");
  EXPECT_EQ(t.token_text(198), "\n");
  EXPECT_EQ(t.token_text(2), "<|im_end|>");
  EXPECT_EQ(t.find_token("<|im_start|>"), 1);
  EXPECT_EQ(t.find_token("no such token"), -1);
  EXPECT_THROW(t.token_text(-1), Error);
  EXPECT_THROW(t.token_text(49152), Error);
}

TEST(SmolLM2Tokenizer, ControlTokensSplitOnlyWithParseSpecial) {
  const Tokenizer& t = smollm2();
  const std::string text = "<|im_start|>user\nHi<|im_end|>";
  EXPECT_EQ(t.encode(text, true), (Ids{1, 4093, 198, 26843, 2}));
  const Ids plain = t.encode(text, false);
  EXPECT_TRUE(std::none_of(plain.begin(), plain.end(), [](std::int32_t id) { return id <= 16; }));
  EXPECT_EQ(t.decode(plain), text);
  // Back to back, and at the very ends of the text.
  EXPECT_EQ(t.encode("<|im_end|><|im_start|><|endoftext|>", true), (Ids{2, 1, 0}));
  // A near miss is ordinary text.
  const Ids near = t.encode("<|im_end|", true);
  EXPECT_TRUE(std::none_of(near.begin(), near.end(), [](std::int32_t id) { return id <= 16; }));
}

TEST(SmolLM2Tokenizer, DecodeDropsControlTokensUnlessRendered) {
  const Tokenizer& t = smollm2();
  const Ids ids = t.encode("<|im_start|>user\nHi<|im_end|>", true);
  EXPECT_EQ(t.decode(ids), "user\nHi");
  EXPECT_EQ(t.decode(ids, true), "<|im_start|>user\nHi<|im_end|>");
  const Ids bad = {19556, 49152};
  EXPECT_THROW(t.decode(bad), Error);
}

TEST(SmolLM2Tokenizer, RoundTrip) {
  const Tokenizer& t = smollm2();
  for (const std::string& text : samples()) {
    EXPECT_EQ(t.decode(t.encode(text, false)), text) << text;
    EXPECT_EQ(t.decode(t.encode(text, true), true), text) << text;
  }
  // Every ASCII character survives, except the few control characters the vocabulary has no
  // token for (as in llama.cpp, they are dropped).
  std::string ascii, kept;
  for (int b = 0; b < 128; ++b) {
    ascii.push_back(static_cast<char>(b));
    if (b != 0x04 && b != 0x06 && b != 0x13 && b != 0x14 && b != 0x16 && b != 0x1D) kept.push_back(static_cast<char>(b));
  }
  EXPECT_EQ(t.decode(t.encode(ascii, false)), kept);
  // Malformed UTF-8 becomes U+FFFD, one per byte that does not belong to a character.
  EXPECT_EQ(t.decode(t.encode("\xff broken \xC3 utf-8 \xE2\x82", false)),
            "\xEF\xBF\xBD broken \xEF\xBF\xBD utf-8 \xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(t.encode("\xff", false), t.encode("\xEF\xBF\xBD", false));
}

TEST(SmolLM2Tokenizer, LongTextRoundTripsAndSplitsAtPieceBoundaries) {
  const Tokenizer& t = smollm2();
  std::string text;
  for (int i = 0; i < 300; ++i) {
    for (const std::string& s : samples()) text += s + (i % 2 ? "\n" : " ");
  }
  const Ids ids = t.encode(text, false);
  EXPECT_GT(ids.size(), 20000u);
  EXPECT_EQ(t.decode(ids), text);
  // Encoding is per piece: a text cut where a piece boundary must fall (before a digit)
  // encodes as the concatenation of its parts.
  const std::string left = "Page ", right = "7 of the report";
  Ids joined = t.encode(left, false);
  const Ids tail = t.encode(right, false);
  joined.insert(joined.end(), tail.begin(), tail.end());
  EXPECT_EQ(t.encode(left + right, false), joined);
}

TEST(SmolLM2Tokenizer, StreamDecoderMatchesDecodeAndEmitsOnlyCompleteCharacters) {
  const Tokenizer& t = smollm2();
  for (const std::string& text : samples()) {
    const Ids ids = t.encode(text, false);
    Tokenizer::StreamDecoder stream(t);
    std::string streamed;
    for (const std::int32_t id : ids) {
      const std::string out = stream.push(id);
      ASSERT_TRUE(unicode::is_valid_utf8(out)) << text;
      streamed += out;
    }
    streamed += stream.flush();
    EXPECT_EQ(streamed, t.decode(ids)) << text;
  }
  // An emoji is several byte-level tokens: nothing comes out until its last byte arrives.
  const Ids rocket = t.encode("\U0001f680", false);
  ASSERT_GT(rocket.size(), 1u);
  Tokenizer::StreamDecoder stream(t);
  for (std::size_t i = 0; i + 1 < rocket.size(); ++i) EXPECT_EQ(stream.push(rocket[i]), "");
  EXPECT_EQ(stream.push(rocket.back()), "\U0001f680");
  // A character cut off at the end comes out as U+FFFD on flush.
  EXPECT_EQ(stream.push(rocket[0]), "");
  EXPECT_EQ(stream.flush(), "\xEF\xBF\xBD");
}

TEST(SmolLM2Tokenizer, StreamDecoderRendersControlTokensOnRequest) {
  const Tokenizer& t = smollm2();
  Tokenizer::StreamDecoder plain(t), rendered(t, true);
  EXPECT_EQ(plain.push(2), "");
  EXPECT_EQ(rendered.push(2), "<|im_end|>");
}

TEST(SmolLM2Tokenizer, EndOfGeneration) {
  const Tokenizer& t = smollm2();
  EXPECT_TRUE(t.is_end_of_generation(2));   // <|im_end|>
  EXPECT_TRUE(t.is_end_of_generation(0));   // <|endoftext|>
  EXPECT_FALSE(t.is_end_of_generation(1));  // <|im_start|>
  EXPECT_FALSE(t.is_end_of_generation(198));
  EXPECT_FALSE(t.is_end_of_generation(-1));
  EXPECT_FALSE(t.is_end_of_generation(49152));
}

TEST(SmolLM2Tokenizer, ChatPromptTokenizes) {
  const Tokenizer& t = smollm2();
  const std::vector<ChatMessage> messages = {{"user", "What is the capital of France?"}};
  const std::string prompt = apply_chat_template(t.data(), messages, true);
  const Ids ids = t.encode(prompt, true);
  // <|im_start|>system\n ... <|im_end|>\n<|im_start|>user\n ... <|im_end|>\n<|im_start|>assistant\n
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 1), 3);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 2), 2);
  EXPECT_EQ(ids.front(), 1);
  const auto last_start = std::find(ids.rbegin(), ids.rend(), 1).base();  // just after the last 1
  EXPECT_EQ(t.decode(std::span(&*last_start, ids.end() - last_start)), "assistant\n");
  EXPECT_EQ(t.decode(ids, true), prompt);
}

}  // namespace
}  // namespace ls

namespace ls {
namespace {

const Tokenizer& gemma3() {
  static const std::unique_ptr<Tokenizer> tokenizer = [] {
    const auto file = GgufFile::open(resolve_model_path("gemma3"));
    return std::make_unique<Tokenizer>(tokenizer_data_from_gguf(*file));
  }();
  return *tokenizer;
}

// Ids produced by llama.cpp's llama-tokenize for Gemma 3 (SentencePiece-style BPE with byte
// fallback; BOS added as the file asks, parse_special on); provenance in tests/data/README.md.
// One deliberate difference: for a text that itself starts with "<bos>", llama-tokenize adds a
// second BOS in front; we keep exactly one (docs/tokenizer.md: the base model misbehaves after
// a doubled BOS).
TEST(Gemma3Tokenizer, MatchesLlamaCppReferenceIds) {
  std::ifstream in(LONGSPARSE_TEST_DATA "/gemma3_tokens.json");
  ASSERT_TRUE(in) << "missing " LONGSPARSE_TEST_DATA "/gemma3_tokens.json";
  const auto cases = nlohmann::json::parse(in);
  ASSERT_GE(cases.size(), 20u);
  int doubled = 0;
  for (const auto& c : cases) {
    const std::string text = c.at("text").get<std::string>();
    Ids expected = c.at("ids").get<Ids>();
    if (text.starts_with("<bos>")) {
      ASSERT_GE(expected.size(), 2u);
      EXPECT_EQ(expected[0], 2);
      EXPECT_EQ(expected[1], 2);
      expected.erase(expected.begin());
      ++doubled;
    }
    EXPECT_EQ(gemma3().encode(text, true), expected) << nlohmann::json(text).dump();
  }
  EXPECT_LE(doubled, 2);
}

TEST(Gemma3Tokenizer, RoundTripsText) {
  const Tokenizer& t = gemma3();
  for (const std::string& text : samples()) {
    Ids ids = t.encode(text, false);
    ASSERT_FALSE(ids.empty());
    EXPECT_EQ(ids[0], 2);  // BOS, as add_bos_token asks
    EXPECT_EQ(t.decode(Ids(ids.begin() + 1, ids.end())), text) << text;
  }
}

}  // namespace
}  // namespace ls
