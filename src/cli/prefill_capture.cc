// Model loading, prompt building and a prefill pass with a capture hook (prefill_capture.h).
#include "cli/prefill_capture.h"
#include "cli/runtime.h"

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "core/buffer.h"
#include "core/error.h"
#include "core/parallel.h"
#include "core/timer.h"
#include "model/chat.h"
#include "model/gguf.h"
#include "model/transformer.h"
#include "model/matmul.h"
#include "model/model_path.h"
#include "model/tokenizer.h"

namespace ls::cli {
namespace {

// Thrown by the hook to leave prefill once the last wanted layer has been seen; prefill calls
// the hook outside any parallel region, so unwinding from it is safe.
struct StopPrefill {};


}  // namespace

void add_prompt_options(CLI::App& app, PromptOptions& o) {
  app.add_option("-m,--model", o.model, "model: a GGUF path or a cached name (smollm2)")->capture_default_str();
  app.add_option("-f,--file", o.file, "text file to run through prefill")->required();
  app.add_option("-c,--context", o.context, "tokens at most (default: the model's trained context)");
  app.add_flag("--chat", o.chat, "wrap the text as a user turn in the model's chat template");
  app.add_flag("--truncate", o.truncate,
               "keep the first CTX tokens of a longer text (default: a longer text is an error)");
  app.add_option("-t,--threads", o.threads, "threads (default: all cores)");
}

CaptureRun run_prefill_capture(const PromptOptions& o, const ModelCheck& check, const LayerVisitor& visit) {
  LS_CHECK(o.context >= 0, "-c must be positive, got {}", o.context);
  LS_CHECK(o.threads >= 0, "-t must be positive, got {}", o.threads);
  const std::string text_in = read_text(o.file);
  apply_threads(o.threads);

  CaptureRun run;
  run.model_path = resolve_model_path(o.model);
  std::unique_ptr<GgufFile> file = GgufFile::open(run.model_path);
  Transformer model(*file);
  run.config = model.config();
  check(run.model_path, run.config);
  const Tokenizer tokenizer(tokenizer_data_from_gguf(*file));

  const std::int64_t context = o.context > 0 ? o.context : run.config.context_length;
  LS_CHECK(context <= run.config.context_length,
           "-c {} exceeds the model's trained context of {} tokens", context, run.config.context_length);
  std::string text = text_in;
  if (o.chat) {
    const ChatMessage message{"user", text};
    text = apply_chat_template(tokenizer.data(), {&message, 1}, /*add_generation_prompt=*/true);
  }
  std::vector<std::int32_t> tokens = tokenizer.encode(text, /*parse_special=*/true);
  run.text_tokens = std::int64_t(tokens.size());
  LS_CHECK(!tokens.empty(), "text file '{}' gives no tokens", o.file);
  if (run.text_tokens > context) {
    LS_CHECK(o.truncate, "'{}' is {} tokens, more than the context of {}; pass --truncate to keep the first {}",
             o.file, run.text_tokens, context, context);
    tokens.resize(std::size_t(context));
  }
  run.tokens = std::int64_t(tokens.size());

  KvCache cache = model.make_cache(run.tokens);
  Buffer<float> logits(std::size_t(run.config.vocab));  // [vocab]
  PrefillHooks hooks;
  hooks.capture = [&](int layer, const AttnInput& in) {
    if (!visit(layer, in)) throw StopPrefill{};
  };
  Timer timer;
  try {
    model.prefill(tokens, cache, logits.data(), hooks);
  } catch (const StopPrefill&) {
  }
  run.prefill_ms = timer.ms();
  return run;
}

std::string read_text(const std::string& path) {
  LS_CHECK(!path.empty(), "give the text with -f FILE");
  LS_CHECK(std::filesystem::is_regular_file(path), "text file '{}' does not exist or is not a file", path);
  std::ifstream in(path, std::ios::binary);
  LS_CHECK(in, "cannot read text file '{}'", path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace ls::cli
