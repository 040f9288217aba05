// flexprefill — FlexPrefill (Lai et al., "FlexPrefill: A Context-Aware Sparse Attention
// Mechanism for Efficient Long-Sequence Inference", ICLR 2025), §3 (query-aware pattern
// determination, cumulative-attention budget), Algorithms 1–3. Official code consulted:
// github.com/ByteDance-Seed/FlexPrefill, flex_prefill/ops/flex_prefill_attention.py
// (get_active_blocks, flex_prefill_attention).
//
// Per query head (GQA: each query head against its KV head, as the official code does):
//  1. The last `block` queries, scaled by the softmax scale, against all keys; the causal corner
//     is masked; softmax per row. vertical[key] = mean over those rows; slash[offset] = sum
//     along the diagonal at offset = query position − key position, / rows.
//  2. Budgets: the fewest largest vertical (slash) entries whose cumulative mass exceeds gamma,
//     in tokens, turned into blocks as tokens / block + 1 (official), clamped to
//     [ceil(min_budget / block), ceil(max_budget / block)] blocks.
//  3. Pattern choice: softmax(mean of the scaled last queries · mean-pooled K blocks) against
//     the block-summed vertical distribution; square-root Jensen–Shannon distance < tau →
//     query-aware head, otherwise vertical-slash head.
//  4. Vertical-slash head: top vertical blocks (block 0 forced) and top slash block offsets
//     (offset 0 = the diagonal, forced). A slash block offset s puts, for every query block,
//     the key blocks at distance s·block (official: key block = query block − s).
//  5. Query-aware head: the vertical-slash part with the minimum budget only, plus blocks of
//     softmax(mean-pooled Q block · mean-pooled K block · scale) under the block-causal mask,
//     taken in descending order over the whole (query block × key block) matrix while the
//     cumulative mass stays ≤ gamma × number of query blocks (official score_cover_idx: a
//     global selection, not per row).
// Parameters (defaults of the official README example): block 128, gamma 0.9, tau 0.1,
// min_budget 512 tokens, max_budget 0 (= unlimited), slash_pool official.
// Selections equal the official get_active_blocks (commit a24b27b) block for block on
// captured inputs: tests/methods/official_fixture_test.cc, docs/fidelity.md. The official RULER / InfiniteBench scripts
// use gamma 0.95 and min_budget 1024 (flexprefill:gamma=0.95,min_budget=1024).
// Sequences with n_k ≤ max(2·block, ceil(min_budget / block)·block) run dense, as the official
// code does.
// Choices where the paper is silent or our interface is more general:
//  - The softmax scale is the shape's (1/√d unless the model sets another), not a fixed 1/√d.
//  - slash_pool=official (default): block offset s collects the offsets
//    [s·block − r, s·block − r + block), r = ceil(n_k / block)·block − n_k, as the official
//    code's pooling of the reversed diagonal index does (sum_all_diagonal_matrix, then
//    torch_bhn_sumpool from index 0, then (num_blocks − 1) − index); slash_pool=offset pools
//    [s·block, (s+1)·block), the rule the paper's figures suggest. Equal when block divides n_k.
//  - With n_q < n_k (chunked prefill) the last min(block, n_q) queries are used and block
//    offsets are applied to positions, so a shifted query block may touch two key blocks.
//  - The diagonal block of every row is always kept (the plan requires it; the official
//    slash block 0 already does this).
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"
#include "methods/estimate_util.h"
#include "methods/registry.h"

namespace ls {
namespace {

struct FlexPrefillConfig {
  int block = 128;
  double gamma = 0.9;
  double tau = 0.1;
  std::int64_t min_budget = 512;
  std::int64_t max_budget = 0;  // 0: unlimited
  bool official_slash_pool = true;  // slash_pool=official (default) or offset
};

// What one head selected: shared vertical blocks and slash block offsets for every query
// block, plus (query-aware heads) per-query-block key blocks.
struct HeadSelection {
  std::vector<std::int32_t> vertical_blocks;
  std::vector<std::int32_t> slash_offsets;
  std::vector<std::pair<std::int32_t, std::int32_t>> query_aware;  // (query block, key block)
  bool is_query_aware = false;
};

class FlexPrefill final : public PrefillMethod {
 public:
  explicit FlexPrefill(FlexPrefillConfig config) : config_(config) {}

