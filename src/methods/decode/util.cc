// Helpers shared by the decode selectors (methods/decode_method.h).
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"
#include "methods/decode_method.h"

namespace ls::decode {

std::vector<std::int64_t> top_k(const float* scores, std::int64_t n, std::int64_t k) {
  std::vector<std::int64_t> index(static_cast<std::size_t>(n));
  std::iota(index.begin(), index.end(), 0);
  if (k < n) {
    std::nth_element(index.begin(), index.begin() + k, index.end(), [&](std::int64_t a, std::int64_t b) {
      return scores[a] != scores[b] ? scores[a] > scores[b] : a < b;
    });
    index.resize(static_cast<std::size_t>(std::max<std::int64_t>(k, 0)));
  }
  std::sort(index.begin(), index.end());
  return index;
}

void select_dense(const DecodeKeys& keys, Selection& out) { out.set_dense(keys.kv_heads(), keys.size()); }

void page_upper_bounds(const DecodeQuery& query, const DecodeKeys& keys, int g, std::int64_t pages, float* out) {
  const float* mn = keys.page_min(g);
  const float* mx = keys.page_max(g);
  LS_CHECK(mn && mx, "page min/max summaries are not kept in this cache");
  LS_CHECK(pages <= (keys.size() + keys.page_size() - 1) / keys.page_size(), "{} pages of {} keys over {} keys", pages,
           keys.page_size(), keys.size());
  const int dim = keys.dim(), group = query.heads / keys.kv_heads();
  const float* q = query.q + std::int64_t(g * group) * dim;
  // Pages in parallel blocks: each page's summary is read once for the whole group.
  constexpr std::int64_t kBlock = 256;
  parallel_for((pages + kBlock - 1) / kBlock, [&](std::int64_t block) {
    for (std::int64_t p = block * kBlock; p < std::min(pages, (block + 1) * kBlock); ++p) {
      const float* a = mn + p * dim;
      const float* b = mx + p * dim;
      float bound = 0.0f;
      for (int i = 0; i < group; ++i) {
        const float* qi = q + std::int64_t(i) * dim;
#pragma omp simd reduction(+ : bound)
        for (int c = 0; c < dim; ++c) bound += std::max(qi[c] * a[c], qi[c] * b[c]);
      }
      out[p] = bound;
    }
  });
}

void attention_probs(const DecodeQuery& query, const DecodeKeys& keys, int g, float* out) {
  const std::int64_t n = keys.size();
  const int dim = keys.dim(), group = query.heads / keys.kv_heads();
  std::vector<float> k(static_cast<std::size_t>(n * dim)), s(static_cast<std::size_t>(n));
  keys.read_keys(g, 0, n, k.data());
  std::fill(out, out + n, 0.0f);
  for (int i = 0; i < group; ++i) {
    const float* q = query.q + std::int64_t(g * group + i) * dim;
    float max = -INFINITY;
    for (std::int64_t j = 0; j < n; ++j) {
      const float* kj = k.data() + j * dim;
      float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
      for (int c = 0; c < dim; ++c) dot += q[c] * kj[c];
      s[j] = dot * query.scale;
      max = std::max(max, s[j]);
    }
    double sum = 0;
    for (std::int64_t j = 0; j < n; ++j) sum += s[j] = std::exp(s[j] - max);
    const float inv = static_cast<float>(1.0 / sum);
    for (std::int64_t j = 0; j < n; ++j) out[j] += s[j] * inv;
  }
}

void check_budget(const char* name, std::int64_t budget, std::int64_t reserved) {
  LS_CHECK(budget > reserved, "{}: budget {} leaves no key to select after the {} always kept (sink and window)",
           name, budget, reserved);
}

}  // namespace ls::decode
