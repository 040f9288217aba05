// vertical-slash — MInference's dynamic vertical + slash pattern: a few key columns that every
// query attends to (verticals) and a few diagonals at fixed query−key offsets (slashes).
//
// Paper: MInference 1.0 (Jiang et al., NeurIPS 2024), §3 "Vertical-Slash" pattern and
// Algorithm 2 (online estimation from the last queries).
// Official code consulted: microsoft/MInference — minference/modules/minference_forward.py
// (vertical_and_slash_kernel in minference_prefill_kernel: last_q = min(64, q_len); causal
// mask inside the trailing last_q × last_q corner; softmax(q·kᵀ/√d); vertical = column sums,
// columns 0..29 forced; slash = sums along diagonals, offsets 0..99 forced; top
// vertical_size = min(n, max(v, 30)) columns and slash_size = min(n, max(s, 50)) offsets;
// heads without a profile use (1000, 6096)), and csrc/vertical_slash_index.cu (each slash
// covers, in a 64-query block, the 64 keys [end − offset − 64, end − offset); verticals
// outside those ranges are gathered columns).
//
// Parameters
//   v      = 1000   vertical lines kept (at least 30: the first 30 keys are always kept)
//   s      = 6096   slash lines kept (at least 50; offsets 0..99 are always ranked first)
//   last_q = 64     queries at the end used for the estimate
//   cover  = official how a slash becomes plan entries (see below)
//
// GQA: per query head — each query head is estimated against its own KV head (MInference
// repeats K/V for every query head), so the plan has one row per query head.
//
// Slash coverage:
//   cover=official (default) the key ranges of the official index conversion
//                 (csrc/vertical_slash_index.cu, commit fb56c91): per 64-query block, offset d
//                 covers the 64-key window ending at max(end − d, 64) (a window near key 0 is
//                 shifted right, not cut); walking the offsets in descending order, a window
//                 ending within 64 keys past the current range grows that range by a whole 64
//                 keys, one ending further starts a new range. Whole aligned 64-key blocks of a
//                 range are plan ranges, its ragged ends gathered columns.
//   cover=exact   only the diagonals' own keys: the union of the unaligned 64-key windows,
//                 clipped at key 0, entered as above (the official key set minus the growth).
//   cover=blocks  every aligned 64-key block touching a merged run of diagonals
//                 (PlanBuilder::add_keys): up to two tiles for an isolated diagonal.
// Verticals are gathered columns in every mode (those inside a range are dropped as the
// official kernel drops them), and the diagonal block is always in the plan.
// Selections equal the official code's on captured inputs (tests/methods/official_fixture_test.cc,
// docs/fidelity.md): the key set of every query block, cover=official.
// Below the length where every column or every diagonal would be kept (n_k ≤ max(v, 30) or
// n_k ≤ max(s, 50)) the official code attends densely in effect; we return the dense plan.
// Ties in the top-k go to the earlier key / the smaller offset so plans are deterministic.
// Chunks (n_q < n_k): the estimate uses the chunk's last min(last_q, n_q) queries against all
// n_k keys, and slash offsets are applied to positions, as MInference does for its last chunk.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "core/error.h"
#include "core/parallel.h"
#include "methods/estimate_util.h"
#include "methods/registry.h"

namespace ls {
namespace {

constexpr std::int64_t kForcedVerticals = 30;  // minference_forward.py: vertical[..., :30] = inf
constexpr std::int64_t kForcedSlashes = 100;   // minference_forward.py: slash[..., -100:] = inf

struct HeadLines {
  std::vector<std::int64_t> columns;  // selected key indices
  std::vector<std::int64_t> offsets;  // selected query−key offsets, descending
};

class VerticalSlash final : public PrefillMethod {
 public:
  enum class Cover { Official, Exact, Blocks };
  VerticalSlash(std::int64_t v, std::int64_t s, std::int64_t last_q, Cover cover)
      : v_(v), s_(s), last_q_(last_q), cover_(cover) {}

