// block-sparse — MInference's dynamic block-sparse pattern: mean-pooled query and key blocks
// score each (query block, key block) pair; each query block keeps its top-k key blocks.
//
// Paper: MInference 1.0 (Jiang et al., NeurIPS 2024), §3 "Block-Sparse" pattern and its
// online estimation (Algorithm 3).
// Official code consulted: microsoft/MInference — minference/ops/block_sparse_flash_attention.py
// (_build_block_index: Q and K zero-padded to a multiple of 64, reshaped into 64-row blocks
// and averaged; p = pooled_q · pooled_kᵀ with no scale and no softmax; key blocks after the
// query block masked to −inf; top min(top_k, n // 64) blocks per query block) and
// minference_forward.py (block_sparse_kernel: top_k = 100).
//
// Parameters
//   topk  = 100  key blocks kept per query block
//   block = 64   block size in tokens for queries and keys (the official 64×64)
//
// GQA: per query head, each against its own KV head (MInference repeats K/V), so the plan has
// one row per query head.
// Choices:
//   - a ragged last key block is averaged over `block` rows as if zero-padded, like the
//     official code; query blocks are averaged over their real rows (a per-row constant
//     factor does not change that row's ranking);
//   - the diagonal key block is always kept on top of the top-k (the official top-k does not
//     force it, but our plans require it and the diagonal almost always ranks first anyway);
//   - with n_q < n_k the causal limit of a row is the key block of its last query.
// When topk covers every key block the plan is dense (what the official top-k returns then).
#include <algorithm>
#include <limits>

#include "core/parallel.h"
#include "methods/estimate_util.h"
#include "methods/registry.h"

namespace ls {
namespace {

class BlockSparse final : public PrefillMethod {
 public:
  BlockSparse(std::int64_t topk, int block) : topk_(topk), block_(block) {}

  Plan build_plan(const AttnInput& in, const PlanContext&) const override {
    const AttnShape& s = in.shape;
    s.validate();
    PlanBuilder builder(s.heads, s.heads, s.n_q, s.n_k, block_, block_);
    if (topk_ >= builder.k_blocks()) return make_dense_plan(s.heads, s.kv_heads, s.n_q, s.n_k, block_, block_);
    const Plan& shape = builder.shape();
    const std::int64_t q_blocks = builder.q_blocks(), k_blocks = builder.k_blocks();
    const int d = s.dim;

    // pooled_k [kv_heads][k_blocks][dim]
    std::vector<float> pooled_k(std::size_t(s.kv_heads) * k_blocks * d);
    parallel_for(std::int64_t(s.kv_heads) * k_blocks, [&](std::int64_t i) {
      const std::int64_t g = i / k_blocks, kb = i % k_blocks;
      estimate::mean_rows(in.k_row(int(g), 0), d, kb * block_, std::min(s.n_k, (kb + 1) * block_), double(block_),
                &pooled_k[std::size_t(i) * d]);
    });
    // selected [heads * q_blocks][<= topk] key blocks
    std::vector<std::vector<std::int64_t>> selected(std::size_t(s.heads) * q_blocks);
    parallel_for(std::int64_t(s.heads) * q_blocks, [&](std::int64_t i) {
      const int h = int(i / q_blocks);
      const std::int64_t qb = i % q_blocks;
      const std::int64_t q0 = qb * block_, q1 = std::min(s.n_q, q0 + block_);
      std::vector<float> pooled_q(d);
      estimate::mean_rows(in.q_row(h, 0), d, q0, q1, double(q1 - q0), pooled_q.data());
      const std::int64_t causal_blocks = shape.last_position(qb) / block_ + 1;
      std::vector<double> scores(causal_blocks);
      const float* kh = &pooled_k[std::size_t(s.kv_head_of(h)) * k_blocks * d];
      for (std::int64_t kb = 0; kb < causal_blocks; ++kb) scores[kb] = estimate::dot(pooled_q.data(), kh + kb * d, d);
      selected[i] = estimate::top_k_indices(scores, topk_);
    });
    for (std::int64_t i = 0; i < std::int64_t(selected.size()); ++i) {
      const std::int64_t r = shape.row(int(i / q_blocks), i % q_blocks);
      for (std::int64_t kb : selected[i]) builder.add_blocks(r, kb, kb + 1);
      builder.add_diagonal(r);
    }
    return builder.finish();
  }

 private:
  std::int64_t topk_;
  int block_;
};

MethodInfo block_sparse_info() {
  MethodInfo info;
  info.name = "block-sparse";
  info.phase = "prefill";
  info.paper = "MInference 1.0 (Jiang et al., NeurIPS 2024) §3, block-sparse pattern";
  info.summary = "top-k key blocks per query block from mean-pooled q·k, per query head";
  using K = ParamSpec::Kind;
  info.params = {
      {"topk", "100", "key blocks kept per query block (plus the diagonal block)", K::Int, 1, 1e9, {}},
      {"block", "64", "block size in tokens for queries and keys", K::Int, 16, 4096, {}},
  };
  info.make_prefill = [](const Params& p) {
    return std::make_unique<BlockSparse>(p.get_int("topk"), int(p.get_int("block")));
  };
  return info;
}

LS_REGISTER_METHOD(block_sparse_info());

}  // namespace
}  // namespace ls
