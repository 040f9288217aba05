// shadowkv — chunk selection by landmarks, with outlier chunks and the local window kept exact.
//
// Paper: ShadowKV, "KV Cache in Shadows for High-Throughput Long-Context LLM Inference" (Sun
// et al., ICML 2025), §4: after prefill, the keys are split into chunks of 8; each chunk's
// landmark is the mean of its post-RoPE keys; the chunks whose keys agree least with their
// landmark (lowest minimum cosine similarity) are outliers, kept exact with the local window;
// at each decode step the query scores every landmark, the scores are softmaxed per query head
// and max-reduced over the GQA group, and the top chunks are attended. The softmax runs over
// the non-outlier chunks' landmarks, the only ones the official cache keeps; the official code
// scales the scores by 1/sqrt(128) whatever the head dimension, we by the model's softmax scale
// (the same for its head dimension of 128; for a group of heads of another dimension the
// rankings can differ). tests/methods/official_decode_fixture_test.cc checks our selection
// against the official ShadowKVCache's (docs/fidelity.md). Official code:
// bytedance/ShadowKV (models/kv_cache.py, ShadowKVCache: sparse_budget 2048, chunk_size 8,
// rank 160, local_chunk 4, outlier_chunk 48).
//
// Parameters
//   budget   = 2464  keys attended per KV head: outlier + local + selected chunks
//                    (48·8 + 4·8 + 2048, the official accuracy configuration)
//   chunk    = 8     tokens per chunk
//   outliers = 48    outlier chunks kept exact
//   local    = 4     last chunks of the prompt kept exact
// The tokens generated after the prompt are always attended (ShadowKV appends them to its
// exact local cache); they count in the budget, so fewer chunks are selected as they grow.
// What we do not do: ShadowKV stores the pre-RoPE keys as a rank-160 SVD and rebuilds the
// selected keys from it, to save memory; we keep every key exact in the cache, so our
// accuracy is that of ShadowKV's selection with exact keys (an upper bound of its accuracy).
// Landmarks come from the cache's block means (block = chunk); outliers are found from the
// prompt's keys at the first decode step of each layer, as ShadowKV does after prefill.
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "methods/registry.h"

namespace ls {
namespace {

class ShadowKv final : public DecodeSelector {
 public:
  ShadowKv(std::int64_t budget, std::int64_t chunk, std::int64_t outliers, std::int64_t local)
      : budget_(budget), chunk_(chunk), outliers_(outliers), local_(local) {
    decode::check_budget("shadowkv", budget, (outliers + local) * chunk + chunk - 1);
  }
  SummaryNeeds needs() const override { return {kSummaryBlockMean, 16, chunk_}; }
  std::int64_t budget() const override { return budget_; }
  void reset() override { layers_.clear(); }

  std::int64_t select(const DecodeQuery& query, const DecodeKeys& keys, Selection& out) override {
    const std::int64_t n = keys.size();
    if (layers_.size() <= std::size_t(query.layer)) layers_.resize(std::size_t(query.layer) + 1);
    Layer& state = layers_[std::size_t(query.layer)];
    std::int64_t read = 0;
    if (state.prompt == 0) read = find_outliers(keys, n - 1, state);  // the first step: n - 1 prompt tokens
    const std::int64_t chunks = state.prompt / chunk_, candidates = std::max<std::int64_t>(0, chunks - local_);
    // The exact tail (local chunks, the prompt's last partial chunk, generated tokens) counts
    // in the budget, so the selected chunks shrink by one as every 8 tokens are generated.
    const std::int64_t selected =
        std::max<std::int64_t>(0, (budget_ - outliers_ * chunk_ - (n - candidates * chunk_)) / chunk_);
    if (candidates <= outliers_ + selected) {
      decode::select_dense(keys, out);
      return read;
    }
    const int dim = keys.dim(), group = query.heads / keys.kv_heads();
    std::vector<float> score(static_cast<std::size_t>(candidates)), best(static_cast<std::size_t>(candidates));
    out.reset(keys.kv_heads(), n);
    for (int g = 0; g < keys.kv_heads(); ++g) {
      const float* landmarks = keys.block_mean(g);
      LS_CHECK(landmarks && keys.block_size() == chunk_, "shadowkv: the cache keeps no block means of {} keys", chunk_);
      const std::vector<char>& outlier = state.outlier[std::size_t(g)];
      std::fill(best.begin(), best.end(), -1.0f);
      // The softmax runs over the landmarks of the non-outlier chunks only: ShadowKV keeps no
      // landmark of an outlier chunk (its k_landmark holds the rest), which matters for a group.
      for (int i = 0; i < group; ++i) {
        const float* q = query.q + std::int64_t(g * group + i) * dim;
        float max = -INFINITY;
        for (std::int64_t c = 0; c < candidates; ++c) {
          if (outlier[c]) continue;
          const float* l = landmarks + c * dim;
          float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
          for (int e = 0; e < dim; ++e) dot += q[e] * l[e];
          score[c] = dot * query.scale;
          max = std::max(max, score[c]);
        }
        double total = 0;
        for (std::int64_t c = 0; c < candidates; ++c)
          if (!outlier[c]) total += score[c] = std::exp(score[c] - max);
        for (std::int64_t c = 0; c < candidates; ++c)
          if (!outlier[c]) best[c] = std::max(best[c], float(score[c] / total));
      }
      for (std::int64_t c = 0; c < candidates; ++c)
        if (outlier[c]) best[c] = -1.0f, out.add(g, c * chunk_, (c + 1) * chunk_);  // kept anyway
      for (std::int64_t c : decode::top_k(best.data(), candidates, selected)) out.add(g, c * chunk_, (c + 1) * chunk_);
      out.add(g, candidates * chunk_, n);  // local chunks, the prompt's tail and every generated token
    }
    out.finish();
    return read + std::int64_t(keys.kv_heads()) * candidates * dim * 4;
  }