  Plan build_plan(const AttnInput& in, const PlanContext&) const override {
    const AttnShape& sh = in.shape;
    sh.validate();
    if (sh.n_k <= std::max(v_, kForcedVerticals) || sh.n_k <= std::max(s_, std::int64_t(50)))
      return make_dense_plan(sh.heads, sh.kv_heads, sh.n_q, sh.n_k);
    // Keys packed once per KV head for the score kernel, shared by the group's query heads.
    const std::span<const estimate::PackedRows> keys = estimate::pack_keys(in);
    std::vector<float> vertical, slash;
    estimate::last_query_sums(in, keys, last_q_, vertical, slash);
    std::vector<HeadLines> lines(sh.heads);
    parallel_for(sh.heads, [&](std::int64_t h) {
      lines[h] = select(std::span(vertical).subspan(h * sh.n_k, sh.n_k), std::span(slash).subspan(h * sh.n_k, sh.n_k));
    });

    PlanBuilder builder(sh.heads, sh.heads, sh.n_q, sh.n_k);
    const Plan& shape = builder.shape();
    for (int h = 0; h < sh.heads; ++h) {
      for (std::int64_t qb = 0; qb < builder.q_blocks(); ++qb) {
        const std::int64_t r = shape.row(h, qb);
        for (std::int64_t key : lines[h].columns) builder.add_column(r, key);
        add_slashes(builder, r, lines[h].offsets);
        builder.add_diagonal(r);
      }
    }
    return builder.finish();
  }

 private:
  // The top columns and offsets of one head from its summed last-query attention.
  HeadLines select(std::span<const float> vertical_sum, std::span<const float> slash_sum) const {
    const std::int64_t n = std::int64_t(vertical_sum.size());
    std::vector<double> vertical(vertical_sum.begin(), vertical_sum.end()), slash(slash_sum.begin(), slash_sum.end());
    const double forced = std::numeric_limits<double>::infinity();
    std::fill(vertical.begin(), vertical.begin() + std::min(n, kForcedVerticals), forced);
    std::fill(slash.begin(), slash.begin() + std::min(n, kForcedSlashes), forced);
    HeadLines out;
    out.columns = estimate::top_k_indices(vertical, std::min(n, std::max(v_, kForcedVerticals)));
    out.offsets = estimate::top_k_indices(slash, std::min(n, std::max(s_, std::int64_t(50))));
    std::sort(out.offsets.begin(), out.offsets.end(), std::greater<>());
    return out;
  }

  // Calls fn(a, b) for each maximal run of keys [a, b] covered by the selected diagonals in the
  // row's queries: diagonal `offset` covers keys [first − offset, last − offset]. Merging first
  // keeps plan building O(s) per row instead of O(s log s) ranges to sort.
  template <typename Fn>
  static void for_each_slash_run(const Plan& shape, std::int64_t qb, const std::vector<std::int64_t>& offsets, Fn&& fn) {
    const std::int64_t p0 = shape.first_position(qb), p1 = shape.last_position(qb);
    std::int64_t run_a = 0, run_b = -1;
    for (std::int64_t offset : offsets) {  // descending offsets: ascending key intervals
      if (p1 - offset < 0) continue;
      const std::int64_t a = std::max<std::int64_t>(0, p0 - offset), b = p1 - offset;
      if (a > run_b + 1) {
        if (run_b >= run_a) fn(run_a, run_b);
        run_a = a;
      }
      run_b = std::max(run_b, b);
    }
    if (run_b >= run_a) fn(run_a, run_b);
  }

