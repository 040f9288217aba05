// streaming (decode) — attention sinks + the most recent keys while generating.
//
// Paper: StreamingLLM, "Efficient Streaming Language Models with Attention Sinks" (Xiao et
// al., ICLR 2024), §3.2: keep the KV of the first tokens (attention sinks) and a rolling window
// of recent tokens. Official code: mit-han-lab/streaming-llm (streaming_llm/kv_cache.py,
// start_size 4, recent_size 2000).
//
// Parameters
//   budget = 2048  keys attended per KV head: sink + recent window (window = budget - sink)
//   sink   = 4     first tokens always attended (start_size)
//   shift  = false StreamingLLM's position shift (§3.2, "positions within the cache"): the
//                  sinks are seen as if right before the window, so no distance exceeds the
//                  budget and the model runs beyond its trained context
// The paper's 4 + 2000 is "streaming:budget=2004". Contexts of at most `budget` keys are dense.
// Choice: the cache keeps every token (so the same run can compare selectors); StreamingLLM
// evicts the middle. Attention is the same. The shift is a distance cap at budget - sink:
// every sink scores at that distance (in StreamingLLM the sinks are 4 positions apart).
#include "methods/registry.h"

namespace ls {
namespace {

class StreamingDecode final : public DecodeSelector {
 public:
  StreamingDecode(std::int64_t budget, std::int64_t sink, bool shift) : budget_(budget), sink_(sink), shift_(shift) {
    decode::check_budget("streaming", budget, sink);
  }
  std::int64_t budget() const override { return budget_; }
  std::int64_t rope_distance_limit() const override { return shift_ ? budget_ - sink_ : 0; }
  std::int64_t select(const DecodeQuery&, const DecodeKeys& keys, Selection& out) override {
    const std::int64_t n = keys.size();
    if (n <= budget_) {
      decode::select_dense(keys, out);
      return 0;
    }
    out.reset(keys.kv_heads(), n);
    for (int g = 0; g < keys.kv_heads(); ++g) {
      out.add(g, 0, sink_);
      out.add(g, n - (budget_ - sink_), n);
    }
    out.finish();
    return 0;
  }

 private:
  std::int64_t budget_, sink_;
  bool shift_;
};

MethodInfo streaming_decode_info() {
  MethodInfo info;
  info.name = "streaming";
  info.phase = "decode";
  info.paper = "StreamingLLM (Xiao et al., ICLR 2024) §3.2";
  info.summary = "attention sinks + the most recent keys";
  using K = ParamSpec::Kind;
  info.params = {
      {"budget", "2048", "keys attended per KV head: sink + recent window", K::Int, 2, 1e9, {}},
      {"sink", "4", "first tokens always attended (attention sinks)", K::Int, 0, 1e9, {}},
      {"shift", "false", "position shift: no RoPE distance beyond budget - sink (beyond the trained context)",
       K::Bool, 0, 1, {}},
  };
  info.make_decode = [](const Params& p) {
    return std::make_unique<StreamingDecode>(p.get_int("budget"), p.get_int("sink"), p.get_bool("shift"));
  };
  return info;
}

LS_REGISTER_METHOD(streaming_decode_info());

}  // namespace
}  // namespace ls
