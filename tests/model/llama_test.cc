// The llama forward pass on the real SmolLM2-135M model against llama.cpp reference outputs
// (tests/data/smollm2_reference.json: prompt ids, top-5 logits at the last prompt position and
// 32 greedy tokens). Skipped when the model is not in the cache (scripts/fetch-model smollm2).
//
// Tolerance on the top-5 logits: llama.cpp quantizes activations to 8 bits (Q8_1/Q8_0) for every
// matmul and keeps the KV cache in f16; we do the same 8-bit activations in decode but fp32
// (sgemm) in prefill, and an fp32 cache. Its own two attention paths (flash on/off) already
// differ by up to ~0.2 on these logits; we measured max differences of 0.13-0.42 (see
// docs/model.md) and allow 0.6.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/error.h"
#include "model/gguf.h"
#include "model/transformer.h"
#include "model/model_path.h"

namespace ls {
namespace {

constexpr double kLogitTolerance = 0.6;
constexpr int kMinGreedyMatch = 16;
constexpr double kNearTie = 0.1;  // a recorded margin below this is a tie rounding may break

class LlamaReference : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string path;
    try {
      path = resolve_model_path("smollm2");
    } catch (const Error&) {
      return;
    }
    file_ = GgufFile::open(path).release();
    model_ = new Transformer(*file_);
    std::ifstream in(std::string(LONGSPARSE_TEST_DATA) + "/smollm2_reference.json");
    if (in) reference_ = new nlohmann::json(nlohmann::json::parse(in));
  }
  static void TearDownTestSuite() {
    delete model_;
    delete file_;
    delete reference_;
  }
  void SetUp() override {
    if (!model_) GTEST_SKIP() << "model not cached; run scripts/fetch-model smollm2";
    if (!reference_) GTEST_SKIP() << "tests/data/smollm2_reference.json missing";
  }

  static inline GgufFile* file_ = nullptr;
  static inline Transformer* model_ = nullptr;
  static inline nlohmann::json* reference_ = nullptr;
};

std::int32_t argmax(const std::vector<float>& logits) {
  return static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

TEST_F(LlamaReference, ConfigMatchesSmolLM2) {
  const ModelConfig& c = model_->config();
  EXPECT_EQ(c.architecture, "llama");
  EXPECT_EQ(c.layers, 30);
  EXPECT_EQ(c.embedding, 576);
  EXPECT_EQ(c.heads, 9);
  EXPECT_EQ(c.kv_heads, 3);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.ffn, 1536);
  EXPECT_EQ(c.vocab, 49152);
  EXPECT_EQ(c.context_length, 8192);
  EXPECT_EQ(c.rope_theta, 100000.0);
  EXPECT_FLOAT_EQ(c.rms_eps, 1e-5f);
  EXPECT_TRUE(c.tied_embeddings);
}

TEST_F(LlamaReference, TopLogitsAndGreedyTokensMatchLlamaCpp) {
  const std::vector<float>::size_type vocab = model_->config().vocab;
  for (const auto& prompt : (*reference_)["prompts"]) {
    const std::string name = prompt["name"];
    const std::vector<std::int32_t> ids = prompt["prompt_ids"];
    const std::vector<std::int32_t> greedy = prompt["greedy"];
    KvCache cache = model_->make_cache(static_cast<std::int64_t>(ids.size() + greedy.size()));
    std::vector<float> logits(vocab);
    model_->prefill(ids, cache, logits.data());

    double max_diff = 0.0;
    for (const auto& top : prompt["top5"]) {
      const double diff = std::fabs(logits[top["id"].get<int>()] - top["logit"].get<double>());
      max_diff = std::max(max_diff, diff);
    }
    EXPECT_LE(max_diff, kLogitTolerance) << name;
    EXPECT_EQ(argmax(logits), prompt["top5"][0]["id"].get<int>()) << name;

    // Free-running greedy decoding against both llama.cpp runs (its flash and non-flash
    // attention paths themselves part after 3-31 tokens on these prompts, at near-ties).
    std::vector<std::int32_t> ours;
    std::vector<float> teacher_logits = logits;
    for (std::size_t i = 0; i < greedy.size(); ++i) {
      ours.push_back(argmax(logits));
      if (i + 1 < greedy.size()) model_->decode(ours.back(), cache, logits.data());
    }
    auto agree = [&](const std::vector<std::int32_t>& ref) {
      std::size_t n = 0;
      while (n < ref.size() && n < ours.size() && ref[n] == ours[n]) ++n;
      return n;
    };
    const std::vector<std::int32_t> greedy_flash = prompt["greedy_flash_attn"];
    const std::size_t matched = std::max(agree(greedy), agree(greedy_flash));
    // Where llama.cpp's two runs part, or its top-1/top-2 margin falls below kNearTie, before
    // kMinGreedyMatch tokens, the continuation sits on a near-tie that rounding (e.g. of the f16
    // KV cache) may flip; there we ask for the tokens before it (the teacher-forced check below
    // still covers every step).
    const std::vector<double> margins = prompt["margins"];
    std::size_t stable = 0;
    while (stable < greedy.size() && greedy[stable] == greedy_flash[stable] && margins[stable] >= kNearTie) ++stable;
    EXPECT_GE(matched, std::min<std::size_t>(kMinGreedyMatch, stable)) << name;

    // Teacher-forced: feed llama.cpp's tokens; at every step its token must be our top token
    // or within the logit tolerance of it.
    KvCache forced = model_->make_cache(static_cast<std::int64_t>(ids.size() + greedy.size()));
    model_->prefill(ids, forced, teacher_logits.data());
    double worst_gap = 0.0;
    for (std::size_t i = 0; i < greedy.size(); ++i) {
      const double gap = teacher_logits[argmax(teacher_logits)] - teacher_logits[greedy[i]];
      worst_gap = std::max(worst_gap, gap);
      EXPECT_LE(gap, kLogitTolerance) << name << " step " << i;
      if (i + 1 < greedy.size()) model_->decode(greedy[i], forced, teacher_logits.data());
    }
    std::printf("[ %-11s ] %4zu prompt tokens: top-5 max |dlogit| %.3f, greedy match %zu/%zu, "
                "teacher-forced worst gap %.3f\n", name.c_str(), ids.size(), max_diff, matched, greedy.size(),
                worst_gap);
  }
}

}  // namespace
}  // namespace ls
