// Building blocks shared by the prefill estimates (vertical-slash, block-sparse, FlexPrefill,
// XAttention, AnchorAttention, block-gate) and the pattern search: small score GEMMs, block
// pooling, softmax over a row, ordering by score, top-k, cumulative-mass budgets and the
// Jensen–Shannon distance.
// Everything here works on caller-owned memory and never allocates per element, so the
// methods can call it from inside their per-head parallel loops.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "attn/attention.h"

namespace ls::estimate {

// Score GEMMs in bfloat16 with fp32 accumulation where the CPU has bf16 dot products: an
// estimate ranks attention mass and does not need fp32 products (the official implementations
// compute their estimates in bf16 on the GPU). Two kernels, chosen at run time: AMX (Intel
// Advanced Matrix Extensions, `tdpbf16ps`) where the CPU has it and the OS grants it, else
// AVX-512 BF16 (`vdpbf16ps`: Intel Cooper Lake and later, AMD Zen 4 and 5) where the CPU has
// it and LONGSPARSE_ISA (core/cpu.h) does not ask for less than avx512-vnni. Otherwise, or
// with LONGSPARSE_ESTIMATE_FP32=1 in the environment, or after set_bf16_scores(false), fp32
// (AVX-512 or whatever the build targets). The attention itself is always fp32.
enum class ScoreKernel { Fp32, Avx512Bf16, AmxBf16 };
const char* score_kernel_name(ScoreKernel kernel);  // "fp32", "avx512-bf16", "amx-bf16"
bool amx_available();
bool cpu_runs(ScoreKernel kernel);  // whether this CPU (and OS) can run it; fp32 always
ScoreKernel score_kernel();         // the kernel that PackedRows packed now use
bool set_bf16_scores(bool on);  // on (the default): bf16 where the CPU has it; returns the previous setting
bool bf16_scores();             // score_kernel() != ScoreKernel::Fp32
const char* score_precision();  // score_kernel_name(score_kernel()), for reports
// Which bf16 kernel runs while bf16 scores are on (tests and benchmarks: AVX-512 BF16 on a
// CPU with AMX); one the CPU cannot run is an error. Returns the previous one.
ScoreKernel force_bf16_kernel(ScoreKernel kernel);

// Sets the score precision for its lifetime (for instance fp32 around a build_plan whose
// inputs need fp32 products), then restores the previous setting.
class ScopedScorePrecision {
 public:
  explicit ScopedScorePrecision(bool bf16) : previous_(set_bf16_scores(bf16)) {}
  ~ScopedScorePrecision() { set_bf16_scores(previous_); }
  ScopedScorePrecision(const ScopedScorePrecision&) = delete;
  ScopedScorePrecision& operator=(const ScopedScorePrecision&) = delete;

 private:
  bool previous_;
};

// Runs the scores on `kernel` for its lifetime (fp32, or a bf16 kernel this CPU runs: an
// error otherwise), then restores the previous precision and bf16 kernel.
class ScopedScoreKernel {
 public:
  explicit ScopedScoreKernel(ScoreKernel kernel);
  ~ScopedScoreKernel();
  ScopedScoreKernel(const ScopedScoreKernel&) = delete;
  ScopedScoreKernel& operator=(const ScopedScoreKernel&) = delete;

 private:
  bool previous_bf16_;
  int previous_forced_;
};

// Rows of a matrix B [n][k] repacked for score GEMMs, in panels of kPanel consecutive rows,
// zero-padded. fp32: each panel channel-major [k][kPanel], so the kernel reads one vector of
// kPanel keys per channel and broadcasts the query channel. bf16 (chosen by bf16_scores()
// when the storage is sized): each panel two 16-row halves, each in slabs of 32 channels laid
// out as AMX B tiles ([16 channel pairs][16 rows][2]); a tile's 64-byte line is also the
// operand of one AVX-512 vdpbf16ps (16 rows × one channel pair), so both bf16 kernels read the
// same packing. Pack once per KV head and reuse it for every query head and block that reads
// those keys.
class PackedRows {
 public:
  static constexpr int kPanel = 32;
  void pack(const float* b, std::int64_t ldb, std::int64_t n, std::int64_t k);
  // pack() in two steps, for packing one B from several threads: resize() sizes the storage
  // for B [n][k]; pack_panels() then fills panels [first, end) (disjoint ranges may run
  // concurrently). b and ldb describe the whole B.
  void resize(std::int64_t n, std::int64_t k);
  void pack_panels(const float* b, std::int64_t ldb, std::int64_t first, std::int64_t end);
  // Panel p from its own rows: rows[j * ldb] is B row p·kPanel + j (as many rows as the
  // panel has, fewer for a last partial one). For a B that is built panel by panel.
  void pack_panel(std::int64_t p, const float* rows, std::int64_t ldb);
  std::int64_t panels() const { return (rows_ + kPanel - 1) / kPanel; }
  std::int64_t rows() const { return rows_; }
  std::int64_t depth() const { return depth_; }
  bool is_bf16() const { return bf16_; }
  const float* panel(std::int64_t p) const { return data_.data() + p * depth_ * kPanel; }
  // bf16 layout: panel p, half h (rows 16h..16h+15), slab s: a 16 × 32 tile of bf16 bits.
  std::int64_t slabs() const { return (depth_ + 31) / 32; }
  const std::uint16_t* tile(std::int64_t p, int half, std::int64_t s) const {
    return bf16_data_.data() + ((p * 2 + half) * slabs() + s) * 512;
  }

