// Formatter and generator factories for gen/eval/sweep, reaching models through the model
// layer's public API (GGUF file, tokenizer, chat template, llama forward pass, generation
// loop, method policy). "approx" fits lengths without a model; "oracle" checks the pipeline
// without one.
#include "cli/eval_model.h"
#include "cli/runtime.h"
#include "cli/context_run.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <unordered_map>

#include "attn/flash.h"
#include "attn/plan.h"
#include "core/error.h"
#include "core/parallel.h"
#include "core/timer.h"
#include "eval/results.h"
#include "methods/estimate_util.h"
#include "methods/policy.h"
#include "methods/registry.h"
#include "model/sparse_prefill.h"
#include "model/chat.h"
#include "model/generate.h"
#include "model/gguf.h"
#include "model/transformer.h"
#include "model/matmul.h"
#include "model/model_config.h"
#include "model/model_path.h"
#include "model/tokenizer.h"

namespace ls::cli {

namespace {

class OracleGenerator : public eval::Generator {
 public:
  explicit OracleGenerator(std::string method) : method_(std::move(method)) {}
  eval::GenerationResult generate(const std::string& prompt, std::int64_t) override {
    eval::GenerationResult r;
    auto it = answers_.find(std::hash<std::string>{}(prompt));
    LS_CHECK(it != answers_.end(), "oracle: no answer registered for this prompt");
    r.text = it->second;
    r.prompt_tokens = eval::approx_token_count(prompt);
    r.generated_tokens = eval::approx_token_count(r.text);
    return r;
  }
  std::string method() const override { return method_; }
  std::string model() const override { return "oracle"; }
  void expect(const std::string& prompt, std::string answer) {
    answers_[std::hash<std::string>{}(prompt)] = std::move(answer);
  }

 private:
  std::string method_;
  std::unordered_map<std::size_t, std::string> answers_;  // prompt hash -> gold answer text
};

// A model loaded once per process and shared by every method of a sweep.
struct LoadedModel {
  std::string name;
  std::unique_ptr<GgufFile> file;
  std::unique_ptr<Transformer> llama;  // null until a generator needs it
  std::unique_ptr<Tokenizer> tokenizer;
  ChatFormat chat;
  // Prompts in the chat template only when the file carries one (an instruction-tuned model); a
  // base model (no tokenizer.chat_template, e.g. the Gemma 3 270M file) gets the task text as
  // is, as RULER's "base" model template does.
  bool chat_prompts = false;
};

LoadedModel& load_model(const std::string& model, bool with_weights) {
  static std::map<std::string, std::unique_ptr<LoadedModel>> loaded;
  auto& slot = loaded[model];
  if (!slot) {
    slot = std::make_unique<LoadedModel>();
    const std::string path = resolve_model_path(model);
    slot->name = std::filesystem::path(path).filename().string();
    slot->file = GgufFile::open(path);
    TokenizerData data = tokenizer_data_from_gguf(*slot->file);
    slot->chat_prompts = !data.chat_template.empty();
    if (slot->chat_prompts) slot->chat = chat_format_from_tokenizer(data);
    slot->tokenizer = std::make_unique<Tokenizer>(std::move(data));
  }
  if (with_weights && !slot->llama) slot->llama = std::make_unique<Transformer>(*slot->file);
  return *slot;
}

// The model's tokenizer and chat template: the user turn holds the task input, then the
// generation prompt, then the answer prefix (as RULER appends it after the model template).
// Without a chat template in the file: input + answer prefix (RULER's base-model template).
class ModelFormatter : public eval::PromptFormatter {
 public:
  explicit ModelFormatter(const LoadedModel& model) : model_(model) {}
  std::string format(const std::string& input, const std::string& answer_prefix) const override {
    if (!model_.chat_prompts) return input + answer_prefix;
    const ChatMessage user{"user", input};
    return apply_chat_template(model_.chat, std::span<const ChatMessage>(&user, 1), true) + answer_prefix;
  }
  std::int64_t count_tokens(const std::string& text) const override {
    return static_cast<std::int64_t>(model_.tokenizer->encode(text, /*parse_special=*/true).size());
  }
  std::string name() const override { return model_.name; }

