// power — PowerAttention: a sink block, a local window of blocks, and the key blocks at
// power-of-two block distances, so that over l layers every token within 2^l blocks is reachable
// in at most l hops (the receptive field doubles per layer).
//
// Paper: PowerAttention, "Exponentially Scaling of Receptive Fields for Effective Sparse
// Attention" (Chen et al., 2025), §3.3 and Algorithm 1; Appendix B (reachability proof).
// Official code: none published that we could find; Algorithm 1 is the specification:
//   blk_qk = q_idx // block - kv_idx // block
//   mask = causal & (blk_qk < window | (blk_qk & (blk_qk - 1)) == 0 | kv_idx < block)
// i.e. block distances 0 .. window-1, every power of two (no upper bound), and the first block.
//
// Parameters
//   block  = 256  block size in tokens (the paper's setting, "256-token blocks"); the plan uses
//                 it for both query and key blocks so the mask is exact at block granularity
//   window = 5    local window in blocks: block distances 0 .. window-1 (paper §4.1)
//   sink   = 1    initial blocks always attended (Algorithm 1 keeps exactly one)
// With the defaults the last query block at 32k tokens (128 blocks) sees 1 sink block, 5 local
// blocks and the blocks at distances 8, 16, 32, 64: the paper's "5-block local window, 1 block
// of initial tokens, and 4 additional blocks ... at power-of-2 intervals" (§4.1).
//
// Choices: distances are measured between position blocks (query position // block), as in
// Algorithm 1. When the queries are only the last n_q of n_k positions and n_k - n_q is not a
// multiple of `block`, a plan row straddles two position blocks and gets the union of their
// key blocks (over-selection). GQA: static pattern, one plan row per KV head.
#include <algorithm>

#include "methods/registry.h"

namespace ls {
namespace {

class Power final : public PrefillMethod {
 public:
  Power(int block, std::int64_t window, std::int64_t sink) : block_(block), window_(window), sink_(sink) {}

  Plan build_plan(const AttnInput& in, const PlanContext&) const override {
    const AttnShape& s = in.shape;
    PlanBuilder builder(s.heads, s.kv_heads, s.n_q, s.n_k, block_, block_);
    const Plan& shape = builder.shape();
    for (std::int64_t r = 0; r < builder.rows(); ++r) {
      const std::int64_t qb = builder.q_block_of_row(r);
      builder.add_blocks(r, 0, sink_);
      for (std::int64_t pb = shape.first_position(qb) / block_; pb <= shape.last_position(qb) / block_; ++pb) {
        builder.add_blocks(r, pb - window_ + 1, pb + 1);
        for (std::int64_t distance = 1; distance <= pb; distance *= 2) builder.add_blocks(r, pb - distance, pb - distance + 1);
      }
      builder.add_diagonal(r);
    }
    return builder.finish();
  }

 private:
  int block_;
  std::int64_t window_, sink_;
};

MethodInfo power_info() {
  MethodInfo info;
  info.name = "power";
  info.phase = "prefill";
  info.paper = "PowerAttention (Chen et al., 2025) §3.3, Algorithm 1";
  info.summary = "sink block + local blocks + blocks at power-of-two block distances";
  using K = ParamSpec::Kind;
  info.params = {
      {"block", "256", "block size in tokens for queries and keys", K::Int, 16, 4096, {}},
      {"window", "5", "local window in blocks (block distances 0 .. window-1)", K::Int, 1, 1e9, {}},
      {"sink", "1", "initial key blocks always attended", K::Int, 0, 1e9, {}},
  };
  info.make_prefill = [](const Params& p) {
    return std::make_unique<Power>(int(p.get_int("block")), p.get_int("window"), p.get_int("sink"));
  };
  return info;
}

LS_REGISTER_METHOD(power_info());

}  // namespace
}  // namespace ls
