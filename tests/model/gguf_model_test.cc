// The reader and dequantization on the real default model (SmolLM2-135M-Instruct, Q4_1), whose
// expected contents are in docs/MODELS.md §2.2 and §3. `make test` fetches the file first.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <vector>

#include "core/error.h"
#include "model/gguf.h"
#include "model/model_path.h"
#include "model/quant.h"

namespace ls {
namespace {

std::unique_ptr<GgufFile> open_default_model() {
  std::string path;
  try {
    path = resolve_model_path("smollm2");
  } catch (const Error& e) {
    ADD_FAILURE() << e.what() << " (run scripts/fetch-model smollm2, or `make test`)";
    return nullptr;
  }
  return GgufFile::open(path);
}

TEST(GgufModel, SmolLM2Metadata) {
  auto f = open_default_model();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->alignment(), 32u);
  EXPECT_EQ(f->get_string("general.architecture", ""), "llama");
  EXPECT_EQ(f->get_int("general.file_type", -1), 3);  // MOSTLY_Q4_1
  EXPECT_EQ(f->get_int("llama.block_count", 0), 30);
  EXPECT_EQ(f->get_int("llama.embedding_length", 0), 576);
  EXPECT_EQ(f->get_int("llama.feed_forward_length", 0), 1536);
  EXPECT_EQ(f->get_int("llama.attention.head_count", 0), 9);
  EXPECT_EQ(f->get_int("llama.attention.head_count_kv", 0), 3);
  EXPECT_EQ(f->get_int("llama.context_length", 0), 8192);
  EXPECT_EQ(f->get_int("llama.rope.dimension_count", 0), 64);
  EXPECT_FLOAT_EQ(static_cast<float>(f->get_float("llama.rope.freq_base", 0)), 100000.0f);
  EXPECT_FLOAT_EQ(static_cast<float>(f->get_float("llama.attention.layer_norm_rms_epsilon", 0)), 1e-5f);
  EXPECT_EQ(f->get_string("tokenizer.ggml.model", ""), "gpt2");
  EXPECT_EQ(f->get_string("tokenizer.ggml.pre", ""), "smollm");
  const auto& tokens = f->get("tokenizer.ggml.tokens").as_array();
  ASSERT_EQ(tokens.size(), 49152u);
  EXPECT_EQ(tokens[1].as_string(), "<|im_start|>");
  EXPECT_EQ(tokens[2].as_string(), "<|im_end|>");
  EXPECT_EQ(f->get("tokenizer.ggml.token_type").as_array().size(), 49152u);
  const auto& merges = f->get("tokenizer.ggml.merges").as_array();
  EXPECT_EQ(merges.size(), 48900u);
  EXPECT_EQ(merges[0].as_string(), "Ġ t");
  EXPECT_EQ(f->get_int("tokenizer.ggml.bos_token_id", -1), 1);
  EXPECT_EQ(f->get_int("tokenizer.ggml.eos_token_id", -1), 2);
  EXPECT_FALSE(f->get("tokenizer.ggml.add_bos_token").as_bool());
  EXPECT_NE(f->get_string("tokenizer.chat_template", "").find("<|im_start|>"), std::string::npos);
}

TEST(GgufModel, SmolLM2Tensors) {
  auto f = open_default_model();
  ASSERT_TRUE(f);
  ASSERT_EQ(f->tensors().size(), 272u);  // 30 layers × 9 + token_embd + output_norm
  EXPECT_EQ(f->find_tensor("output.weight"), nullptr);  // tied embeddings
  const GgufTensor& embd = f->tensor("token_embd.weight");
  EXPECT_EQ(embd.type, GgmlType::Q8_0);
  EXPECT_EQ(embd.dims, (std::vector<std::int64_t>{576, 49152}));
  EXPECT_EQ(embd.bytes, 30081024u);
  const GgufTensor& q = f->tensor("blk.0.attn_q.weight");
  EXPECT_EQ(q.type, GgmlType::Q4_1);
  EXPECT_EQ(q.dims, (std::vector<std::int64_t>{576, 576}));
  EXPECT_EQ(q.bytes, 207360u);
  const GgufTensor& k = f->tensor("blk.29.attn_k.weight");
  EXPECT_EQ(k.dims, (std::vector<std::int64_t>{576, 192}));
  EXPECT_EQ(f->tensor("blk.7.ffn_down.weight").dims, (std::vector<std::int64_t>{1536, 576}));
  EXPECT_EQ(f->tensor("output_norm.weight").type, GgmlType::F32);
  std::map<GgmlType, int> counts;
  std::uint64_t data_bytes = 0;
  for (const GgufTensor& t : f->tensors()) {
    ++counts[t.type];
    data_bytes += t.bytes;
  }
  EXPECT_EQ(counts[GgmlType::Q4_1], 210);  // 7 matrices × 30 layers
  EXPECT_EQ(counts[GgmlType::F32], 61);    // 2 norms × 30 layers + output_norm
  EXPECT_EQ(counts[GgmlType::Q8_0], 1);
  EXPECT_LE(f->data_start() + data_bytes, f->file_size());
}

// Every tensor dequantizes to finite values, the vector and scalar paths agree, and the
// weights have the magnitudes a trained model has (not all zeros, not garbage).
TEST(GgufModel, EveryTensorDequantizes) {
  auto f = open_default_model();
  ASSERT_TRUE(f);
  std::vector<float> fast, ref;
  for (const GgufTensor& t : f->tensors()) {
    ASSERT_TRUE(can_dequantize(t.type)) << t.name;
    const std::int64_t ne0 = t.dims[0];
    fast.resize(ne0);
    ref.resize(ne0);
    double sum_sq = 0;
    float max_abs = 0;
    for (std::int64_t r = 0; r < t.rows(); ++r) {
      dequantize_rows(t, r, 1, fast.data());
      dequantize_row_reference(t.type, t.data + r * t.row_bytes(), ref.data(), ne0);
      for (std::int64_t i = 0; i < ne0; ++i) {
        ASSERT_TRUE(std::isfinite(fast[i])) << t.name << " row " << r << " element " << i;
        ASSERT_NEAR(fast[i], ref[i], 1e-6f * std::abs(ref[i]) + 1e-7f) << t.name;
        sum_sq += static_cast<double>(fast[i]) * fast[i];
        max_abs = std::max(max_abs, std::abs(fast[i]));
      }
    }
    const double rms = std::sqrt(sum_sq / static_cast<double>(t.elements()));
    EXPECT_GT(rms, 1e-3) << t.name;
    EXPECT_LT(max_abs, 100.0f) << t.name;
  }
}

}  // namespace
}  // namespace ls
