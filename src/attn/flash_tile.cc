// The SIMD tile engine behind flash_attention and plan_attention (see flash_tile.h).
//
// Highway with dynamic dispatch (core/simd.h): the engine is compiled once per target (SSE4,
// AVX2, AVX3 in the portable build) and every entry point below calls the best one the CPU
// runs. The tile width, the row chunk and the scratch are per target: keys are packed with the
// width of the target that runs, and attend_rows checks that it still is the same one.
//
// Per work item the engine keeps, in per-thread scratch,
//   pointers to the Q rows (read in place; the softmax scale·log2(e) is folded into the
//   exp2 argument with one FMA), O [rows][dim] unnormalised outputs, m [rows] running maxima, and
//   L [rows][lanes] running sums kept per lane (reduced once at the end),
// and walks the key tiles once. A tile (key_tile() keys, K transposed: [dim][keys]) is
// applied to chunks of kRows rows:
//   1. S [kRows][key_tile] = Q·Kᵀ entirely in registers (kRows × 4 accumulators), the inner
//      loop over dim broadcasting one q value per row against four vectors of keys;
//   2. the causal / window mask, only on tiles that straddle a row's first or last key;
//   3. online softmax per row: one horizontal max, P = exp2(S − m), L = L·α + P;
//   4. O [kRows][dim] = α·O + P·V, in column chunks of 4 vectors held in registers, V rows
//      read in place (contiguous tiles) or from the gathered copy.
// Fully masked (row chunk, tile) pairs are skipped.
//
// bf16 score products (set_attention_precision, flash.h): where the target was compiled with
// AVX512-BF16 (the native build on such a CPU), keys are packed as bf16 pairs of adjacent
// dimensions ([dim/2][kTile] 32-bit words) and each work item's queries are rounded to the
// same pairs, so step 1 is one `vdpbf16ps` per two dimensions and four vectors of keys
// instead of two FMAs; accumulation, softmax and P·V stay fp32.
#include "attn/flash_tile.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "attn/flash_tile.cc"
#include <hwy/foreach_target.h>  // re-includes this file once per target
#include <hwy/cache_control.h>
#include <hwy/highway.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cmath>
#include <limits>

#include "core/half.h"
#include "core/parallel.h"

#undef LS_TILE_BF16
#if HWY_TARGET <= HWY_AVX3 && defined(__AVX512BF16__)
#include <immintrin.h>
#define LS_TILE_BF16 1
#else
#define LS_TILE_BF16 0
#endif

HWY_BEFORE_NAMESPACE();
namespace ls::detail {
namespace HWY_NAMESPACE {
namespace {

namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using DI = hn::RebindToSigned<DF>;
using VF = hn::Vec<DF>;
using VI = hn::Vec<DI>;

constexpr int kLanes = int(HWY_LANES(float));
constexpr int kVecs = 4;                 // vectors per key tile and per output column chunk
constexpr int kTile = kVecs * kLanes;    // keys per tile
#if HWY_TARGET <= HWY_AVX3
constexpr int kRows = 6;  // 24 accumulators + 4 key vectors + 1 broadcast of 32 registers
#else
constexpr int kRows = 2;  // 16 registers
#endif
// Slots for per-row values of a chunk, rounded up to whole vectors.
constexpr int kAlphaSlots = (kRows + kLanes - 1) / kLanes * kLanes;
constexpr float kLog2e = 1.4426950408889634f;
constexpr double kLn2 = 0.6931471805599453;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// 2^x for x <= 0 (scores minus the running max), relative error ~1e-7; x <= -127 gives 0.
HWY_INLINE VF Exp2(DF df, VF x) {
  const DI di;
  x = hn::Max(x, hn::Set(df, -127.0f));
  const VF n = hn::Round(x);
  const VF f = hn::Sub(x, n);  // [-0.5, 0.5]
  // Taylor series of 2^f to degree 6: truncation error below 1.2e-7 on [-0.5, 0.5].
  VF p = hn::Set(df, 1.5403530393381606e-4f);
  p = hn::MulAdd(p, f, hn::Set(df, 1.3333558146428443e-3f));
  p = hn::MulAdd(p, f, hn::Set(df, 9.6181291076284772e-3f));
  p = hn::MulAdd(p, f, hn::Set(df, 5.5504108664821580e-2f));
  p = hn::MulAdd(p, f, hn::Set(df, 2.4022650695910071e-1f));
  p = hn::MulAdd(p, f, hn::Set(df, 6.9314718055994531e-1f));
  p = hn::MulAdd(p, f, hn::Set(df, 1.0f));
  const VI bits = hn::ShiftLeft<23>(hn::Add(hn::ConvertTo(di, n), hn::Set(di, 127)));
  return hn::Mul(p, hn::BitCast(df, bits));
}

// Per-thread scratch; grows to the largest work item seen and is then reused.
struct Scratch {
  Buffer<const float*> q;   // [rows] query rows in the input
  Buffer<float> o;          // [rows][dim] unnormalised outputs
  Buffer<float> sums;       // [rows][kLanes] running softmax sums per lane
  Buffer<float> max;        // [rows] running maxima (log2 domain)
  Buffer<std::int32_t> lo;  // [rows] first visible key
  Buffer<std::int32_t> hi;  // [rows] last visible key (the query's position)
  Buffer<float> p;          // [kRows][kTile] probabilities of one row chunk
  Buffer<float> alpha;      // [kAlphaSlots] rescale factors of one row chunk
  Buffer<float> kt;         // [dim][kTile] gathered keys, transposed
  Buffer<float> vt;         // [kTile][dim] gathered values
  Buffer<std::int32_t> key; // [kTile] key index per lane, INT32_MAX for padding
  Buffer<std::uint32_t> qb; // [rows][dim / 2] the rows' queries as bf16 pairs (bf16 keys only)

