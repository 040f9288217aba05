// Chat prompt formats. The model's Jinja template (GGUF `tokenizer.chat_template`) is not
// interpreted; it is recognised as one of the formats below, which are built in:
//   ChatML (SmolLM2): an optional default system turn, then <|im_start|>{role}\n{content}<|im_end|>\n
//                     per message; generation prompt <|im_start|>assistant\n  (docs/MODELS.md §3)
//   Gemma (Gemma 3):  <start_of_turn>{user|model}\n{trimmed content}<end_of_turn>\n per turn, a system
//                     message merged into the first user turn; generation prompt
//                     <start_of_turn>model\n  (docs/MODELS.md §4). No <bos> text: the tokenizer
//                     adds BOS (add_bos_token = true).
// The result is meant to be tokenized with parse_special = true.
#pragma once

#include <span>
#include <string>
#include <string_view>

namespace ls {

struct TokenizerData;

struct ChatMessage {
  std::string role;  // "system", "user", "assistant" (Gemma also accepts "model")
  std::string content;
};

struct ChatFormat {
  enum class Kind { ChatML, Gemma };
  Kind kind = Kind::ChatML;
  // ChatML: the system turn emitted when the first message is not a system message; empty for
  // none. Taken from the template text when it has one.
  std::string default_system;
};

// Recognises the format of a Jinja chat template; throws ls::Error for one we do not know.
ChatFormat chat_format_from_template(std::string_view jinja);

// The model's format: from data.chat_template, or, when the file has no template, from the
// vocabulary (a ChatML or Gemma turn token); throws ls::Error when neither tells.
ChatFormat chat_format_from_tokenizer(const TokenizerData& data);

// Renders the conversation; throws ls::Error on a message the format cannot express (an unknown
// role, or for Gemma a system message after the first or turns that do not alternate).
std::string apply_chat_template(const ChatFormat& format, std::span<const ChatMessage> messages,
                                bool add_generation_prompt);
std::string apply_chat_template(const TokenizerData& data, std::span<const ChatMessage> messages,
                                bool add_generation_prompt);

}  // namespace ls
