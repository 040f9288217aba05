#include "methods/estimate_util.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>

#include "core/parallel.h"

namespace ls::estimate {

namespace {

// Sixteen floats; one AVX-512 register with -march=native, split by the compiler otherwise.
// aligned(4) and may_alias make dereferencing an unaligned row pointer legal.
typedef float Vec16 __attribute__((vector_size(64), aligned(4), may_alias));
constexpr int kPanel = PackedRows::kPanel;
static_assert(kPanel == 32, "the kernel holds a panel row in two 16-float vectors");

// MR rows of A against one packed panel: 2·MR accumulators stay in registers; per channel
// two panel vectors are loaded and each A element is broadcast.
template <int MR>
void panel_kernel(const float* a, std::int64_t lda, const float* panel, std::int64_t k, float* out, std::int64_t ldo,
                  float scale) {
  Vec16 acc[MR][2];
  for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = Vec16{};
  for (std::int64_t c = 0; c < k; ++c) {
    const Vec16 b0 = *reinterpret_cast<const Vec16*>(panel + c * kPanel);
    const Vec16 b1 = *reinterpret_cast<const Vec16*>(panel + c * kPanel + 16);
    for (int r = 0; r < MR; ++r) {
      const float x = a[r * lda + c];
      acc[r][0] += x * b0;
      acc[r][1] += x * b1;
    }
  }
  for (int r = 0; r < MR; ++r) {
    *reinterpret_cast<Vec16*>(out + r * ldo) = acc[r][0] * scale;
    *reinterpret_cast<Vec16*>(out + r * ldo + 16) = acc[r][1] * scale;
  }
}

constexpr int kRows = 12;  // 24 accumulators + 2 panel vectors + broadcasts fit 32 AVX-512 registers
using KernelFn = void (*)(const float*, std::int64_t, const float*, std::int64_t, float*, std::int64_t, float);
constexpr KernelFn kKernels[kRows + 1] = {
    nullptr,          &panel_kernel<1>, &panel_kernel<2>, &panel_kernel<3>,  &panel_kernel<4>,
    &panel_kernel<5>, &panel_kernel<6>, &panel_kernel<7>, &panel_kernel<8>,  &panel_kernel<9>,
    &panel_kernel<10>, &panel_kernel<11>, &panel_kernel<12>};

// exp(x) as plain code the compiler vectorises (a vector math library call would not be):
// Cody–Waite range reduction and a degree-6 polynomial, ~1e-7 relative error on [-87, 88].
// Inputs at or below -87 (including -inf) give 0.
inline float fast_exp(float x) {
  const float clamped = x > -87.0f ? x : -87.0f;  // branch-free: also maps -inf
  const float t = clamped * 1.44269504088896341f;  // x / ln 2
  const float n = __builtin_floorf(t + 0.5f);
  const float r = (clamped - n * 0.693145751953125f) - n * 1.428606765330187045e-06f;
  float p = 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const float value = p * std::bit_cast<float>((std::int32_t(n) + 127) << 23);  // p · 2^n
  return x > -87.0f ? value : 0.0f;
}

typedef std::int32_t Int16 __attribute__((vector_size(64)));
constexpr int kLanes = 16;

// fast_exp on 16 lanes with explicit vector operations (the autovectoriser leaves the scalar
// version scalar): round-to-nearest by the 1.5·2^23 trick, 2^n assembled in the exponent bits.
inline Vec16 exp16(Vec16 x) {
  const Vec16 clamped = x > -87.0f ? x : Vec16{} - 87.0f;
  const Vec16 t = clamped * 1.44269504088896341f;
  const Vec16 n = (t + 12582912.0f) - 12582912.0f;
  const Vec16 r = (clamped - n * 0.693145751953125f) - n * 1.428606765330187045e-06f;
  Vec16 p = Vec16{} + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const Int16 bits = (__builtin_convertvector(n, Int16) + 127) << 23;
  const Vec16 value = p * reinterpret_cast<const Vec16&>(bits);
  return x > -87.0f ? value : Vec16{};
}

}  // namespace

void PackedRows::pack(const float* b, std::int64_t ldb, std::int64_t n, std::int64_t k) {
  rows_ = n;
  depth_ = k;
  const std::int64_t panels = (n + kPanel - 1) / kPanel;
  data_.resize(std::size_t(panels * k * kPanel));
  if (n % kPanel != 0)  // the padding lanes of the last panel
    std::fill(data_.begin() + (panels - 1) * k * kPanel, data_.end(), 0.0f);
  for (std::int64_t j = 0; j < n; ++j) {
    float* dst = data_.data() + (j / kPanel) * k * kPanel + j % kPanel;
    const float* row = b + j * ldb;
    for (std::int64_t c = 0; c < k; ++c) dst[c * kPanel] = row[c];
  }
}

void scores_packed(const float* a, std::int64_t lda, std::int64_t m, const PackedRows& b, std::int64_t col_first,
                   std::int64_t col_end, float* c, std::int64_t ldc, float scale) {
  alignas(64) float tile[kRows * kPanel];
  const std::int64_t k = b.depth();
  for (std::int64_t p = col_first / kPanel; p * kPanel < col_end; ++p) {
    const std::int64_t j0 = std::max(col_first, p * kPanel), j1 = std::min(col_end, (p + 1) * kPanel);
    const bool whole = j0 == p * kPanel && j1 == (p + 1) * kPanel;
    for (std::int64_t i = 0; i < m; i += kRows) {
      const int mr = int(std::min<std::int64_t>(kRows, m - i));
      if (whole) {  // straight into c
        kKernels[mr](a + i * lda, lda, b.panel(p), k, c + i * ldc + (j0 - col_first), ldc, scale);
        continue;
      }
      kKernels[mr](a + i * lda, lda, b.panel(p), k, tile, kPanel, scale);
      for (int r = 0; r < mr; ++r)
        std::copy(tile + r * kPanel + (j0 - p * kPanel), tile + r * kPanel + (j1 - p * kPanel),
                  c + (i + r) * ldc + (j0 - col_first));
    }
  }
}

void scores_abt(const float* a, std::int64_t lda, const float* b, std::int64_t ldb, float* c, std::int64_t ldc,
                std::int64_t m, std::int64_t n, std::int64_t k, float scale) {
  thread_local PackedRows scratch;
  scratch.pack(b, ldb, n, k);
  scores_packed(a, lda, m, scratch, 0, n, c, ldc, scale);
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
#pragma omp simd
          for (int c = 0; c < dim; ++c) o[c] += row[c];
          break;
        case Pool::Max:
#pragma omp simd
          for (int c = 0; c < dim; ++c) o[c] = o[c] > row[c] ? o[c] : row[c];
          break;
        case Pool::Min:
#pragma omp simd
          for (int c = 0; c < dim; ++c) o[c] = o[c] < row[c] ? o[c] : row[c];
          break;
      }
    }
    if (pool == Pool::Mean) {
      const float inv = 1.0f / float(last - first);
      for (int c = 0; c < dim; ++c) o[c] *= inv;
    }
  }
}

