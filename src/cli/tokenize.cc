// `longsparse tokenize -m MODEL (-p TEXT | -f FILE) [--json] [--no-special] [--chat]`: the token
// ids of a text under a model's tokenizer, one per line with the piece it stands for, or as a
// JSON array of ids.
#include <fmt/format.h>

#include <fstream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/command.h"
#include "core/error.h"
#include "model/chat.h"
#include "model/gguf.h"
#include "model/model_path.h"
#include "model/tokenizer.h"
#include "model/unicode.h"

namespace ls::cli {
namespace {

struct TokenizeOptions {
  std::string model = "smollm2";
  std::string prompt;
  std::string file;
  bool json = false;
  bool no_special = false;
  bool chat = false;
};

// A token's bytes, printable: escapes for control characters and for bytes that are only part
// of a UTF-8 character.
std::string escaped(std::string_view bytes) {
  std::string out;
  for (std::size_t pos = 0; pos < bytes.size();) {
    const unicode::Utf8Char c = unicode::decode_utf8(bytes, pos);
    if (!c.valid) {
      out += fmt::format("\\x{:02x}", static_cast<unsigned>(static_cast<unsigned char>(bytes[pos])));
    } else if (c.cp == '\n') {
      out += "\\n";
    } else if (c.cp == '\t') {
      out += "\\t";
    } else if (c.cp == '\r') {
      out += "\\r";
    } else if (c.cp == '\\' || c.cp == '\'') {
      out += '\\';
      out += static_cast<char>(c.cp);
    } else if (c.cp < 0x20 || c.cp == 0x7F) {
      out += fmt::format("\\x{:02x}", static_cast<unsigned>(c.cp));
    } else {
      out.append(bytes.substr(pos, c.length));
    }
    pos += c.length;
  }
  return out;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  LS_CHECK(in, "cannot read prompt file '{}'", path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void run(const TokenizeOptions& options) {
  LS_CHECK(options.prompt.empty() || options.file.empty(), "give the text with -p or -f, not both");
  std::string text = options.file.empty() ? options.prompt : read_file(options.file);
  const auto file = GgufFile::open(resolve_model_path(options.model));
  const Tokenizer tokenizer(tokenizer_data_from_gguf(*file));
  if (options.chat) {
    const std::vector<ChatMessage> messages = {{"user", text}};
    text = apply_chat_template(tokenizer.data(), messages, /*add_generation_prompt=*/true);
  }
  const std::vector<std::int32_t> ids = tokenizer.encode(text, !options.no_special);
  if (options.json) {
    fmt::print("{}\n", nlohmann::json(ids).dump());
    return;
  }
  for (const std::int32_t id : ids) fmt::print("{:>7} '{}'\n", id, escaped(tokenizer.token_text(id)));
  fmt::print("{} tokens\n", ids.size());
}

void setup_tokenize(CLI::App& app) {
  auto options = std::make_shared<TokenizeOptions>();
  app.add_option("-m,--model", options->model, "GGUF file, or the name of a cached model (smollm2)")
      ->capture_default_str();
  auto* prompt = app.add_option("-p,--prompt", options->prompt, "Text to tokenize");
  auto* file = app.add_option("-f,--file", options->file, "Read the text to tokenize from this file");
  prompt->excludes(file);
  app.add_flag("--json", options->json, "Print a JSON array of ids instead of one line per token");
  app.add_flag("--no-special", options->no_special,
               "Treat control-token text such as <|im_start|> as plain text");
  app.add_flag("--chat", options->chat, "Wrap the text as a user message in the model's chat template");
  app.callback([options, prompt, file] {
    LS_CHECK(prompt->count() + file->count() == 1, "give the text to tokenize with -p TEXT or -f FILE");
    run(*options);
  });
}

}  // namespace

LS_REGISTER_COMMAND(tokenize, "Show the token ids of a text under a model's tokenizer", setup_tokenize);

}  // namespace ls::cli
