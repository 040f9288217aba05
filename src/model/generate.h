// The generation loop: prefill the prompt, then sample and decode one token at a time until
// an end-of-generation token or the token budget, streaming text as it becomes complete.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kv/kv_cache.h"
#include "model/layer_attention.h"
#include "model/sampler.h"
#include "model/transformer.h"

namespace ls {

class ContextParallel;
class Transformer;
class Tokenizer;

struct GenerateOptions {
  std::int64_t max_tokens = 128;  // tokens to generate at most
  SamplerConfig sampler;
  PrefillHooks hooks;
  DecodeSelector* decode = nullptr;  // decode selector (nullptr: dense); its summaries are kept from the prefill on
  std::int64_t ubatch = 0;        // prefill in chunks of this many tokens (0: the whole prompt at once)
  // Context parallelism (model/context_parallel.h): the prefill is split over its ranks and
  // the decode steps merge every rank's attention; context_query is Star Attention's query
  // (the prompt's last tokens, run in phase 2).
  ContextParallel* context = nullptr;
  std::int64_t context_query = 0;
};

struct GenerateResult {
  std::string text;                    // the generated text (without the end token)
  std::vector<std::int32_t> tokens;    // generated ids (the end token excluded)
  std::int64_t prompt_tokens = 0;
  double prefill_ms = 0.0;             // prompt → first logits
  double attention_ms = 0.0;           // of prefill_ms, inside the layer attention calls, plans excluded
  double estimate_ms = 0.0;            // of prefill_ms, building sparse plans
  std::int64_t decode_tokens = 0;      // decode steps (each one token through the model)
  double decode_ms = 0.0;              // all decode steps, sampling included
  DecodeStats decode_stats;            // what attention did in the decode steps
  std::int64_t layers_kv_heads = 0;    // layers × KV heads of the model
  bool stopped_at_end = false;         // an end-of-generation token was sampled

  double prefill_tok_s() const { return prefill_ms > 0 ? prompt_tokens / (prefill_ms * 1e-3) : 0.0; }
  double decode_tok_s() const { return decode_ms > 0 ? decode_tokens / (decode_ms * 1e-3) : 0.0; }
  double decode_ms_per_token() const { return decode_tokens > 0 ? decode_ms / decode_tokens : 0.0; }
  // Keys one KV head attended to per layer and step (all layers), and K/V bytes read per step.
  double keys_attended_per_head() const;
  double kv_bytes_per_token() const {
    return decode_stats.steps ? double(decode_stats.kv_bytes_read) / double(decode_stats.steps) : 0.0;
  }
};

// Runs prompt → tokens. `on_text` receives each piece of text as soon as it is whole UTF-8.
// The prompt is appended to what the cache holds (empty: a new conversation; filled: its next
// turn), which must leave room for prompt + max_tokens tokens.
GenerateResult generate(Transformer& model, const Tokenizer& tokenizer, std::span<const std::int32_t> prompt,
                        KvCache& cache, const GenerateOptions& options,
                        const std::function<void(std::string_view)>& on_text = {});

// The generation after a prefill: samples from `prompt_logits` (the logits of the prompt's
// last token) and decodes from what `cache` holds, so several decode selectors can continue
// copies of one prefilled cache (KvCache::clone). The prefill fields of the result are 0.
GenerateResult generate_after_prefill(Transformer& model, const Tokenizer& tokenizer, KvCache& cache,
                                      std::span<const float> prompt_logits, const GenerateOptions& options,
                                      const std::function<void(std::string_view)>& on_text = {});

// How to shorten a prompt that does not fit: keep its beginning and its end (middle), or only
// its end (left).
enum class Truncation { None, Middle, Left };
Truncation parse_truncation(std::string_view name);  // "middle" | "left"; throws otherwise

// Returns the prompt cut to at most `budget` tokens. With Truncation::None a longer prompt is
// an error that names --truncate.
std::vector<std::int32_t> fit_prompt(std::span<const std::int32_t> prompt, std::int64_t budget,
                                     Truncation truncation);

}  // namespace ls
