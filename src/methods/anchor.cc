// anchor — AnchorAttention (Zhang et al., "AnchorAttention: Difference-Aware Sparse Attention
// with Stripe Granularity", 2025, arXiv 2505.23520), §3: pattern-based anchor computation,
// difference-aware stripe sparsity identification, fine-grained sparse computation.
// Official code consulted: github.com/yuzhouzhang9/Anchor-Attention (anchor_attn/src/ops:
// the Triton kernels step 1 — anchor, step 2 — get_q_mask, step 3 — stripe attention;
// anchor_attn/src/modules/llama/anchor_attention.py and modules/patch.py for the model
// integration and its configuration).
//
// Reproduced (region=official, the default): anchor_attn/src/ops/anchor_attn_v4.py:anchor_attn
// at commit fdc7420 as modules/llama/anchor_attention.py calls it, i.e. the Triton kernels
// anchor_step_1_2_v2.py:get_mask_fused_anchor_triton (step 1, called with init_cnt = 1,
// local_cnt = 1), get_mask_test.py:get_q_mask_triton (step 2) and anchor_attn_v4.py:
// _triton_stripe_sparse_attn_fwd_kernel_step3 (step 3). tests/methods/official_fixture_test.cc
// checks the key set of every query block against them (docs/fidelity.md).
//
// Queries are cut into blocks of `block` (32) and blocks into groups of `step` (16), so a
// group covers G = step·block = 512 queries. Per query head (GQA: each query head against its
// KV head; the official code is written for MHA):
//  1. Anchor: for every query, the maximum scaled score q·k·scale over the anchor region.
//     region=official (step 1): the first G keys and the group's own causal keys (from the
//     group's first position). region=paper: key block 0, the key block just before the
//     group, and the group's own causal keys — the paper's x_a = max(Q [K_init, K_w]ᵀ / √d)
//     and our method catalogue's rule.
//  2. Stripes: for every query block of the group, the mean of its queries q̄ and the mean of
//     its anchors ā. A key k in [block, group start − block) is a stripe of the whole group
//     when, for at least one query block of the group, q̄·k·scale + theta ≥ ā
//     (difference-aware: a key is kept when its pooled score comes within theta of the
//     anchor). That range is step 2's in both modes: with region=official the block just
//     before the group is therefore in neither the region nor the stripes (no query of the
//     official code attends to it unless the first G keys hold it), and stripes among the
//     first G keys are already in the region.
//  3. Plan: the anchor region as block ranges, the group's stripes as gathered columns. The
//     executor then runs one online softmax over both, which is what the official step 3
//     does when it continues from the anchor state — except that the official step 3 adds a
//     stripe among the first G keys a second time (the region already holds it), so such a
//     key weighs twice in its softmax; a plan holds a key once (the only difference left).
// Parameters: block 32, step 16, theta 12, region official.
// theta: 12, as in the official run scripts (script/run_ruler.sh: {"theta":12,"step":16}) and
// the public entry points' default difference = 12 (natural-log units; the kernels convert
// to log2). An inner helper defaults to 100, which selects almost every key and reads as a
// placeholder.
// Minimum length: any sequence of at most one group (n_k ≤ block·step) is all anchor region,
// i.e. dense, so we return the dense plan there (with region=official so is the second
// group: the first G keys and the group's own are all its keys). As in the official model
// integration, the queries past the last whole group (n_q mod block·step of them) run dense.
// (That integration slices the whole groups as [:-pad], which is empty when pad is 0: it
// returns zeros for a prompt whose length is a multiple of G; we run every group then.)
// Chunks (n_q < n_k): groups are formed from the chunk's queries; each group's anchor region
// and stripe search run over all keys up to its positions, so only the dense tail depends on
// where a chunk ends.
// Block: the official run configuration uses block_size_M = 128 (groups of 2048 queries);
// we default to 32 as our method catalogue specifies, which gives sparse plans from 512
// tokens on (region=paper) or 1024 (region=official); anchor:block=128 reproduces the
// official setting.
// Choices where the paper or code differ or are silent:
//  - Scores use the shape's softmax scale (1/√d unless the model sets another), in fp32 (the
//    official kernels round the pooled queries, scores and anchors to fp16/bf16).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"
#include "methods/estimate_util.h"
#include "methods/registry.h"