 private:
  std::vector<float> data_;  // fp32: [ceil(rows / kPanel)][depth][kPanel]
  std::vector<std::uint16_t> bf16_data_;  // bf16: [panels][2][slabs][16][32]
  std::int64_t rows_ = 0, depth_ = 0;
  bool bf16_ = false;
};

// c[i * ldc + (j - col_first)] = scale * dot(a row i, b row j) for i < m and
// col_first <= j < col_end; a rows have b.depth() floats. Single-threaded (safe inside
// ls::parallel_for). In b's precision: fp32, or with a bf16 b, a·scale rounded to bf16 and
// products summed in fp32 by score_kernel() (by the best bf16 kernel if that is now fp32).
void scores_packed(const float* a, std::int64_t lda, std::int64_t m, const PackedRows& b, std::int64_t col_first,
                   std::int64_t col_end, float* c, std::int64_t ldc, float scale);

// The same for an unpacked B [n][k] (packs into per-thread scratch): for small or one-off B.
void scores_abt(const float* a, std::int64_t lda, const float* b, std::int64_t ldb, float* c, std::int64_t ldc,
                std::int64_t m, std::int64_t n, std::int64_t k, float scale);

enum class Pool { Mean, Max, Min };

// out [ceil(rows / block)][dim]: each block of `block` consecutive rows of x [rows][dim]
// reduced channel-wise; a last partial block is reduced over the rows it has.
void pool_rows(const float* x, std::int64_t rows, int dim, int block, Pool pool, float* out);

// The largest of x[0..n) (vectorised); -infinity for n = 0.
float max_of(const float* x, std::int64_t n);

// In-place softmax of x[0..n) (vectorised exp); entries equal to -infinity get probability
// 0. A row that is entirely -infinity becomes all zeros.
void softmax(float* x, std::int64_t n);

// Indices of values sorted by descending value; ties go to the lower index, so the order is
// deterministic.
void order_descending(std::span<const float> values, std::vector<std::int32_t>& order);

// FlexPrefill's budget: the number of largest entries whose cumulative sum first exceeds
// `target` (count of prefix sums <= target, plus one), at most values.size().
std::int64_t cover_count(std::span<const float> values, double target, std::vector<float>& scratch);

// Square-root Jensen–Shannon divergence (natural log) between two distributions of equal
// length; 0·log 0 counts as 0. Inputs should each sum to 1.
double sqrt_js_distance(std::span<const float> p, std::span<const float> q);

// K of every KV head packed for scores_packed (all n_k keys), packed in parallel. The storage
// belongs to the calling thread and is reused by its next call (a layer's estimate then
// touches no fresh pages), so the span is valid until that thread calls pack_keys again.
std::span<const PackedRows> pack_keys(const AttnInput& in);

// The last `last` queries of every head, softmaxed over their causal keys (fp32), summed by
// key and by query−key offset: vertical[h · n_k + key] and slash[h · n_k + offset], both
// [heads][n_k]. The vertical-slash estimate of MInference and FlexPrefill. `keys` holds one
// PackedRows per KV head (all n_k keys). Parallel over (head, chunk of queries), summed in a
// fixed order, so the result does not depend on the thread count.
void last_query_sums(const AttnInput& in, std::span<const PackedRows> keys, std::int64_t last,
                     std::vector<float>& vertical, std::vector<float>& slash);

float dot(const float* a, const float* b, int dim);

// Indices of the k largest scores, largest first; ties go to the smaller index so that plans
// are deterministic. k is clamped to scores.size().
std::vector<std::int64_t> top_k_indices(std::span<const double> scores, std::int64_t k);

// Exact softmax probabilities (double) of one query row over keys [first, last] (inclusive),
// written to probs[first..last]; entries outside are left untouched. `query` is a row of Q.
// For analysis and offline search, where accuracy matters more than speed.
void softmax_row(const AttnInput& in, int head, const float* query, std::int64_t first, std::int64_t last,
                 std::vector<double>& probs);

// Sum of rows [begin, end) of a [rows][dim] matrix divided by `divisor` (the block size when
// a ragged last block is treated as zero-padded, as MInference does).
void mean_rows(const float* rows, int dim, std::int64_t begin, std::int64_t end, double divisor, float* out);

}  // namespace ls::estimate
