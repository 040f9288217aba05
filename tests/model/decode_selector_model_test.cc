// Decode selectors in the real forward pass (SmolLM2): the dense selector and a budget that
// covers the context give exactly the logits of dense decode; a sparse selector attends to
// its budget and changes the logits only a little.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <vector>

#include "core/error.h"
#include "methods/registry.h"
#include "model/gguf.h"
#include "model/model_path.h"
#include "model/transformer.h"

namespace ls {
namespace {

class DecodeSelectorModel : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    try {
      file_ = GgufFile::open(resolve_model_path("smollm2")).release();
    } catch (const Error&) {
      return;
    }
    model_ = new Transformer(*file_);
  }
  static void TearDownTestSuite() {
    delete model_;
    delete file_;
  }
  void SetUp() override {
    if (!model_) GTEST_SKIP() << "model not cached; run scripts/fetch-model smollm2";
  }
  // Prefill n tokens, then decode 3 more with `spec` (empty: no selector).
  static std::vector<float> decode_logits(const std::string& spec, int n, DecodeStats* stats = nullptr) {
    std::unique_ptr<DecodeSelector> selector;
    if (!spec.empty()) selector = MethodRegistry::instance().make_decode(spec);
    KvCache cache = model_->make_cache(n + 8);
    if (selector) cache.keep_summaries(selector->needs());
    std::vector<std::int32_t> ids(n);
    for (int i = 0; i < n; ++i) ids[i] = 1000 + (i * 37) % 5000;
    std::vector<float> logits(model_->config().vocab);
    model_->prefill(ids, cache, logits.data());
    for (std::int32_t t : {1200, 1300, 1400}) model_->decode(t, cache, logits.data(), selector.get(), stats);
    return logits;
  }

  static inline GgufFile* file_ = nullptr;
  static inline Transformer* model_ = nullptr;
};

TEST_F(DecodeSelectorModel, DenseSelectionEqualsDenseDecode) {
  const int n = 700;
  const auto plain = decode_logits("", n);
  EXPECT_EQ(decode_logits("dense", n), plain);
  EXPECT_EQ(decode_logits("quest:budget=4096", n), plain);  // the budget covers the context
}

TEST_F(DecodeSelectorModel, SparseSelectorAttendsItsBudget) {
  const int n = 1500;
  const auto plain = decode_logits("", n);
  DecodeStats stats;
  const auto quest = decode_logits("quest:budget=256", n, &stats);
  const ModelConfig& c = model_->config();
  ASSERT_EQ(stats.steps, 3);
  // Two dense layers, the others at most 256 keys per KV head (15 pages + the current, partial one).
  const double expected = 3.0 * c.kv_heads * (2.0 * (n + 2) + (c.layers - 2) * 256.0);
  EXPECT_LE(double(stats.keys_attended), expected);
  EXPECT_GT(double(stats.keys_attended), expected - 3.0 * c.kv_heads * (c.layers - 2) * 16);
  double diff = 0, norm = 0;
  for (std::size_t i = 0; i < plain.size(); ++i) {
    diff += (quest[i] - plain[i]) * (quest[i] - plain[i]);
    norm += plain[i] * plain[i];
  }
  EXPECT_GT(diff, 0.0);                      // it is sparse
  EXPECT_LT(std::sqrt(diff / norm), 0.25);   // and close
}

TEST_F(DecodeSelectorModel, MissingSummariesAreAnError) {
  auto selector = MethodRegistry::instance().make_decode("quest:budget=64");
  KvCache cache = model_->make_cache(100);
  std::vector<float> logits(model_->config().vocab);
  std::vector<std::int32_t> ids(80, 1000);
  model_->prefill(ids, cache, logits.data());
  EXPECT_THROW(model_->decode(1000, cache, logits.data(), selector.get()), Error);
}

}  // namespace
}  // namespace ls
