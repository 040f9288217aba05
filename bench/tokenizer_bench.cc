// Tokenizer and sampler throughput on the default model's vocabulary: encoding an ~8k-token
// prompt (what every long-context evaluation sample costs), decoding it whole and streamed,
// and sampling from a 49,152-entry logit vector (greedy against the full filter chain in the
// same run). Needs the model file (scripts/fetch-model smollm2).
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

#include "model/gguf.h"
#include "model/model_path.h"
#include "model/sampler.h"
#include "model/tokenizer.h"

namespace ls {
namespace {

const Tokenizer& tokenizer() {
  static const std::unique_ptr<Tokenizer> t = [] {
    const auto file = GgufFile::open(resolve_model_path("smollm2"));
    return std::make_unique<Tokenizer>(tokenizer_data_from_gguf(*file));
  }();
  return *t;
}

// Deterministic prose with numbers, punctuation, newlines and some non-ASCII, ~8k tokens.
const std::string& long_prompt() {
  static const std::string text = [] {
    const char* words[] = {"the", "report", "says", "that", "revenue", "grew", "in", "Q3,", "while",
                           "costs", "fell;", "café", "naïve", "日本", "data", "model's", "we'll",
                           "attention", "sparse", "key:", "value", "(see", "table)", "—", "okay."};
    std::string s;
    std::uint64_t state = 42;
    while (s.size() < 36000) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      const auto r = state >> 33;
      s += words[r % std::size(words)];
      if (r % 11 == 0) s.append(" ").append(std::to_string(r % 100000));
      s += (r % 17 == 0) ? "\n" : " ";
    }
    return s;
  }();
  return text;
}

void BM_Encode(benchmark::State& state) {
  const Tokenizer& t = tokenizer();
  const std::string& text = long_prompt();
  std::size_t tokens = 0;
  for (auto _ : state) {
    const auto ids = t.encode(text, true);
    tokens = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.counters["tokens"] = static_cast<double>(tokens);
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(tokens), benchmark::Counter::kIsIterationInvariantRate);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * text.size()));
}
BENCHMARK(BM_Encode)->Unit(benchmark::kMillisecond);

void BM_Decode(benchmark::State& state) {
  const Tokenizer& t = tokenizer();
  const auto ids = t.encode(long_prompt(), true);
  for (auto _ : state) benchmark::DoNotOptimize(t.decode(ids).size());
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(ids.size()), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_Decode)->Unit(benchmark::kMillisecond);

void BM_StreamDecode(benchmark::State& state) {
  const Tokenizer& t = tokenizer();
  const auto ids = t.encode(long_prompt(), true);
  for (auto _ : state) {
    Tokenizer::StreamDecoder stream(t);
    std::size_t bytes = 0;
    for (const auto id : ids) bytes += stream.push(id).size();
    benchmark::DoNotOptimize(bytes + stream.flush().size());
  }
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(ids.size()), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_StreamDecode)->Unit(benchmark::kMillisecond);

// Logits shaped like a model's: most far below the top, a few close to it.
std::vector<float> logits() {
  std::vector<float> l(49152);
  std::uint64_t state = 7;
  for (float& x : l) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    x = static_cast<float>((state >> 40) % 1000) / 100.0f;  // 0 .. 10
  }
  return l;
}

void BM_Sample(benchmark::State& state) {
  SamplerConfig config;  // defaults: temperature 0.8, top-k 40, top-p 0.95, min-p 0.05
  if (state.range(0) == 0) config.temperature = 0.0f;
  if (state.range(0) == 2) config.top_k = 0;  // top-p over the whole vocabulary
  Sampler sampler(config);
  const auto l = logits();
  for (auto _ : state) benchmark::DoNotOptimize(sampler.sample(l));
}
BENCHMARK(BM_Sample)->Arg(0)->Arg(1)->Arg(2)->ArgNames({"mode(0=greedy,1=default,2=no_top_k)"})->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace ls
