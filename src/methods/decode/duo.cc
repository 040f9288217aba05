// duo — retrieval heads attend to the whole cache, streaming heads to sinks + recent keys.
//
// Paper: DuoAttention, "Efficient Long-Context LLM Inference with Retrieval and Streaming
// Heads" (Xiao et al., ICLR 2025), §3: only some heads need the full context (retrieval
// heads); the others keep attention sinks and a recent window (streaming heads), with a
// constant-size cache. Official code: mit-han-lab/duo-attention (sink_size 64, recent_size
// 256; about half of the heads streaming for MHA models, 75% for GQA ones such as Llama-3).
// DuoAttention learns a gate per head by optimisation on synthetic passkey data; our
// training-free substitute (`longsparse profile-decode`) scores each KV head by the relative
// error of its attention output under sink + recent on a calibration text, and keeps the
// worst-scoring `retrieval_fraction` of heads as retrieval heads.
//
// Parameters
//   file   (required)  profile JSON written by `longsparse profile-decode`
//   sink   = 64        attention sinks of a streaming head
//   recent = 256       recent keys of a streaming head
// budget() is sink + recent, the keys of a streaming head; retrieval heads attend densely.
// GQA: heads are KV heads (a group shares its KV head's pattern), as the cache is per KV head.
// Choice: the cache keeps every token for every head (so runs can compare selectors); the
// memory saving of DuoAttention's constant-size streaming caches is not taken.
#include "methods/decode/duo.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>

#include "core/error.h"
#include "methods/registry.h"