  Plan build_plan(const AttnInput& in, const PlanContext&) const override {
    const AttnShape& s = in.shape;
    s.validate();
    const int block = config_.block;
    const std::int64_t min_blocks = (config_.min_budget + block - 1) / block;
    if (s.n_k <= std::max<std::int64_t>(2 * block, min_blocks * block))
      return make_dense_plan(s.heads, s.kv_heads, s.n_q, s.n_k, block, block);

    PlanBuilder builder(s.heads, s.heads, s.n_q, s.n_k, block, block);
    // Per KV head, shared by the query heads of its group: keys packed for the score kernel
    // and mean-pooled key blocks [k_blocks][dim].
    const std::span<const estimate::PackedRows> packed_keys = estimate::pack_keys(in);
    std::vector<std::vector<float>> pooled_keys(s.kv_heads);
    parallel_for(s.kv_heads, [&](std::int64_t g) {
      pooled_keys[g].resize(std::size_t(builder.k_blocks() * s.dim));
      estimate::pool_rows(in.k_row(int(g), 0), s.n_k, s.dim, block, estimate::Pool::Mean, pooled_keys[g].data());
    });
    // Attention of the last block of queries, summed by key and by offset, for every head.
    std::vector<float> vertical, slash;
    estimate::last_query_sums(in, packed_keys, block, vertical, slash);
    std::vector<HeadSelection> selections(s.heads);
    parallel_for(s.heads, [&](std::int64_t h) {
      const int g = s.kv_head_of(int(h));
      selections[h] = select_head(in, int(h), std::span(vertical).subspan(h * s.n_k, s.n_k),
                                  std::span(slash).subspan(h * s.n_k, s.n_k), pooled_keys[g], builder.shape());
    });

    // Heads in parallel: each fills only its own rows.
    parallel_for(s.heads, [&](std::int64_t h) {
      const HeadSelection& sel = selections[h];
      for (std::int64_t qb = 0; qb < builder.q_blocks(); ++qb) {
        const std::int64_t row = h * builder.q_blocks() + qb;
        builder.add_diagonal(row);
        for (std::int32_t v : sel.vertical_blocks) builder.add_blocks(row, v, v + 1);
        for (std::int32_t offset : sel.slash_offsets) builder.add_diagonal_offset(row, std::int64_t(offset) * block);
      }
      for (auto [qb, kb] : sel.query_aware) builder.add_blocks(h * builder.q_blocks() + qb, kb, kb + 1);
    });
    return builder.finish();
  }

 private:
  // vertical_sum / slash_sum: this head's last-query attention summed by key and by offset.
  HeadSelection select_head(const AttnInput& in, int head, std::span<const float> vertical_sum,
                            std::span<const float> slash_sum, const std::vector<float>& pooled_k,
                            const Plan& shape) const {
    const AttnShape& s = in.shape;
    const int block = config_.block, dim = s.dim;
    const float scale = s.softmax_scale();
    const std::int64_t n_k = s.n_k, k_blocks = shape.k_blocks();
    const std::int64_t last = std::min<std::int64_t>(block, s.n_q);
    const std::int64_t first_query = s.n_q - last;
    // Means over the last queries.
    std::vector<float> vertical(n_k), slash(n_k);
    for (std::int64_t i = 0; i < n_k; ++i) {
      vertical[i] = vertical_sum[i] / float(last);
      slash[i] = slash_sum[i] / float(last);
    }

    std::vector<std::int32_t> scratch;
    std::vector<float> sorted;
    const std::int64_t min_blocks = (config_.min_budget + block - 1) / block;
    const std::int64_t max_blocks =
        config_.max_budget > 0 ? std::min<std::int64_t>((config_.max_budget + block - 1) / block, k_blocks) : k_blocks;
    auto budget_blocks = [&](const std::vector<float>& scores) {
      std::int64_t tokens = estimate::cover_count(scores, config_.gamma, sorted);
      return std::clamp<std::int64_t>(tokens / block + 1, std::min(min_blocks, max_blocks), max_blocks);
    };
    std::int64_t vertical_budget = budget_blocks(vertical), slash_budget = budget_blocks(slash);

    std::vector<float> vertical_blocks(k_blocks, 0.0f), slash_blocks(k_blocks, 0.0f);
    // Slash pooling. official: the official code sums diagonals indexed by the last query's key
    // (index n_k − 1 − offset), pools that index in blocks from 0 and reverses, so block offset
    // s collects offsets [s·block − r, s·block − r + block) with r = k_blocks·block − n_k (the
    // padding of the last key block); offset: [s·block, (s + 1)·block). Equal when r = 0.
    const std::int64_t shift = config_.official_slash_pool ? k_blocks * block - n_k : 0;
    for (std::int64_t key = 0; key < n_k; ++key) {
      vertical_blocks[key / block] += vertical[key];
      slash_blocks[(key + shift) / block] += slash[key];
    }

    // Pattern choice: the estimated block distribution of the mean last query.
    std::vector<float> mean_q(dim, 0.0f);
    for (std::int64_t r = 0; r < last; ++r) {
      const float* q = in.q_row(head, first_query + r);
      for (int c = 0; c < dim; ++c) mean_q[c] += q[c];
    }
    for (int c = 0; c < dim; ++c) mean_q[c] /= float(last);
    std::vector<float> estimated(k_blocks);
    estimate::scores_abt(mean_q.data(), dim, pooled_k.data(), dim, estimated.data(), k_blocks, 1, k_blocks, dim, scale);
    estimate::softmax(estimated.data(), k_blocks);

    HeadSelection sel;
    sel.is_query_aware = estimate::sqrt_js_distance(estimated, vertical_blocks) < config_.tau;
    if (sel.is_query_aware) vertical_budget = slash_budget = std::min(min_blocks, max_blocks);
    vertical_budget = std::max<std::int64_t>(vertical_budget, 1);
    slash_budget = std::max<std::int64_t>(slash_budget, 1);

    vertical_blocks[0] = std::numeric_limits<float>::infinity();
    slash_blocks[0] = std::numeric_limits<float>::infinity();
    estimate::order_descending(vertical_blocks, scratch);
    sel.vertical_blocks.assign(scratch.begin(), scratch.begin() + vertical_budget);
    estimate::order_descending(slash_blocks, scratch);
    sel.slash_offsets.assign(scratch.begin(), scratch.begin() + slash_budget);

    if (sel.is_query_aware) select_query_aware(in, head, shape, pooled_k, sel);
    return sel;
  }

