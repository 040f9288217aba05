// `longsparse run`: generate text from a prompt with a GGUF model, streaming it to stdout, with
// a timing summary on stderr (or one JSON object on stdout with --json).
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "cli/command.h"
#include "cli/context_run.h"
#include "cli/runtime.h"
#include "cli/eval_model.h"
#include "core/error.h"
#include "core/memory.h"
#include "core/parallel.h"
#include "core/timer.h"
#include "methods/estimate_util.h"
#include "model/chat.h"
#include "model/generate.h"
#include "model/gguf.h"
#include "model/transformer.h"
#include "model/matmul.h"
#include "methods/registry.h"
#include "model/model_path.h"
#include "methods/policy.h"
#include "model/sparse_prefill.h"
#include "model/tokenizer.h"

namespace ls::cli {
namespace {

struct RunOptions {
  std::string model = "smollm2";
  std::string prompt;
  std::string prompt_file;
  std::int64_t tokens = 128;
  std::int64_t context = 0;  // 0: the model's trained context
  int threads = 0;
  bool chat = false;
  SamplerConfig sampler;
  bool json = false;
  std::string truncate;
  std::string prefill;       // sparse prefill method spec; empty: dense
  std::string dense_layers;  // layers kept dense under --prefill
  std::string policy;        // per-layer / per-head profile file (longsparse profile)
  std::string decode;        // decode selector spec; empty: dense
  CacheOptions cache;        // -ctk, -ctv, -ub
  ContextOptions context_parallel;  // --context-parallel, --cp-anchor
};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  LS_CHECK(in, "cannot read prompt file {}", path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

void run(const RunOptions& o, ContextRun* cp) {
  LS_CHECK(o.prompt.empty() != o.prompt_file.empty(), "give the prompt with exactly one of -p and -f");
  LS_CHECK(o.tokens >= 0, "-n must be >= 0");
  validate(o.sampler);
  const KvType key_type = parse_kv_type(o.cache.cache_type_k), value_type = parse_kv_type(o.cache.cache_type_v);
  LS_CHECK(o.cache.ubatch >= 0 || o.cache.ubatch == CacheOptions::kAuto, "--ubatch must be >= 0");
  const Truncation truncation = o.truncate.empty() ? Truncation::None : parse_truncation(o.truncate);
  apply_threads(o.threads);

  Timer load_timer;
  const std::string path = resolve_model_path(o.model);
  std::unique_ptr<GgufFile> file = GgufFile::open(path);
  Transformer model(*file);
  Tokenizer tokenizer(tokenizer_data_from_gguf(*file));
  const double load_ms = load_timer.ms();
  const ModelConfig& config = model.config();

  const std::int64_t context = o.context > 0 ? o.context : config.context_length;
  if (context > config.context_length) {
    // Beyond the trained context only methods that cap the distance RoPE sees may run.
    const std::int64_t trained = config.context_length;
    const std::vector<std::string> decodes = o.tokens > 1 ? std::vector<std::string>{o.decode} : std::vector<std::string>{};
    if (!caps_distance(o.prefill, o.policy, o.dense_layers, decodes, trained)) fail_beyond_trained(context, trained);
    std::fprintf(stderr, "warning: -c %lld is beyond %s's trained context of %lld tokens; RoPE distances are capped\n",
                 static_cast<long long>(context), config.name.c_str(), static_cast<long long>(trained));
  }
  const std::string user_text = o.prompt.empty() ? read_file(o.prompt_file) : o.prompt;
  std::string text = user_text;
  if (o.chat) {
    const ChatMessage message{"user", text};
    text = apply_chat_template(tokenizer.data(), {&message, 1}, /*add_generation_prompt=*/true);
  }
  const std::vector<std::int32_t> encoded = tokenizer.encode(text, /*parse_special=*/true);
  const std::vector<std::int32_t> prompt = fit_prompt(encoded, context - o.tokens, truncation);
  std::int64_t star_query = 0;
  if (cp && cp->parallel().mode() == ContextMode::Star) {
    star_query = star_query_tokens(tokenizer, text, last_line_at(text, user_text), encoded);
    star_query = std::clamp<std::int64_t>(star_query, 0, std::int64_t(prompt.size()) - cp->comm().size());
  }

  // `--prefill dense` (with no layer list or profile) is the model's own dense attention, as
  // when no --prefill is given (and as the Python API maps it).
  const bool plain_dense = (o.prefill.empty() || o.prefill == "dense") && o.policy.empty() && o.dense_layers.empty();
  std::unique_ptr<SparsePrefill> sparse =
      make_sparse_prefill(plain_dense ? "" : o.prefill, o.policy, o.dense_layers, config.layers, config.heads);

  std::unique_ptr<DecodeSelector> selector = make_decode_selector(o.decode, context);

  const std::int64_t ubatch = resolve_ubatch(o.cache.ubatch, sparse != nullptr, cp != nullptr);

  KvCache cache = model.make_cache(context, key_type, value_type);
  GenerateOptions options;
  options.max_tokens = o.tokens;
  options.sampler = o.sampler;
  options.hooks.attention = sparse.get();
  options.ubatch = ubatch;
  options.decode = selector.get();
  if (cp) {
    options.context = &cp->parallel();
    options.context_query = star_query;
    cp->ready();
  }
  const bool prints = !cp || cp->root();
  GenerateResult result = generate(model, tokenizer, prompt, cache, options, [&](std::string_view piece) {
    if (o.json || !prints) return;
    std::fwrite(piece.data(), 1, piece.size(), stdout);
    std::fflush(stdout);
  });

  const std::vector<ContextStats> cp_stats = cp ? cp->gather_stats() : std::vector<ContextStats>{};
  if (!prints) return;
  if (o.json) {
    nlohmann::json out = generation_json(result, cache, config, sparse.get(), selector.get());
    out["prompt_truncated"] = prompt.size() != encoded.size();
    out["ubatch"] = ubatch;
    if (cp) out["context_parallel"] = cp->json(cp_stats);
    std::printf("%s\n", out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    return;
  }
  std::printf("\n");
  std::fflush(stdout);
  std::fprintf(stderr,
               "\n%s\n"
               "load: %.0f ms, weights %.1f MB, %d threads\n"
               "kernels: %s\n"
               "prompt: %lld tokens%s; prefill %.1f ms (%.1f tok/s; attention %.1f ms)\n"
               "decode: %lld tokens, %.2f ms/token (%.1f tok/s)%s\n"
               "kv cache %s/%s: %.1f MB for %lld tokens (%lld bytes per token%s); peak RSS %.1f MB\n",
               config.summary().c_str(), load_ms, model.weight_bytes() / 1e6, num_threads(), kernels_line().c_str(),
               static_cast<long long>(result.prompt_tokens),
               prompt.size() != encoded.size() ? fmt::format(" (truncated from {})", encoded.size()).c_str() : "",
               result.prefill_ms, result.prefill_tok_s(), result.attention_ms,
               static_cast<long long>(result.decode_tokens), result.decode_ms_per_token(), result.decode_tok_s(),
               result.stopped_at_end ? ", stopped at end of generation" : "", kv_type_name(key_type),
               kv_type_name(value_type), cache.bytes_used() / 1e6, static_cast<long long>(cache.size()),
               static_cast<long long>(cache.bytes_per_token()),
               config.sliding_window > 0 ? fmt::format(" in global layers; local layers hold {}", config.sliding_window).c_str() : "",
               peak_rss_bytes() / 1e6);
  if (cp) std::fprintf(stderr, "%s\n", cp->summary(cp_stats).c_str());
  if (result.decode_stats.steps > 0)
    std::fprintf(stderr,
                 "decode attention %s: %.2f ms/token (selection %.2f), %.0f keys per KV head and layer, %.2f MB of "
                 "K/V read per token%s\n",
                 selector ? selector->spec().c_str() : "dense",
                 result.decode_stats.attention_ms / double(result.decode_stats.steps),
                 result.decode_stats.select_ms / double(result.decode_stats.steps), result.keys_attended_per_head(),
                 result.kv_bytes_per_token() / 1e6,
                 cache.summary_bytes() ? fmt::format("; summaries {:.1f} MB", cache.summary_bytes() / 1e6).c_str() : "");
  if (sparse)
    std::fprintf(stderr,
                 "sparse prefill %s on %s: estimate %.1f ms (scores in %s), attention %.1f ms, mean plan density %.3f "
                 "over %d layer runs%s\n",
                 sparse->policy().describe().c_str(),
                 config.sliding_window > 0
                     ? fmt::format("global layers {}", fmt::join(config.global_layers(), ",")).c_str()
                     : "every layer",
                 sparse->estimate_ms(), estimate::score_precision(), sparse->attention_ms(), sparse->mean_density(),
                 sparse->planned_layers(),
                 config.sliding_window > 0
                     ? fmt::format("; the {} local layers ran the window-{} kernel",
                                   config.layers - int(config.global_layers().size()), config.sliding_window).c_str()
                     : "");
}

void setup_run(CLI::App& app) {
  auto o = std::make_shared<RunOptions>();
  app.add_option("-m,--model", o->model, "model: a GGUF path or a cached name (smollm2, gemma3)")->capture_default_str();
  app.add_option("-p,--prompt", o->prompt, "prompt text");
  app.add_option("-f,--file", o->prompt_file, "read the prompt from a file");
  app.add_option("-n,--tokens", o->tokens, "tokens to generate at most")->capture_default_str();
  app.add_option("-c,--context", o->context, "context length (default: the model's trained context)");
  app.add_option("-t,--threads", o->threads, "threads (default: all cores)");
  app.add_flag("--chat", o->chat, "wrap the prompt as a user turn in the model's chat template");
  app.add_option("--temp", o->sampler.temperature, "temperature; 0 = greedy")->capture_default_str();
  app.add_option("--top-k", o->sampler.top_k, "top-k; 0 = off")->capture_default_str();
  app.add_option("--top-p", o->sampler.top_p, "top-p; 1 = off")->capture_default_str();
  app.add_option("--min-p", o->sampler.min_p, "min-p; 0 = off")->capture_default_str();
  app.add_option("--seed", o->sampler.seed, "sampling seed")->capture_default_str();
  app.add_flag("--json", o->json, "print one JSON object (text, tokens, timings) instead of streaming");
  app.add_option("--truncate", o->truncate, "shorten a prompt that does not fit: middle | left");
  app.add_option("--prefill", o->prefill, "sparse prefill method spec, e.g. flexprefill (see `longsparse methods`)");
  app.add_option("--dense-layers", o->dense_layers, "with --prefill or --policy: layers kept dense, e.g. 0,1");
  app.add_option("--policy", o->policy, "per-layer/head method profile (JSON from `longsparse profile`)");
  app.add_option("--decode", o->decode, "decode selector spec, e.g. quest:budget=1024 (see `longsparse methods`)");
  add_cache_options(app, o->cache, /*auto_ubatch=*/true);
  add_context_options(app, o->context_parallel);
  app.callback([o] {
    std::unique_ptr<ContextRun> cp = ContextRun::make(o->context_parallel);
    if (!cp) return run(*o, nullptr);
    cp->guard([&] { run(*o, cp.get()); });
  });
}

}  // namespace

LS_REGISTER_COMMAND(run, "Generate text from a prompt", setup_run);

}  // namespace ls::cli
