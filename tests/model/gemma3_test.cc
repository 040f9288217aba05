// The gemma3 architecture on a small synthetic GGUF (fp32 weights from a seeded generator):
// the forward pass against a double-precision reference written from docs/MODELS.md §4, with
// local (sliding-window, RoPE base 10k) and global (own base) layers; chunked prefill and
// continuation against one-shot prefill; decode against prefill; every KV cache type; and
// the errors for missing or inconsistent gemma3 metadata.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/gguf.h"
#include "model/layer_attention.h"
#include "model/model_config.h"
#include "model/transformer.h"
#include "model/gguf_builder.h"

namespace ls {
namespace {

// Shape of the synthetic model: 6 layers (5 local + 1 global by the default pattern), and a
// window short enough that the prompts below cross it.
constexpr int kLayers = 6, kEmbd = 64, kHeads = 2, kKvHeads = 1, kDim = 32, kFfn = 96, kVocab = 50;
constexpr int kWindow = 8, kContext = 128;
constexpr double kGlobalTheta = 1e6, kLocalTheta = 1e4;

struct Tensor {
  std::string name;
  std::vector<std::uint64_t> dims;  // GGUF order: dims[0] is the row length
  std::vector<float> data;
};

struct SyntheticGemma {
  std::vector<Tensor> tensors;
  std::map<std::string, const Tensor*> by_name;
  std::vector<std::uint8_t> bytes;