  void ensure(std::int64_t rows, int dim) {
    q.ensure(rows);
    o.ensure(rows * dim);
    sums.ensure(rows * kLanes);
    max.ensure(rows);
    lo.ensure(rows);
    hi.ensure(rows);
    p.ensure(kRows * kTile);
    alpha.ensure(kAlphaSlots);
    kt.ensure(std::size_t(dim) * kTile);
    vt.ensure(std::size_t(dim) * kTile);
    key.ensure(kTile);
  }
  void ensure_bf16(std::int64_t rows, int dim) { qb.ensure(rows * (dim / 2)); }
};

Scratch& thread_scratch() {
  thread_local Scratch scratch;
  return scratch;
}

// The rows of one work item against one key tile at a time.
class TileRunner {
 public:
  TileRunner(Scratch& sc, std::int64_t rows, int dim, float scale, bool bf16)
      : sc_(sc), rows_(rows), dim_(dim), scale_(scale), bf16_(bf16) {}

  // kt: [dim][kTile] transposed keys; lane j's value row is v + j * v_stride; lanes outside
  // [j0, j1) hold no key. sc_.key holds each lane's key index. `full`: every lane holds a
  // key; [kmin, kmax]: the smallest and largest key in the tile.
  void tile(const float* kt, const float* v, std::int64_t v_stride, int j0, int j1, bool full,
            std::int32_t kmin, std::int32_t kmax) {
    for (std::int64_t r0 = 0; r0 < rows_; r0 += kRows)
      chunk_of<kRows>(int(std::min<std::int64_t>(kRows, rows_ - r0)), r0, kt, v, v_stride, j0, j1, full, kmin, kmax);
  }

 private:
  // chunk<rows>(...) for a run-time row count in [1, R].
  template <int R>
  HWY_INLINE void chunk_of(int rows, std::int64_t r0, const float* kt, const float* v, std::int64_t v_stride, int j0,
                           int j1, bool full, std::int32_t kmin, std::int32_t kmax) {
    if (rows == R) {
      chunk<R>(r0, kt, v, v_stride, j0, j1, full, kmin, kmax);
    } else if constexpr (R > 1) {
      chunk_of<R - 1>(rows, r0, kt, v, v_stride, j0, j1, full, kmin, kmax);
    }
  }

