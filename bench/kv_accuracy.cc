// kv_accuracy: what each KV cache element type costs in accuracy, against an f32 cache, on the
// prompts of a llama.cpp reference fixture (tests/data/*_reference.json).
//
//   build/bench/kv_accuracy MODEL FIXTURE.json [MAX_PROMPT_TOKENS=2100]
//
// For every prompt of at most MAX_PROMPT_TOKENS tokens and every type (f16, bf16, q8_0, for
// keys and values alike):
//   - teacher-forced: the fixture's 32 greedy tokens are fed after the prompt; at each of the 32
//     positions the f32 run's top-5 tokens are compared, and the largest logit difference is kept;
//   - free-running: greedy decoding for 32 tokens; the tokens agreeing with the f32 run's
//     before the first difference are counted.
// Prints one markdown row per prompt and type.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <vector>

#include "model/gguf.h"
#include "model/model_path.h"
#include "model/transformer.h"

namespace {

using ls::KvType;

std::int32_t argmax(const std::vector<float>& v) {
  return static_cast<std::int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

// Logits at the prompt's end and after each forced token: [steps][vocab].
std::vector<std::vector<float>> forced(ls::Transformer& model, const std::vector<std::int32_t>& ids,
                                       const std::vector<std::int32_t>& tokens, KvType type) {
  ls::KvCache cache = model.make_cache(std::int64_t(ids.size() + tokens.size()) + 1, type, type);
  std::vector<std::vector<float>> out(tokens.size(), std::vector<float>(model.config().vocab));
  model.prefill(ids, cache, out[0].data());
  for (std::size_t i = 0; i + 1 < tokens.size(); ++i) model.decode(tokens[i], cache, out[i + 1].data());
  return out;
}

std::vector<std::int32_t> greedy(ls::Transformer& model, const std::vector<std::int32_t>& ids, std::size_t n,
                                 KvType type) {
  ls::KvCache cache = model.make_cache(std::int64_t(ids.size() + n) + 1, type, type);
  std::vector<float> logits(model.config().vocab);
  model.prefill(ids, cache, logits.data());
  std::vector<std::int32_t> out;
  for (std::size_t i = 0; i < n; ++i) {
    out.push_back(argmax(logits));
    if (i + 1 < n) model.decode(out.back(), cache, logits.data());
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    fmt::print(stderr, "usage: kv_accuracy MODEL FIXTURE.json [MAX_PROMPT_TOKENS]\n");
    return 2;
  }
  const std::size_t max_tokens = argc > 3 ? std::stoul(argv[3]) : 2100;
  auto file = ls::GgufFile::open(ls::resolve_model_path(argv[1]));
  ls::Transformer model(*file);
  std::ifstream in(argv[2]);
  const auto fixture = nlohmann::json::parse(in);
  fmt::print("| prompt | tokens | type | max top-5 logit diff vs f32 (32 teacher-forced steps) | greedy tokens equal to f32 |\n");
  fmt::print("|---|---:|---|---:|---:|\n");
  for (const auto& prompt : fixture["prompts"]) {
    const std::vector<std::int32_t> ids = prompt["prompt_ids"], tokens = prompt["greedy"];
    if (ids.size() > max_tokens) continue;
    const auto base = forced(model, ids, tokens, KvType::F32);
    const auto base_greedy = greedy(model, ids, tokens.size(), KvType::F32);
    for (KvType type : {KvType::F16, KvType::BF16, KvType::Q8_0}) {
      const auto run = forced(model, ids, tokens, type);
      double worst = 0;
      for (std::size_t s = 0; s < run.size(); ++s) {
        std::vector<int> order(base[s].size());
        std::iota(order.begin(), order.end(), 0);
        std::partial_sort(order.begin(), order.begin() + 5, order.end(),
                          [&](int a, int b) { return base[s][a] > base[s][b]; });
        for (int k = 0; k < 5; ++k) worst = std::max(worst, double(std::fabs(run[s][order[k]] - base[s][order[k]])));
      }
      const auto g = greedy(model, ids, tokens.size(), type);
      std::size_t agree = 0;
      while (agree < g.size() && g[agree] == base_greedy[agree]) ++agree;
      fmt::print("| {} | {} | {} | {:.3f} | {}/{} |\n", prompt["name"].get<std::string>(), ids.size(),
                 ls::kv_type_name(type), worst, agree, g.size());
      std::fflush(stdout);
    }
  }
}
