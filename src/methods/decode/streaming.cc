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
// The paper's 4 + 2000 is "streaming:budget=2004". Contexts of at most `budget` keys are dense.
// Choice: the cache keeps every token (so the same run can compare selectors); StreamingLLM
// evicts the middle. Attention is the same; positions are the cache's, not re-assigned.
#include "methods/registry.h"

namespace ls {
namespace {

class StreamingDecode final : public DecodeSelector {
 public:
  StreamingDecode(std::int64_t budget, std::int64_t sink) : budget_(budget), sink_(sink) {
    decode::check_budget("streaming", budget, sink);
  }
  std::int64_t budget() const override { return budget_; }
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
  };
  info.make_decode = [](const Params& p) {
    return std::make_unique<StreamingDecode>(p.get_int("budget"), p.get_int("sink"));
  };
  return info;
}

LS_REGISTER_METHOD(streaming_decode_info());

}  // namespace
}  // namespace ls