  template <int R>
  void chunk(std::int64_t r0, const float* kt, const float* v, std::int64_t v_stride, int j0, int j1,
             bool full, std::int32_t kmin, std::int32_t kmax) {
    std::int32_t lo_min = INT32_MAX, lo_max = INT32_MIN, hi_min = INT32_MAX, hi_max = INT32_MIN;
    for (int r = 0; r < R; ++r) {
      lo_min = std::min(lo_min, sc_.lo[r0 + r]);
      lo_max = std::max(lo_max, sc_.lo[r0 + r]);
      hi_min = std::min(hi_min, sc_.hi[r0 + r]);
      hi_max = std::max(hi_max, sc_.hi[r0 + r]);
    }
    if (kmin > hi_max || kmax < lo_min) return;  // no row of the chunk sees this tile
    const bool masked = !full || kmax > hi_min || kmin < lo_max;

    // Keys beyond the chunk's last position or before its first visible key need no work:
    // on diagonal tiles that trims the score vectors and the P·V loop. Lanes in [j0, j1) hold
    // ascending keys.
    int vec_end = kVecs, pv_begin = j0, pv_end = j1;
    if (masked) {
      const std::int32_t* key = sc_.key.data();
      pv_end = int(std::upper_bound(key + j0, key + j1, hi_max) - key);
      pv_begin = int(std::lower_bound(key + j0, key + pv_end, lo_min) - key);
      if (pv_begin >= pv_end) return;
      vec_end = (pv_end + kLanes - 1) / kLanes;
    }

    switch (vec_end) {
      case 1: body<R, 1>(r0, kt, v, v_stride, pv_begin, pv_end, masked); break;
      case 2: body<R, 2>(r0, kt, v, v_stride, pv_begin, pv_end, masked); break;
      case 3: body<R, 3>(r0, kt, v, v_stride, pv_begin, pv_end, masked); break;
      default: body<R, kVecs>(r0, kt, v, v_stride, pv_begin, pv_end, masked); break;
    }
  }

  // Rows [r0, r0 + R) against the first NK score vectors of a tile; P·V over lanes
  // [pv_begin, pv_end), all within those vectors.
  template <int R, int NK>
  void body(std::int64_t r0, const float* kt, const float* v, std::int64_t v_stride, int pv_begin, int pv_end,
            bool masked) {
    const DF df;
    const DI di;
    // 1. S = Q·Kᵀ (raw dot products; the scale is folded into the exponent below).
    VF s[R][NK];
    for (int r = 0; r < R; ++r)
      for (int j = 0; j < NK; ++j) s[r][j] = hn::Zero(df);
    if (bf16_) {
#if LS_TILE_BF16
      const auto* kb = reinterpret_cast<const std::uint32_t*>(kt);
      const std::uint32_t* qb = sc_.qb.data() + r0 * (dim_ / 2);
      for (int c2 = 0; c2 < dim_ / 2; ++c2) {
        const std::uint32_t* kc = kb + std::int64_t(c2) * kTile;
        __m512bh k[NK];
        for (int j = 0; j < NK; ++j) k[j] = (__m512bh)_mm512_loadu_si512(kc + j * kLanes);
        for (int r = 0; r < R; ++r) {
          const __m512bh qv = (__m512bh)_mm512_set1_epi32(int(qb[r * (dim_ / 2) + c2]));
          for (int j = 0; j < NK; ++j) s[r][j].raw = _mm512_dpbf16_ps(s[r][j].raw, qv, k[j]);
        }
      }
#endif
    } else {
      const float* const* q = sc_.q.data() + r0;
      for (int c = 0; c < dim_; ++c) {
        const float* kc = kt + std::int64_t(c) * kTile;
        VF k[NK];
        for (int j = 0; j < NK; ++j) k[j] = hn::Load(df, kc + j * kLanes);
        for (int r = 0; r < R; ++r) {
          const VF qv = hn::Set(df, q[r][c]);
          for (int j = 0; j < NK; ++j) s[r][j] = hn::MulAdd(qv, k[j], s[r][j]);
        }
      }
    }

    // 2–3. Mask and online softmax. The rescale factors of all R rows go through one
    // vector exp2.
    float* p = sc_.p.data();
    float* alpha = sc_.alpha.data();
    alignas(64) float shift[kAlphaSlots] = {};  // old max − new max per row (0: keep)
    float row_max[R];
    for (int r = 0; r < R; ++r) {
      const std::int64_t row = r0 + r;
      if (masked) {
        const VI lo = hn::Set(di, sc_.lo[row]);
        const VI hi = hn::Set(di, sc_.hi[row]);
        for (int j = 0; j < NK; ++j) {
          const VI keys = hn::Load(di, sc_.key.data() + j * kLanes);
          const auto outside = hn::Or(keys < lo, keys > hi);
          s[r][j] = hn::IfThenElse(hn::RebindMask(df, outside), hn::Set(df, kNegInf), s[r][j]);
        }
      }
      VF top = s[r][0];
      for (int j = 1; j < NK; ++j) top = hn::Max(top, s[r][j]);
      const float old_max = sc_.max[row];
      const float new_max = std::max(old_max, hn::GetLane(hn::MaxOfLanes(df, top)) * scale_);
      // A row that has seen no key yet keeps max -inf; its exponentials below are 0.
      row_max[r] = new_max == kNegInf ? 0.0f : new_max;
      shift[r] = new_max == kNegInf ? 0.0f : old_max - new_max;  // -inf on the first key: α = 0
      sc_.max[row] = new_max;
    }
    for (int r = 0; r < R; r += kLanes) hn::Store(Exp2(df, hn::Load(df, shift + r)), df, alpha + r);
    const VF scale = hn::Set(df, scale_);
    for (int r = 0; r < R; ++r) {
      const VF m = hn::Set(df, row_max[r]);
      VF sum = hn::Zero(df);
      for (int j = 0; j < NK; ++j) {
        const VF e = Exp2(df, hn::MulSub(s[r][j], scale, m));
        hn::Store(e, df, p + r * kTile + j * kLanes);
        sum = hn::Add(sum, e);
      }
      float* sums = sc_.sums.data() + (r0 + r) * kLanes;
      hn::Store(hn::MulAdd(hn::Load(df, sums), hn::Set(df, alpha[r]), sum), df, sums);
    }

    // 4. O = α·O + P·V.
    int c0 = 0;
    for (; c0 + kVecs * kLanes <= dim_; c0 += kVecs * kLanes)
      accumulate<R, kVecs>(r0, c0, v, v_stride, pv_begin, pv_end);
    for (; c0 < dim_; c0 += kLanes) accumulate<R, 1>(r0, c0, v, v_stride, pv_begin, pv_end);
  }

