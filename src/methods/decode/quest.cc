// quest — query-aware page selection from per-page key bounds.
//
// Paper: Quest, "Query-Aware Sparsity for Efficient Long-Context LLM Inference" (Tang et al.,
// ICML 2024), §3.2–3.3 (Algorithm 1): for each page of P tokens keep the channel-wise min and
// max of its keys; a page's criticality is the upper bound Σ_c max(q_c·min_c, q_c·max_c) of
// q·k over its keys; attend to the top budget/P pages. Official code: mit-han-lab/Quest
// (page_size 16, token_budget 1024 in its evaluation scripts; the first two layers dense,
// "we do not apply Quest to the first two layers").
//
// Parameters
//   budget       = 1024  keys attended per KV head (budget/page pages, the current one included)
//   page         = 16    tokens per page
//   dense_layers = 2     the first layers attend densely
//   current      = always  the current page: `always` kept, the top budget/page - 1 of the
//                        other pages added (Quest's kernels: quest/utils/controller.py excludes
//                        the last page from decode_topk and always attends it); `ranked` ranks it
//                        with the others, the top budget/page of all pages (Quest's accuracy
//                        evaluation, evaluation/quest_attention.py: local_heavy_hitter_mask, whose
//                        partial last page is bounded by its own keys). They differ when the
//                        current page is not among the top pages (docs/fidelity.md).
// Contexts of at most `budget` keys are dense. (The evaluation code keeps at least 3 pages,
// max(3, budget/16); budgets below 3 pages are not reproduced.)
// GQA (the paper's models are MHA): one selection per KV head, the bounds summed over the
// group's query heads, so every query head of a group reads the same pages once.
// The current (last, possibly partial) page is always kept, as in Quest's kernel.
#include <vector>

#include "core/error.h"
#include "methods/registry.h"

namespace ls {
namespace {

class Quest final : public DecodeSelector {
 public:
  Quest(std::int64_t budget, std::int64_t page, int dense_layers, bool ranked)
      : budget_(budget), page_(page), dense_layers_(dense_layers), ranked_(ranked) {
    LS_CHECK(budget >= page, "quest: budget {} is less than one page of {} keys", budget, page);
  }
  SummaryNeeds needs() const override { return {kSummaryPageMinMax, page_, 16}; }
  std::int64_t budget() const override { return budget_; }

  std::int64_t select(const DecodeQuery& query, const DecodeKeys& keys, Selection& out) override {
    const std::int64_t n = keys.size(), pages = (n + page_ - 1) / page_, keep = budget_ / page_;
    if (query.layer < dense_layers_ || pages <= keep) {
      decode::select_dense(keys, out);
      return 0;
    }
    scores_.resize(static_cast<std::size_t>(pages));
    out.reset(keys.kv_heads(), n);
    const std::int64_t scored = ranked_ ? pages : pages - 1;  // always: the current page is kept anyway
    for (int g = 0; g < keys.kv_heads(); ++g) {
      decode::page_upper_bounds(query, keys, g, scored, scores_.data());
      for (std::int64_t p : decode::top_k(scores_.data(), scored, ranked_ ? keep : keep - 1))
        out.add(g, p * page_, (p + 1) * page_);
      if (!ranked_) out.add(g, (pages - 1) * page_, n);
    }
    out.finish();
    return std::int64_t(keys.kv_heads()) * scored * 2 * keys.dim() * 4;
  }

 private:
  std::int64_t budget_, page_;
  int dense_layers_;
  bool ranked_;
  std::vector<float> scores_;
};

MethodInfo quest_info() {
  MethodInfo info;
  info.name = "quest";
  info.phase = "decode";
  info.paper = "Quest (Tang et al., ICML 2024) §3.2-3.3";
  info.summary = "top pages by the upper bound of q·k from per-page key min/max";
  using K = ParamSpec::Kind;
  info.params = {
      {"budget", "1024", "keys attended per KV head (pages × page size)", K::Int, 2, 1e9, {}},
      {"page", "16", "tokens per page", K::Int, 1, 4096, {}},
      {"dense_layers", "2", "the first layers attend densely", K::Int, 0, 1e6, {}},
      {"current", "always", "the current page: always kept (Quest's kernels) or ranked with the others (its evaluation code)",
       K::String, 0, 0, {"always", "ranked"}},
  };
  info.make_decode = [](const Params& p) {
    return std::make_unique<Quest>(p.get_int("budget"), p.get_int("page"), int(p.get_int("dense_layers")),
                                   p.get_string("current") == "ranked");
  };
  return info;
}

LS_REGISTER_METHOD(quest_info());

}  // namespace
}  // namespace ls
