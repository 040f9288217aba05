// nsa-select — blockwise selection from compressed keys (NSA / InfLLM-V2, parameter-free).
//
// Papers: NSA, "Native Sparse Attention" (Yuan et al., ACL 2025), §3.3.1–3.3.2: compressed
// keys are pooled over blocks of l = 32 keys with stride d = 16; the query's attention over
// them, summed over the heads of a GQA group, scores the selection blocks of l' = 64 keys
// that they overlap; the top-n blocks are attended. InfLLM-V2 (MiniCPM4 report, Team OpenBMB
// 2025, §2.1.1) makes the compression parameter-free (mean pooling) and adds the initial block
// and a local window; its released sparse config: kernel 32, stride 16, block 64, topk 64,
// init_blocks 1, window 2048, dense below 8192 tokens. We follow InfLLM-V2.
//
// Parameters
//   budget      = 6208  keys attended per KV head: init blocks + window + selected blocks
//                       (64·64 + 64 + 2048, the released config)
//   block       = 64    tokens per selection block (l')
//   window      = 2048  most recent keys always attended
//   init        = 1     initial blocks always attended
//   min_context = 8192  shorter contexts attend densely (dense_len)
// Compressed key i is the mean of keys [16i, 16i + 32) (the mean of two 16-key block means);
// block j's score is the largest group-summed probability of a compressed key overlapping it.
// When the budget cannot hold the window and one block, the window shrinks to a third of what
// the initial blocks leave (a multiple of `block`), so small budgets still select blocks.
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "methods/registry.h"

namespace ls {
namespace {

constexpr std::int64_t kStride = 16, kKernel = 32;

class NsaSelect final : public DecodeSelector {
 public:
  NsaSelect(std::int64_t budget, std::int64_t block, std::int64_t window, std::int64_t init, std::int64_t min_context)
      : budget_(budget), block_(block), window_(window), init_(init), min_context_(min_context) {
    LS_CHECK(block % kStride == 0, "nsa-select: block {} must be a multiple of {}", block, kStride);
    const std::int64_t left = budget - init * block;
    decode::check_budget("nsa-select", budget, init * block + block - 1);
    if (window_ + block_ > left) window_ = std::max<std::int64_t>(block_, left / 3 / block_ * block_);
    topk_ = (left - window_) / block_;
    LS_CHECK(topk_ >= 1, "nsa-select: budget {} holds no selected block of {} keys besides the window of {}", budget,
             block, window_);
  }
  SummaryNeeds needs() const override { return {kSummaryBlockMean, 16, kStride}; }
  std::int64_t budget() const override { return budget_; }

  std::int64_t select(const DecodeQuery& query, const DecodeKeys& keys, Selection& out) override {
    const std::int64_t n = keys.size();
    if (n < min_context_ || n <= budget_) {
      decode::select_dense(keys, out);
      return 0;
    }
    const int dim = keys.dim(), group = query.heads / keys.kv_heads();
    const std::int64_t compressed = (n - kKernel) / kStride + 1;  // complete compressed keys
    const std::int64_t window_begin = n - window_;
    // Candidate blocks: after the initial ones and before the first block the window covers fully.
    const std::int64_t first = init_, last = window_begin / block_;  // blocks [first, last)
    std::vector<float> ck(static_cast<std::size_t>(dim)), p(static_cast<std::size_t>(compressed));
    block_scores_.assign(static_cast<std::size_t>(std::max<std::int64_t>(last - first, 0)), 0.0f);
    out.reset(keys.kv_heads(), n);
    for (int g = 0; g < keys.kv_heads(); ++g) {
      const float* mean = keys.block_mean(g);
      LS_CHECK(mean && keys.block_size() == kStride, "nsa-select: the cache keeps no block means of {} keys", kStride);
      std::fill(block_scores_.begin(), block_scores_.end(), 0.0f);
      std::vector<float> sum(static_cast<std::size_t>(compressed), 0.0f);
      for (int i = 0; i < group; ++i) {
        const float* q = query.q + std::int64_t(g * group + i) * dim;
        float max = -INFINITY;
        for (std::int64_t c = 0; c < compressed; ++c) {
          const float* a = mean + c * dim;
          const float* b = a + dim;
          float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
          for (int e = 0; e < dim; ++e) dot += q[e] * 0.5f * (a[e] + b[e]);
          p[c] = dot * query.scale;
          max = std::max(max, p[c]);
        }
        double total = 0;
        for (std::int64_t c = 0; c < compressed; ++c) total += p[c] = std::exp(p[c] - max);
        for (std::int64_t c = 0; c < compressed; ++c) sum[c] += float(p[c] / total);
      }
      for (std::int64_t j = first; j < last; ++j) {
        // Compressed keys [16c, 16c + 32) overlapping [j·block, (j+1)·block).
        const std::int64_t c0 = std::max<std::int64_t>(0, (j * block_ - kKernel) / kStride + 1);
        const std::int64_t c1 = std::min(compressed, ((j + 1) * block_ - 1) / kStride + 1);
        float best = 0.0f;
        for (std::int64_t c = c0; c < c1; ++c) best = std::max(best, sum[c]);
        block_scores_[j - first] = best;
      }
      for (std::int64_t j : decode::top_k(block_scores_.data(), last - first, topk_))
        out.add(g, (first + j) * block_, (first + j + 1) * block_);
      out.add(g, 0, init_ * block_);
      out.add(g, window_begin, n);
    }
    out.finish();
    return std::int64_t(keys.kv_heads()) * (compressed + 1) * dim * 4;
  }

 private:
  std::int64_t budget_, block_, window_, init_, min_context_, topk_ = 0;
  std::vector<float> block_scores_;
};

MethodInfo nsa_select_info() {
  MethodInfo info;
  info.name = "nsa-select";
  info.phase = "decode";
  info.paper = "NSA (Yuan et al., ACL 2025) §3.3; InfLLM-V2 (MiniCPM4, OpenBMB 2025) §2.1.1";
  info.summary = "top 64-key blocks scored by mean-pooled compressed keys, + initial block + local window";
  using K = ParamSpec::Kind;
  info.params = {
      {"budget", "6208", "keys attended per KV head: init blocks + window + selected blocks", K::Int, 2, 1e9, {}},
      {"block", "64", "tokens per selection block (a multiple of 16)", K::Int, 16, 4096, {}},
      {"window", "2048", "most recent keys always attended", K::Int, 1, 1e9, {}},
      {"init", "1", "initial blocks always attended", K::Int, 0, 1e6, {}},
      {"min_context", "8192", "contexts shorter than this attend densely", K::Int, 0, 1e9, {}},
  };
  info.make_decode = [](const Params& p) {
    return std::make_unique<NsaSelect>(p.get_int("budget"), p.get_int("block"), p.get_int("window"),
                                       p.get_int("init"), p.get_int("min_context"));
  };
  return info;
}

LS_REGISTER_METHOD(nsa_select_info());

}  // namespace
}  // namespace ls
