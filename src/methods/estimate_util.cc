#include "methods/estimate_util.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>
#include <string_view>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif
#if defined(__AMX_TILE__) && defined(__AMX_BF16__) && defined(__linux__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#define LS_HAVE_AMX 1
#endif
#include <atomic>
#include <cstdlib>

#include "core/cpu.h"
#include "core/error.h"
#include "core/half.h"
#include "core/parallel.h"
#include "methods/score_kernels.h"

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

#if defined(__AVX512F__)
// 2^t on 16 lanes with AVX-512's rounding and scaling instructions (half the instructions of
// exp16): t = n + r with n = round(t), |r| <= 1/2; 2^r by its degree-6 Taylor polynomial
// (relative error ~1e-7), then vscalefps multiplies by 2^n. t is clamped at -200, where the
// scaling underflows to exactly 0, so -inf gives 0.
inline Vec16 exp2_16(Vec16 t) {
  // The masked forms with an explicit source: the plain ones pass GCC an undefined vector.
  const __m512 low = _mm512_set1_ps(-200.0f);
  const __m512 x = _mm512_mask_max_ps(low, 0xFFFF, __m512(t), low);
  const __m512 n = _mm512_mask_roundscale_ps(x, 0xFFFF, x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const Vec16 r = Vec16(x) - Vec16(n);
  Vec16 p = Vec16{} + 1.5403530393381606e-4f;  // ln(2)^k / k!, k = 6 .. 0
  p = p * r + 1.3333558146428443e-3f;
  p = p * r + 9.6181291076284772e-3f;
  p = p * r + 5.5504108664821580e-2f;
  p = p * r + 2.4022650695910071e-1f;
  p = p * r + 6.9314718055994531e-1f;
  p = p * r + 1.0f;
  return Vec16(_mm512_mask_scalef_ps(__m512(p), 0xFFFF, __m512(p), n));
}
#endif

}  // namespace

void PackedRows::resize(std::int64_t n, std::int64_t k) {
  rows_ = n;
  depth_ = k;
  bf16_ = bf16_scores();
  if (bf16_)
    bf16_data_.resize(std::size_t(panels() * 2 * slabs() * 512));
  else
    data_.resize(std::size_t(panels() * k * kPanel));
}

bool amx_available() {
  static const bool available = [] {
#if defined(LS_HAVE_AMX)
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return false;
    if (!(edx & (1u << 22)) || !(edx & (1u << 24))) return false;  // AMX-BF16, AMX-TILE
    constexpr long kReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;  // Linux: ask for the tile state
    return syscall(SYS_arch_prctl, kReqXcompPerm, kXfeatureXtiledata) == 0;
#else
    return false;
#endif
  }();
  return available;
}

namespace {

std::atomic<bool> g_bf16_scores{[] {
  const char* fp32 = std::getenv("LONGSPARSE_ESTIMATE_FP32");
  return !(fp32 && *fp32 && std::string_view(fp32) != "0");
}()};
std::atomic<int> g_forced_bf16{-1};  // a ScoreKernel from force_bf16_kernel, or -1: the best

// The bf16 kernel this CPU runs best, whatever the precision setting (fp32 if none).
ScoreKernel best_bf16_kernel() {
  if (cpu_runs(ScoreKernel::AmxBf16)) return ScoreKernel::AmxBf16;
  if (cpu_runs(ScoreKernel::Avx512Bf16)) return ScoreKernel::Avx512Bf16;
  return ScoreKernel::Fp32;
}

ScoreKernel chosen_bf16_kernel() {
  const int forced = g_forced_bf16.load(std::memory_order_relaxed);
  return forced < 0 ? best_bf16_kernel() : static_cast<ScoreKernel>(forced);
}

}  // namespace

const char* score_kernel_name(ScoreKernel kernel) {
  switch (kernel) {
    case ScoreKernel::Fp32: return "fp32";
    case ScoreKernel::Avx512Bf16: return "avx512-bf16";
    case ScoreKernel::AmxBf16: return "amx-bf16";
  }
  return "fp32";
}