 private:
  const LoadedModel& model_;
};

class ModelGenerator : public eval::Generator {
 public:
  ModelGenerator(LoadedModel& model, const MethodOptions& methods)
      : model_(model), context_(methods.context) {
    beyond_trained_ = caps_distance(methods.prefill, methods.policy, methods.dense_layers,
                                    split_decode_list(methods.decode), model.llama->config().context_length);
    // Several decode selectors ("a;b;c") continue copies of one prefill.
    for (const std::string& decode : split_decode_list(methods.decode)) {
      labels_.push_back(eval::method_label(methods.prefill, decode, methods.dense_layers, methods.policy));
      if (decode == "dense") {
        selectors_.push_back(nullptr);
        continue;
      }
      selectors_.push_back(make_decode_selector(decode, model.llama->config().context_length));
    }
    Policy policy(methods.prefill.empty() ? "dense" : methods.prefill);
    if (!methods.dense_layers.empty()) policy.set_dense_layers(parse_layer_list(methods.dense_layers));
    if (!methods.policy.empty()) policy.set_profile(load_profile(methods.policy));
    dense_ = (methods.prefill.empty() || methods.prefill == "dense") && methods.policy.empty();
    key_type_ = parse_kv_type(methods.cache.cache_type_k);
    value_type_ = parse_kv_type(methods.cache.cache_type_v);
    LS_CHECK(methods.cache.ubatch >= 0, "--ubatch must be >= 0");
    ubatch_ = methods.cache.ubatch;
    if (!dense_) attention_ = std::make_unique<SparsePrefill>(std::move(policy));
    if (context_) {
      LS_CHECK(selectors_.size() == 1 && !selectors_.front() && ubatch_ == 0,
               "--context-parallel runs dense decoding only, without --ubatch");
      const ContextParallel& cp = context_->parallel();
      labels_.front() += fmt::format(" context_parallel={}:{}", context_mode_name(cp.mode()), context_->comm().size());
    }
  }

  eval::GenerationResult generate(const std::string& prompt, std::int64_t max_tokens) override {
    return generate_all(prompt, max_tokens, std::vector<bool>(labels_.size(), true)).front();
  }

  std::vector<eval::GenerationResult> generate_all(const std::string& prompt, std::int64_t max_tokens,
                                                   const std::vector<bool>& wanted,
                                                   std::size_t query_at = std::string::npos) override {
    const auto ids = model_.tokenizer->encode(prompt, /*parse_special=*/true);
    const std::int64_t trained = model_.llama->config().context_length, needed = std::int64_t(ids.size()) + max_tokens;
    if (needed > trained && !beyond_trained_) fail_beyond_trained(needed, trained);
    KvCache cache = model_.llama->make_cache(std::int64_t(ids.size()) + max_tokens, key_type_, value_type_);
    // The summaries every selector asks for, kept from the prefill on (where their sizes agree).
    SummaryNeeds needs;
    for (const auto& s : selectors_) {
      if (!s) continue;
      const SummaryNeeds n = s->needs();
      if ((n.kinds & kSummaryPageMinMax) && !(needs.kinds & kSummaryPageMinMax))
        needs.kinds |= kSummaryPageMinMax, needs.page_size = n.page_size;
      if ((n.kinds & kSummaryBlockMean) && !(needs.kinds & kSummaryBlockMean))
        needs.kinds |= kSummaryBlockMean, needs.block_size = n.block_size;
      if ((n.kinds & kSummaryLabels) && !(needs.kinds & kSummaryLabels))
        needs.kinds |= kSummaryLabels, needs.label_channels = n.label_channels;
    }
    if (needs.kinds) cache.keep_summaries(needs);
    if (attention_) attention_->reset_stats();
    PrefillHooks hooks;
    hooks.attention = attention_.get();
    std::vector<float> logits(model_.llama->config().vocab);
    Timer prefill_timer;
    PrefillStats stats;
    if (context_) {
      ContextParallel& cp = context_->parallel();
      const std::int64_t query =
          cp.mode() == ContextMode::Star
              ? std::clamp<std::int64_t>(star_query_tokens(*model_.tokenizer, prompt, query_at, ids), 0,
                                         std::int64_t(ids.size()) - context_->comm().size())
              : 0;
      stats = cp.prefill(*model_.llama, ids, query, cache, logits.data(), hooks);
    } else {
      stats = model_.llama->prefill(ids, cache, logits.data(), hooks, ubatch_);
    }
    const double prefill_ms = prefill_timer.ms();

    std::vector<eval::GenerationResult> results(labels_.size());
    const std::size_t last = std::find(wanted.rbegin(), wanted.rend(), true).base() - wanted.begin() - 1;
    for (std::size_t i = 0; i < labels_.size(); ++i) {
      if (!wanted[i]) continue;
      GenerateOptions options;
      options.max_tokens = max_tokens;
      options.sampler.temperature = 0;  // greedy
      options.decode = selectors_[i].get();
      // The last selector continues the prefilled cache itself; the others continue copies.
      KvCache copy = i == last ? KvCache() : cache.clone();
      GenerateResult out = generate_after_prefill(*model_.llama, *model_.tokenizer, i == last ? cache : copy, logits,
                                                  options);
      eval::GenerationResult& r = results[i];
      r.text = out.text;
      r.prompt_tokens = std::int64_t(ids.size());
      r.generated_tokens = static_cast<std::int64_t>(out.tokens.size());
      r.prefill_ms = prefill_ms;
      r.attention_ms = stats.attention_ms;
      r.decode_ms_per_token = out.decode_ms_per_token();
      r.decode_keys_attended = out.keys_attended_per_head();
      r.decode_attention_ms_per_token =
          out.decode_stats.steps ? out.decode_stats.attention_ms / double(out.decode_stats.steps) : 0.0;
      if (attention_precision() == AttnPrecision::Bf16) r.attention_scores = "bf16";
      if (context_ && context_->parallel().mode() == ContextMode::Star)
        r.density = context_->parallel().layout().density();  // star's phase 1 is its sparsity
      if (attention_ && attention_->planned_layers() > 0) {
        r.estimate_ms = stats.estimate_ms;
        r.density = attention_->mean_density();
        r.estimate_precision = estimate::score_precision();
      }
    }
    return results;
  }
  std::vector<std::string> methods() const override { return labels_; }
  std::string method() const override { return labels_.front(); }
  std::string model() const override { return model_.name; }

