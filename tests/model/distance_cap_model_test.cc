// LM-Infinite's RoPE distance cap in the forward pass, on the real SmolLM2 model: the vectors
// the model hands to a capped layer score any pair exactly as RoPE scores a pair `limit`
// apart, and `lambda`'s limit changes the logits only when some pair is farther apart.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <vector>

#include "core/error.h"
#include "methods/policy.h"
#include "model/gguf.h"
#include "model/transformer.h"
#include "model/model_path.h"
#include "model/sparse_prefill.h"

namespace ls {
namespace {

class DistanceCapModel : public testing::Test {
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
  static std::vector<std::int32_t> prompt(int n) {
    std::vector<std::int32_t> ids(n);
    for (int i = 0; i < n; ++i) ids[i] = 1000 + (i * 37) % 5000;
    return ids;
  }
  static std::vector<float> logits_with(const std::string& spec, int n) {
    SparsePrefill attention{Policy(spec)};
    KvCache cache = model_->make_cache(n);
    std::vector<float> logits(model_->config().vocab);
    PrefillHooks hooks;
    hooks.attention = &attention;
    model_->prefill(prompt(n), cache, logits.data(), hooks);
    return logits;
  }

  static inline GgufFile* file_ = nullptr;
  static inline Transformer* model_ = nullptr;
};

// Asks for a cap in every layer and checks, for every head, query and the key `limit` behind
// it, that far.q · far.k equals the post-RoPE q · k of that pair; then attends densely.
class CheckingAttention final : public LayerAttention {
 public:
  explicit CheckingAttention(std::int64_t limit) : limit_(limit) {}
  std::int64_t distance_limit(int, int) const override { return limit_; }
  void prefill(int, const AttnInput& in, const FarVectors& far, float* out) override {
    ++calls;
    const AttnShape& s = in.shape;
    EXPECT_EQ(far.limit, limit_);
    if (far.limit != limit_) return dense_attention(in, out);
    for (int h = 0; h < s.heads; ++h) {
      const int g = s.kv_head_of(h);
      for (std::int64_t i = limit_; i < s.n_q; i += 7) {
        const std::int64_t key = i - limit_;
        double rotated = 0.0, far_dot = 0.0, scale = 0.0;
        for (int c = 0; c < s.dim; ++c) {
          rotated += double(in.q_row(h, i)[c]) * in.k_row(g, key)[c];
          far_dot += double(far.q[(std::int64_t(h) * s.n_q + i) * s.dim + c]) * far.k[(g * s.n_k + key) * s.dim + c];
          scale += std::fabs(double(in.q_row(h, i)[c]) * in.k_row(g, key)[c]);
        }
        if (std::fabs(rotated - far_dot) > 1e-4 * scale + 1e-4) {
          ADD_FAILURE() << "head " << h << " query " << i << ": q·k at distance " << limit_ << " is " << rotated
                        << ", far vectors give " << far_dot;
          return dense_attention(in, out);
        }
      }
    }
    dense_attention(in, out);
  }
  int calls = 0;

 private:
  std::int64_t limit_;
};

TEST_F(DistanceCapModel, FarVectorsScoreAsRopeAtTheLimit) {
  CheckingAttention attention(150);
  KvCache cache = model_->make_cache(300);
  std::vector<float> logits(model_->config().vocab);
  PrefillHooks hooks;
  hooks.attention = &attention;
  model_->prefill(prompt(300), cache, logits.data(), hooks);
  EXPECT_EQ(attention.calls, model_->config().layers);
}

TEST_F(DistanceCapModel, LambdaLimitChangesLogitsOnlyWhenItBinds) {
  const int n = 400;
  const std::vector<float> plain = logits_with("lambda:global=16,local=128,limit=0", n);
  const std::vector<float> loose = logits_with("lambda:global=16,local=128,limit=399", n);
  const std::vector<float> capped = logits_with("lambda:global=16,local=128,limit=200", n);
  EXPECT_EQ(plain, loose);  // no pair is more than 399 apart: the cap never binds
  double diff = 0.0;
  for (std::size_t i = 0; i < plain.size(); ++i) diff = std::max(diff, double(std::fabs(plain[i] - capped[i])));
  EXPECT_GT(diff, 1e-3);
}

}  // namespace
}  // namespace ls
