// streaming — attention sinks + a local window (the "A-shape"), optionally with dense rows for
// the last queries (the "tri-shape").
//
// Papers: StreamingLLM, "Efficient Streaming Language Models with Attention Sinks" (Xiao et
// al., ICLR 2024), §3.2 (keep the first tokens as attention sinks plus a rolling window of
// recent tokens); MInference 1.0 (Jiang et al., NeurIPS 2024), §3 "A-shape" pattern, and its
// tri-shape prefill (SCBench, Li et al. 2025: the last queries attend densely).
// Official code consulted: mit-han-lab/streaming-llm (examples/run_streaming_llama.py:
// start_size 4, recent_size 2000; streaming_llm/kv_cache.py), microsoft/MInference
// (minference/ops/streaming_kernel.py: a-shape n_init/n_local, tri-shape n_last = 100 dense
// last queries; minference_forward.py: the pattern search's A-shape is 100 sinks / 800 local).
// Reproduced (tests/methods/official_fixture_test.cc, docs/fidelity.md): MInference fb56c91,
// minference/ops/streaming_kernel.py: a_shape_kernel (a query p sees key j when
// 0 <= p - j < n_local, the window stage of _attn_fwd_inner, or j < n_init, its complement
// stage: n_init/n_local are our sink/window exactly) and tri_shape_kernel (the last
// min(n_last, n - 1) queries dense, the others the A-shape over the keys before them);
// StreamingLLM 2e50426, streaming_llm/kv_cache.py: StartRecentKVCache as
// examples/eval_long_ppl.py runs it (one token per step, the cache trimmed after each): a
// query sees the first start_size keys, the recent_size keys before it and itself, so
// recent_size R is our window R + 1 (eval_long_ppl's default 1 + 255 is sink=1,window=256).
// Our plans are these per-token masks rounded out to the blocks below; the test checks that
// rounding exactly. The default window 2000 takes run_streaming_llama.py's recent_size 2000
// as written (per token one key short of StreamingLLM's 2001; the 64-key blocks are the same
// unless the window is 1 more than a multiple of 64). StreamingLLM's own prefill
// (run_streaming_llama.py) is dense over the cache and the prompt; the A-shape per token is
// its streaming evaluation.
//
// Parameters
//   sink     = 4     first tokens every query sees (StreamingLLM start_size)
//   window   = 2000  most recent keys each query sees, itself included (recent_size)
//   tri      = false tri-shape: queries among the last `tri_last` positions attend densely
//   tri_last = 100   MInference's n_last
// Defaults are StreamingLLM's; MInference's A-shape (sink 100, window 800) is
// "streaming:sink=100,window=800", and its SCBench A-shape "streaming:sink=128,window=3968".
//
// Choices where the papers are silent about a block-sparse executor:
//   - the window is covered with whole 64-key blocks, so a query may see up to 63 keys more
//     than `window` (over-selection; the paper's mask is per token);
//   - sinks are gathered columns (a sink of 64 or more becomes block 0 after normalisation);
//   - tri-shape is applied per 64-query block: a block holding any of the last `tri_last`
//     queries is dense for all its queries (at most 63 extra dense queries).
// GQA: the pattern is static, so one plan row per KV head serves its whole group.
// Chunks (n_q < n_k): sinks, window and tri-shape are placed by position (the chunk's queries
// are the last n_q of n_k), so a chunked prefill selects what the one-shot prefill selects.
#include <algorithm>

#include "methods/registry.h"

namespace ls {
namespace {

class Streaming final : public PrefillMethod {
 public:
  Streaming(std::int64_t sink, std::int64_t window, bool tri, std::int64_t tri_last)
      : sink_(sink), window_(window), tri_(tri), tri_last_(tri_last) {}

  Plan build_plan(const AttnInput& in, const PlanContext&) const override {
    const AttnShape& s = in.shape;
    PlanBuilder builder(s.heads, s.kv_heads, s.n_q, s.n_k);
    // First position that gets a dense row in tri-shape mode (MInference clamps n_last to
    // q_len - 1, so at least the first query keeps the A-shape).
    const std::int64_t n_last = std::min(tri_last_, s.n_q - 1);
    const std::int64_t dense_from = s.n_k - n_last;
    for (std::int64_t r = 0; r < builder.rows(); ++r) {
      const std::int64_t qb = builder.q_block_of_row(r);
      if (tri_ && n_last > 0 && builder.shape().last_position(qb) >= dense_from) {
        builder.add_dense(r);
        continue;
      }
      builder.add_sink(r, sink_);
      builder.add_window(r, window_);
      builder.add_diagonal(r);
    }
    return builder.finish();
  }

 private:
  std::int64_t sink_, window_;
  bool tri_;
  std::int64_t tri_last_;
};

MethodInfo streaming_info() {
  MethodInfo info;
  info.name = "streaming";
  info.phase = "prefill";
  info.paper = "StreamingLLM (Xiao et al., ICLR 2024) §3.2; MInference A-shape / tri-shape (Jiang et al., NeurIPS 2024)";
  info.summary = "attention sinks + local window (A-shape); tri=true adds dense rows for the last queries";
  using K = ParamSpec::Kind;
  info.params = {
      {"sink", "4", "first tokens every query attends to (attention sinks)", K::Int, 0, 1e9, {}},
      {"window", "2000", "most recent keys each query attends to, itself included", K::Int, 1, 1e9, {}},
      {"tri", "false", "tri-shape: the last tri_last queries attend densely", K::Bool, 0, 1, {}},
      {"tri_last", "100", "queries at the end that attend densely when tri=true", K::Int, 1, 1e9, {}},
  };
  info.make_prefill = [](const Params& p) {
    return std::make_unique<Streaming>(p.get_int("sink"), p.get_int("window"), p.get_bool("tri"),
                                       p.get_int("tri_last"));
  };
  return info;
}

LS_REGISTER_METHOD(streaming_info());

}  // namespace
}  // namespace ls
