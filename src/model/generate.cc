// The generation loop (see generate.h).
#include "model/generate.h"

#include "core/error.h"
#include "core/timer.h"
#include "model/context_parallel.h"
#include "model/transformer.h"
#include "model/tokenizer.h"

namespace ls {

namespace {

// Keeps the summaries the selector needs (rebuilt from what the cache stores when they change).
void keep_summaries_for(const DecodeSelector* selector, KvCache& cache) {
  if (!selector) return;
  const SummaryNeeds needs = selector->needs();
  if (needs.kinds && !cache.keeps(needs)) cache.keep_summaries(needs);
}

}  // namespace

GenerateResult generate(Transformer& model, const Tokenizer& tokenizer, std::span<const std::int32_t> prompt,
                        KvCache& cache, const GenerateOptions& options,
                        const std::function<void(std::string_view)>& on_text) {
  LS_CHECK(!prompt.empty(), "the prompt is empty");
  LS_CHECK(cache.size() + std::int64_t(prompt.size()) + options.max_tokens <= cache.capacity(),
           "{} cached + prompt of {} tokens + {} to generate exceed the context of {}", cache.size(), prompt.size(),
           options.max_tokens, cache.capacity());
  keep_summaries_for(options.decode, cache);  // built as the prompt is written
  std::vector<float> logits(model.config().vocab);  // [vocab]
  Timer prefill_timer;
  LS_CHECK(!options.context || options.ubatch == 0, "context parallelism runs no --ubatch");
  const PrefillStats stats =
      options.context
          ? options.context->prefill(model, prompt, options.context_query, cache, logits.data(), options.hooks)
          : model.prefill(prompt, cache, logits.data(), options.hooks, options.ubatch);
  const double prefill_ms = prefill_timer.ms();
  GenerateResult result = generate_after_prefill(model, tokenizer, cache, logits, options, on_text);
  result.prompt_tokens = static_cast<std::int64_t>(prompt.size());
  result.prefill_ms = prefill_ms;
  result.attention_ms = stats.attention_ms;
  result.estimate_ms = stats.estimate_ms;
  return result;
}

GenerateResult generate_after_prefill(Transformer& model, const Tokenizer& tokenizer, KvCache& cache,
                                      std::span<const float> prompt_logits, const GenerateOptions& options,
                                      const std::function<void(std::string_view)>& on_text) {
  LS_CHECK(std::int64_t(prompt_logits.size()) == model.config().vocab, "{} logits for a vocabulary of {}",
           prompt_logits.size(), model.config().vocab);
  LS_CHECK(cache.size() > 0, "generation needs a prefilled cache");
  LS_CHECK(cache.size() + options.max_tokens <= cache.capacity(), "{} cached + {} to generate exceed the context of {}",
           cache.size(), options.max_tokens, cache.capacity());
  GenerateResult result;
  result.layers_kv_heads = std::int64_t(model.config().layers) * model.config().kv_heads;
  if (options.decode) options.decode->reset();
  keep_summaries_for(options.decode, cache);
  Sampler sampler(options.sampler);
  Tokenizer::StreamDecoder stream(tokenizer);
  std::vector<float> logits(prompt_logits.begin(), prompt_logits.end());
  auto emit = [&](const std::string& piece) {
    if (piece.empty()) return;
    result.text += piece;
    if (on_text) on_text(piece);
  };

  Timer decode_timer;
  std::int32_t token = sampler.sample(logits);
  while (std::int64_t(result.tokens.size()) < options.max_tokens) {
    if (tokenizer.is_end_of_generation(token)) {
      result.stopped_at_end = true;
      break;
    }
    result.tokens.push_back(token);
    emit(stream.push(token));
    if (std::int64_t(result.tokens.size()) == options.max_tokens) break;
    model.decode(token, cache, logits.data(), options.decode, &result.decode_stats);
    ++result.decode_tokens;
    token = sampler.sample(logits);
  }
  result.decode_ms = result.decode_tokens > 0 ? decode_timer.ms() : 0.0;
  emit(stream.flush());
  return result;
}

double GenerateResult::keys_attended_per_head() const {
  return decode_stats.steps && layers_kv_heads > 0
             ? double(decode_stats.keys_attended) / double(decode_stats.steps * layers_kv_heads)
             : 0.0;
}

Truncation parse_truncation(std::string_view name) {
  if (name == "middle") return Truncation::Middle;
  if (name == "left") return Truncation::Left;
  fail("unknown truncation '{}'; valid: middle, left", name);
}

std::vector<std::int32_t> fit_prompt(std::span<const std::int32_t> prompt, std::int64_t budget,
                                     Truncation truncation) {
  const std::int64_t n = static_cast<std::int64_t>(prompt.size());
  LS_CHECK(budget > 0, "no room for the prompt: the context is used up by the tokens to generate");
  if (n <= budget) return {prompt.begin(), prompt.end()};
  LS_CHECK(truncation != Truncation::None,
           "the prompt has {} tokens but only {} fit (context minus tokens to generate); shorten it, "
           "raise -c, lower -n, or pass --truncate middle|left",
           n, budget);
  if (truncation == Truncation::Left) return {prompt.end() - budget, prompt.end()};
  const std::int64_t head = budget / 2, tail = budget - head;
  std::vector<std::int32_t> out(prompt.begin(), prompt.begin() + head);
  out.insert(out.end(), prompt.end() - tail, prompt.end());
  return out;
}

}  // namespace ls
