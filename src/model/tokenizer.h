// Tokenizers read from GGUF metadata: GPT-2 byte-level BPE (`tokenizer.ggml.model = gpt2`,
// SmolLM2) and SentencePiece-style BPE with scores and byte fallback (`llama`, Gemma 3).
// Algorithms and key names: docs/MODELS.md §5; usage and details: docs/tokenizer.md.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ls {

class GgufFile;

// GGUF `tokenizer.ggml.token_type` values.
enum class TokenType : std::int32_t {
  Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6,
};

// The tokenizer part of a model's metadata, as stored in GGUF (`tokenizer.ggml.*`).
struct TokenizerData {
  std::string model, pre;               // e.g. "gpt2" / "smollm", "llama" / "default"
  std::vector<std::string> tokens;      // [vocab] the vocabulary, id = index
  std::vector<float> scores;            // [vocab] or empty (SentencePiece merge priorities)
  std::vector<std::int32_t> token_types;  // [vocab] TokenType values, or empty (all normal)
  std::vector<std::string> merges;      // [n_merges] "A B", rank = index (BPE only)
  std::int32_t bos = -1, eos = -1, unk = -1, pad = -1, eot = -1;
  bool add_bos = false, add_eos = false, add_space_prefix = false;
  std::string chat_template;            // Jinja source, or empty
};

// Reads `tokenizer.*` from a GGUF file; throws ls::Error when a required key is missing or has
// the wrong type. Defined in tokenizer_gguf.cc.
TokenizerData tokenizer_data_from_gguf(const GgufFile& file);

class Tokenizer {
 public:
  // Validates `data` and builds the lookup tables; throws ls::Error on an unsupported model
  // or pre-tokenizer, out-of-range special ids, mismatched array sizes or malformed merges.
  explicit Tokenizer(TokenizerData data);
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;

  // Text → ids. Special-token strings are matched first: user-defined tokens always, control
  // tokens only with `parse_special` (needed for chat prompts). Adds BOS only when
  // data.add_bos (and not when the text already starts with it), EOS only when data.add_eos.
  // Any byte string is accepted. Byte-level BPE first replaces malformed UTF-8 with U+FFFD
  // and drops bytes that have no token (as llama.cpp does); SentencePiece keeps every byte
  // through byte fallback. Thread-safe.
  std::vector<std::int32_t> encode(std::string_view text, bool parse_special) const;

  // Ids → bytes. Control tokens are dropped unless `render_special`. decode(encode(x, false))
  // == x for well-formed UTF-8 x whose bytes all have tokens (up to an added BOS/EOS).
  // Throws ls::Error on an id out of range.
  std::string decode(std::span<const std::int32_t> ids, bool render_special = false) const;

  // The bytes token `id` stands for (" world" for "Ġworld", "\n" for "<0x0A>"); a control
  // token gives its text ("<|im_end|>"). May be part of a UTF-8 character.
  std::string token_text(std::int32_t id) const;
  // The vocabulary entry as stored ("Ġworld" for the token above).
  const std::string& vocab_entry(std::int32_t id) const;
  // The id of a vocabulary entry as stored, or -1.
  std::int32_t find_token(std::string_view vocab_entry) const;
  TokenType token_type(std::int32_t id) const;

  std::int32_t vocab_size() const;
  std::int32_t bos() const;
  std::int32_t eos() const;
  const TokenizerData& data() const;

  // Whether generation stops at `id`: EOS, EOT, and control tokens whose text marks the end of
  // a turn or document (SmolLM2: <|im_end|> = 2 and <|endoftext|> = 0; Gemma: <end_of_turn>).
  bool is_end_of_generation(std::int32_t id) const;

  // Detokenizes one id at a time and returns only complete UTF-8 characters, holding back the
  // first bytes of a character split across tokens. Bytes that can never form a character
  // come out as U+FFFD, so the output is always well-formed UTF-8; for ids whose decode() is
  // well-formed, the concatenated output of push() and flush() equals decode().
  class StreamDecoder {
   public:
    explicit StreamDecoder(const Tokenizer& tokenizer, bool render_special = false);
    std::string push(std::int32_t id);
    std::string flush();  // the held-back bytes, as U+FFFD; then starts afresh

   private:
    const Tokenizer* tokenizer_;
    bool render_special_;
    bool first_ = true;
    std::string pending_;  // bytes of an incomplete UTF-8 sequence
  };

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ls