  template <int R, int NV>
  void accumulate(std::int64_t r0, int c0, const float* v, std::int64_t v_stride, int j0, int j1) {
    const DF df;
    VF acc[R][NV];
    float* o = sc_.o.data() + r0 * dim_ + c0;
    const float* p = sc_.p.data();
    for (int r = 0; r < R; ++r) {
      const VF a = hn::Set(df, sc_.alpha[r]);
      for (int j = 0; j < NV; ++j) acc[r][j] = hn::Mul(hn::Load(df, o + r * dim_ + j * kLanes), a);
    }
    for (int key = j0; key < j1; ++key) {
      const float* vr = v + key * v_stride + c0;
      VF vv[NV];
      for (int j = 0; j < NV; ++j) vv[j] = hn::LoadU(df, vr + j * kLanes);
      for (int r = 0; r < R; ++r) {
        const VF pv = hn::Set(df, p[r * kTile + key]);
        for (int j = 0; j < NV; ++j) acc[r][j] = hn::MulAdd(pv, vv[j], acc[r][j]);
      }
    }
    for (int r = 0; r < R; ++r)
      for (int j = 0; j < NV; ++j) hn::Store(acc[r][j], df, o + r * dim_ + j * kLanes);
  }

  Scratch& sc_;
  std::int64_t rows_;
  int dim_;
  float scale_;  // softmax scale · log2(e): scores live in the log2 domain
  bool bf16_;    // kt holds bf16 pairs ([dim/2][kTile] words) and sc_.qb the queries' pairs
};

}  // namespace

int KeyTile() { return kTile; }

bool Bf16Compiled() { return LS_TILE_BF16 != 0; }

// Gather offsets of one column of a full tile: lane l of vector j reads key j·kLanes + l of
// rows `dim` floats apart.
HWY_INLINE void tile_column_offsets(int dim, VI* offsets) {
  const DI di;
  for (int j = 0; j < kVecs; ++j) offsets[j] = hn::Mul(hn::Add(hn::Iota(di, 0), hn::Set(di, j * kLanes)), hn::Set(di, dim));
}

// A bf16 pair word: dimension 2c in the low half, 2c + 1 in the high half (vdpbf16ps's order).
inline std::uint32_t bf16_pair(float even, float odd) {
  return std::uint32_t(fp32_to_bf16(even)) | std::uint32_t(fp32_to_bf16(odd)) << 16;
}

const char* TargetName() { return hwy::TargetName(HWY_TARGET); }

// Fills packed [kv_heads][tiles][dim][kTile] (see PackedKeys), or with `bf16` the
// [kv_heads][tiles][dim/2][kTile] words of bf16 pairs.
void PackKeys(const AttnInput& in, std::int64_t tiles, float* packed, bool bf16) {
  const AttnShape& s = in.shape;
  const std::int64_t tile_floats = std::int64_t(bf16 ? s.dim / 2 : s.dim) * kTile;
  parallel_for(std::int64_t(s.kv_heads) * tiles, [&](std::int64_t item) {
    const int g = int(item / tiles);
    const std::int64_t t = item % tiles;
    if (bf16) {
      auto* dst = reinterpret_cast<std::uint32_t*>(packed + item * tile_floats);  // [dim/2][kTile]
#if LS_TILE_BF16
      if ((t + 1) * kTile <= s.n_k) {
        const DF df;
        const float* k = in.k_row(g, t * kTile);
        VI offsets[kVecs];
        tile_column_offsets(s.dim, offsets);
        for (int c2 = 0; c2 < s.dim / 2; ++c2)
          for (int j = 0; j < kVecs; ++j) {
            const __m256i even = (__m256i)_mm512_cvtneps_pbh(hn::GatherIndex(df, k + 2 * c2, offsets[j]).raw);
            const __m256i odd = (__m256i)_mm512_cvtneps_pbh(hn::GatherIndex(df, k + 2 * c2 + 1, offsets[j]).raw);
            const __m512i words = _mm512_or_si512(_mm512_cvtepu16_epi32(even),
                                                  _mm512_slli_epi32(_mm512_cvtepu16_epi32(odd), 16));
            _mm512_storeu_si512(dst + std::int64_t(c2) * kTile + j * kLanes, words);
          }
        return;
      }
#endif
      for (int j = 0; j < kTile; ++j) {
        const std::int64_t key = t * kTile + j;
        const float* k = key < s.n_k ? in.k_row(g, key) : nullptr;
        for (int c2 = 0; c2 < s.dim / 2; ++c2) dst[std::int64_t(c2) * kTile + j] = k ? bf16_pair(k[2 * c2], k[2 * c2 + 1]) : 0;
      }
      return;
    }
    float* dst = packed + item * tile_floats;  // [dim][kTile]
    if ((t + 1) * kTile <= s.n_k) {
      // A full tile: gather each column of kTile keys (vector gathers beat scalar strided stores).
      const DF df;
      const float* k = in.k_row(g, t * kTile);
      VI offsets[kVecs];
      tile_column_offsets(s.dim, offsets);
      for (int c = 0; c < s.dim; ++c)
        for (int j = 0; j < kVecs; ++j)
          hn::Store(hn::GatherIndex(df, k + c, offsets[j]), df, dst + std::int64_t(c) * kTile + j * kLanes);
      return;
    }
    for (int j = 0; j < kTile; ++j) {
      const std::int64_t key = t * kTile + j;
      if (key < s.n_k) {
        const float* k = in.k_row(g, key);
        for (int c = 0; c < s.dim; ++c) dst[std::int64_t(c) * kTile + j] = k[c];
      } else {
        for (int c = 0; c < s.dim; ++c) dst[std::int64_t(c) * kTile + j] = 0.0f;
      }
    }
  }, 8);
}

void AttendRows(const AttnInput& in, const PackedKeys& keys, int first_head, int head_count,
                std::int64_t q_begin, std::int64_t q_end, std::span<const KeyInterval> intervals,
                std::span<const std::int32_t> columns, float* out, float* lse, std::int64_t shift,
                double* lse64) {
  // Packed by this target's PackKeys, unless the target changed in between (another thread's
  // force_isa): abort rather than read the tiles wrongly (an exception cannot leave the
  // caller's parallel region).
  HWY_ASSERT(keys.tile_keys() == kTile);
  HWY_ASSERT(!keys.bf16() || LS_TILE_BF16);
  const AttnShape& s = in.shape;
  const int dim = s.dim;
  const int kv = s.kv_head_of(first_head);
  const std::int64_t block = q_end - q_begin;
  const std::int64_t rows = std::int64_t(head_count) * block;
  Scratch& sc = thread_scratch();
  sc.ensure(rows, dim);

  // Rows are query-major: row = query offset * head_count + head offset. A chunk of rows then
  // spans one or two positions, so the diagonal tile's trimming to the chunk's last position
  // is tight.
  std::int64_t min_lo = s.n_k, max_hi = -1;
  for (std::int64_t i = q_begin, r = 0; i < q_end; ++i) {
    const std::int64_t pos = s.position(i) + shift;
    min_lo = std::min(min_lo, s.first_key(pos));
    max_hi = std::max(max_hi, pos);
    for (int h = first_head; h < first_head + head_count; ++h, ++r) {
      sc.lo[r] = std::int32_t(s.first_key(pos));
      sc.hi[r] = std::int32_t(pos);
      sc.q[r] = in.q_row(h, i);
    }
  }
  std::fill_n(sc.o.data(), rows * dim, 0.0f);
  std::fill_n(sc.sums.data(), rows * kLanes, 0.0f);
  std::fill_n(sc.max.data(), rows, kNegInf);
  const bool bf16 = keys.bf16();
  if (bf16) {
    sc.ensure_bf16(rows, dim);
    for (std::int64_t r = 0; r < rows; ++r)
      for (int c2 = 0; c2 < dim / 2; ++c2) sc.qb[r * (dim / 2) + c2] = bf16_pair(sc.q[r][2 * c2], sc.q[r][2 * c2 + 1]);
  }

  TileRunner runner(sc, rows, dim, s.softmax_scale() * kLog2e, bf16);
  std::int32_t* lane_key = sc.key.data();

  // Contiguous keys: the packed tiles in place, V rows read from the input.
  for (const KeyInterval& interval : intervals) {
    const std::int64_t a = std::max(interval.begin, min_lo);
    const std::int64_t b = std::min(interval.end, max_hi + 1);
    if (a >= b) continue;
    for (std::int64_t t = a / kTile; t <= (b - 1) / kTile; ++t) {
      const std::int64_t base = t * kTile;
      const std::int64_t first = std::max(a, base), last = std::min(b, base + kTile) - 1;
      for (int j = 0; j < kTile; ++j) {
        const std::int64_t key = base + j;
        lane_key[j] = key >= first && key <= last ? std::int32_t(key) : INT32_MAX;
      }
      runner.tile(keys.tile(kv, t), in.v_row(kv, base), dim, int(first - base), int(last - base + 1),
                  first == base && last == base + kTile - 1, std::int32_t(first), std::int32_t(last));
    }
  }

  // Gathered columns: copied into a transposed key tile and a value tile, kTile at a time.
  const auto visible_begin = std::lower_bound(columns.begin(), columns.end(), std::int32_t(min_lo));
  const auto visible_end = std::upper_bound(visible_begin, columns.end(), std::int32_t(max_hi));
  for (auto it = visible_begin; it < visible_end; it += kTile) {
    const int count = int(std::min<std::ptrdiff_t>(kTile, visible_end - it));
    float* kt = sc.kt.data();  // [dim][kTile], or [dim/2][kTile] bf16 pair words
    auto* kt_pairs = reinterpret_cast<std::uint32_t*>(kt);
    float* vt = sc.vt.data();  // [kTile][dim]
    for (int j = 0; j < kTile; ++j) {
      if (j < count) {
        const std::int32_t key = it[j];
        lane_key[j] = key;
        const float* k = in.k_row(kv, key);
        if (bf16) {
          for (int c2 = 0; c2 < dim / 2; ++c2) kt_pairs[std::int64_t(c2) * kTile + j] = bf16_pair(k[2 * c2], k[2 * c2 + 1]);
        } else {
          for (int c = 0; c < dim; ++c) kt[std::int64_t(c) * kTile + j] = k[c];
        }
        std::copy_n(in.v_row(kv, key), dim, vt + std::int64_t(j) * dim);
      } else {
        lane_key[j] = INT32_MAX;
        if (bf16) {
          for (int c2 = 0; c2 < dim / 2; ++c2) kt_pairs[std::int64_t(c2) * kTile + j] = 0;
        } else {
          for (int c = 0; c < dim; ++c) kt[std::int64_t(c) * kTile + j] = 0.0f;
        }
      }
    }
    runner.tile(kt, vt, dim, 0, count, count == kTile, it[0], it[count - 1]);
  }

  // Normalise and write out. The output is not read again by this kernel: streaming stores
  // skip the read-for-ownership of every output line (rows are whole vectors, dim % 16 == 0).
  const DF df;
  for (std::int64_t r = 0; r < rows; ++r) {
    const float sum = hn::GetLane(hn::SumOfLanes(df, hn::Load(df, sc.sums.data() + r * kLanes)));
    const VF inv = hn::Set(df, sum > 0.0f ? 1.0f / sum : 0.0f);
    const int h = first_head + int(r % head_count);
    const std::int64_t i = q_begin + r / head_count;
    float* dst = out + (std::int64_t(h) * s.n_q + i) * dim;
    if (lse || lse64) {
      const double l = sum > 0.0f ? kLn2 * (double(sc.max[r]) + std::log2(double(sum))) : double(kNegInf);
      if (lse) lse[std::int64_t(h) * s.n_q + i] = float(l);
      if (lse64) lse64[std::int64_t(h) * s.n_q + i] = l;
    }
    const float* o = sc.o.data() + r * dim;
    if (reinterpret_cast<std::uintptr_t>(dst) % (kLanes * sizeof(float)) == 0) {
      for (int c = 0; c < dim; c += kLanes) hn::Stream(hn::Mul(hn::Load(df, o + c), inv), df, dst + c);
    } else {
      for (int c = 0; c < dim; c += kLanes) hn::StoreU(hn::Mul(hn::Load(df, o + c), inv), df, dst + c);
    }
  }
  hwy::FlushStream();  // order the streaming stores before the caller (or another thread) reads
}

}  // namespace HWY_NAMESPACE
}  // namespace ls::detail
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <atomic>

