// Tokenizer: validation of the GGUF tokenizer data, special-token splitting, dispatch to the
// BPE or SentencePiece algorithm, detokenization and the streaming decoder.
#include "model/tokenizer.h"

#include <optional>

#include "core/error.h"
#include "model/pretokenizer.h"
#include "model/special_tokens.h"
#include "model/tokenizer_bpe.h"
#include "model/tokenizer_spm.h"
#include "model/unicode.h"
#include "model/vocab_index.h"

namespace ls {

struct Tokenizer::Impl {
  explicit Impl(TokenizerData d) : data(std::move(d)), vocab(data.tokens), specials(data) {}

  TokenizerData data;  // never modified: vocab and the models point into it
  VocabIndex vocab;
  SpecialTokenSplitter specials;
  std::optional<BpeModel> bpe;
  std::optional<SpmModel> spm;
  PreTokenizer pre = PreTokenizer::Gpt2;
  std::vector<std::string> bytes;  // [vocab] what each token decodes to
  std::vector<bool> render_only;   // [vocab] control-like: decoded only with render_special
  std::vector<bool> end_of_generation;  // [vocab]

  TokenType type(std::int32_t id) const {
    return data.token_types.empty() ? TokenType::Normal : static_cast<TokenType>(data.token_types[id]);
  }
};

namespace {

void check_special_id(const TokenizerData& data, std::int32_t id, const char* name) {
  LS_CHECK(id >= -1 && id < static_cast<std::int64_t>(data.tokens.size()),
           "tokenizer {} token id {} is outside the vocabulary of {} tokens", name, id, data.tokens.size());
}

// Texts that end a turn or a document in the chat formats we know; generation stops on them.
constexpr std::string_view kEndMarkers[] = {
    "<|im_end|>", "<|endoftext|>", "<end_of_turn>", "<|eot_id|>", "<|end_of_text|>", "<|end|>",
};

}  // namespace

Tokenizer::Tokenizer(TokenizerData data) {
  LS_CHECK(!data.tokens.empty(), "tokenizer has an empty vocabulary (tokenizer.ggml.tokens)");
  LS_CHECK(data.tokens.size() < (std::size_t{1} << 31), "tokenizer vocabulary of {} tokens is too large",
           data.tokens.size());
  LS_CHECK(data.token_types.empty() || data.token_types.size() == data.tokens.size(),
           "tokenizer.ggml.token_type has {} entries for {} tokens", data.token_types.size(), data.tokens.size());
  LS_CHECK(data.scores.empty() || data.scores.size() == data.tokens.size(),
           "tokenizer.ggml.scores has {} entries for {} tokens", data.scores.size(), data.tokens.size());
  for (std::size_t i = 0; i < data.token_types.size(); ++i) {
    LS_CHECK(data.token_types[i] >= 0 && data.token_types[i] <= 6, "token {} has unknown token type {}", i,
             data.token_types[i]);
  }
  check_special_id(data, data.bos, "BOS");
  check_special_id(data, data.eos, "EOS");
  check_special_id(data, data.unk, "UNK");
  check_special_id(data, data.pad, "PAD");
  check_special_id(data, data.eot, "EOT");
  LS_CHECK(!data.add_bos || data.bos >= 0, "tokenizer asks to add BOS but has no BOS token");
  LS_CHECK(!data.add_eos || data.eos >= 0, "tokenizer asks to add EOS but has no EOS token");

  impl_ = std::make_unique<Impl>(std::move(data));
  Impl& m = *impl_;
  if (m.data.model == "gpt2") {
    m.pre = pre_tokenizer_from_name(m.data.pre);
    m.bpe.emplace(m.data, m.vocab);
  } else if (m.data.model == "llama") {
    m.spm.emplace(m.data, m.vocab);
  } else {
    fail("unsupported tokenizer model '{}' (tokenizer.ggml.model); supported: gpt2 (byte-level BPE), "
         "llama (SentencePiece-style)", m.data.model);
  }

  const auto n = m.data.tokens.size();
  m.bytes.resize(n);
  m.render_only.assign(n, false);
  m.end_of_generation.assign(n, false);
  for (std::size_t i = 0; i < n; ++i) {
    const auto id = static_cast<std::int32_t>(i);
    const TokenType type = m.type(id);
    const std::string& text = m.data.tokens[i];
    switch (type) {
      case TokenType::Control:
      case TokenType::Unknown:
      case TokenType::Unused:
        m.bytes[i] = text;
        m.render_only[i] = true;
        break;
      case TokenType::UserDefined:
        m.bytes[i] = text;  // split out verbatim before the algorithm runs, so kept verbatim
        break;
      default:
        m.bytes[i] = m.bpe ? m.bpe->symbols_to_bytes(text) : m.spm->token_bytes(id);
    }
    if (type == TokenType::Control) {
      for (const std::string_view marker : kEndMarkers) m.end_of_generation[i] = m.end_of_generation[i] || text == marker;
    }
  }
  if (m.data.eos >= 0) m.end_of_generation[m.data.eos] = true;
  if (m.data.eot >= 0) m.end_of_generation[m.data.eot] = true;
}

Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

std::vector<std::int32_t> Tokenizer::encode(std::string_view text, bool parse_special) const {
  LS_CHECK(text.size() < (std::size_t{1} << 32), "text of {} bytes is too long to tokenize", text.size());
  const Impl& m = *impl_;
  std::vector<std::int32_t> ids;
  ids.reserve(text.size() / 3 + 2);
  if (m.data.add_bos) ids.push_back(m.data.bos);

  // Byte-level BPE sees characters, so malformed UTF-8 becomes U+FFFD first, as in llama.cpp.
  // (SentencePiece keeps the raw bytes: they get byte-fallback tokens.)
  std::string replaced;
  if (m.bpe && !unicode::is_valid_utf8(text)) {
    replaced = unicode::replace_invalid_utf8(text);
    text = replaced;
  }
  thread_local std::vector<SpecialTokenSplitter::Fragment> fragments;
  thread_local std::vector<TextSpan> pieces;
  m.specials.split(text, parse_special, fragments);
  bool after_special = true;  // SentencePiece's space prefix goes at the start and after specials
  for (const auto& fragment : fragments) {
    if (fragment.token >= 0) {
      // A BOS written in the text stands in for the one add_bos would add, not a second one.
      if (!(fragment.token == m.data.bos && m.data.add_bos && ids.size() == 1 && fragment.begin == 0)) {
        ids.push_back(fragment.token);
      }
      after_special = true;
      continue;
    }
    const std::string_view raw = text.substr(fragment.begin, fragment.end - fragment.begin);
    if (m.bpe) {
      pieces.clear();
      pre_tokenize(m.pre, raw, pieces);
      for (const TextSpan& piece : pieces) m.bpe->encode_piece(raw.substr(piece.begin, piece.end - piece.begin), ids);
    } else if (m.data.add_space_prefix && after_special) {
      m.spm->encode_fragment(std::string(" ").append(raw), ids);
    } else {
      m.spm->encode_fragment(raw, ids);
    }
    after_special = false;
  }
  if (m.data.add_eos) ids.push_back(m.data.eos);
  return ids;
}

std::string Tokenizer::decode(std::span<const std::int32_t> ids, bool render_special) const {
  std::string out;
  bool first = true;
  for (const std::int32_t id : ids) {
    std::string piece = token_text(id);
    if (impl_->render_only[id] && !render_special) continue;
    if (first && impl_->spm && impl_->data.add_space_prefix && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
    first = false;
    out += piece;
  }
  return out;
}

std::string Tokenizer::token_text(std::int32_t id) const {
  LS_CHECK(id >= 0 && id < vocab_size(), "token id {} is outside the vocabulary of {} tokens", id, vocab_size());
  return impl_->bytes[id];
}

const std::string& Tokenizer::vocab_entry(std::int32_t id) const {
  LS_CHECK(id >= 0 && id < vocab_size(), "token id {} is outside the vocabulary of {} tokens", id, vocab_size());
  return impl_->data.tokens[id];
}

std::int32_t Tokenizer::find_token(std::string_view entry) const { return impl_->vocab.find(entry); }

TokenType Tokenizer::token_type(std::int32_t id) const {
  LS_CHECK(id >= 0 && id < vocab_size(), "token id {} is outside the vocabulary of {} tokens", id, vocab_size());
  return impl_->type(id);
}

std::int32_t Tokenizer::vocab_size() const { return static_cast<std::int32_t>(impl_->data.tokens.size()); }
std::int32_t Tokenizer::bos() const { return impl_->data.bos; }
std::int32_t Tokenizer::eos() const { return impl_->data.eos; }
const TokenizerData& Tokenizer::data() const { return impl_->data; }

bool Tokenizer::is_end_of_generation(std::int32_t id) const {
  return id >= 0 && id < vocab_size() && impl_->end_of_generation[id];
}

Tokenizer::StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, bool render_special)
    : tokenizer_(&tokenizer), render_special_(render_special) {}

std::string Tokenizer::StreamDecoder::push(std::int32_t id) {
  const Impl& m = *tokenizer_->impl_;
  std::string piece = tokenizer_->token_text(id);
  if (m.render_only[id] && !render_special_) return {};
  if (first_ && m.spm && m.data.add_space_prefix && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
  first_ = false;
  pending_ += piece;
  std::string out;
  unicode::drain_utf8(pending_, out, /*final=*/false);
  return out;
}

std::string Tokenizer::StreamDecoder::flush() {
  std::string out;
  unicode::drain_utf8(pending_, out, /*final=*/true);
  first_ = true;
  return out;
}

}  // namespace ls