  void select_query_aware(const AttnInput& in, int head, const Plan& shape, const std::vector<float>& pooled_k,
                          HeadSelection& sel) const {
    const AttnShape& s = in.shape;
    const int block = config_.block, dim = s.dim;
    const std::int64_t k_blocks = shape.k_blocks(), q_blocks = shape.q_blocks();
    std::vector<float> pooled_q(std::size_t(q_blocks * dim));
    estimate::pool_rows(in.q_row(head, 0), s.n_q, dim, block, estimate::Pool::Mean, pooled_q.data());
    // [q_blocks][k_blocks] block-level attention, block-causal, softmax per query block.
    std::vector<float> attn(std::size_t(q_blocks * k_blocks));
    estimate::scores_abt(pooled_q.data(), dim, pooled_k.data(), dim, attn.data(), k_blocks, q_blocks, k_blocks, dim,
                         s.softmax_scale());
    for (std::int64_t qb = 0; qb < q_blocks; ++qb) {
      float* row = attn.data() + qb * k_blocks;
      const std::int64_t last_block = shape.last_position(qb) / block;
      std::fill(row + last_block + 1, row + k_blocks, -std::numeric_limits<float>::infinity());
      estimate::softmax(row, k_blocks);
    }
    std::vector<std::int32_t> order;
    estimate::order_descending(attn, order);
    const double target = config_.gamma * double(q_blocks);
    double mass = 0.0;
    for (std::int32_t index : order) {
      mass += attn[index];
      if (mass > target || attn[index] <= 0.0f) break;
      sel.query_aware.emplace_back(std::int32_t(index / k_blocks), std::int32_t(index % k_blocks));
    }
  }

  FlexPrefillConfig config_;
};

MethodInfo flexprefill_info() {
  MethodInfo info;
  info.name = "flexprefill";
  info.phase = "prefill";
  info.paper = "FlexPrefill (Lai et al., ICLR 2025), §3, Algorithms 1-3";
  info.summary = "per-head choice between query-aware block selection and vertical-slash, budgets by cumulative mass";
  using K = ParamSpec::Kind;
  info.params = {
      {"block", "128", "query and key block size (tokens); also the number of last queries estimated", K::Int, 16, 1024, {}},
      {"gamma", "0.9", "cumulative attention mass the selection must cover", K::Float, 0.0, 1.0, {}},
      {"tau", "0.1", "sqrt-JS distance below which a head is query-aware", K::Float, 0.0, 1.0, {}},
      {"min_budget", "512", "minimum vertical and slash budget (tokens)", K::Int, 0, 1e9, {}},
      {"max_budget", "0", "maximum vertical and slash budget (tokens); 0 = unlimited", K::Int, 0, 1e9, {}},
      {"slash_pool", "official", "slash offsets pooled as the official code does, or by offset [s*block, (s+1)*block)",
       K::String, 0, 0, {"official", "offset"}},
  };
  info.make_prefill = [](const Params& p) {
    FlexPrefillConfig config;
    config.block = int(p.get_int("block"));
    config.gamma = p.get_float("gamma");
    config.tau = p.get_float("tau");
    config.min_budget = p.get_int("min_budget");
    config.max_budget = p.get_int("max_budget");
    config.official_slash_pool = p.get_string("slash_pool") == "official";
    return std::make_unique<FlexPrefill>(config);
  };
  return info;
}

LS_REGISTER_METHOD(flexprefill_info());

}  // namespace
}  // namespace ls
