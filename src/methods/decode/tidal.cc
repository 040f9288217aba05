// tidal — position-persistent sparse attention (TidalDecode).
//
// Paper: TidalDecode, "Fast and Accurate LLM Decoding with Position Persistent Sparse
// Attention" (Yang et al., ICLR 2025), §3: the tokens most attended in one layer stay the most
// attended in the next ones, so a few token-selection layers run full attention and pick the
// top-k token positions, and every other sparse layer reuses them. The first two layers are
// dense; selection happens at layer 2 and is redone once at a middle layer (token
// re-selection). Official code: DerrickYLJ/TidalDecode.
//
// Parameters
//   budget   = 2048  keys attended per KV head in a reusing layer (top-k positions + the new token)
//   dense_layers = 2 the first layers attend densely
//   reselect = -1    the re-selection layer (-1: layers / 2)
// Contexts of at most `budget` keys are dense.
// GQA: one set of positions per KV head, ranked by the attention probability summed over the
// group's query heads (the selection layers compute it exactly from every key).
#include <vector>

#include "methods/registry.h"

namespace ls {
namespace {

class Tidal final : public DecodeSelector {
 public:
  Tidal(std::int64_t budget, int dense_layers, int reselect)
      : budget_(budget), dense_layers_(dense_layers), reselect_(reselect) {
    decode::check_budget("tidal", budget, 1);
  }
  std::int64_t budget() const override { return budget_; }
  void begin_step(std::int64_t) override { positions_.clear(); }
  void reset() override { positions_.clear(); }

  std::int64_t select(const DecodeQuery& query, const DecodeKeys& keys, Selection& out) override {
    const std::int64_t n = keys.size();
    const int reselect = reselect_ >= 0 ? reselect_ : query.layers / 2;
    const bool selecting = query.layer == dense_layers_ || query.layer == reselect;
    if (query.layer < dense_layers_ || n <= budget_) {
      decode::select_dense(keys, out);
      return 0;
    }
    if (selecting || positions_.empty()) {  // full attention here, and pick the positions
      positions_.assign(keys.kv_heads(), {});
      probs_.resize(static_cast<std::size_t>(n));
      for (int g = 0; g < keys.kv_heads(); ++g) {
        decode::attention_probs(query, keys, g, probs_.data());
        positions_[g] = decode::top_k(probs_.data(), n - 1, budget_ - 1);  // the new token is always kept
      }
      decode::select_dense(keys, out);
      return std::int64_t(keys.kv_heads()) * n * keys.key_row_bytes();  // an extra read of the keys
    }
    out.reset(keys.kv_heads(), n);
    for (int g = 0; g < keys.kv_heads(); ++g) {
      for (std::int64_t p : positions_[g]) out.add(g, p, p + 1);
      out.add(g, n - 1, n);
    }
    out.finish();
    return 0;
  }

 private:
  std::int64_t budget_;
  int dense_layers_, reselect_;
  std::vector<std::vector<std::int64_t>> positions_;  // per KV head, from the last selection layer
  std::vector<float> probs_;
};

MethodInfo tidal_info() {
  MethodInfo info;
  info.name = "tidal";
  info.phase = "decode";
  info.paper = "TidalDecode (Yang et al., ICLR 2025) §3";
  info.summary = "top-k positions chosen by full attention at two layers, reused by the others";
  using K = ParamSpec::Kind;
  info.params = {
      {"budget", "2048", "keys attended per KV head in a reusing layer", K::Int, 2, 1e9, {}},
      {"dense_layers", "2", "the first layers attend densely; selection at the next one", K::Int, 0, 1e6, {}},
      {"reselect", "-1", "token re-selection layer (-1: layers / 2)", K::Int, -1, 1e6, {}},
  };
  info.make_decode = [](const Params& p) {
    return std::make_unique<Tidal>(p.get_int("budget"), int(p.get_int("dense_layers")), int(p.get_int("reselect")));
  };
  return info;
}

LS_REGISTER_METHOD(tidal_info());

}  // namespace
}  // namespace ls