namespace ls {

std::vector<double> score_streaming_error(const AttnInput& in, std::int64_t sink, std::int64_t recent,
                                          std::int64_t rows) {
  const AttnShape& s = in.shape;
  LS_CHECK(s.n_q == s.n_k, "profile-decode scores a whole prompt (n_q = n_k), got {} queries for {} keys", s.n_q,
           s.n_k);
  LS_CHECK(rows > 0, "rows must be positive");
  const int group = s.heads / s.kv_heads, D = s.dim;
  const std::int64_t n = s.n_k, first = n / 2;
  std::vector<double> errors(std::size_t(s.kv_heads), 0.0);
  std::vector<double> p(static_cast<std::size_t>(n)), dense(static_cast<std::size_t>(D)), stream(static_cast<std::size_t>(D));
  for (int g = 0; g < s.kv_heads; ++g) {
    double err = 0, norm = 0;  // squared output error; squared norm of a typical value vector
    for (std::int64_t r = 0; r < rows; ++r) {
      const std::int64_t t = first + (n - 1 - first) * r / std::max<std::int64_t>(1, rows - 1);
      for (int i = 0; i < group; ++i) {
        const float* q = in.q_row(g * group + i, t);
        double max = -INFINITY;
        for (std::int64_t j = 0; j <= t; ++j) {
          const float* k = in.k_row(g, j);
          double dot = 0;
          for (int e = 0; e < D; ++e) dot += double(q[e]) * k[e];
          p[j] = dot * s.scale;
          max = std::max(max, p[j]);
        }
        double all = 0, kept = 0, value_norm = 0;
        std::fill(dense.begin(), dense.end(), 0.0);
        std::fill(stream.begin(), stream.end(), 0.0);
        for (std::int64_t j = 0; j <= t; ++j) {
          const double w = std::exp(p[j] - max);
          const bool in_pattern = j < sink || j > t - recent;
          const float* v = in.v_row(g, j);
          all += w;
          if (in_pattern) kept += w;
          for (int e = 0; e < D; ++e) value_norm += double(v[e]) * v[e];
          for (int e = 0; e < D; ++e) {
            dense[e] += w * v[e];
            if (in_pattern) stream[e] += w * v[e];
          }
        }
        for (int e = 0; e < D; ++e) {
          const double a = dense[e] / all, b = stream[e] / kept;
          err += (a - b) * (a - b);
        }
        norm += value_norm / double(t + 1);
      }
    }
    errors[std::size_t(g)] = norm > 0 ? std::sqrt(err / norm) : 0.0;
  }
  return errors;
}

void choose_retrieval_heads(DuoProfile& profile) {
  LS_CHECK(profile.retrieval_fraction >= 0 && profile.retrieval_fraction <= 1,
           "retrieval fraction {} outside [0, 1]", profile.retrieval_fraction);
  std::vector<std::pair<double, std::pair<int, int>>> heads;
  for (std::size_t l = 0; l < profile.scores.size(); ++l)
    for (std::size_t g = 0; g < profile.scores[l].size(); ++g) heads.push_back({profile.scores[l][g], {int(l), int(g)}});
  std::stable_sort(heads.begin(), heads.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  const std::size_t keep = std::size_t(std::llround(profile.retrieval_fraction * double(heads.size())));
  profile.retrieval.assign(profile.scores.size(), {});
  for (std::size_t l = 0; l < profile.scores.size(); ++l) profile.retrieval[l].assign(profile.scores[l].size(), false);
  for (std::size_t i = 0; i < keep; ++i) profile.retrieval[heads[i].second.first][heads[i].second.second] = true;
}

void save_duo_profile(const DuoProfile& profile, const std::string& path) {
  nlohmann::json layers = nlohmann::json::array();
  for (std::size_t l = 0; l < profile.scores.size(); ++l)
    layers.push_back({{"scores", profile.scores[l]}, {"retrieval", profile.retrieval[l]}});
  const nlohmann::json j = {{"model", profile.model},   {"sink", profile.sink},
                            {"recent", profile.recent}, {"retrieval_fraction", profile.retrieval_fraction},
                            {"layers", layers}};
  std::ofstream out(path);
  LS_CHECK(out, "cannot write '{}'", path);
  out << j.dump(1) << "\n";
  LS_CHECK(out.good(), "writing '{}' failed", path);
}

DuoProfile load_duo_profile(const std::string& path) {
  std::ifstream in(path);
  LS_CHECK(in, "cannot read the decode head profile '{}'", path);
  DuoProfile p;
  try {
    const nlohmann::json j = nlohmann::json::parse(in);
    p.model = j.value("model", "");
    p.sink = j.at("sink").get<std::int64_t>();
    p.recent = j.at("recent").get<std::int64_t>();
    p.retrieval_fraction = j.at("retrieval_fraction").get<double>();
    for (const auto& layer : j.at("layers")) {
      p.scores.push_back(layer.at("scores").get<std::vector<double>>());
      p.retrieval.push_back(layer.at("retrieval").get<std::vector<bool>>());
      LS_CHECK(p.scores.back().size() == p.retrieval.back().size() && !p.scores.back().empty(),
               "layer {} has {} scores and {} head marks", p.scores.size() - 1, p.scores.back().size(),
               p.retrieval.back().size());
    }
  } catch (const nlohmann::json::exception& e) {
    fail("decode head profile '{}' is malformed: {}", path, e.what());
  } catch (const Error& e) {
    fail("decode head profile '{}': {}", path, e.what());
  }
  LS_CHECK(!p.scores.empty(), "decode head profile '{}' has no layers", path);
  return p;
}

namespace {

class Duo final : public DecodeSelector {
 public:
  Duo(const std::string& file, std::int64_t sink, std::int64_t recent)
      : profile_(load_duo_profile(file)), file_(file), sink_(sink), recent_(recent) {}
  std::int64_t budget() const override { return sink_ + recent_; }

  std::int64_t select(const DecodeQuery& query, const DecodeKeys& keys, Selection& out) override {
    LS_CHECK(int(profile_.retrieval.size()) == query.layers &&
                 int(profile_.retrieval[std::size_t(query.layer)].size()) == keys.kv_heads(),
             "duo: profile '{}' covers {} layers x {} KV heads; the model has {} x {}", file_,
             profile_.retrieval.size(), profile_.retrieval.front().size(), query.layers, keys.kv_heads());
    const std::int64_t n = keys.size();
    out.reset(keys.kv_heads(), n);
    for (int g = 0; g < keys.kv_heads(); ++g) {
      if (profile_.retrieval[std::size_t(query.layer)][std::size_t(g)] || n <= sink_ + recent_) {
        out.add(g, 0, n);
      } else {
        out.add(g, 0, sink_);
        out.add(g, n - recent_, n);
      }
    }
    out.finish();
    return 0;
  }

 private:
  DuoProfile profile_;
  std::string file_;
  std::int64_t sink_, recent_;
};

MethodInfo duo_info() {
  MethodInfo info;
  info.name = "duo";
  info.phase = "decode";
  info.paper = "DuoAttention (Xiao et al., ICLR 2025) §3; heads from `longsparse profile-decode`";
  info.summary = "retrieval heads attend to every key, streaming heads to sinks + recent keys (per-head profile)";
  using K = ParamSpec::Kind;
  info.params = {
      {"file", "", "head profile JSON from `longsparse profile-decode` (required)", K::String, 0, 0, {}},
      {"sink", "64", "attention sinks of a streaming head", K::Int, 0, 1e9, {}},
      {"recent", "256", "recent keys of a streaming head", K::Int, 1, 1e9, {}},
  };
  info.make_decode = [](const Params& p) {
    LS_CHECK(!p.get_string("file").empty(), "duo: give the head profile, e.g. duo:file=heads.json "
                                            "(written by `longsparse profile-decode`)");
    return std::make_unique<Duo>(p.get_string("file"), p.get_int("sink"), p.get_int("recent"));
  };
  return info;
}

LS_REGISTER_METHOD(duo_info());

}  // namespace
}  // namespace ls