bool cpu_runs(ScoreKernel kernel) {
  switch (kernel) {
    case ScoreKernel::Fp32: return true;
    case ScoreKernel::AmxBf16: return amx_available();
    case ScoreKernel::Avx512Bf16: {
      // The kernel's file is compiled for x86-64-v4 (AVX-512 F/BW/VL/DQ/CD) plus BF16; a
      // LONGSPARSE_ISA below the AVX-512 kernels turns it off like them.
      const CpuFeatures& f = cpu_features();
      return f.avx512bf16 && ls::cpu_runs(Isa::Avx512Vnni) && active_isa() == Isa::Avx512Vnni;
    }
  }
  return false;
}

ScoreKernel score_kernel() { return g_bf16_scores ? chosen_bf16_kernel() : ScoreKernel::Fp32; }

ScoreKernel force_bf16_kernel(ScoreKernel kernel) {
  LS_CHECK(kernel != ScoreKernel::Fp32, "force_bf16_kernel takes a bf16 kernel; set_bf16_scores(false) gives fp32");
  LS_CHECK(cpu_runs(kernel), "this CPU ({}) cannot run the {} score kernel", cpu_name(), score_kernel_name(kernel));
  const ScoreKernel previous = chosen_bf16_kernel();
  g_forced_bf16.store(static_cast<int>(kernel), std::memory_order_relaxed);
  return previous;
}

ScopedScoreKernel::ScopedScoreKernel(ScoreKernel kernel) : previous_forced_(g_forced_bf16.load()) {
  if (kernel != ScoreKernel::Fp32) force_bf16_kernel(kernel);  // checks first, changes nothing if it fails
  previous_bf16_ = set_bf16_scores(kernel != ScoreKernel::Fp32);
}

ScopedScoreKernel::~ScopedScoreKernel() {
  set_bf16_scores(previous_bf16_);
  g_forced_bf16.store(previous_forced_);
}

bool set_bf16_scores(bool on) { return g_bf16_scores.exchange(on); }
bool bf16_scores() { return score_kernel() != ScoreKernel::Fp32; }
const char* score_precision() { return score_kernel_name(score_kernel()); }

void PackedRows::pack_panel(std::int64_t p, const float* rows, std::int64_t ldb) {
  const std::int64_t k = depth_;
  const std::int64_t count = std::min<std::int64_t>(kPanel, rows_ - p * kPanel);
  if (bf16_) {
    // The panel's rows in bf16, row-major with the depth padded to whole slabs; then each
    // tile is a 16 × 16 transpose of channel pairs (32 bits): tile element (pair r, row j) =
    // the pair of B[row 16h + j][channels 32s + 2r, 32s + 2r + 1].
    const std::int64_t width = slabs() * 32;
    thread_local std::vector<std::uint16_t> bits;
    bits.assign(std::size_t(kPanel * width), 0);
    for (std::int64_t j = 0; j < count; ++j) {
      const float* row = rows + j * ldb;
      std::uint16_t* dst = bits.data() + j * width;
      for (std::int64_t ch = 0; ch < k; ++ch) dst[ch] = fp32_to_bf16(row[ch]);
    }
    const std::uint32_t* pairs = reinterpret_cast<const std::uint32_t*>(bits.data());  // [kPanel][width / 2]
    const std::int64_t pair_stride = width / 2;
    for (int half = 0; half < 2; ++half)
      for (std::int64_t slab = 0; slab < slabs(); ++slab) {
        std::uint32_t* t = reinterpret_cast<std::uint32_t*>(bf16_data_.data() + ((p * 2 + half) * slabs() + slab) * 512);
        const std::uint32_t* src = pairs + 16 * half * pair_stride + slab * 16;
        for (int r = 0; r < 16; ++r)
          for (int j = 0; j < 16; ++j) t[r * 16 + j] = src[j * pair_stride + r];
      }
    return;
  }
  float* panel = data_.data() + p * k * kPanel;
  if (count < kPanel) {
    std::fill(panel, panel + k * kPanel, 0.0f);  // the padding lanes
    for (std::int64_t j = 0; j < count; ++j)
      for (std::int64_t c = 0; c < k; ++c) panel[c * kPanel + j] = rows[j * ldb + c];
    return;
  }
  // A full panel: channel by channel, each a contiguous store of kPanel keys.
#if defined(__AVX512F__)
  if (16 * ldb < std::numeric_limits<std::int32_t>::max() / 4) {  // gather offsets fit 32 bits
    // Gathers beat the compiler's scalar strided loads by ~4x here.
    const __m512i offsets = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), _mm512_set1_epi32(std::int32_t(ldb)));
    const float* upper = rows + 16 * ldb;
    for (std::int64_t c = 0; c < k; ++c) {
      _mm512_storeu_ps(panel + c * kPanel, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), 0xFFFF, offsets, rows + c, 4));
      _mm512_storeu_ps(panel + c * kPanel + 16, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), 0xFFFF, offsets, upper + c, 4));
    }
    return;
  }
