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

// Rows of a matrix B [n][k] repacked for score GEMMs: panels of kPanel consecutive rows,
// each stored channel-major [k][kPanel] and zero-padded, so the kernel reads one vector of
// kPanel keys per channel and broadcasts the query channel. Pack once per KV head and reuse
// it for every query head and block that reads those keys.
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
  const float* panel(std::int64_t p) const { return data_.data() + p * depth_ * kPanel; }

 private:
  std::vector<float> data_;  // [ceil(rows / kPanel)][depth][kPanel]
  std::int64_t rows_ = 0, depth_ = 0;
};

// c[i * ldc + (j - col_first)] = scale * dot(a row i, b row j) for i < m and
// col_first <= j < col_end; a rows have b.depth() floats. Single-threaded (safe inside
// ls::parallel_for); vectorised by the compiler with -march=native.
void scores_packed(const float* a, std::int64_t lda, std::int64_t m, const PackedRows& b, std::int64_t col_first,
                   std::int64_t col_end, float* c, std::int64_t ldc, float scale);

// The same for an unpacked B [n][k] (packs into per-thread scratch): for small or one-off B.
void scores_abt(const float* a, std::int64_t lda, const float* b, std::int64_t ldb, float* c, std::int64_t ldc,
                std::int64_t m, std::int64_t n, std::int64_t k, float scale);

enum class Pool { Mean, Max, Min };

// out [ceil(rows / block)][dim]: each block of `block` consecutive rows of x [rows][dim]
// reduced channel-wise; a last partial block is reduced over the rows it has.
void pool_rows(const float* x, std::int64_t rows, int dim, int block, Pool pool, float* out);

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
