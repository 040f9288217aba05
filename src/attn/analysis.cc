// Plan quality on sampled rows (see analysis.h): exact rows streamed in double, one at a time.
#include "attn/analysis.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/parallel.h"

namespace ls {

namespace {

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

struct RowQuality {
  double kept = 0.0;      // probability mass the plan selects
  double err2 = 0.0;      // squared L2 distance of the sparse output row to the exact row
  double norm2 = 0.0;     // squared L2 norm of the exact row
};

// Exact softmax row of (head, query) in double, then the plan's kept mass and the output error.
RowQuality measure_row(const AttnInput& in, const Plan& plan, const float* sparse_out, int head,
                       std::int64_t query, std::vector<double>& prob, std::vector<double>& exact) {
  const AttnShape& s = in.shape;
  const int kv = s.kv_head_of(head);
  const std::int64_t pos = s.position(query), lo = s.first_key(pos);
  const double scale = s.softmax_scale();
  const float* q = in.q_row(head, query);
  prob.resize(std::size_t(s.n_k));
  double top = -std::numeric_limits<double>::infinity();
  for (std::int64_t key = lo; key <= pos; ++key) {
    const float* k = in.k_row(kv, key);
    double dot = 0.0;
    for (int c = 0; c < s.dim; ++c) dot += double(q[c]) * double(k[c]);
    prob[key] = dot * scale;
    top = std::max(top, prob[key]);
  }
  double sum = 0.0;
  for (std::int64_t key = lo; key <= pos; ++key) sum += (prob[key] = std::exp(prob[key] - top));

  RowQuality quality;
  const std::int64_t row = plan.row(head, query / plan.block_q);
  for (const BlockRange& range : plan.row_ranges(row)) {
    const std::int64_t first = std::max(lo, std::int64_t(range.begin) * plan.block_k);
    const std::int64_t last = std::min(pos, std::int64_t(range.end) * plan.block_k - 1);
    for (std::int64_t key = first; key <= last; ++key) quality.kept += prob[key];
  }
  for (std::int32_t key : plan.row_columns(row))
    if (key >= lo && key <= pos) quality.kept += prob[key];
  quality.kept /= sum;

  if (sparse_out) {
    exact.assign(std::size_t(s.dim), 0.0);
    for (std::int64_t key = lo; key <= pos; ++key) {
      const float* v = in.v_row(kv, key);
      const double w = prob[key] / sum;
      for (int c = 0; c < s.dim; ++c) exact[c] += w * double(v[c]);
    }
    const float* got = sparse_out + (std::int64_t(head) * s.n_q + query) * s.dim;
    for (int c = 0; c < s.dim; ++c) {
      const double diff = double(got[c]) - exact[c];
      quality.err2 += diff * diff;
      quality.norm2 += exact[c] * exact[c];
    }
  }
  return quality;
}

}  // namespace

std::vector<std::int64_t> sample_query_rows(std::int64_t n_q, int count, std::uint64_t seed) {
  LS_CHECK(n_q > 0 && count > 0, "sample_query_rows: need n_q > 0 and count > 0 (n_q={}, count={})", n_q, count);
  std::vector<std::int64_t> rows;
  if (count >= n_q) {
    for (std::int64_t i = 0; i < n_q; ++i) rows.push_back(i);
    return rows;
  }
  // Offset in [0, 1) from the seed; strata of n_q / count rows each hold one sample.
  const double offset = double(splitmix64(seed) >> 11) * 0x1.0p-53;
  for (int j = 0; j < count; ++j) {
    const std::int64_t row = std::int64_t((j + offset) * double(n_q) / count);
    rows.push_back(std::min(row, n_q - 1));
  }
  rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
  return rows;
}

PlanQuality measure_plan(const AttnInput& in, const Plan& plan, const float* sparse_out, int sample_rows,
                         std::uint64_t seed) {
  const AttnShape& s = in.shape;
  s.validate();
  LS_CHECK(in.q && in.k && in.v, "measure_plan: null Q, K or V");
  LS_CHECK(plan.heads == s.heads && plan.n_q == s.n_q && plan.n_k == s.n_k,
           "measure_plan: plan shape (heads {}, n_q {}, n_k {}) does not match the input (heads {}, n_q {}, n_k {})",
           plan.heads, plan.n_q, plan.n_k, s.heads, s.n_q, s.n_k);
  validate(plan);
  const std::vector<std::int64_t> queries = sample_query_rows(s.n_q, sample_rows, seed);
  const std::int64_t per_head = std::int64_t(queries.size());
  std::vector<RowQuality> results(std::size_t(per_head) * s.heads);  // [heads][sampled rows]
  parallel_for(std::int64_t(results.size()), [&](std::int64_t item) {
    thread_local std::vector<double> prob, exact;  // [n_k], [dim]
    results[item] = measure_row(in, plan, sparse_out, int(item / per_head), queries[item % per_head], prob, exact);
  });

  PlanQuality quality;
  quality.rows = std::int64_t(results.size());
  quality.min_recall = 1.0;
  double err2 = 0.0, norm2 = 0.0;
  for (const RowQuality& row : results) {
    quality.recall += row.kept;
    quality.min_recall = std::min(quality.min_recall, row.kept);
    err2 += row.err2;
    norm2 += row.norm2;
  }
  quality.recall /= double(results.size());
  if (!sparse_out)
    quality.rel_err = std::numeric_limits<double>::quiet_NaN();
  else
    quality.rel_err = norm2 > 0.0 ? std::sqrt(err2 / norm2) : std::sqrt(err2);
  return quality;
}

}  // namespace ls
