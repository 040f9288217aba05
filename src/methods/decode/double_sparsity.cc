// double-sparsity — top tokens by approximate scores on a few calibrated key channels.
//
// Paper: Double Sparsity, "Post-Training Sparse Attention with Double Sparsity" (Yang et al.,
// 2024, arXiv 2408.07092), §3: channel sparsity is static, so offline calibration picks per
// head the few "outlier" channels that dominate q·k; a label cache keeps those channels of
// every key; at each decode step the query's label channels score every key against the
// label cache, and exact attention runs over the top-scoring tokens (token sparsity). The
// paper runs 1/16 token sparsity with 1/16 channel sparsity (8 of 128 channels). Official
// code: andy-yang-1/DoubleSparse: config/offline_calibration.py writes, per layer and head,
// the channels sorted by mean |q_c·k_c| of each token with its own key ("qk_proj", the
// method active there; q- and k-only norms are also written); evaluation/perplexity_eval.py
// defaults to these qk channels; LongBench/modify_llama.py (LlamaAttention_heavy_hitter)
// keeps the top heavy_const tokens by label scores (2048 in the class, 256 as pred.py's
// default), per query head, the new token ranked with the others, and attends densely in
// layers 0 and 1 (`q_len > 1 or self.layer_idx < 2`, in evaluation/modify_llama.py too).
//
// Calibration criterion (`longsparse calibrate`, double_sparsity.h): the official "qk"
// statistic, mean over the calibration tokens t of |q[t][c] · k[t][c]|, summed over the query
// heads of a GQA group so that each KV head gets one channel set.
//
// Parameters
//   budget       = 2048  keys attended per KV head, the new token included (heavy_const 2048:
//                        1/16 of a 32k context, the paper's token sparsity)
//   channels     = 8     label channels per KV head (the first of the file's, largest first):
//                        1/8 of SmolLM2's head dimension of 64 (1/32 of Gemma 3's 256)
//   file         (required)  label channels JSON written by `longsparse calibrate`
//   dense_layers = 2     the first layers attend densely, as the official accuracy forwards
//                        (LongBench/ and evaluation/modify_llama.py) keep layers 0 and 1
//   current      = ranked  the new token: `ranked` ranks it with the others, the top budget of
//                        all keys, as the official LongBench/modify_llama.py does; `always`
//                        keeps it and adds the top budget - 1 of the others (they differ when the
//                        new token's label score is not among the top budget; docs/fidelity.md)
// Contexts of at most `budget` keys are dense.
// GQA (the official code selects per query head): one selection per KV head; the label scores
// are summed over the group's query heads, i.e. scored with the group's summed query, as
// quest sums its bounds. What we do not do: the official code
// quantises the label cache to 4 (or 2) bits; we keep labels in fp32, so our selection is
// that of unquantised labels.
#include "methods/decode/double_sparsity.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <numeric>

#include "core/error.h"
#include "methods/registry.h"

namespace ls {

std::vector<std::vector<double>> channel_qk_statistic(const AttnInput& in) {
  const AttnShape& s = in.shape;
  LS_CHECK(s.n_q == s.n_k && s.n_k > 0, "calibrate scores a whole prompt (n_q = n_k), got {} queries for {} keys",
           s.n_q, s.n_k);
  const int group = s.heads / s.kv_heads, D = s.dim;
  std::vector<std::vector<double>> statistic(std::size_t(s.kv_heads), std::vector<double>(std::size_t(D), 0.0));
  for (int g = 0; g < s.kv_heads; ++g) {
    std::vector<double>& acc = statistic[std::size_t(g)];
    for (std::int64_t t = 0; t < s.n_k; ++t) {
      const float* k = in.k_row(g, t);
      for (int i = 0; i < group; ++i) {
        const float* q = in.q_row(g * group + i, t);
        for (int c = 0; c < D; ++c) acc[std::size_t(c)] += std::fabs(double(q[c]) * k[c]);
      }
    }
    for (double& a : acc) a /= double(s.n_k);
  }
  return statistic;
}

std::vector<int> top_channels(const std::vector<double>& statistic, int count) {
  LS_CHECK(count > 0 && std::size_t(count) <= statistic.size(), "{} channels of {}", count, statistic.size());
  std::vector<int> order(statistic.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return statistic[std::size_t(a)] > statistic[std::size_t(b)]; });
  order.resize(std::size_t(count));
  return order;
}