  const std::vector<float>& w(const std::string& name) const { return by_name.at(name)->data; }
};

enum class Omit { None, SlidingWindow, KeyLength, QNorm };

SyntheticGemma make_gemma(Omit omit = Omit::None, std::uint32_t value_length = kDim) {
  SyntheticGemma g;
  std::mt19937 rng(42);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  auto add = [&](std::string name, std::vector<std::uint64_t> dims, float sigma, float mean = 0.0f) {
    Tensor t{std::move(name), std::move(dims), {}};
    std::uint64_t n = 1;
    for (auto d : t.dims) n *= d;
    t.data.resize(n);
    for (float& x : t.data) x = mean + sigma * normal(rng);
    g.tensors.push_back(std::move(t));
  };
  add("token_embd.weight", {kEmbd, kVocab}, 0.2f);
  for (int l = 0; l < kLayers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    add(p + "attn_norm.weight", {kEmbd}, 0.1f, 1.0f);
    add(p + "attn_q.weight", {kEmbd, kHeads * kDim}, 0.15f);
    add(p + "attn_k.weight", {kEmbd, kKvHeads * kDim}, 0.15f);
    add(p + "attn_v.weight", {kEmbd, kKvHeads * kDim}, 0.15f);
    if (!(omit == Omit::QNorm && l == 3)) add(p + "attn_q_norm.weight", {kDim}, 0.1f, 1.0f);
    add(p + "attn_k_norm.weight", {kDim}, 0.1f, 1.0f);
    add(p + "attn_output.weight", {kHeads * kDim, kEmbd}, 0.15f);
    add(p + "post_attention_norm.weight", {kEmbd}, 0.1f, 0.5f);
    add(p + "ffn_norm.weight", {kEmbd}, 0.1f, 1.0f);
    add(p + "ffn_gate.weight", {kEmbd, kFfn}, 0.15f);
    add(p + "ffn_up.weight", {kEmbd, kFfn}, 0.15f);
    add(p + "ffn_down.weight", {kFfn, kEmbd}, 0.15f);
    add(p + "post_ffw_norm.weight", {kEmbd}, 0.1f, 0.5f);
  }
  add("output_norm.weight", {kEmbd}, 0.1f, 1.0f);
  for (const Tensor& t : g.tensors) g.by_name[t.name] = &t;

  testing::GgufBuilder b;
  std::uint64_t kvs = 11 - (omit == Omit::SlidingWindow) - (omit == Omit::KeyLength);
  b.header(3, g.tensors.size(), kvs);
  b.kv_str("general.architecture", "gemma3");
  b.kv_u32("gemma3.block_count", kLayers);
  b.kv_u32("gemma3.embedding_length", kEmbd);
  b.kv_u32("gemma3.feed_forward_length", kFfn);
  b.kv_u32("gemma3.attention.head_count", kHeads);
  b.kv_u32("gemma3.attention.head_count_kv", kKvHeads);
  if (omit != Omit::KeyLength) b.kv_u32("gemma3.attention.key_length", kDim);
  b.kv_u32("gemma3.attention.value_length", value_length);
  if (omit != Omit::SlidingWindow) b.kv_u32("gemma3.attention.sliding_window", kWindow);
  b.kv_u32("gemma3.context_length", kContext);
  b.key("gemma3.rope.freq_base", 6).put<float>(float(kGlobalTheta));
  std::uint64_t offset = 0;
  for (const Tensor& t : g.tensors) {
    b.tensor(t.name, t.dims, /*F32*/ 0, offset);
    offset += (t.data.size() * 4 + 31) / 32 * 32;
  }
  b.pad_to(32);
  for (const Tensor& t : g.tensors) {
    b.data(t.data.data(), t.data.size() * 4);
    b.pad_to(32);
  }
  g.bytes = std::move(b.bytes);
  return g;
}

// ---- The reference: docs/MODELS.md §4 block order, in double, one position at a time. ----
using Vec = std::vector<double>;

Vec rms_norm(const Vec& x, const std::vector<float>& w, std::size_t offset = 0, std::size_t n = 0) {
  n = n ? n : x.size();
  double ss = 0;
  for (std::size_t i = 0; i < n; ++i) ss += x[offset + i] * x[offset + i];
  const double s = 1.0 / std::sqrt(ss / double(n) + 1e-6);
  Vec out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = x[offset + i] * s * w[i];
  return out;
}

// y [rows] = W x with W stored as GGUF [cols, rows] (rows of cols contiguous).
Vec matvec(const std::vector<float>& w, const Vec& x, std::size_t rows) {
  Vec y(rows, 0.0);
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t c = 0; c < x.size(); ++c) y[r] += double(w[r * x.size() + c]) * x[c];
  return y;
}

void rope_neox(double* v, std::int64_t pos, double theta) {
  const int half = kDim / 2;
  for (int i = 0; i < half; ++i) {
    const double angle = double(pos) * std::pow(theta, -2.0 * i / kDim);
    const double a = v[i], b = v[i + half];
    v[i] = a * std::cos(angle) - b * std::sin(angle);
    v[i + half] = a * std::sin(angle) + b * std::cos(angle);
  }
}

// Logits after each of the tokens (teacher-forced), in double.
std::vector<Vec> reference_logits(const SyntheticGemma& g, const std::vector<std::int32_t>& tokens) {
  const std::size_t n = tokens.size();
  std::vector<Vec> x(n, Vec(kEmbd));
  for (std::size_t t = 0; t < n; ++t)
    for (int i = 0; i < kEmbd; ++i) x[t][i] = g.w("token_embd.weight")[tokens[t] * kEmbd + i] * std::sqrt(double(kEmbd));
  for (int l = 0; l < kLayers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    const bool local = l % 6 < 5;
    const double theta = local ? kLocalTheta : kGlobalTheta;
    std::vector<Vec> q(n), k(n), v(n);
    for (std::size_t t = 0; t < n; ++t) {
      const Vec h = rms_norm(x[t], g.w(p + "attn_norm.weight"));
      q[t] = matvec(g.w(p + "attn_q.weight"), h, kHeads * kDim);
      k[t] = matvec(g.w(p + "attn_k.weight"), h, kDim);
      v[t] = matvec(g.w(p + "attn_v.weight"), h, kDim);
      for (int hd = 0; hd < kHeads; ++hd) {
        const Vec qn = rms_norm(q[t], g.w(p + "attn_q_norm.weight"), hd * kDim, kDim);
        std::copy(qn.begin(), qn.end(), q[t].begin() + hd * kDim);
        rope_neox(q[t].data() + hd * kDim, std::int64_t(t), theta);
      }
      k[t] = rms_norm(k[t], g.w(p + "attn_k_norm.weight"));
      rope_neox(k[t].data(), std::int64_t(t), theta);
    }
    for (std::size_t t = 0; t < n; ++t) {
      Vec a(kHeads * kDim, 0.0);
      const std::size_t first = local && t + 1 > std::size_t(kWindow) ? t + 1 - kWindow : 0;
      for (int hd = 0; hd < kHeads; ++hd) {
        std::vector<double> s;
        double mx = -1e300;
        for (std::size_t j = first; j <= t; ++j) {
          double dot = 0;
          for (int e = 0; e < kDim; ++e) dot += q[t][hd * kDim + e] * k[j][e];
          s.push_back(dot / std::sqrt(double(kDim)));
          mx = std::max(mx, s.back());
        }
        double sum = 0;
        for (double& e : s) sum += (e = std::exp(e - mx));
        for (std::size_t j = first; j <= t; ++j)
          for (int e = 0; e < kDim; ++e) a[hd * kDim + e] += s[j - first] / sum * v[j][e];
      }
      const Vec o = rms_norm(matvec(g.w(p + "attn_output.weight"), a, kEmbd), g.w(p + "post_attention_norm.weight"));
      for (int i = 0; i < kEmbd; ++i) x[t][i] += o[i];
      const Vec h = rms_norm(x[t], g.w(p + "ffn_norm.weight"));
      const Vec gate = matvec(g.w(p + "ffn_gate.weight"), h, kFfn), up = matvec(g.w(p + "ffn_up.weight"), h, kFfn);
      Vec act(kFfn);
      for (int i = 0; i < kFfn; ++i) {
        const double z = gate[i];
        act[i] = 0.5 * z * (1 + std::tanh(std::sqrt(2.0 / M_PI) * (z + 0.044715 * z * z * z))) * up[i];
      }
      const Vec f = rms_norm(matvec(g.w(p + "ffn_down.weight"), act, kEmbd), g.w(p + "post_ffw_norm.weight"));
      for (int i = 0; i < kEmbd; ++i) x[t][i] += f[i];
    }
  }
  std::vector<Vec> logits;
  for (std::size_t t = 0; t < n; ++t) logits.push_back(matvec(g.w("token_embd.weight"), rms_norm(x[t], g.w("output_norm.weight")), kVocab));
  return logits;
}

std::vector<std::int32_t> prompt(int n) {
  std::vector<std::int32_t> out;
  for (int i = 0; i < n; ++i) out.push_back((i * 7 + 3) % kVocab);
  return out;
}

double max_diff(const std::vector<float>& a, const Vec& b) {
  double d = 0;
  for (std::size_t i = 0; i < b.size(); ++i) d = std::max(d, std::fabs(double(a[i]) - b[i]));
  return d;
}

class Gemma3Synthetic : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = make_gemma();
    file_ = GgufFile::parse(model_.bytes.data(), model_.bytes.size(), "gemma3-synthetic.gguf");
    transformer_ = std::make_unique<Transformer>(*file_);
  }
  SyntheticGemma model_;
  std::unique_ptr<GgufFile> file_;
  std::unique_ptr<Transformer> transformer_;
};