#endif
  for (std::int64_t c = 0; c < k; ++c)
    for (int j = 0; j < kPanel; ++j) panel[c * kPanel + j] = rows[j * ldb + c];
}

void PackedRows::pack_panels(const float* b, std::int64_t ldb, std::int64_t first, std::int64_t end) {
  for (std::int64_t p = first; p < end; ++p) pack_panel(p, b + p * kPanel * ldb, ldb);
}

void PackedRows::pack(const float* b, std::int64_t ldb, std::int64_t n, std::int64_t k) {
  resize(n, k);
  pack_panels(b, ldb, 0, panels());
}

namespace {

#if defined(LS_HAVE_AMX)
// The AMX path of scores_packed: A·scale rounded to bf16, in steps of 32 rows (two 16-row A
// tiles) against each panel's two 16-row B halves, four 16 × 16 fp32 accumulator tiles, and a
// last step of 16 rows.
void scores_amx(const float* a, std::int64_t lda, std::int64_t m, const PackedRows& b, std::int64_t col_first,
                std::int64_t col_end, float* c, std::int64_t ldc, float scale) {
  struct alignas(64) TileConfig {
    std::uint8_t palette = 1, start_row = 0, reserved[14] = {};
    std::uint16_t colsb[16] = {};
    std::uint8_t rows[16] = {};
  } config;
  for (int t = 0; t < 8; ++t) {  // 0-3: C (16 × 16 fp32), 4-5: A (16 × 32 bf16), 6-7: B (16 pairs × 16 × 2)
    config.rows[t] = 16;
    config.colsb[t] = 64;
  }
  _tile_loadconfig(&config);
  const std::int64_t k = b.depth(), slabs = b.slabs(), width = slabs * 32;
  const std::int64_t padded_m = (m + 15) / 16 * 16;
  thread_local std::vector<std::uint16_t> a16;
  a16.assign(std::size_t(padded_m * width), 0);
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t ch = 0; ch < k; ++ch) a16[i * width + ch] = fp32_to_bf16(a[i * lda + ch] * scale);
  alignas(64) float out[4][16 * 16];
  const std::int64_t a_stride = width * 2;  // bytes
  for (std::int64_t p = col_first / PackedRows::kPanel; p * PackedRows::kPanel < col_end; ++p) {
    const std::int64_t j_base = p * PackedRows::kPanel;
    const std::int64_t j0 = std::max(col_first, j_base), j1 = std::min(col_end, j_base + PackedRows::kPanel);
    const bool whole_columns = j0 == j_base && j1 == j_base + PackedRows::kPanel;
    for (std::int64_t i0 = 0; i0 < m;) {
      // 32 rows (two A tiles, four C tiles) while they last, then 16 (one A tile, two C tiles).
      const bool two = m - i0 >= 32;
      const std::int64_t step = two ? 32 : 16;
      _tile_zero(0);
      _tile_zero(1);
      if (two) {
        _tile_zero(2);
        _tile_zero(3);
      }
      for (std::int64_t s = 0; s < slabs; ++s) {
        _tile_loadd(4, a16.data() + i0 * width + s * 32, a_stride);
        _tile_loadd(6, b.tile(p, 0, s), 64);
        _tile_loadd(7, b.tile(p, 1, s), 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        if (two) {
          _tile_loadd(5, a16.data() + (i0 + 16) * width + s * 32, a_stride);
          _tile_dpbf16ps(2, 5, 6);
          _tile_dpbf16ps(3, 5, 7);
        }
      }
      const std::int64_t rows = std::min(step, m - i0);
      if (whole_columns && rows == step) {  // straight into c
        float* dst = c + i0 * ldc + (j_base - col_first);
        _tile_stored(0, dst, ldc * 4);
        _tile_stored(1, dst + 16, ldc * 4);
        if (two) {
          _tile_stored(2, dst + 16 * ldc, ldc * 4);
          _tile_stored(3, dst + 16 * ldc + 16, ldc * 4);
        }
      } else {  // a last partial row tile or a partial panel: through `out`
        _tile_stored(0, out[0], 64);
        _tile_stored(1, out[1], 64);
        if (two) {
          _tile_stored(2, out[2], 64);
          _tile_stored(3, out[3], 64);
        }
        for (std::int64_t r = 0; r < rows; ++r) {
          float row[32];
          std::copy_n(out[(r / 16) * 2] + (r % 16) * 16, 16, row);
          std::copy_n(out[(r / 16) * 2 + 1] + (r % 16) * 16, 16, row + 16);
          std::copy(row + (j0 - j_base), row + (j1 - j_base), c + (i0 + r) * ldc + (j0 - col_first));
        }
      }
      i0 += step;
    }
  }
  _tile_release();
}
#endif

}  // namespace

