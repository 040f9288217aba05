// lserve — hierarchical page selection reused across decode steps (LServe).
//
// Paper: LServe, "Efficient Long-sequence LLM Serving with Unified Sparse Attention" (Yang et
// al., MLSys 2025), §4.3: physical pages are large (for memory efficiency) and each is split
// into logical pages carrying Quest's min/max key bounds (for accuracy); a physical page's
// importance is the largest bound of its logical pages; the selection is computed once and
// reused by the next decode steps ("reusable page selector", interval 4). Official code:
// mit-han-lab/omniserve (physical page 64, logical page 16, token budget 4096, reuse 4).
//
// Parameters
//   budget   = 4096  keys attended per KV head (budget/physical physical pages, the current included)
//   physical = 64    tokens per physical page (a multiple of `logical`)
//   logical  = 16    tokens per logical page (min/max summaries)
//   reuse    = 4     decode steps sharing one selection
//   dense_layers = 2 the first layers attend densely (LServe's streaming heads are a policy,
//                    --decode-policy, not part of this selector)
// Contexts of at most `budget` keys are dense. GQA as quest (bounds summed over the group).
// Between selections the current physical page is always attended, so new tokens are seen.
#include <algorithm>
#include <vector>

#include "core/error.h"
#include "methods/registry.h"

namespace ls {
namespace {

class LServe final : public DecodeSelector {
 public:
  LServe(std::int64_t budget, std::int64_t physical, std::int64_t logical, std::int64_t reuse, int dense_layers)
      : budget_(budget), physical_(physical), logical_(logical), reuse_(reuse), dense_layers_(dense_layers) {
    LS_CHECK(physical % logical == 0, "lserve: physical page {} must be a multiple of the logical page {}", physical,
             logical);
    LS_CHECK(budget >= physical, "lserve: budget {} is less than one physical page of {} keys", budget, physical);
  }
  SummaryNeeds needs() const override { return {kSummaryPageMinMax, logical_, 16}; }
  std::int64_t budget() const override { return budget_; }
  void begin_step(std::int64_t) override { ++step_; }
  void reset() override {
    step_ = -1;
    cached_.clear();
  }

  std::int64_t select(const DecodeQuery& query, const DecodeKeys& keys, Selection& out) override {
    const std::int64_t n = keys.size(), pages = (n + physical_ - 1) / physical_, keep = budget_ / physical_;
    if (query.layer < dense_layers_ || pages <= keep) {
      decode::select_dense(keys, out);
      return 0;
    }
    if (cached_.size() <= std::size_t(query.layer)) cached_.resize(std::size_t(query.layer) + 1);
    Cached& c = cached_[query.layer];
    std::int64_t read = 0;
    if (c.pages.empty() || step_ - c.step >= reuse_) {
      c.step = step_;
      c.pages.assign(keys.kv_heads(), {});
      const std::int64_t ratio = physical_ / logical_, complete = pages - 1;  // the current page is kept anyway
      logical_scores_.resize(std::size_t(complete * ratio));
      scores_.resize(std::size_t(complete));
      for (int g = 0; g < keys.kv_heads(); ++g) {
        decode::page_upper_bounds(query, keys, g, complete * ratio, logical_scores_.data());
        for (std::int64_t p = 0; p < complete; ++p)
          scores_[p] = *std::max_element(logical_scores_.begin() + p * ratio, logical_scores_.begin() + (p + 1) * ratio);
        c.pages[g] = decode::top_k(scores_.data(), complete, keep - 1);
      }
      read = std::int64_t(keys.kv_heads()) * complete * ratio * 2 * keys.dim() * 4;
    }
    out.reset(keys.kv_heads(), n);
    const std::int64_t current = (pages - 1) * physical_;
    for (int g = 0; g < keys.kv_heads(); ++g) {
      for (std::int64_t p : c.pages[g]) out.add(g, p * physical_, std::min(current, (p + 1) * physical_));
      out.add(g, current, n);
    }
    out.finish();
    return read;
  }

 private:
  struct Cached {
    std::int64_t step = 0;
    std::vector<std::vector<std::int64_t>> pages;  // per KV head
  };
  std::int64_t budget_, physical_, logical_, reuse_;
  int dense_layers_;
  std::int64_t step_ = -1;
  std::vector<Cached> cached_;  // per layer
  std::vector<float> logical_scores_, scores_;
};

MethodInfo lserve_info() {
  MethodInfo info;
  info.name = "lserve";
  info.phase = "decode";
  info.paper = "LServe (Yang et al., MLSys 2025) §4.3";
  info.summary = "physical pages ranked by their logical pages' Quest bounds; selection reused for several steps";
  using K = ParamSpec::Kind;
  info.params = {
      {"budget", "4096", "keys attended per KV head (physical pages × page size)", K::Int, 2, 1e9, {}},
      {"physical", "64", "tokens per physical page", K::Int, 1, 4096, {}},
      {"logical", "16", "tokens per logical page (min/max bounds)", K::Int, 1, 4096, {}},
      {"reuse", "4", "decode steps sharing one selection", K::Int, 1, 1e6, {}},
      {"dense_layers", "2", "the first layers attend densely", K::Int, 0, 1e6, {}},
  };
  info.make_decode = [](const Params& p) {
    return std::make_unique<LServe>(p.get_int("budget"), p.get_int("physical"), p.get_int("logical"),
                                    p.get_int("reuse"), int(p.get_int("dense_layers")));
  };
  return info;
}

LS_REGISTER_METHOD(lserve_info());

}  // namespace
}  // namespace ls
