// `longsparse perplexity`: the perplexity of a model on a text file in llama-perplexity's
// convention (eval/perplexity.h): chunks of -c tokens, each a fresh prefill, the second half
// of each scored. Prints the running PPL per chunk ("[1]12.3456,[2]...") and
// "Final estimate: PPL = X +/- Y" as llama-perplexity does, or one JSON object with --json.
// A sparse prefill (--prefill, --dense-layers, --policy) is set up exactly as in `run`.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cli/command.h"
#include "cli/context_run.h"
#include "cli/eval_model.h"
#include "cli/prefill_capture.h"
#include "cli/runtime.h"
#include "core/error.h"
#include "core/memory.h"
#include "core/parallel.h"
#include "core/timer.h"
#include "eval/perplexity.h"
#include "kv/kv_type.h"
#include "model/gguf.h"
#include "model/model_path.h"
#include "model/sparse_prefill.h"
#include "model/tokenizer.h"
#include "model/transformer.h"

namespace ls::cli {
namespace {

struct PerplexityOptions {
  std::string model = "smollm2";
  std::string file;
  std::int64_t context = 512;  // llama-perplexity's default -c
  std::int64_t chunks = -1;    // -1: every whole chunk of the file
  int threads = 0;
  bool json = false;
  std::string prefill;       // sparse prefill method spec; empty: dense
  std::string dense_layers;  // layers kept dense under --prefill
  std::string policy;        // per-layer / per-head profile file
  CacheOptions cache;        // -ctk, -ctv, -ub
  ContextOptions context_parallel;  // --context-parallel (star: each chunk is all context, no query)
};

// null for NaN and infinities, which JSON cannot hold.
nlohmann::json number_or_null(double x) { return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(); }

void perplexity(const PerplexityOptions& o, ContextRun* cp) {
  LS_CHECK(!o.file.empty(), "give the text with -f FILE");
  LS_CHECK(o.context >= 3, "-c {}: a chunk needs at least 3 tokens (the positions from n_ctx/2 to n_ctx-2 are scored)",
           o.context);
  const KvType key_type = parse_kv_type(o.cache.cache_type_k), value_type = parse_kv_type(o.cache.cache_type_v);
  LS_CHECK(o.cache.ubatch >= 0, "--ubatch must be >= 0");
  const std::string text = read_text(o.file);
  apply_threads(o.threads);

  const std::string path = resolve_model_path(o.model);
  std::unique_ptr<GgufFile> gguf = GgufFile::open(path);
  Transformer model(*gguf);
  Tokenizer tokenizer(tokenizer_data_from_gguf(*gguf));
  const ModelConfig& config = model.config();
  const std::int64_t trained = config.context_length;
  if (o.context > trained) {
    if (!caps_distance(o.prefill, o.policy, o.dense_layers, {}, trained)) fail_beyond_trained(o.context, trained);
    std::fprintf(stderr, "warning: -c %lld is beyond %s's trained context of %lld tokens; RoPE distances are capped\n",
                 static_cast<long long>(o.context), config.name.c_str(), static_cast<long long>(trained));
  }
  std::unique_ptr<SparsePrefill> sparse =
      make_sparse_prefill(o.prefill, o.policy, o.dense_layers, config.layers, config.heads);

  // As llama-perplexity: special tokens are not parsed, BOS is added when the model adds it.
  Timer tokenize_timer;
  const std::vector<std::int32_t> tokens = tokenizer.encode(text, /*parse_special=*/false);
  const double tokenize_ms = tokenize_timer.ms();
  const std::int32_t bos = tokenizer.data().add_bos ? tokenizer.bos() : -1;
  const eval::PerplexityChunking chunking = eval::chunk_text(std::int64_t(tokens.size()), o.context, o.chunks);
  const std::int64_t n = chunking.context, first = chunking.first_scored(), vocab = config.vocab;
  LS_CHECK(!cp || o.cache.ubatch == 0, "--context-parallel runs without --ubatch");
  if (cp) cp->ready();
  const bool prints = !cp || cp->root();
  if (!o.json && prints)
    std::fprintf(stderr,
                 "perplexity: %s, %lld tokens (tokenized in %.0f ms%s), %lld chunks of %lld, %lld positions scored "
                 "per chunk, %d threads, prefill %s\n",
                 o.file.c_str(), static_cast<long long>(tokens.size()), tokenize_ms, bos >= 0 ? ", BOS added" : "",
                 static_cast<long long>(chunking.chunks), static_cast<long long>(n),
                 static_cast<long long>(chunking.scored_per_chunk()), num_threads(),
                 sparse ? sparse->policy().describe().c_str() : "dense");

  eval::PerplexityAccumulator total;
  std::vector<double> running_ppl;
  std::vector<double> nll(chunking.scored_per_chunk());  // of the scored positions first .. n - 2
  std::vector<float> last_logits(vocab);
  double prefill_ms = 0.0;
  for (std::int64_t chunk = 0; chunk < chunking.chunks; ++chunk) {
    const std::vector<std::int32_t> input = eval::chunk_tokens(tokens, chunking, chunk, bos);
    // The targets are the text's tokens; only the chunk's first input is replaced by BOS.
    const std::int32_t* targets = tokens.data() + chunk * n;
    PrefillHooks hooks;
    hooks.attention = sparse.get();
    hooks.logits_from = first;
    hooks.logits = [&](std::int64_t from, std::int64_t rows, const float* logits) {
      parallel_for(rows, [&](std::int64_t r) {
        const std::int64_t j = from + r;
        if (j < first || j > n - 2) return;
        nll[j - first] = eval::token_nll({logits + r * vocab, std::size_t(vocab)}, targets[j + 1]);
      });
    };
    KvCache cache = model.make_cache(n, key_type, value_type);
    Timer timer;
    if (cp) {
      // Each rank scores the positions of its own block; the others' entries stay 0 and the
      // gathered rows add up to every position's score.
      std::fill(nll.begin(), nll.end(), 0.0);
      cp->parallel().prefill(model, input, 0, cache, last_logits.data(), hooks);
      std::vector<double> all(nll.size() * cp->comm().size());
      cp->comm().allgather(nll.data(), nll.size() * sizeof(double), all.data());
      for (std::size_t j = 0; j < nll.size(); ++j) {
        nll[j] = 0.0;
        for (int r = 0; r < cp->comm().size(); ++r) nll[j] += all[r * nll.size() + j];
      }
    } else {
      model.prefill(input, cache, last_logits.data(), hooks, o.cache.ubatch);
    }
    prefill_ms += timer.ms();
    for (double v : nll) total.add(v);
    running_ppl.push_back(total.ppl());
    if (!o.json && prints) {
      std::printf("[%lld]%.4f,", static_cast<long long>(chunk + 1), total.ppl());
      std::fflush(stdout);
    }
  }

  const std::vector<ContextStats> cp_stats = cp ? cp->gather_stats() : std::vector<ContextStats>{};
  if (!prints) return;
  const double seconds = prefill_ms * 1e-3;
  const double tok_s = seconds > 0 ? double(chunking.chunks * n) / seconds : 0.0;
  if (o.json) {
    nlohmann::json out = {
        {"model", config.name},
        {"model_path", path},
        {"file", o.file},
        {"ctx", n},
        {"file_tokens", tokens.size()},
        {"add_bos", bos >= 0},
        {"chunks", chunking.chunks},
        {"chunks_available", std::int64_t(tokens.size()) / n},
        {"first_scored", first},
        {"tokens_scored", total.count()},
        {"ppl", number_or_null(total.ppl())},
        {"ppl_stderr", number_or_null(total.ppl_stderr())},
        {"mean_nll", number_or_null(total.mean_nll())},
        {"running_ppl", running_ppl},
        {"prefill_method", sparse ? sparse->policy().describe() : "dense"},
        {"prefill_mean_density", sparse ? sparse->mean_density() : 1.0},
        {"cache_type_k", kv_type_name(key_type)},
        {"cache_type_v", kv_type_name(value_type)},
        {"ubatch", o.cache.ubatch},
        {"seconds", seconds},
        {"tok_s", tok_s},
        {"threads", num_threads()},
        {"kernels", kernels_json()},
        {"peak_rss_bytes", peak_rss_bytes()},
    };
    if (cp) out["context_parallel"] = cp->json(cp_stats);
    std::printf("%s\n", out.dump().c_str());
    return;
  }
  std::printf("\n");
  if (std::isfinite(total.ppl_stderr()))
    std::printf("Final estimate: PPL = %.4f +/- %.5f\n", total.ppl(), total.ppl_stderr());
  else
    std::printf("Final estimate: PPL = %.4f (no uncertainty from %lld scored tokens)\n", total.ppl(),
                static_cast<long long>(total.count()));
  std::fflush(stdout);
  std::fprintf(stderr,
               "%lld tokens scored, mean NLL %.6f; %lld prefills of %lld tokens in %.2f s (%.1f tok/s)%s; peak RSS "
               "%.1f MB\nkernels: %s\n",
               static_cast<long long>(total.count()), total.mean_nll(), static_cast<long long>(chunking.chunks),
               static_cast<long long>(n), seconds, tok_s,
               sparse ? fmt::format(", mean plan density {:.3f}", sparse->mean_density()).c_str() : "",
               peak_rss_bytes() / 1e6, kernels_line().c_str());
  if (cp) std::fprintf(stderr, "%s (last chunk)\n", cp->summary(cp_stats).c_str());
}

void setup_perplexity(CLI::App& app) {
  auto o = std::make_shared<PerplexityOptions>();
  app.add_option("-m,--model", o->model, "model: a GGUF path or a cached name (smollm2, gemma3)")->capture_default_str();
  app.add_option("-f,--file", o->file, "the text file to score");
  app.add_option("-c,--context", o->context, "tokens per chunk (n_ctx)")->capture_default_str();
  app.add_option("--chunks", o->chunks, "score only the first K chunks (-1: all)")->capture_default_str();
  app.add_option("-t,--threads", o->threads, "threads (default: all cores)");
  app.add_flag("--json", o->json, "print one JSON object instead of the running and final PPL");
  app.add_option("--prefill", o->prefill, "sparse prefill method spec, e.g. flexprefill (see `longsparse methods`)");
  app.add_option("--dense-layers", o->dense_layers, "with --prefill or --policy: layers kept dense, e.g. 0,1");
  app.add_option("--policy", o->policy, "per-layer/head method profile (JSON from `longsparse profile`)");
  add_cache_options(app, o->cache);
  add_context_options(app, o->context_parallel);
  app.callback([o] {
    std::unique_ptr<ContextRun> cp = ContextRun::make(o->context_parallel);
    if (!cp) return perplexity(*o, nullptr);
    cp->guard([&] { perplexity(*o, cp.get()); });
  });
}

}  // namespace

LS_REGISTER_COMMAND(perplexity, "Perplexity of a text file, in llama-perplexity's convention", setup_perplexity);

}  // namespace ls::cli