void save_label_channels(const LabelChannels& labels, const std::string& path) {
  const nlohmann::json j = {{"model", labels.model},         {"layers", labels.heads.size()},
                            {"kv_heads", labels.kv_heads},   {"head_dim", labels.head_dim},
                            {"channels", labels.channels},   {"criterion", labels.criterion},
                            {"heads", labels.heads}};
  std::ofstream out(path);
  LS_CHECK(out, "cannot write '{}'", path);
  out << j.dump() << "\n";
  LS_CHECK(out.good(), "writing '{}' failed", path);
}

LabelChannels load_label_channels(const std::string& path) {
  std::ifstream in(path);
  LS_CHECK(in, "cannot read the label channels file '{}' (write it with `longsparse calibrate`)", path);
  LabelChannels l;
  try {
    const nlohmann::json j = nlohmann::json::parse(in);
    l.model = j.value("model", "");
    l.criterion = j.at("criterion").get<std::string>();
    l.kv_heads = j.at("kv_heads").get<int>();
    l.head_dim = j.at("head_dim").get<int>();
    l.channels = j.at("channels").get<int>();
    l.heads = j.at("heads").get<std::vector<std::vector<std::vector<int>>>>();
    const int layers = j.at("layers").get<int>();
    LS_CHECK(layers > 0 && int(l.heads.size()) == layers, "{} layers declared, {} given", layers, l.heads.size());
    LS_CHECK(l.kv_heads > 0 && l.channels > 0 && l.channels <= l.head_dim,
             "{} KV heads, {} channels of a head dimension of {}", l.kv_heads, l.channels, l.head_dim);
    for (std::size_t layer = 0; layer < l.heads.size(); ++layer) {
      LS_CHECK(int(l.heads[layer].size()) == l.kv_heads, "layer {} has {} heads, not {}", layer,
               l.heads[layer].size(), l.kv_heads);
      for (const std::vector<int>& channels : l.heads[layer]) {
        LS_CHECK(int(channels.size()) == l.channels, "layer {} has a head of {} channels, not {}", layer,
                 channels.size(), l.channels);
        std::vector<bool> seen(std::size_t(l.head_dim), false);
        for (int c : channels) {
          LS_CHECK(c >= 0 && c < l.head_dim && !seen[std::size_t(c)], "layer {}: channel {} repeated or outside 0..{}",
                   layer, c, l.head_dim - 1);
          seen[std::size_t(c)] = true;
        }
      }
    }
  } catch (const nlohmann::json::exception& e) {
    fail("label channels file '{}' is malformed: {}", path, e.what());
  } catch (const Error& e) {
    fail("label channels file '{}': {}", path, e.what());
  }
  return l;
}

namespace {

constexpr int kMaxChannels = 256;  // label channels per head at most (the largest head dimension)

class DoubleSparsity final : public DecodeSelector {
 public:
  DoubleSparsity(const std::string& file, std::int64_t budget, int channels, int dense_layers, bool ranked)
      : labels_(load_label_channels(file)), file_(file), budget_(budget), channels_(channels),
        dense_layers_(dense_layers), ranked_(ranked) {
    decode::check_budget("double-sparsity", budget, 1);
    LS_CHECK(channels <= labels_.channels, "double-sparsity: {} label channels asked for; '{}' has {} per head",
             channels, file, labels_.channels);
    needs_.kinds = kSummaryLabels;
    for (const auto& layer : labels_.heads)
      for (const std::vector<int>& head : layer) needs_.label_channels.emplace_back(head.begin(), head.begin() + channels);
  }
  SummaryNeeds needs() const override { return needs_; }
  std::int64_t budget() const override { return budget_; }

