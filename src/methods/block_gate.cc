// block-gate — a training-free variant of SeerAttention's attention gate (Gao et al.,
// "SeerAttention: Learning Intrinsic Sparse Attention in Your LLMs", 2024), §3.1 (AttnGate,
// pooling of Q and K), §3.3 (threshold / top-k sparsification at inference).
// Official code consulted: github.com/microsoft/SeerAttention, seer_attn/prefill_sparse/
// attn_gate.py (AttnGate: pooled Q and concatenated pooled K through per-head linear layers,
// scale hidden^-1/2, block-causal mask, softmax), seer_attn/modules/common.py
// (get_sparse_attn_mask_from_threshold / _nz_ratio: score > threshold, the last 2 block rows
// dense, tril) and the llama configuration (gate block 64, threshold 2e-3, last block dense).
//
// The real gate is a learned per-head linear projection of [avg-pooled Q] and of
// [max-, min-, avg-pooled K] concatenated. Without trained weights we fix the projection:
//   score(query block, key block) = scale · combine(q̄·k_max, q̄·k_min, q̄·k_avg)
// with q̄ the block mean of the queries and scale = the softmax scale (1/√d). `combine`:
//  - "max" (default): the largest of the three. A block holding one key that points along q̄
//    raises k_max (or lowers k_min) in the channels where q̄ is large, so the max keeps
//    blocks with a few strong keys that the mean would wash out; a head-wide offset shared by
//    all blocks cancels in the softmax.
//  - "mean": the mean of the three, i.e. the gate with both projections fixed to averaging
//    the pooled keys; smoother, lower recall for outlier keys.
// Then softmax over the causal key blocks of each query block, and keep key blocks whose
// probability exceeds `threshold` (default 2e-3, the official default; 5e-4 … 5e-3 is the
// useful range) or, with top_k > 0, the top_k blocks of each row instead. The last
// `last_dense` query block rows (default 2, as the official code) are dense — they hold the
// question of a prompt. The diagonal block is always kept (the plan requires it; the
// official mask keeps it only when its score passes).
// GQA: one gate per query head against its KV head (the official gate repeats K heads).
// Short sequences: with n ≤ last_dense · block every row is dense.
// Chunks (n_q < n_k): the chunk's query blocks are pooled and gated against the pooled blocks
// of all n_k keys, causal by position; the last `last_dense` rows are the chunk's last.
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

struct BlockGateConfig {
  int block = 64;
  double threshold = 2e-3;
  std::int64_t top_k = 0;  // > 0: top-k blocks per row instead of the threshold
  std::int64_t last_dense = 2;
  bool combine_max = true;  // "max" or "mean" of the three pooled-key scores
};

class BlockGate final : public PrefillMethod {
 public:
  explicit BlockGate(BlockGateConfig config) : config_(config) {}

