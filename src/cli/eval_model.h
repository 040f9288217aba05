// The CLI's bridge between the evaluation layer and a model: the prompt formatter (chat
// template + tokenizer) used to fit task lengths, and the text generator used by eval/sweep.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "eval/prompt.h"
#include "eval/runner.h"

namespace ls {
class DecodeSelector;
class SparsePrefill;
}

namespace ls::cli {

// "approx" (no model: plain prompt, approximate counter) or a model path / cached name.
std::unique_ptr<eval::PromptFormatter> make_formatter(const std::string& model);

// Whether these methods cap the RoPE distance in every layer below `trained` tokens, in
// prefill and in each decode spec (so they may run beyond the trained context): a prefill
// such as lambda without a policy or dense layers, and decodes such as streaming:shift=true.
// `decodes` empty: prefill only.
bool caps_distance(const std::string& prefill, const std::string& policy, const std::string& dense_layers,
                   const std::vector<std::string>& decodes, std::int64_t trained);
// The error beyond the trained context, naming the methods that run there.
[[noreturn]] void fail_beyond_trained(std::int64_t length, std::int64_t trained);

// The sparse prefill of --prefill / --policy / --dense-layers for a model of `layers` layers
// and `heads` query heads, as run and perplexity build it; nullptr when both --prefill and
// --policy are empty (dense). Checks that the dense layers exist and the profile fits.
std::unique_ptr<SparsePrefill> make_sparse_prefill(const std::string& prefill, const std::string& policy,
                                                   const std::string& dense_layers, int layers, int heads);

// The decode selector of a --decode spec for a cache of `context` tokens; nullptr for "" and
// "dense". A budget that is not smaller than the context (every key would be attended) is an
// error.
std::unique_ptr<DecodeSelector> make_decode_selector(const std::string& decode, std::int64_t context);

// The context a model was trained to (0 for "approx" and "oracle"), and its name.
std::int64_t trained_context(const std::string& model, std::string* name = nullptr);

// llama.cpp's KV cache and batch flags, shared by run, eval and sweep.
struct CacheOptions {
  // --ubatch not given, where the command chooses (run: kDenseUbatch for dense attention).
  static constexpr std::int64_t kAuto = -1;
  std::string cache_type_k = "f16", cache_type_v = "f16";  // KV cache element types (kv/kv_type.h)
  std::int64_t ubatch = 0;                                  // prefill chunk; 0: the whole prompt
  std::string attn_precision = "f32";  // --attn-precision (attn/flash.h), applied as it is parsed
};
// run's chunk for a dense prefill when --ubatch is not given: llama.cpp's default -ub. As fast
// as one batch (docs/model.md) and it bounds the activations: at 32k tokens on Gemma 3, one
// batch holds 450 MB of them.
inline constexpr std::int64_t kDenseUbatch = 512;
// The prefill chunk run and the Python API use: `requested` unless it is CacheOptions::kAuto;
// then kDenseUbatch for dense attention, the whole prompt (0) for a sparse method (which plans
// over the whole prompt, as in its paper) or under context parallelism (which splits the
// prompt itself).
inline std::int64_t resolve_ubatch(std::int64_t requested, bool sparse, bool context_parallel) {
  if (requested != CacheOptions::kAuto) return requested;
  return sparse || context_parallel ? 0 : kDenseUbatch;
}
// Declares --cache-type-k (-ctk), --cache-type-v (-ctv), --ubatch (-ub) and --attn-precision on `app`. With
// `auto_ubatch`, ubatch starts as CacheOptions::kAuto and the help says what run chooses.
void add_cache_options(CLI::App& app, CacheOptions& o, bool auto_ubatch = false);

class ContextRun;

struct MethodOptions {
  std::string prefill = "dense", decode = "dense", policy, dense_layers;
  CacheOptions cache;
  ContextRun* context = nullptr;  // --context-parallel (cli/context_run.h): prefill split over the ranks
};

// "a;b;c" -> {"a", "b", "c"} (a list of decode specs run after one prefill); "" -> {"dense"}.
// Throws ls::Error on an empty item.
std::vector<std::string> split_decode_list(const std::string& decode);

// A generator for the model with the given attention methods. A decode list ("a;b") makes
// one generator whose methods() are one label per decode selector, sharing each prefill. "oracle" answers every sample
// with its first gold answer and zero timings: it checks the pipeline (files, resumption,
// scoring, report) without a model, and its results are labelled as such.
std::unique_ptr<eval::Generator> make_generator(const std::string& model, const MethodOptions& methods);

// Sets the threads of our kernels and of BLAS (0: all cores), as `run -t` does.
void set_threads(int threads);

// Gives the oracle the gold answers of these samples (does nothing for real generators).
void prepare_oracle(eval::Generator& generator, const std::vector<eval::TaskSample>& samples,
                    const eval::PromptFormatter& formatter);

}  // namespace ls::cli
