// Chat formats: exact prompt strings for ChatML (SmolLM2) and Gemma, format detection from the
// template or the vocabulary, and errors for what a format cannot express.
#include "model/chat.h"

#include <gtest/gtest.h>

#include <vector>

#include "core/error.h"
#include "model/tokenizer.h"

namespace ls {
namespace {

// SmolLM2-135M-Instruct's tokenizer.chat_template, as stored in its GGUF.
const std::string kSmolTemplate =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "
    "'<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' "
    "}}{% endif %}";

const std::string kSmolSystem =
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n";

TEST(Chat, ChatMLAddsTheDefaultSystemPromptAndGenerationPrompt) {
  const ChatFormat format = chat_format_from_template(kSmolTemplate);
  EXPECT_EQ(format.kind, ChatFormat::Kind::ChatML);
  const std::vector<ChatMessage> messages = {{"user", "What is 2+2?"}};
  EXPECT_EQ(apply_chat_template(format, messages, true),
            kSmolSystem + "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(apply_chat_template(format, messages, false), kSmolSystem + "<|im_start|>user\nWhat is 2+2?<|im_end|>\n");
}

TEST(Chat, ChatMLKeepsAGivenSystemPromptAndAllTurns) {
  TokenizerData data;
  data.chat_template = kSmolTemplate;
  const std::vector<ChatMessage> messages = {
      {"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello."}, {"user", "Bye"}};
  EXPECT_EQ(apply_chat_template(data, messages, true),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n");
}

TEST(Chat, ChatMLWithoutADefaultSystemPromptInTheTemplate) {
  // A plain ChatML template (escaped \n, no default system turn).
  const ChatFormat format = chat_format_from_template(
      "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
      "'<|im_end|>' + '\\n'}}{% endfor %}");
  EXPECT_TRUE(format.default_system.empty());
  const std::vector<ChatMessage> messages = {{"user", "Hi"}};
  EXPECT_EQ(apply_chat_template(format, messages, true), "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  // With the escaped form of a default system prompt.
  EXPECT_EQ(chat_format_from_template("{{ '<|im_start|>system\\nBe nice.<|im_end|>\\n' }}<|im_start|>").default_system,
            "Be nice.");
}

TEST(Chat, GemmaMergesSystemIntoTheFirstUserTurnAndRenamesAssistant) {
  const ChatFormat format = chat_format_from_template("{{ bos_token }}...<start_of_turn>user\n...");
  EXPECT_EQ(format.kind, ChatFormat::Kind::Gemma);
  const std::vector<ChatMessage> messages = {
      {"system", "Answer in French."}, {"user", "  Hello  \n"}, {"assistant", "Bonjour"}, {"user", "Test"}};
  EXPECT_EQ(apply_chat_template(format, messages, true),
            "<start_of_turn>user\nAnswer in French.\n\nHello<end_of_turn>\n"
            "<start_of_turn>model\nBonjour<end_of_turn>\n"
            "<start_of_turn>user\nTest<end_of_turn>\n<start_of_turn>model\n");
  const std::vector<ChatMessage> single = {{"user", "Test"}};
  EXPECT_EQ(apply_chat_template(format, single, true), "<start_of_turn>user\nTest<end_of_turn>\n<start_of_turn>model\n");
}

TEST(Chat, GemmaRejectsWhatItsTemplateRejects) {
  const ChatFormat format{ChatFormat::Kind::Gemma, {}};
  const std::vector<ChatMessage> two_users = {{"user", "a"}, {"user", "b"}};
  EXPECT_THROW(apply_chat_template(format, two_users, true), Error);
  const std::vector<ChatMessage> model_first = {{"assistant", "a"}};
  EXPECT_THROW(apply_chat_template(format, model_first, true), Error);
  const std::vector<ChatMessage> late_system = {{"user", "a"}, {"system", "b"}};
  EXPECT_THROW(apply_chat_template(format, late_system, true), Error);
  const std::vector<ChatMessage> tool = {{"tool", "a"}};
  EXPECT_THROW(apply_chat_template(format, tool, true), Error);
}

TEST(Chat, FormatFromVocabularyWhenTheFileHasNoTemplate) {
  TokenizerData data;
  data.tokens = {"<pad>", "<start_of_turn>", "<end_of_turn>", "a"};
  EXPECT_EQ(chat_format_from_tokenizer(data).kind, ChatFormat::Kind::Gemma);
  data.tokens = {"<|im_start|>", "<|im_end|>"};
  EXPECT_EQ(chat_format_from_tokenizer(data).kind, ChatFormat::Kind::ChatML);
  data.tokens = {"a", "b"};
  EXPECT_THROW(chat_format_from_tokenizer(data), Error);
}

TEST(Chat, UnknownTemplateIsAClearError) {
  try {
    chat_format_from_template("{% for m in messages %}[INST] {{ m['content'] }} [/INST]{% endfor %}");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unsupported chat template"), std::string::npos) << e.what();
  }
  const ChatFormat chatml{ChatFormat::Kind::ChatML, {}};
  const std::vector<ChatMessage> bad_role = {{"us\ner", "x"}};
  EXPECT_THROW(apply_chat_template(chatml, bad_role, true), Error);
}

}  // namespace
}  // namespace ls