  Plan build_plan(const AttnInput& in, const PlanContext&) const override {
    const AttnShape& s = in.shape;
    s.validate();
    const int block = config_.block, dim = s.dim;
    PlanBuilder builder(s.heads, s.heads, s.n_q, s.n_k, block, block);
    const Plan& shape = builder.shape();
    const std::int64_t q_blocks = shape.q_blocks(), k_blocks = shape.k_blocks();

    // Pooled keys per KV head: [kv_heads][3][k_blocks][dim] (max, min, mean).
    std::vector<float> pooled_k(std::size_t(s.kv_heads) * 3 * k_blocks * dim);
    parallel_for(s.kv_heads, [&](std::int64_t g) {
      float* base = pooled_k.data() + std::size_t(g) * 3 * k_blocks * dim;
      const float* k = in.k_row(int(g), 0);
      estimate::pool_rows(k, s.n_k, dim, block, estimate::Pool::Max, base);
      estimate::pool_rows(k, s.n_k, dim, block, estimate::Pool::Min, base + k_blocks * dim);
      estimate::pool_rows(k, s.n_k, dim, block, estimate::Pool::Mean, base + 2 * k_blocks * dim);
    });

    // [heads][q_blocks] kept key blocks per row.
    std::vector<std::vector<std::int32_t>> kept(std::size_t(s.heads * q_blocks));
    parallel_for(s.heads, [&](std::int64_t h) {
      const float* keys = pooled_k.data() + std::size_t(s.kv_head_of(int(h))) * 3 * k_blocks * dim;
      std::vector<float> pooled_q(std::size_t(q_blocks * dim));
      estimate::pool_rows(in.q_row(int(h), 0), s.n_q, dim, block, estimate::Pool::Mean, pooled_q.data());
      // [3][q_blocks][k_blocks] scores against each pooled-key variant, combined into the first.
      std::vector<float> scores(std::size_t(3 * q_blocks * k_blocks));
      for (int variant = 0; variant < 3; ++variant)
        estimate::scores_abt(pooled_q.data(), dim, keys + variant * k_blocks * dim, dim,
                             scores.data() + variant * q_blocks * k_blocks, k_blocks, q_blocks, k_blocks, dim,
                             s.softmax_scale());
      const std::int64_t cells = q_blocks * k_blocks;
      for (std::int64_t c = 0; c < cells; ++c) {
        const float a = scores[c], b = scores[cells + c], m = scores[2 * cells + c];
        scores[c] = config_.combine_max ? std::max({a, b, m}) : (a + b + m) / 3.0f;
      }
      std::vector<std::int32_t> order;
      for (std::int64_t qb = 0; qb < q_blocks; ++qb) {
        auto& row_kept = kept[h * q_blocks + qb];
        const std::int64_t visible = shape.last_position(qb) / block + 1;
        if (qb >= q_blocks - config_.last_dense) {
          for (std::int64_t kb = 0; kb < visible; ++kb) row_kept.push_back(std::int32_t(kb));
          continue;
        }
        float* row = scores.data() + qb * k_blocks;
        estimate::softmax(row, visible);
        if (config_.top_k > 0) {
          estimate::order_descending(std::span<const float>(row, visible), order);
          const std::int64_t count = std::min<std::int64_t>(config_.top_k, visible);
          row_kept.assign(order.begin(), order.begin() + count);
        } else {
          for (std::int64_t kb = 0; kb < visible; ++kb)
            if (row[kb] > config_.threshold) row_kept.push_back(std::int32_t(kb));
        }
      }
    });

    for (std::int64_t row = 0; row < builder.rows(); ++row) {
      builder.add_diagonal(row);
      for (std::int32_t kb : kept[row]) builder.add_blocks(row, kb, kb + 1);
    }
    return builder.finish();
  }

 private:
  BlockGateConfig config_;
};

MethodInfo block_gate_info() {
  MethodInfo info;
  info.name = "block-gate";
  info.phase = "prefill";
  info.paper = "SeerAttention (Gao et al., 2024), §3.1 and §3.3 - training-free variant";
  info.summary =
      "training-free variant of SeerAttention's gate: avg-pooled Q vs max/min/avg-pooled K per block, softmax, "
      "threshold or top-k";
  using K = ParamSpec::Kind;
  info.params = {
      {"block", "64", "query and key block size (tokens)", K::Int, 16, 1024, {}},
      {"threshold", "0.002", "keep key blocks whose gate probability exceeds this", K::Float, 0.0, 1.0, {}},
      {"top_k", "0", "keep the top-k key blocks per query block instead of the threshold; 0 = threshold", K::Int, 0,
       1e9, {}},
      {"last_dense", "2", "number of final query block rows computed densely", K::Int, 0, 1e9, {}},
      {"combine", "max", "how the three pooled-key scores are combined", K::String, 0, 0, {"max", "mean"}},
  };
  info.make_prefill = [](const Params& p) {
    BlockGateConfig config;
    config.block = int(p.get_int("block"));
    config.threshold = p.get_float("threshold");
    config.top_k = p.get_int("top_k");
    config.last_dense = p.get_int("last_dense");
    config.combine_max = p.get_string("combine") == "max";
    return std::make_unique<BlockGate>(config);
  };
  return info;
}

LS_REGISTER_METHOD(block_gate_info());

}  // namespace
}  // namespace ls