TEST_F(Gemma3Synthetic, ConfigReadsTheArchitectureAsData) {
  const ModelConfig& c = transformer_->config();
  EXPECT_EQ(c.layer_pattern(), "LLLLLG");
  EXPECT_EQ(c.global_layers(), std::vector<int>{5});
  EXPECT_EQ(c.layer[0].window, kWindow);
  EXPECT_EQ(c.layer[0].rope_theta, kLocalTheta);
  EXPECT_EQ(c.layer[5].rope_theta, kGlobalTheta);
  EXPECT_EQ(c.rope_style, RopeStyle::Neox);
  EXPECT_EQ(c.activation, Activation::GeluTanh);
  EXPECT_TRUE(c.qk_norm && c.post_norms);
  EXPECT_FLOAT_EQ(c.embedding_scale, std::sqrt(float(kEmbd)));
  EXPECT_FLOAT_EQ(c.attention_scale, 1.0f / std::sqrt(float(kDim)));
}

// 40 tokens cross the window of 8 five times over; fp32 against double, f32 cache.
TEST_F(Gemma3Synthetic, PrefillMatchesDoubleReference) {
  const auto tokens = prompt(40);
  const std::vector<Vec> expected = reference_logits(model_, tokens);
  KvCache cache = transformer_->make_cache(kContext, KvType::F32, KvType::F32);
  std::vector<float> logits(kVocab);
  transformer_->prefill(tokens, cache, logits.data());
  EXPECT_LT(max_diff(logits, expected.back()), 2e-3);
  // A wrong detail (e.g. the local base used in the global layer) moves the logits by far more.
  double spread = 0;
  for (double v : expected.back()) spread = std::max(spread, std::fabs(v));
  EXPECT_GT(spread, 0.5);
}

