#include "methods/estimate_util.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace ls::estimate {

namespace {

// Sixteen floats; one AVX-512 register with -march=native, split by the compiler otherwise.
// aligned(4) and may_alias make dereferencing an unaligned row pointer legal.
typedef float Vec16 __attribute__((vector_size(64), aligned(4), may_alias));
constexpr int kLanes = 16;

inline float lane_sum(Vec16 v) {
  float total = 0.0f;
  for (int l = 0; l < kLanes; ++l) total += v[l];
  return total;
}

// An MR x NR tile of dot products: MR*NR accumulators stay in registers while each chunk of
// 16 channels of the MR + NR rows is loaded once.
template <int MR, int NR>
void tile(const float* a, std::int64_t lda, const float* b, std::int64_t ldb, float* c, std::int64_t ldc,
          std::int64_t k, float scale) {
  Vec16 acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = Vec16{};
  std::int64_t c0 = 0;
  for (; c0 + kLanes <= k; c0 += kLanes) {
    Vec16 av[MR], bv[NR];
    for (int i = 0; i < MR; ++i) av[i] = *reinterpret_cast<const Vec16*>(a + i * lda + c0);
    for (int j = 0; j < NR; ++j) bv[j] = *reinterpret_cast<const Vec16*>(b + j * ldb + c0);
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) acc[i][j] += av[i] * bv[j];
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) {
      float dot = lane_sum(acc[i][j]);
      for (std::int64_t c1 = c0; c1 < k; ++c1) dot += a[i * lda + c1] * b[j * ldb + c1];
      c[i * ldc + j] = dot * scale;
    }
}

using TileFn = void (*)(const float*, std::int64_t, const float*, std::int64_t, float*, std::int64_t, std::int64_t,
                        float);

template <int MR>
constexpr TileFn tile_for(int nr) {
  return nr == 1 ? &tile<MR, 1> : nr == 2 ? &tile<MR, 2> : nr == 3 ? &tile<MR, 3> : &tile<MR, 4>;
}

TileFn pick_tile(int mr, int nr) {
  switch (mr) {
    case 1: return tile_for<1>(nr);
    case 2: return tile_for<2>(nr);
    case 3: return tile_for<3>(nr);
    default: return tile_for<4>(nr);
  }
}

}  // namespace

void scores_abt(const float* a, std::int64_t lda, const float* b, std::int64_t ldb, float* c, std::int64_t ldc,
                std::int64_t m, std::int64_t n, std::int64_t k, float scale) {
  constexpr int kRows = 4, kCols = 4;
  for (std::int64_t i = 0; i < m; i += kRows) {
    int mr = int(std::min<std::int64_t>(kRows, m - i));
    for (std::int64_t j = 0; j < n; j += kCols) {
      int nr = int(std::min<std::int64_t>(kCols, n - j));
      TileFn fn = (mr == kRows && nr == kCols) ? &tile<kRows, kCols> : pick_tile(mr, nr);
      fn(a + i * lda, lda, b + j * ldb, ldb, c + i * ldc + j, ldc, k, scale);
    }
  }
}

void pool_rows(const float* x, std::int64_t rows, int dim, int block, Pool pool, float* out) {
  const std::int64_t blocks = (rows + block - 1) / block;
  for (std::int64_t blk = 0; blk < blocks; ++blk) {
    const std::int64_t first = blk * block, last = std::min(rows, first + block);
    float* o = out + blk * dim;
    std::copy(x + first * dim, x + first * dim + dim, o);
    for (std::int64_t r = first + 1; r < last; ++r) {
      const float* row = x + r * dim;
      switch (pool) {
        case Pool::Mean:
          for (int c = 0; c < dim; ++c) o[c] += row[c];
          break;
        case Pool::Max:
          for (int c = 0; c < dim; ++c) o[c] = std::max(o[c], row[c]);
          break;
        case Pool::Min:
          for (int c = 0; c < dim; ++c) o[c] = std::min(o[c], row[c]);
          break;
      }
    }
    if (pool == Pool::Mean) {
      const float inv = 1.0f / float(last - first);
      for (int c = 0; c < dim; ++c) o[c] *= inv;
    }
  }
}

void softmax(float* x, std::int64_t n) {
  float top = -std::numeric_limits<float>::infinity();
  for (std::int64_t i = 0; i < n; ++i) top = std::max(top, x[i]);
  if (!std::isfinite(top)) {
    std::fill(x, x + n, 0.0f);
    return;
  }
  double sum = 0.0;
  for (std::int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - top);  // exp(-inf) = 0
    sum += x[i];
  }
  const float inv = float(1.0 / sum);
  for (std::int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void order_descending(std::span<const float> values, std::vector<std::int32_t>& order) {
  order.resize(values.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::int32_t a, std::int32_t b) { return values[a] > values[b]; });
}

std::int64_t cover_count(std::span<const float> values, double target, std::vector<std::int32_t>& scratch) {
  order_descending(values, scratch);
  double sum = 0.0;
  std::int64_t count = 0;
  for (std::int32_t index : scratch) {
    sum += values[index];
    if (sum > target) break;
    ++count;
  }
  return std::min<std::int64_t>(count + 1, std::int64_t(values.size()));
}

double sqrt_js_distance(std::span<const float> p, std::span<const float> q) {
  double divergence = 0.0;
  for (std::size_t i = 0; i < p.size(); ++i) {
    const double pi = p[i], qi = q[i], mi = 0.5 * (pi + qi);
    if (pi > 0) divergence += 0.5 * pi * std::log(pi / mi);
    if (qi > 0) divergence += 0.5 * qi * std::log(qi / mi);
  }
  return std::sqrt(std::max(0.0, divergence));
}

}  // namespace ls::estimate