namespace ls {
namespace {

struct AnchorConfig {
  int block = 32;
  int step = 16;
  double theta = 12.0;
  bool official_region = true;  // region=official (the official kernels) / paper
};

class Anchor final : public PrefillMethod {
 public:
  explicit Anchor(AnchorConfig config) : config_(config) {}

  Plan build_plan(const AttnInput& in, const PlanContext&) const override {
    const AttnShape& s = in.shape;
    s.validate();
    const int block = config_.block;
    if (s.n_k <= std::int64_t(block) * config_.step)
      return make_dense_plan(s.heads, s.kv_heads, s.n_q, s.n_k, block, block);

    PlanBuilder builder(s.heads, s.heads, s.n_q, s.n_k, block, block);
    const Plan& shape = builder.shape();
    const std::int64_t q_blocks = shape.q_blocks();
    const std::int64_t groups = (q_blocks + config_.step - 1) / config_.step;
    // The official code runs the queries past the last whole group densely.
    const std::int64_t whole_groups = s.n_q / (std::int64_t(block) * config_.step);

    // Keys packed once per KV head, shared by the query heads of its group.
    const std::span<const estimate::PackedRows> packed_keys = estimate::pack_keys(in);
    // [heads][groups] stripe keys of each group.
    std::vector<std::vector<std::int32_t>> stripes(std::size_t(s.heads * groups));
    parallel_for(s.heads * groups, [&](std::int64_t item) {
      const int head = int(item / groups);
      if (item % groups < whole_groups)
        stripes[item] = select_stripes(in, head, item % groups, packed_keys[s.kv_head_of(head)], shape);
    });

    // Rows in parallel (each touches only its own row; a group's stripes go to its 16 rows).
    parallel_for(builder.rows(), [&](std::int64_t row) {
      const std::int64_t h = row / q_blocks, qb = row % q_blocks, group = qb / config_.step;
      if (group >= whole_groups) {
        builder.add_dense(row);
        return;
      }
      const Region region = anchor_region(shape, group);
      if (region.sink > 0) builder.add_keys(row, 0, region.sink - 1);
      builder.add_keys(row, region.local_start, shape.last_position(qb));
      add_stripes(builder, row, stripes[h * groups + group]);
    }, 16);
    return builder.finish();
  }

 private:
  // Stripe keys as gathered columns; a key block whose every key is a stripe becomes a block
  // range instead (the same keys, computed as a dense tile).
  void add_stripes(PlanBuilder& builder, std::int64_t row, const std::vector<std::int32_t>& keys) const {
    const std::int64_t block = config_.block;
    for (std::size_t i = 0; i < keys.size();) {
      const std::int64_t key = keys[i];
      if (key % block == 0 && i + block <= keys.size() && keys[i + block - 1] == key + block - 1) {
        builder.add_blocks(row, key / block, key / block + 1);  // sorted and distinct: a full block
        i += block;
      } else {
        builder.add_column(row, key);
        ++i;
      }
    }
  }

  // The anchor region of a group: keys [0, sink) and [local_start, the query], and the range
  // [stripe_first, stripe_end) its stripes are searched in.
  //  paper:    block 0; the key block before the group's first key block on; stripes between.
  //  official: the first block·step keys (step 1's init_cnt = 1 group) and the group's own
  //            keys (local_cnt = 1: from the group's first position); stripes in
  //            [block, first position − block) as step 2 searches them, less the keys of the
  //            sink (step 3 would count those a second time). The block just before the group
  //            is in neither. When the group starts within the first block·step keys, the
  //            region is every key up to the query.
  struct Region {
    std::int64_t sink, local_start, stripe_first, stripe_end;
  };
  Region anchor_region(const Plan& shape, std::int64_t group) const {
    const std::int64_t block = config_.block, first = shape.first_position(group * config_.step);
    if (config_.official_region) {
      const std::int64_t init = block * config_.step;
      if (first <= init) return {0, 0, 0, 0};
      return {init, first, std::max(block, init), first - block};
    }
    const std::int64_t start = std::max<std::int64_t>(first / block - 1, 0) * block;
    return {std::min(block, start), start, block, start};
  }