// Decode after a prefill gives the teacher-forced reference logits at every step, with the
// local layers' rings wrapping; each KV cache type stays within its rounding.
TEST_F(Gemma3Synthetic, DecodeMatchesReferenceInEveryCacheType) {
  const auto tokens = prompt(30);
  const std::vector<Vec> expected = reference_logits(model_, tokens);
  for (KvType type : {KvType::F32, KvType::F16, KvType::BF16, KvType::Q8_0}) {
    KvCache cache = transformer_->make_cache(kContext, type, type);
    std::vector<float> logits(kVocab);
    transformer_->prefill(std::span(tokens).first(10), cache, logits.data());
    double worst = max_diff(logits, expected[9]);
    for (int t = 10; t < 30; ++t) {
      transformer_->decode(tokens[t], cache, logits.data());
      worst = std::max(worst, max_diff(logits, expected[t]));
    }
    const double bound = type == KvType::F32 ? 2e-3 : type == KvType::F16 ? 5e-3 : 5e-2;
    EXPECT_LT(worst, bound) << kv_type_name(type);
    EXPECT_EQ(cache.size(), 30);
  }
}

// Chunked prefill (chunks shorter and longer than the window, the cached keys read in
// segments, and a continuation into a filled cache) equals one-shot prefill.
TEST_F(Gemma3Synthetic, ChunkedPrefillEqualsOneShot) {
  const auto tokens = prompt(50);
  std::vector<float> one_shot(kVocab), chunked(kVocab);
  KvCache a = transformer_->make_cache(kContext, KvType::F32, KvType::F32);
  transformer_->prefill(tokens, a, one_shot.data());
  for (std::int64_t ubatch : {1, 3, 8, 13, 64}) {
    KvCache b = transformer_->make_cache(kContext, KvType::F32, KvType::F32);
    transformer_->prefill(tokens, b, chunked.data(), {}, ubatch);
    for (int i = 0; i < kVocab; ++i) ASSERT_NEAR(chunked[i], one_shot[i], 1e-4) << "ubatch " << ubatch;
  }
  // The cached keys read in segments shorter than the cache, in the stored type: f32 equals
  // the one-shot; f16 equals the f16 run in one segment (and differs from the one-shot only by
  // the rounding of the cached keys, which the one-shot's own batch never sees).
  std::vector<float> whole16(kVocab);
  KvCache w16 = transformer_->make_cache(kContext, KvType::F16, KvType::F16);
  transformer_->prefill(tokens, w16, whole16.data(), {}, 8);
  for (int i = 0; i < kVocab; ++i) ASSERT_NEAR(whole16[i], one_shot[i], 5e-3);
  for (std::int64_t segment : {1, 5, 16}) {
    transformer_->set_cache_segment(segment);
    for (KvType type : {KvType::F32, KvType::F16}) {
      KvCache b = transformer_->make_cache(kContext, type, type);
      transformer_->prefill(tokens, b, chunked.data(), {}, 8);
      const std::vector<float>& expected = type == KvType::F32 ? one_shot : whole16;
      for (int i = 0; i < kVocab; ++i)
        ASSERT_NEAR(chunked[i], expected[i], 1e-4) << "segment " << segment << " " << kv_type_name(type);
    }
  }
  transformer_->set_cache_segment(4096);
  KvCache c = transformer_->make_cache(kContext, KvType::F32, KvType::F32);
  transformer_->prefill(std::span(tokens).first(21), c, chunked.data());
  transformer_->prefill(std::span(tokens).subspan(21), c, chunked.data());  // the next turn
  for (int i = 0; i < kVocab; ++i) ASSERT_NEAR(chunked[i], one_shot[i], 1e-4);
  EXPECT_THROW(transformer_->prefill(prompt(kContext), c, chunked.data()), Error);  // beyond the context
}