 private:
  LoadedModel& model_;
  ContextRun* context_ = nullptr;
  bool beyond_trained_ = false;  // the methods cap RoPE distances: prompts may exceed the trained context
  std::vector<std::string> labels_;                    // one per decode selector
  std::vector<std::unique_ptr<DecodeSelector>> selectors_;  // nullptr: dense
  bool dense_ = true;
  KvType key_type_ = KvType::F16, value_type_ = KvType::F16;
  std::int64_t ubatch_ = 0;
  std::unique_ptr<SparsePrefill> attention_;
};

}  // namespace

std::vector<std::string> split_decode_list(const std::string& decode) {
  std::vector<std::string> specs;
  std::size_t start = 0;
  if (decode.find_first_not_of(" ") == std::string::npos) return {"dense"};
  while (true) {
    const std::size_t end = decode.find(';', start);
    std::string item = decode.substr(start, end == std::string::npos ? std::string::npos : end - start);
    item.erase(0, item.find_first_not_of(' '));
    item.erase(item.find_last_not_of(' ') + 1);
    LS_CHECK(!item.empty(), "--decode '{}': empty item in the list (specs are separated by ';')", decode);
    specs.push_back(item);
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return specs;
}

void add_cache_options(CLI::App& app, CacheOptions& o, bool auto_ubatch) {
  app.add_option("--attn-precision", o.attn_precision,
                 "score products Q·Kᵀ of prefill attention: f32, or bf16 (AVX512-BF16; docs/attention.md)")
      ->capture_default_str()
      ->each([](const std::string& name) { set_attention_precision(parse_attention_precision(name)); });
  app.add_option("--cache-type-k", o.cache_type_k, "KV cache type of keys (-ctk): f32, f16, bf16, q8_0")
      ->capture_default_str();
  app.add_option("--cache-type-v", o.cache_type_v, "KV cache type of values (-ctv): f32, f16, bf16, q8_0")
      ->capture_default_str();
  if (auto_ubatch) {
    o.ubatch = CacheOptions::kAuto;
    app.add_option("--ubatch", o.ubatch,
                   fmt::format("prefill in chunks of this many tokens (-ub; 0: the whole prompt; default: {} with dense "
                               "attention, the whole prompt with --prefill or --policy)",
                               kDenseUbatch))
        ->check(CLI::NonNegativeNumber);
  } else {
    app.add_option("--ubatch", o.ubatch, "prefill in chunks of this many tokens (-ub; 0: the whole prompt)")
        ->capture_default_str();
  }
}

void set_threads(int threads) {
  apply_threads(threads);
}

void prepare_oracle(eval::Generator& generator, const std::vector<eval::TaskSample>& samples,
                    const eval::PromptFormatter& formatter) {
  auto* oracle = dynamic_cast<OracleGenerator*>(&generator);
  if (!oracle) return;
  for (const auto& s : samples) {
    std::string text;
    if (s.metric == "exact" && s.answers.size() > 1) {
      for (std::size_t i = 0; i < s.answers.size(); ++i) text += fmt::format("{}. {}\n", i + 1, s.answers[i]);
    } else if (s.metric == "iou") {
      for (const auto& a : s.answers) text += (text.empty() ? "" : ", ") + a;
    } else {
      for (const auto& a : s.answers) text += (text.empty() ? "" : " ") + a;
    }
    if (s.metric == "exact" || s.metric == "iou") text = "<answer>\n" + text + "\n</answer>";
    oracle->expect(formatter.format(s.input, s.answer_prefix), text);
  }
}

std::unique_ptr<eval::PromptFormatter> make_formatter(const std::string& model) {
  if (model == "approx" || model == "oracle") return std::make_unique<eval::ApproxFormatter>();
  return std::make_unique<ModelFormatter>(load_model(model, false));
}

bool caps_distance(const std::string& prefill, const std::string& policy, const std::string& dense_layers,
                   const std::vector<std::string>& decodes, std::int64_t trained) {
  if (prefill.empty() || !policy.empty() || !dense_layers.empty()) return false;
  const std::int64_t cap = MethodRegistry::instance().make_prefill(prefill)->rope_distance_limit();
  if (cap <= 0 || cap >= trained) return false;
  for (const std::string& decode : decodes) {
    if (decode.empty() || decode == "dense") return false;
    const std::int64_t d = MethodRegistry::instance().make_decode(decode)->rope_distance_limit();
    if (d <= 0 || d >= trained) return false;
  }
  return true;
}

void fail_beyond_trained(std::int64_t length, std::int64_t trained) {
  fail("{} tokens exceed the model's trained context of {}: RoPE distances beyond it are untrained. Only methods "
       "that cap the distance run there: a prefill such as --prefill lambda:limit={} (no --policy or --dense-layers) "
       "and, to generate, a decode such as --decode streaming:shift=true",
       length, trained, trained / 2);
}

std::unique_ptr<SparsePrefill> make_sparse_prefill(const std::string& prefill, const std::string& policy,
                                                   const std::string& dense_layers, int layers, int heads) {
  LS_CHECK(!prefill.empty() || !policy.empty() || dense_layers.empty(), "--dense-layers needs --prefill or --policy");
  if (prefill.empty() && policy.empty()) return nullptr;
  Policy layer_policy(prefill.empty() ? "dense" : prefill);
  std::vector<int> dense = parse_layer_list(dense_layers);
  for (int layer : dense)
    LS_CHECK(layer < layers, "--dense-layers: layer {} does not exist (the model has layers 0..{})", layer, layers - 1);
  layer_policy.set_dense_layers(std::move(dense));
  if (!policy.empty()) {
    HeadProfile profile = load_profile(policy);
    LS_CHECK(int(profile.layers.size()) <= layers && (profile.layers.empty() || profile.heads() == heads),
             "--policy {}: the profile has {} layers x {} heads; the model has {} x {}", policy, profile.layers.size(),
             profile.heads(), layers, heads);
    layer_policy.set_profile(std::move(profile));
  }
  return std::make_unique<SparsePrefill>(std::move(layer_policy));
}

std::unique_ptr<DecodeSelector> make_decode_selector(const std::string& decode, std::int64_t context) {
  if (decode.empty() || decode == "dense") return nullptr;
  std::unique_ptr<DecodeSelector> selector = MethodRegistry::instance().make_decode(decode);
  LS_CHECK(selector->budget() < context,
           "--decode {}: a budget of {} keys is not smaller than the context of {} tokens, so every key would be "
           "attended; lower the budget or use dense",
           decode, selector->budget(), context);
  return selector;
}

std::int64_t trained_context(const std::string& model, std::string* name) {
  if (model == "approx" || model == "oracle") return 0;
  const ModelConfig config = ModelConfig::from_gguf(*load_model(model, false).file);
  if (name) *name = config.name;
  return config.context_length;
}

std::unique_ptr<eval::Generator> make_generator(const std::string& model, const MethodOptions& methods) {
  const std::string label = eval::method_label(methods.prefill, methods.decode, methods.dense_layers, methods.policy);
  if (model == "oracle") return std::make_unique<OracleGenerator>(label);
  return std::make_unique<ModelGenerator>(load_model(model, true), methods);
}

}  // namespace ls::cli