void scores_packed(const float* a, std::int64_t lda, std::int64_t m, const PackedRows& b, std::int64_t col_first,
                   std::int64_t col_end, float* c, std::int64_t ldc, float scale) {
  if (b.is_bf16()) {
#if defined(LS_HAVE_AMX)
    // Keys packed in bf16 stay bf16 if fp32 scores were chosen since: then the best kernel.
    const ScoreKernel kernel = score_kernel();
    if (kernel == ScoreKernel::AmxBf16 || (kernel == ScoreKernel::Fp32 && best_bf16_kernel() == ScoreKernel::AmxBf16)) {
      scores_amx(a, lda, m, b, col_first, col_end, c, ldc, scale);
      return;
    }
#endif
    const std::int64_t width = b.slabs() * 32;
    thread_local std::vector<std::uint16_t> a16;  // [m][width]
    a16.resize(std::size_t(m * width));
    detail::round_rows_avx512bf16(a, lda, m, b.depth(), scale, a16.data(), width);
    detail::scores_avx512bf16({.a = a16.data(),
                               .a_width = width,
                               .m = m,
                               .b = b.tile(0, 0, 0),
                               .slabs = b.slabs(),
                               .pairs = (b.depth() + 1) / 2,
                               .col_first = col_first,
                               .col_end = col_end,
                               .c = c,
                               .ldc = ldc});
    return;
  }
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

float max_of(const float* x, std::int64_t n) {
  // Four independent vectors: one would wait on vmaxps' latency every 16 floats.
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  Vec16 tops[4] = {Vec16{} + kNegInf, Vec16{} + kNegInf, Vec16{} + kNegInf, Vec16{} + kNegInf};
  std::int64_t i = 0;
  for (; i + 4 * kLanes <= n; i += 4 * kLanes)
    for (int a = 0; a < 4; ++a) {
      const Vec16 v = *reinterpret_cast<const Vec16*>(x + i + a * kLanes);
      tops[a] = tops[a] > v ? tops[a] : v;
    }
  for (; i + kLanes <= n; i += kLanes) {
    const Vec16 v = *reinterpret_cast<const Vec16*>(x + i);
    tops[0] = tops[0] > v ? tops[0] : v;
  }
  // The four vectors into one, then its lanes as a tree (a serial chain over 64 lanes costs
  // as much as the scan itself on rows of a few hundred).
  const Vec16 a01 = tops[0] > tops[1] ? tops[0] : tops[1], a23 = tops[2] > tops[3] ? tops[2] : tops[3];
  const Vec16 all = a01 > a23 ? a01 : a23;
  float lanes[kLanes];
  for (int l = 0; l < kLanes; ++l) lanes[l] = all[l];
  for (int width = kLanes / 2; width > 0; width /= 2)
    for (int l = 0; l < width; ++l) lanes[l] = lanes[l] > lanes[l + width] ? lanes[l] : lanes[l + width];
  float top = lanes[0];
  for (; i < n; ++i) top = top > x[i] ? top : x[i];
  return top;
}

namespace {

// x[i] = exp(x[i] − max x) in place; returns 1 / Σ, or 0 (and all zeros) for a row that is
// entirely −infinity. softmax() without its final scaling pass.
float exp_shifted(float* x, std::int64_t n) {
  const float top = max_of(x, n);
  if (!std::isfinite(top)) {
    std::fill(x, x + n, 0.0f);
    return 0.0f;
  }
  Vec16 sums{};
  std::int64_t i = 0;
#if defined(__AVX512F__)
  constexpr float kLog2e = 1.44269504088896341f;
  const float shift = top * kLog2e;
  for (; i + kLanes <= n; i += kLanes) {
    Vec16& v = *reinterpret_cast<Vec16*>(x + i);
    v = exp2_16(v * kLog2e - shift);
    sums += v;
  }
#else
  for (; i + kLanes <= n; i += kLanes) {
    Vec16& v = *reinterpret_cast<Vec16*>(x + i);
    v = exp16(v - top);
    sums += v;
  }
#endif
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
  // Only the descending order of the values matters, not where they are, so no sort is
  // needed: a quickselect on mass. [lo, hi) holds the values not yet placed, all smaller than
  // the `count` values (of total `mass`) already known to come first; partition around a pivot
  // and keep the side where the cumulative sum crosses the target. Expected linear time.
  const std::int64_t n = std::int64_t(values.size());
  scratch.assign(values.begin(), values.end());
  float* lo = scratch.data();
  float* hi = lo + n;
  double mass = 0.0;
  std::int64_t count = 0;
  while (hi - lo > 64) {
    const float a = lo[0], b = lo[(hi - lo) / 2], c = hi[-1];
    const float pivot = std::max(std::min(a, b), std::min(std::max(a, b), c));  // median of three
    float* const greater_end = std::partition(lo, hi, [pivot](float x) { return x > pivot; });
    float* const equal_end = std::partition(greater_end, hi, [pivot](float x) { return x == pivot; });
    double greater = 0.0;
    for (const float* x = lo; x < greater_end; ++x) greater += *x;
    if (mass + greater > target) {  // crossed among the larger values
      hi = greater_end;
      continue;
    }
    mass += greater;
    count += greater_end - lo;
    for (const float* x = greater_end; x < equal_end; ++x) {
      mass += *x;
      if (mass > target) return std::min(count + 1, n);
      ++count;
    }
    lo = equal_end;
  }
  std::sort(lo, hi, std::greater<float>());
  for (const float* x = lo; x < hi; ++x) {
    mass += *x;
    if (mass > target) return std::min(count + 1, n);
    ++count;
  }
  return n;
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
  for (int g = 0; g < in.shape.kv_heads; ++g) packed[g].resize(in.shape.n_k, in.shape.dim);
  // Work items of 16 panels (512 keys), so that a few KV heads still spread over every thread.
  constexpr std::int64_t kPanelsPerItem = 16;
  const std::int64_t items_per_head = (packed[0].panels() + kPanelsPerItem - 1) / kPanelsPerItem;
  parallel_for(in.shape.kv_heads * items_per_head, [&](std::int64_t item) {
    const int g = int(item / items_per_head);
    const std::int64_t first = (item % items_per_head) * kPanelsPerItem;
    packed[g].pack_panels(in.k_row(g, 0), in.shape.dim, first, std::min(first + kPanelsPerItem, packed[g].panels()));
  });
  return {packed.data(), std::size_t(in.shape.kv_heads)};
}

namespace {

// out[i] = Σ_r weight[r] · src[r][i] for i < len, rows summed in order r = 0, 1, ...: strips
// of 256 outputs in 16 vector accumulators, so each source row is read once, contiguously.
void weighted_row_sums(const float* const* src, const float* weight, std::int64_t rows, float* out,
                       std::int64_t len) {
  constexpr int kAcc = 16;
  std::int64_t i = 0;
  for (; i + kAcc * kLanes <= len; i += kAcc * kLanes) {
    Vec16 acc[kAcc];
    for (int a = 0; a < kAcc; ++a) acc[a] = Vec16{};
    for (std::int64_t r = 0; r < rows; ++r) {
      const float* row = src[r] + i;
      const float w = weight[r];
      for (int a = 0; a < kAcc; ++a) acc[a] += *reinterpret_cast<const Vec16*>(row + a * kLanes) * w;
    }
    for (int a = 0; a < kAcc; ++a) *reinterpret_cast<Vec16*>(out + i + a * kLanes) = acc[a];
  }
  for (; i + kLanes <= len; i += kLanes) {
    Vec16 acc{};
    for (std::int64_t r = 0; r < rows; ++r) acc += *reinterpret_cast<const Vec16*>(src[r] + i) * weight[r];
    *reinterpret_cast<Vec16*>(out + i) = acc;
  }
  for (; i < len; ++i) {
    float acc = 0.0f;
    for (std::int64_t r = 0; r < rows; ++r) acc += src[r][i] * weight[r];
    out[i] = acc;
  }
}

}  // namespace

void last_query_sums(const AttnInput& in, std::span<const PackedRows> keys, std::int64_t last,
                     std::vector<float>& vertical, std::vector<float>& slash) {
  const AttnShape& s = in.shape;
  const std::int64_t n = s.n_k;
  last = std::min(last, s.n_q);
  const std::int64_t first_query = s.n_q - last;
  // 48 queries: four 12-row kernel passes, and 1.5 MiB of scores that stay in L2.
  constexpr std::int64_t kChunk = 48;
  const std::int64_t chunks = (last + kChunk - 1) / kChunk;
  // Score rows n + 16 floats apart: rows a multiple of 4 KiB apart would share L1 sets.
  const std::int64_t ld = n + 16;
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
    probs.resize(std::size_t(rows * ld));
    scores_packed(in.q_row(h, q0), s.dim, rows, keys[s.kv_head_of(h)], 0, n, probs.data(), ld, s.softmax_scale());
    // Softmax over each row's causal keys; the keys it may not see become 0. The scaling by
    // 1 / Σ is folded into the sums below.
    float inv[kChunk];
    const float* row_at[kChunk];
    const float* diagonal_at[kChunk];
    for (std::int64_t r = 0; r < rows; ++r) {
      float* row = probs.data() + r * ld;
      const std::int64_t p = s.position(q0 + r), first = s.first_key(p);
      inv[r] = exp_shifted(row + first, p + 1 - first);
      std::fill(row, row + first, 0.0f);
      std::fill(row + p + 1, row + n, 0.0f);
      row_at[r] = row;
    }
    float* col = partial.data() + item * 2 * n;
    float* reversed = col + n;
    weighted_row_sums(row_at, inv, rows, col, n);
    // Row r adds its key k to reversed[shift_r + k], shift_r = n − 1 − position. Shifts fall
    // by one per row; from the first row's shift on, every row contributes to every entry.
    const std::int64_t shift_first = n - 1 - s.position(q0), shift_last = n - 1 - s.position(q0 + rows - 1);
    std::fill(reversed, reversed + shift_last, 0.0f);
    for (std::int64_t d = shift_last; d < shift_first; ++d) {
      float acc = 0.0f;
      for (std::int64_t r = 0; r < rows; ++r) {
        const std::int64_t key = d - (shift_first - r);
        if (key >= 0) acc += row_at[r][key] * inv[r];
      }
      reversed[d] = acc;
    }
    for (std::int64_t r = 0; r < rows; ++r) diagonal_at[r] = row_at[r] + r;  // key of reversed[shift_first]
    weighted_row_sums(diagonal_at, inv, rows, reversed + shift_first, n - shift_first);
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