// Prefill's timing separates plan building (what the layer attention reports as estimate
// time) from the attention itself, for every call it makes.
TEST_F(Gemma3Synthetic, PrefillStatsSeparateThePlanBuilding) {
  struct Planning final : LayerAttention {
    int calls = 0;
    void prefill(int, const AttnInput& in, const FarVectors&, float* out) override {
      ++calls;
      dense_attention(in, out);
    }
    double estimate_ms() const override { return 2.5 * calls; }
  } planning;
  KvCache cache = transformer_->make_cache(kContext);
  std::vector<float> logits(kVocab);
  PrefillHooks hooks;
  hooks.attention = &planning;
  const PrefillStats stats = transformer_->prefill(prompt(20), cache, logits.data(), hooks, /*ubatch=*/7);
  ASSERT_GT(planning.calls, 0);
  EXPECT_DOUBLE_EQ(stats.estimate_ms, 2.5 * planning.calls);
}

// PrefillHooks::logits: every position from logits_from on, once and in order, matches the
// teacher-forced reference; the last row is the logits prefill writes (up to sgemm's rounding
// of a block of rows against one row); chunked prefill (-ub)
// gives the same rows at their absolute positions.
TEST_F(Gemma3Synthetic, EveryPositionLogitsMatchTheReference) {
  const auto tokens = prompt(40);
  const std::vector<Vec> expected = reference_logits(model_, tokens);
  for (std::int64_t ubatch : {0, 13}) {
    std::vector<std::int64_t> positions;
    std::vector<std::vector<float>> rows;
    PrefillHooks hooks;
    hooks.logits_from = 12;
    hooks.logits = [&](std::int64_t first, std::int64_t n, const float* logits) {
      for (std::int64_t r = 0; r < n; ++r) {
        positions.push_back(first + r);
        rows.emplace_back(logits + r * kVocab, logits + (r + 1) * kVocab);
      }
    };
    KvCache cache = transformer_->make_cache(kContext, KvType::F32, KvType::F32);
    std::vector<float> last(kVocab);
    transformer_->prefill(tokens, cache, last.data(), hooks, ubatch);
    ASSERT_EQ(positions.size(), 28u) << "ubatch " << ubatch;
    for (std::size_t i = 0; i < positions.size(); ++i) {
      ASSERT_EQ(positions[i], 12 + std::int64_t(i)) << "ubatch " << ubatch;
      EXPECT_LT(max_diff(rows[i], expected[positions[i]]), 2e-3) << "position " << positions[i];
    }
    for (int i = 0; i < kVocab; ++i) ASSERT_NEAR(rows.back()[i], last[i], 1e-5) << "ubatch " << ubatch;
  }
}

TEST_F(Gemma3Synthetic, LocalLayersKeepOnlyTheirWindow) {
  KvCache cache = transformer_->make_cache(kContext);
  EXPECT_TRUE(cache.is_ring(0));
  EXPECT_EQ(cache.slots(0), kWindow);
  EXPECT_FALSE(cache.is_ring(5));
  EXPECT_EQ(cache.slots(5), kContext);
  EXPECT_EQ(cache.key_type(), KvType::F16);  // llama.cpp's default
}

TEST(Gemma3Config, MissingOrInconsistentKeysAreClearErrors) {
  auto expect_error = [](Omit omit, std::uint32_t value_length, const std::string& needle) {
    const SyntheticGemma g = make_gemma(omit, value_length);
    auto file = GgufFile::parse(g.bytes.data(), g.bytes.size(), "bad.gguf");
    try {
      Transformer model(*file);
      ADD_FAILURE() << "no error for " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error(Omit::SlidingWindow, kDim, "gemma3.attention.sliding_window");
  expect_error(Omit::KeyLength, kDim, "gemma3.attention.key_length");
  expect_error(Omit::None, kDim / 2, "different key and value head sizes");
  expect_error(Omit::QNorm, kDim, "blk.3.attn_q_norm.weight");
}

}  // namespace
}  // namespace ls