  std::int64_t select(const DecodeQuery& query, const DecodeKeys& keys, Selection& out) override {
    LS_CHECK(int(labels_.heads.size()) == query.layers && labels_.kv_heads == keys.kv_heads() &&
                 labels_.head_dim == keys.dim(),
             "double-sparsity: label channels '{}' are for {} layers x {} KV heads of dimension {}; the model has "
             "{} x {} of {}",
             file_, labels_.heads.size(), labels_.kv_heads, labels_.head_dim, query.layers, keys.kv_heads(),
             keys.dim());
    const std::int64_t n = keys.size();
    if (query.layer < dense_layers_ || n <= budget_) {
      decode::select_dense(keys, out);
      return 0;
    }
    const int G = keys.kv_heads(), dim = keys.dim(), group = query.heads / G, r = channels_;
    const std::int64_t m = ranked_ ? n : n - 1;  // candidates (always: the new token is kept anyway)
    scores_.resize(std::size_t(m));
    out.reset(G, n);
    for (int g = 0; g < G; ++g) {
      const float* labels = keys.labels(g);
      const std::span<const int> channels = keys.label_channels(g);
      LS_CHECK(labels && int(channels.size()) == r, "double-sparsity: the cache keeps no label cache of {} channels", r);
      // Σ_h q_h·k over the label channels is the group's summed query against the label.
      float q[kMaxChannels] = {};
      for (int i = 0; i < group; ++i)
        for (int c = 0; c < r; ++c) q[c] += query.q[std::int64_t(g * group + i) * dim + channels[std::size_t(c)]];
      float* scores = scores_.data();
      // Keys across SIMD lanes (a dot of r = 8 channels is too short to vectorise on its own).
#pragma omp simd
      for (std::int64_t j = 0; j < m; ++j) {
        float dot = 0.0f;
        for (int c = 0; c < r; ++c) dot += q[c] * labels[j * r + c];
        scores[j] = dot;
      }
      // The top budget (- 1) (ties: the lower positions, as decode::top_k picks them).
      const std::int64_t k = ranked_ ? budget_ : budget_ - 1;
      const float threshold = kth_largest(scores, m, k);
      std::int64_t ties = k - std::count_if(sorted_.begin(), sorted_.end(), [&](float x) { return x > threshold; });
      for (std::int64_t j = 0; j < m; ++j)
        if (scores[j] > threshold || (scores[j] == threshold && ties-- > 0)) out.add(g, j, j + 1);
      if (!ranked_) out.add(g, n - 1, n);
    }
    out.finish();
    return std::int64_t(G) * m * r * 4;
  }

 private:
  // The k-th largest of scores[0, m), leaving in sorted_ every score above it (and some equal
  // or below). Selecting among all m scores is most of the step, so a pivot taken from every
  // 16th score first narrows them to the candidates above it (about 2k); when fewer than k
  // pass, all m are searched.
  float kth_largest(const float* scores, std::int64_t m, std::int64_t k) {
    constexpr std::int64_t kStride = 16;
    sorted_.clear();
    if (m >= 64 * kStride) {
      for (std::int64_t j = 0; j < m; j += kStride) sorted_.push_back(scores[j]);
      const std::int64_t rank = std::min<std::int64_t>(std::int64_t(sorted_.size()) - 1, 2 * k / kStride + 8);
      std::nth_element(sorted_.begin(), sorted_.begin() + rank, sorted_.end(), std::greater<float>());
      const float pivot = sorted_[std::size_t(rank)];
      sorted_.clear();
      for (std::int64_t j = 0; j < m; ++j)
        if (scores[j] >= pivot) sorted_.push_back(scores[j]);
    }
    if (std::int64_t(sorted_.size()) < k) sorted_.assign(scores, scores + m);
    std::nth_element(sorted_.begin(), sorted_.begin() + (k - 1), sorted_.end(), std::greater<float>());
    return sorted_[std::size_t(k - 1)];
  }

  LabelChannels labels_;
  std::string file_;
  std::int64_t budget_;
  int channels_, dense_layers_;
  bool ranked_;
  SummaryNeeds needs_;
  std::vector<float> scores_;  // [n - 1] (ranked: [n]): label scores
  std::vector<float> sorted_;  // candidates for the threshold
};

MethodInfo double_sparsity_info() {
  MethodInfo info;
  info.name = "double-sparsity";
  info.phase = "decode";
  info.paper = "Double Sparsity (Yang et al., 2024) §3; channels from `longsparse calibrate`";
  info.summary = "top tokens by q·k on a few calibrated outlier channels (label cache), exact attention over them";
  using K = ParamSpec::Kind;
  info.params = {
      {"budget", "2048", "keys attended per KV head, the new token included", K::Int, 2, 1e9, {}},
      {"channels", "8", "label channels per KV head (the file's first)", K::Int, 1, kMaxChannels, {}},
      {"file", "", "label channels JSON from `longsparse calibrate` (required)", K::String, 0, 0, {}},
      {"dense_layers", "2", "the first layers attend densely (the official code: 2)", K::Int, 0, 1e6, {}},
      {"current", "ranked", "the new token: ranked with the others (the official code), or always kept", K::String,
       0, 0, {"ranked", "always"}},
  };
  info.make_decode = [](const Params& p) {
    LS_CHECK(!p.get_string("file").empty(), "double-sparsity: give the label channels, e.g. "
                                            "double-sparsity:file=channels.json (written by `longsparse calibrate`)");
    return std::make_unique<DoubleSparsity>(p.get_string("file"), p.get_int("budget"), int(p.get_int("channels")),
                                            int(p.get_int("dense_layers")), p.get_string("current") == "ranked");
  };
  return info;
}

LS_REGISTER_METHOD(double_sparsity_info());

}  // namespace
}  // namespace ls
