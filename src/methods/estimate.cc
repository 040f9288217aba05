// Numeric helpers for the methods' estimates (see estimate.h).
#include "methods/estimate.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace ls {

float dot(const float* a, const float* b, int dim) {
  // Several independent partial sums let the compiler vectorise without -ffast-math.
  float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int c = 0;
  for (; c + 8 <= dim; c += 8)
    for (int j = 0; j < 8; ++j) s[j] += a[c + j] * b[c + j];
  float total = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
  for (; c < dim; ++c) total += a[c] * b[c];
  return total;
}

std::vector<std::int64_t> top_k_indices(std::span<const double> scores, std::int64_t k) {
  const std::int64_t n = std::int64_t(scores.size());
  k = std::clamp<std::int64_t>(k, 0, n);
  std::vector<std::int64_t> index(n);
  std::iota(index.begin(), index.end(), 0);
  auto better = [&](std::int64_t a, std::int64_t b) {
    return scores[a] != scores[b] ? scores[a] > scores[b] : a < b;
  };
  if (k < n) std::nth_element(index.begin(), index.begin() + k, index.end(), better);
  index.resize(k);
  std::sort(index.begin(), index.end(), better);
  return index;
}

void softmax_row(const AttnInput& in, int head, const float* query, std::int64_t first, std::int64_t last,
                 std::vector<double>& probs) {
  const int g = in.shape.kv_head_of(head);
  const float scale = in.shape.softmax_scale();
  double row_max = -INFINITY;
  for (std::int64_t key = first; key <= last; ++key) {
    probs[key] = double(dot(query, in.k_row(g, key), in.shape.dim) * scale);
    row_max = std::max(row_max, probs[key]);
  }
  double sum = 0.0;
  for (std::int64_t key = first; key <= last; ++key) sum += probs[key] = std::exp(probs[key] - row_max);
  for (std::int64_t key = first; key <= last; ++key) probs[key] /= sum;
}

void pool_rows(const float* rows, int dim, std::int64_t begin, std::int64_t end, double divisor, float* out) {
  std::vector<double> acc(dim, 0.0);
  for (std::int64_t r = begin; r < end; ++r)
    for (int c = 0; c < dim; ++c) acc[c] += rows[r * dim + c];
  for (int c = 0; c < dim; ++c) out[c] = float(acc[c] / divisor);
}

}  // namespace ls