  std::vector<std::int32_t> select_stripes(const AttnInput& in, int head, std::int64_t group,
                                           const estimate::PackedRows& keys, const Plan& shape) const {
    const AttnShape& s = in.shape;
    const int block = config_.block, dim = s.dim;
    const float scale = s.softmax_scale();
    const std::int64_t first_qb = group * config_.step;
    const std::int64_t group_blocks = std::min<std::int64_t>(config_.step, shape.q_blocks() - first_qb);
    const Region region = anchor_region(shape, group);
    const std::int64_t start = region.local_start, sink = region.sink;
    // Stripe candidates (paper: strictly between block 0 and the block before the group).
    const std::int64_t stripe_first = region.stripe_first, stripe_end = region.stripe_end;
    if (stripe_end <= stripe_first) return {};

    // Per query block of the group: mean query [group_blocks][dim] and mean anchor.
    std::vector<float> pooled_q(std::size_t(group_blocks * dim), 0.0f), mean_anchor(group_blocks, 0.0f);
    std::vector<float> scores;  // [queries of a block][anchor keys]
    for (std::int64_t b = 0; b < group_blocks; ++b) {
      const std::int64_t qb = first_qb + b;
      const std::int64_t first_query = qb * block, queries = std::min<std::int64_t>(block, s.n_q - first_query);
      const std::int64_t local = shape.last_position(qb) - start + 1, width = sink + local;
      scores.resize(std::size_t(queries * width));
      estimate::scores_packed(in.q_row(head, first_query), dim, queries, keys, 0, sink, scores.data(), width, scale);
      estimate::scores_packed(in.q_row(head, first_query), dim, queries, keys, start, start + local,
                              scores.data() + sink, width, scale);
      double anchor_sum = 0.0;
      for (std::int64_t r = 0; r < queries; ++r) {
        const float* row = scores.data() + r * width;
        const std::int64_t visible_local = s.position(first_query + r) - start + 1;  // causal
        anchor_sum += estimate::max_of(row, sink + visible_local);
        const float* q = in.q_row(head, first_query + r);
        for (int c = 0; c < dim; ++c) pooled_q[b * dim + c] += q[c];
      }
      mean_anchor[b] = float(anchor_sum / double(queries));
      for (int c = 0; c < dim; ++c) pooled_q[b * dim + c] /= float(queries);
    }

    // [group_blocks][candidates] pooled scores; a key is a stripe if any block accepts it.
    const std::int64_t candidates = stripe_end - stripe_first;
    scores.resize(std::size_t(group_blocks * candidates));
    estimate::scores_packed(pooled_q.data(), dim, group_blocks, keys, stripe_first, stripe_end, scores.data(),
                            candidates, scale);
    const float theta = float(config_.theta);
    // Block by block over contiguous rows (vectorises), then the accepted keys in order.
    std::vector<std::uint8_t> accepted(std::size_t(candidates), 0);
    for (std::int64_t b = 0; b < group_blocks; ++b) {
      const float* row = scores.data() + b * candidates;
      const float anchor = mean_anchor[b];
      for (std::int64_t j = 0; j < candidates; ++j) accepted[j] |= std::uint8_t(row[j] + theta >= anchor);
    }
    std::vector<std::int32_t> selected;
    for (std::int64_t j = 0; j < candidates; ++j)
      if (accepted[j]) selected.push_back(std::int32_t(stripe_first + j));
    return selected;
  }

  AnchorConfig config_;
};

MethodInfo anchor_info() {
  MethodInfo info;
  info.name = "anchor";
  info.phase = "prefill";
  info.paper = "AnchorAttention (Zhang et al., 2025, arXiv 2505.23520), §3";
  info.summary = "anchor = row max over sink + local blocks; keys within theta of the anchor become group-wide stripes";
  using K = ParamSpec::Kind;
  info.params = {
      {"block", "32", "query and key block size (tokens)", K::Int, 8, 1024, {}},
      {"step", "16", "query blocks per group sharing one set of stripes", K::Int, 1, 1024, {}},
      {"theta", "12", "score margin below the anchor within which a key becomes a stripe", K::Float, -1e3, 1e3, {}},
      {"region", "official",
       "anchor region: official (first block*step keys + the group's own) / paper (block 0 + the block before the group on)",
       K::String, 0, 0, {"official", "paper"}},
  };
  info.make_prefill = [](const Params& p) {
    AnchorConfig config;
    config.block = int(p.get_int("block"));
    config.step = int(p.get_int("step"));
    config.theta = p.get_float("theta");
    config.official_region = p.get_string("region") == "official";
    return std::make_unique<Anchor>(config);
  };
  return info;
}

LS_REGISTER_METHOD(anchor_info());

}  // namespace
}  // namespace ls