#include "core/cpu.h"

namespace ls::detail {

HWY_EXPORT(KeyTile);
HWY_EXPORT(Bf16Compiled);
HWY_EXPORT(TargetName);
HWY_EXPORT(PackKeys);
HWY_EXPORT(AttendRows);

int key_tile() { return HWY_DYNAMIC_DISPATCH(KeyTile)(); }

const char* simd_target() { return HWY_DYNAMIC_DISPATCH(TargetName)(); }

namespace {
std::atomic<bool> bf16_scores{false};
}  // namespace

bool bf16_scores_supported() { return cpu_features().avx512bf16 && HWY_DYNAMIC_DISPATCH(Bf16Compiled)(); }

void set_bf16_scores(bool on) { bf16_scores.store(on); }

bool bf16_scores_on() { return bf16_scores.load() && bf16_scores_supported(); }

PackedKeys::PackedKeys(const AttnInput& in) {
  const AttnShape& s = in.shape;
  tile_keys_ = key_tile();
  tiles_ = (s.n_k + tile_keys_ - 1) / tile_keys_;
  bf16_ = bf16_scores_on() && s.dim % 2 == 0;
  tile_floats_ = std::int64_t(bf16_ ? s.dim / 2 : s.dim) * tile_keys_;
  thread_local Buffer<float> reused;
  thread_local bool reused_taken = false;
  if (!reused_taken) {
    reused_taken = true;
    taken_ = &reused_taken;
    data_ = &reused;
  } else {
    data_ = &own_;
  }
  data_->ensure(std::size_t(s.kv_heads) * tiles_ * tile_floats_);
  HWY_DYNAMIC_DISPATCH(PackKeys)(in, tiles_, data_->data(), bf16_);
}

PackedKeys::~PackedKeys() {
  if (taken_) *taken_ = false;
}

void attend_rows(const AttnInput& in, const PackedKeys& keys, int first_head, int head_count,
                 std::int64_t q_begin, std::int64_t q_end, std::span<const KeyInterval> intervals,
                 std::span<const std::int32_t> columns, float* out, float* lse, std::int64_t shift,
                 double* lse64) {
  HWY_DYNAMIC_DISPATCH(AttendRows)(in, keys, first_head, head_count, q_begin, q_end, intervals, columns, out, lse,
                                   shift, lse64);
}

}  // namespace ls::detail
#endif  // HWY_ONCE