  // Calls fn(a, b) for each key range [a, b] that csrc/vertical_slash_index.cu
  // (convert_vertical_slash_indexes_kernel) computes for the row's 64 queries ending at
  // end = first position + 64: offsets ≥ end are skipped; offset d gives the window
  // [e − 64, e) with e = max(end − d, 64) (so a window never starts below key 0 and is then
  // shifted right, not cut); in descending offsets, a window ending more than 64 keys past the
  // current range starts a new range, one ending up to 64 keys past it grows the range by a
  // whole 64 keys (which may reach past the window itself).
  template <typename Fn>
  static void for_each_official_range(const Plan& shape, std::int64_t qb, const std::vector<std::int64_t>& offsets,
                                      Fn&& fn) {
    const std::int64_t bm = shape.block_q, end = shape.first_position(qb) + bm, n_k = shape.n_k;
    std::int64_t range_start = 0, range_end = -1;
    for (std::int64_t offset : offsets) {  // descending
      if (offset >= end) continue;
      const std::int64_t e = std::max(end - offset, bm);
      if (range_end < 0) {
        range_start = e - bm;
        range_end = e;
      } else if (e > range_end + bm) {
        fn(range_start, std::min(range_end, n_k) - 1);
        range_start = e - bm;
        range_end = e;
      } else if (e > range_end) {
        range_end += bm;
      }
    }
    if (range_end > 0 && range_start < n_k) fn(range_start, std::min(range_end, n_k) - 1);
  }

  // cover=blocks: every 64-key block touching a run of the selected diagonals. cover=exact: the
  // run's aligned blocks as ranges and its ragged ends as gathered columns. cover=official:
  // the official kernel's ranges (for_each_official_range), entered as exact does.
  void add_slashes(PlanBuilder& builder, std::int64_t r, const std::vector<std::int64_t>& offsets) const {
    const Plan& shape = builder.shape();
    const std::int64_t bk = shape.block_k;
    auto add_exact = [&](std::int64_t a, std::int64_t b) {
      const std::int64_t full_begin = (a + bk - 1) / bk, full_end = (b + 1) / bk;
      if (full_begin >= full_end) {
        for (std::int64_t key = a; key <= b; ++key) builder.add_column(r, key);
        return;
      }
      builder.add_blocks(r, full_begin, full_end);
      for (std::int64_t key = a; key < full_begin * bk; ++key) builder.add_column(r, key);
      for (std::int64_t key = full_end * bk; key <= b; ++key) builder.add_column(r, key);
    };
    const std::int64_t qb = builder.q_block_of_row(r);
    switch (cover_) {
      case Cover::Official:
        for_each_official_range(shape, qb, offsets, add_exact);
        break;
      case Cover::Exact:
        for_each_slash_run(shape, qb, offsets, add_exact);
        break;
      case Cover::Blocks:
        for_each_slash_run(shape, qb, offsets, [&](std::int64_t a, std::int64_t b) { builder.add_keys(r, a, b); });
        break;
    }
  }

  std::int64_t v_, s_, last_q_;
  Cover cover_;
};

MethodInfo vertical_slash_info() {
  MethodInfo info;
  info.name = "vertical-slash";
  info.phase = "prefill";
  info.paper = "MInference 1.0 (Jiang et al., NeurIPS 2024) §3, vertical-slash pattern";
  info.summary = "top vertical columns + top diagonals estimated from the last 64 queries, per query head";
  using K = ParamSpec::Kind;
  info.params = {
      {"v", "1000", "vertical lines (key columns) kept; the first 30 keys always", K::Int, 1, 1e9, {}},
      {"s", "6096", "slash lines (diagonals) kept; offsets 0..99 ranked first", K::Int, 1, 1e9, {}},
      {"last_q", "64", "last queries used for the estimate", K::Int, 1, 4096, {}},
      {"cover", "official", "slash coverage: the official kernel's key ranges, the diagonals' exact keys, or aligned 64-key blocks",
       K::String, 0, 0, {"official", "exact", "blocks"}},
  };
  info.make_prefill = [](const Params& p) {
    const std::string& cover = p.get_string("cover");
    return std::make_unique<VerticalSlash>(p.get_int("v"), p.get_int("s"), p.get_int("last_q"),
                                           cover == "official" ? VerticalSlash::Cover::Official
                                           : cover == "exact"  ? VerticalSlash::Cover::Exact
                                                               : VerticalSlash::Cover::Blocks);
  };
  return info;
}

LS_REGISTER_METHOD(vertical_slash_info());

}  // namespace
}  // namespace ls
