// Built-in chat formats, chosen by recognising the model's Jinja template.
#include "model/chat.h"

#include <algorithm>

#include "core/error.h"
#include "model/tokenizer.h"

namespace ls {
namespace {

// The default system prompt of a ChatML template, written in it as a string literal
// '<|im_start|>system\n...<|im_end|>' (the \n either escaped or a real newline). Empty when the
// template has no such literal, or when what follows is not plain text (an expression).
std::string default_system_prompt(std::string_view jinja) {
  constexpr std::string_view kStart = "<|im_start|>system";
  constexpr std::string_view kEnd = "<|im_end|>";
  for (std::size_t at = jinja.find(kStart); at != std::string_view::npos; at = jinja.find(kStart, at + 1)) {
    std::size_t pos = at + kStart.size();
    if (jinja.substr(pos, 2) == "\\n") {
      pos += 2;
    } else if (jinja.substr(pos, 1) == "\n") {
      pos += 1;
    } else {
      continue;
    }
    const std::size_t end = jinja.find(kEnd, pos);
    if (end == std::string_view::npos) continue;
    const std::string_view body = jinja.substr(pos, end - pos);
    if (body.empty() || body.find_first_of("'\"{}\\") != std::string_view::npos) continue;
    return std::string(body);
  }
  return {};
}

std::string_view trim(std::string_view s) {
  constexpr std::string_view kSpace = " \t\n\r\f\v";
  const std::size_t begin = s.find_first_not_of(kSpace);
  if (begin == std::string_view::npos) return {};
  return s.substr(begin, s.find_last_not_of(kSpace) - begin + 1);
}

std::string render_chatml(const ChatFormat& format, std::span<const ChatMessage> messages,
                          bool add_generation_prompt) {
  std::string out;
  if (!format.default_system.empty() && (messages.empty() || messages[0].role != "system")) {
    out += "<|im_start|>system\n" + format.default_system + "<|im_end|>\n";
  }
  for (const ChatMessage& m : messages) {
    LS_CHECK(!m.role.empty() && m.role.find_first_of("\n<>") == std::string::npos,
             "chat message role '{}' is not a valid ChatML role (e.g. system, user, assistant)", m.role);
    out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
  }
  if (add_generation_prompt) out += "<|im_start|>assistant\n";
  return out;
}

std::string render_gemma(std::span<const ChatMessage> messages, bool add_generation_prompt) {
  std::string out;
  std::string system;  // goes in front of the first user turn
  std::size_t first = 0;
  if (!messages.empty() && messages[0].role == "system") {
    system = messages[0].content;  // Gemma 3's template trims turns but not the system text
    first = 1;
  }
  for (std::size_t i = first; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    LS_CHECK(m.role != "system", "a system message can only come first (message {})", i);
    LS_CHECK(m.role == "user" || m.role == "assistant" || m.role == "model",
             "chat message role '{}' is not supported by the Gemma format; use system, user or assistant", m.role);
    const bool user = m.role == "user";
    LS_CHECK(user == ((i - first) % 2 == 0),
             "Gemma chat turns must alternate user / assistant starting with user (message {} is '{}')", i, m.role);
    std::string content(trim(m.content));
    if (i == first && !system.empty()) content = system + "\n\n" + content;
    out += "<start_of_turn>" + std::string(user ? "user" : "model") + "\n" + content + "<end_of_turn>\n";
  }
  LS_CHECK(first == 0 || messages.size() > 1,
           "the Gemma format puts the system message into the first user turn; add a user message");
  if (add_generation_prompt) out += "<start_of_turn>model\n";
  return out;
}

}  // namespace

ChatFormat chat_format_from_template(std::string_view jinja) {
  if (jinja.find("<|im_start|>") != std::string_view::npos) {
    return {ChatFormat::Kind::ChatML, default_system_prompt(jinja)};
  }
  if (jinja.find("<start_of_turn>") != std::string_view::npos) return {ChatFormat::Kind::Gemma, {}};
  LS_CHECK(!jinja.empty(), "the model has no chat template");
  fail("unsupported chat template (known formats: ChatML with <|im_start|>, Gemma with <start_of_turn>); "
       "template begins: {}", jinja.substr(0, 120));
}

ChatFormat chat_format_from_tokenizer(const TokenizerData& data) {
  if (!data.chat_template.empty()) return chat_format_from_template(data.chat_template);
  const auto has = [&](std::string_view token) {
    return std::find(data.tokens.begin(), data.tokens.end(), token) != data.tokens.end();
  };
  if (has("<|im_start|>") && has("<|im_end|>")) return {ChatFormat::Kind::ChatML, {}};
  if (has("<start_of_turn>") && has("<end_of_turn>")) return {ChatFormat::Kind::Gemma, {}};
  fail("the model has no chat template (tokenizer.chat_template) and its vocabulary has no ChatML or "
       "Gemma turn tokens; give the prompt without a chat template");
}

std::string apply_chat_template(const ChatFormat& format, std::span<const ChatMessage> messages,
                                bool add_generation_prompt) {
  switch (format.kind) {
    case ChatFormat::Kind::ChatML:
      return render_chatml(format, messages, add_generation_prompt);
    case ChatFormat::Kind::Gemma:
      return render_gemma(messages, add_generation_prompt);
  }
  fail("unknown chat format");
}

std::string apply_chat_template(const TokenizerData& data, std::span<const ChatMessage> messages,
                                bool add_generation_prompt) {
  return apply_chat_template(chat_format_from_tokenizer(data), messages, add_generation_prompt);
}

}  // namespace ls