namespace {

// x[i] = exp(x[i] − max x) in place; returns 1 / Σ, or 0 (and all zeros) for a row that is
// entirely −infinity. softmax() without its final scaling pass.
float exp_shifted(float* x, std::int64_t n) {
  float top = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : top)
  for (std::int64_t i = 0; i < n; ++i) top = top > x[i] ? top : x[i];
  if (!std::isfinite(top)) {
    std::fill(x, x + n, 0.0f);
    return 0.0f;
  }
  Vec16 sums{};
  std::int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    Vec16& v = *reinterpret_cast<Vec16*>(x + i);
    v = exp16(v - top);
    sums += v;
  }
  float sum = 0.0f;
  for (int l = 0; l < kLanes; ++l) sum += sums[l];
  for (; i < n; ++i) sum += x[i] = fast_exp(x[i] - top);
  return 1.0f / sum;
}

}  // namespace

void softmax(float* x, std::int64_t n) {
  const float inv = exp_shifted(x, n);
#pragma omp simd
  for (std::int64_t j = 0; j < n; ++j) x[j] *= inv;
}

void order_descending(std::span<const float> values, std::vector<std::int32_t>& order) {
  order.resize(values.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::int32_t a, std::int32_t b) { return values[a] > values[b]; });
}

std::int64_t cover_count(std::span<const float> values, double target, std::vector<float>& scratch) {
  // Only the sorted values matter. Attention mass is concentrated, so first select and sort
  // just the largest eighth (a linear-time selection, then a small sort); sort everything
  // only if those do not reach the target.
  const std::int64_t n = std::int64_t(values.size());
  scratch.assign(values.begin(), values.end());
  std::int64_t sorted = std::min<std::int64_t>(n, std::max<std::int64_t>(64, n / 8));
  for (;;) {
    if (sorted < n) std::nth_element(scratch.begin(), scratch.begin() + sorted, scratch.end(), std::greater<float>());
    std::sort(scratch.begin(), scratch.begin() + sorted, std::greater<float>());
    double sum = 0.0;
    std::int64_t count = 0;
    for (std::int64_t i = 0; i < sorted; ++i) {
      sum += scratch[i];
      if (sum > target) return std::min(count + 1, n);
      ++count;
    }
    if (sorted == n) return std::min(count + 1, n);
    sorted = n;
  }
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

std::span<const PackedRows> pack_keys(const AttnInput& in) {
  thread_local std::vector<PackedRows> storage;
  std::vector<PackedRows>& packed = storage;  // the calling thread's, filled by the workers
  if (packed.size() < std::size_t(in.shape.kv_heads)) packed.resize(in.shape.kv_heads);
  parallel_for(in.shape.kv_heads, [&](std::int64_t g) {
    packed[g].pack(in.k_row(int(g), 0), in.shape.dim, in.shape.n_k, in.shape.dim);
  });
  return {packed.data(), std::size_t(in.shape.kv_heads)};
}

void last_query_sums(const AttnInput& in, std::span<const PackedRows> keys, std::int64_t last,
                     std::vector<float>& vertical, std::vector<float>& slash) {
  const AttnShape& s = in.shape;
  const std::int64_t n = s.n_k;
  last = std::min(last, s.n_q);
  const std::int64_t first_query = s.n_q - last;
  constexpr std::int64_t kChunk = 32;
  const std::int64_t chunks = (last + kChunk - 1) / kChunk;
  // Per (head, chunk): partial column sums and reversed diagonal sums, reversed[n − 1 −
  // offset], so that both run forward over a row's keys and vectorise. Buffers are kept per
  // thread between calls: a layer's estimate then touches no fresh pages.
  thread_local std::vector<float> partial_storage;
  std::vector<float>& partial = partial_storage;  // the calling thread's, shared with the workers
  partial.resize(std::size_t(s.heads * chunks * 2 * n));
  parallel_for(s.heads * chunks, [&](std::int64_t item) {
    const int h = int(item / chunks);
    const std::int64_t q0 = first_query + (item % chunks) * kChunk;
    const std::int64_t rows = std::min(kChunk, s.n_q - q0);
    thread_local std::vector<float> probs;
    probs.resize(std::size_t(rows * n));
    scores_packed(in.q_row(h, q0), s.dim, rows, keys[s.kv_head_of(h)], 0, n, probs.data(), n, s.softmax_scale());
    float* col = partial.data() + item * 2 * n;
    float* reversed = col + n;
    std::fill(col, col + 2 * n, 0.0f);
    for (std::int64_t r = 0; r < rows; ++r) {
      float* row = probs.data() + r * n;
      const std::int64_t p = s.position(q0 + r), first = s.first_key(p);
      const float inv = exp_shifted(row + first, p + 1 - first);  // softmax, scaled while summing
      float* diagonal = reversed + (n - 1 - p);
#pragma omp simd
      for (std::int64_t key = first; key <= p; ++key) {
        const float prob = row[key] * inv;
        col[key] += prob;
        diagonal[key] += prob;
      }
    }
  });
  vertical.assign(std::size_t(s.heads * n), 0.0f);
  slash.assign(std::size_t(s.heads * n), 0.0f);
  parallel_for(s.heads, [&](std::int64_t h) {
    float* v = vertical.data() + h * n;
    float* sl = slash.data() + h * n;
    for (std::int64_t c = 0; c < chunks; ++c) {
      const float* col = partial.data() + (h * chunks + c) * 2 * n;
      const float* reversed = col + n;
      for (std::int64_t i = 0; i < n; ++i) {
        v[i] += col[i];
        sl[i] += reversed[n - 1 - i];
      }
    }
  });
}

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

void mean_rows(const float* rows, int dim, std::int64_t begin, std::int64_t end, double divisor, float* out) {
  std::vector<double> acc(dim, 0.0);
  for (std::int64_t r = begin; r < end; ++r)
    for (int c = 0; c < dim; ++c) acc[c] += rows[r * dim + c];
  for (int c = 0; c < dim; ++c) out[c] = float(acc[c] / divisor);
}

}  // namespace ls::estimate