 private:
  struct Layer {
    std::int64_t prompt = 0;              // prompt tokens when the layer first decoded
    std::vector<std::vector<char>> outlier;  // per KV head, per candidate chunk
  };

  // Outliers among the chunks before the local ones: lowest minimum cosine similarity between
  // a chunk's keys and their mean. Returns the bytes of keys read.
  std::int64_t find_outliers(const DecodeKeys& keys, std::int64_t prompt, Layer& state) const {
    state.prompt = std::max<std::int64_t>(prompt, 1);
    const std::int64_t candidates = std::max<std::int64_t>(0, state.prompt / chunk_ - local_);
    const int dim = keys.dim();
    state.outlier.assign(std::size_t(keys.kv_heads()), std::vector<char>(std::size_t(candidates), 0));
    if (candidates == 0) return 0;
    std::vector<float> rows(static_cast<std::size_t>(candidates * chunk_ * dim)), min_cos(static_cast<std::size_t>(candidates));
    for (int g = 0; g < keys.kv_heads(); ++g) {
      keys.read_keys(g, 0, candidates * chunk_, rows.data());
      for (std::int64_t c = 0; c < candidates; ++c) {
        std::vector<double> mean(std::size_t(dim), 0.0);
        for (std::int64_t t = 0; t < chunk_; ++t)
          for (int e = 0; e < dim; ++e) mean[e] += rows[(c * chunk_ + t) * dim + e];
        double mean_norm = 0;
        for (int e = 0; e < dim; ++e) mean_norm += mean[e] * mean[e];
        double worst = 1.0;
        for (std::int64_t t = 0; t < chunk_; ++t) {
          double dot = 0, norm = 0;
          for (int e = 0; e < dim; ++e) {
            const double x = rows[(c * chunk_ + t) * dim + e];
            dot += x * mean[e];
            norm += x * x;
          }
          worst = std::min(worst, norm > 0 && mean_norm > 0 ? dot / std::sqrt(norm * mean_norm) : 1.0);
        }
        min_cos[c] = -float(worst);  // top_k picks the largest: the least similar chunks
      }
      for (std::int64_t c : decode::top_k(min_cos.data(), candidates, outliers_)) state.outlier[std::size_t(g)][c] = 1;
    }
    return std::int64_t(keys.kv_heads()) * candidates * chunk_ * keys.key_row_bytes();
  }

  std::int64_t budget_, chunk_, outliers_, local_;
  std::vector<Layer> layers_;
};

MethodInfo shadowkv_info() {
  MethodInfo info;
  info.name = "shadowkv";
  info.phase = "decode";
  info.paper = "ShadowKV (Sun et al., ICML 2025) §4";
  info.summary = "top 8-token chunks by landmark score, + outlier chunks + local window (exact keys)";
  using K = ParamSpec::Kind;
  info.params = {
      {"budget", "2464", "keys attended per KV head: outlier + local + selected chunks", K::Int, 2, 1e9, {}},
      {"chunk", "8", "tokens per chunk", K::Int, 1, 1024, {}},
      {"outliers", "48", "outlier chunks kept exact", K::Int, 0, 1e6, {}},
      {"local", "4", "last chunks of the prompt kept exact", K::Int, 0, 1e6, {}},
  };
  info.make_decode = [](const Params& p) {
    return std::make_unique<ShadowKv>(p.get_int("budget"), p.get_int("chunk"), p.get_int("outliers"),
                                      p.get_int("local"));
  };
  return info;
}

LS_REGISTER_METHOD(shadowkv_info());

}  // namespace
}  // namespace ls
