// Reads the tokenizer metadata (`tokenizer.ggml.*`, `tokenizer.chat_template`) of a GGUF file
// into TokenizerData. Key names: docs/MODELS.md §1.2.
#include <limits>

#include "core/error.h"
#include "model/gguf.h"
#include "model/tokenizer.h"

namespace ls {
namespace {

std::vector<std::string> string_array(const GgufFile& file, std::string_view key) {
  std::vector<std::string> out;
  const GgufValue* value = file.find(key);
  if (value == nullptr) return out;
  const auto& items = value->as_array(key);
  out.reserve(items.size());
  for (const GgufValue& item : items) out.push_back(item.as_string(key));
  return out;
}

std::int32_t id_or_none(const GgufFile& file, std::string_view key) {
  const GgufValue* value = file.find(key);
  if (value == nullptr) return -1;
  const std::int64_t id = value->as_int(key);
  LS_CHECK(id >= -1 && id <= std::numeric_limits<std::int32_t>::max(), "{} = {} is not a token id", key, id);
  return static_cast<std::int32_t>(id);
}

bool flag(const GgufFile& file, std::string_view key, bool fallback) {
  const GgufValue* value = file.find(key);
  return value == nullptr ? fallback : value->as_bool(key);
}

}  // namespace

TokenizerData tokenizer_data_from_gguf(const GgufFile& file) {
  TokenizerData data;
  LS_CHECK(file.find("tokenizer.ggml.model") != nullptr,
           "{}: no tokenizer in the file (tokenizer.ggml.model is missing)", file.path());
  data.model = file.get("tokenizer.ggml.model").as_string("tokenizer.ggml.model");
  data.pre = file.get_string("tokenizer.ggml.pre", "default");
  data.tokens = string_array(file, "tokenizer.ggml.tokens");
  LS_CHECK(!data.tokens.empty(), "{}: tokenizer.ggml.tokens is missing or empty", file.path());
  if (const GgufValue* scores = file.find("tokenizer.ggml.scores")) {
    for (const GgufValue& s : scores->as_array("tokenizer.ggml.scores")) {
      data.scores.push_back(static_cast<float>(s.as_float("tokenizer.ggml.scores")));
    }
  }
  if (const GgufValue* types = file.find("tokenizer.ggml.token_type")) {
    for (const GgufValue& t : types->as_array("tokenizer.ggml.token_type")) {
      const std::int64_t type = t.as_int("tokenizer.ggml.token_type");
      LS_CHECK(type >= 0 && type <= 6, "tokenizer.ggml.token_type holds {}, which is not a token type (0-6)", type);
      data.token_types.push_back(static_cast<std::int32_t>(type));
    }
  }
  data.merges = string_array(file, "tokenizer.ggml.merges");
  LS_CHECK(data.model != "gpt2" || !data.merges.empty(),
           "{}: a gpt2 (byte-level BPE) tokenizer needs tokenizer.ggml.merges", file.path());
  data.bos = id_or_none(file, "tokenizer.ggml.bos_token_id");
  data.eos = id_or_none(file, "tokenizer.ggml.eos_token_id");
  data.unk = id_or_none(file, "tokenizer.ggml.unknown_token_id");
  data.pad = id_or_none(file, "tokenizer.ggml.padding_token_id");
  data.eot = id_or_none(file, "tokenizer.ggml.eot_token_id");
  data.add_bos = flag(file, "tokenizer.ggml.add_bos_token", false);
  data.add_eos = flag(file, "tokenizer.ggml.add_eos_token", false);
  // SentencePiece models traditionally prefix a space unless told otherwise.
  data.add_space_prefix = flag(file, "tokenizer.ggml.add_space_prefix", data.model == "llama");
  data.chat_template = file.get_string("tokenizer.chat_template", "");
  return data;
}

}  // namespace ls
