// Test inputs with planted attention structure, and recall measured on sampled rows, shared
// by the tests of the dynamic prefill methods (flexprefill, xattention, anchor, block-gate).
//
// Queries and keys are Gaussian noise; some key ranges are pushed along a direction u and
// some queries along the same u, so those queries send almost all their attention mass to
// those keys (score ≈ strength² / √d above the noise). Two patterns:
//   Stripe:     keys [320, 352) along u1; every query at position ≥ 384 along u1 — one
//               vertical stripe seen by all later queries (also by the last queries).
//   TwoPhase:   keys [192, 224) along u1, keys [576, 608) along u2; queries at positions
//               [256, 640) along u1, at [640, n) along u2 — which key block dominates depends
//               on the query block.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "attn/attention.h"
#include "attn/plan.h"
#include "attn/reference.h"
#include "core/parallel.h"
#include "core/error.h"
#include "methods/registry.h"

namespace ls::testing {

enum class Pattern { Stripe, TwoPhase };

struct PlantedInput {
  AttnShape shape;
  std::vector<float> q, k, v;  // [heads][n_q][dim], [kv_heads][n_k][dim] x2
  AttnInput input() const { return AttnInput{q.data(), k.data(), v.data(), shape}; }
};

// A key range [first, end) and the query positions [from, to) planted to attend it.
struct Planted {
  std::int64_t first, end, from, to;
};

inline std::vector<Planted> planted_ranges(Pattern pattern, std::int64_t n) {
  if (pattern == Pattern::Stripe) return {{320, 352, 384, n}};
  return {{192, 224, 256, std::min<std::int64_t>(640, n)}, {576, 608, 640, n}};
}

inline PlantedInput make_planted(Pattern pattern, int heads, int kv_heads, std::int64_t n, std::uint64_t seed,
                                 float strength = 12.0f, std::int64_t n_q = 0) {
  PlantedInput p;
  p.shape.heads = heads;
  p.shape.kv_heads = kv_heads;
  p.shape.n_k = n;
  p.shape.n_q = n_q > 0 ? n_q : n;
  p.shape.dim = 64;
  const int dim = p.shape.dim;
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  p.q.resize(std::size_t(heads) * p.shape.n_q * dim);
  p.k.resize(std::size_t(kv_heads) * n * dim);
  p.v.resize(p.k.size());
  for (float& x : p.q) x = normal(rng);
  for (float& x : p.k) x = normal(rng);
  for (float& x : p.v) x = normal(rng);
  const auto ranges = planted_ranges(pattern, n);
  for (int g = 0; g < kv_heads; ++g) {
    for (const Planted& r : ranges) {
      std::vector<float> u(dim);
      float norm = 0.0f;
      for (float& x : u) x = normal(rng), norm += x * x;
      for (float& x : u) x /= std::sqrt(norm);
      for (std::int64_t key = r.first; key < std::min(r.end, n); ++key)
        for (int c = 0; c < dim; ++c) p.k[(std::size_t(g) * n + key) * dim + c] += strength * u[c];
      for (int h = g * (heads / kv_heads); h < (g + 1) * (heads / kv_heads); ++h)
        for (std::int64_t i = 0; i < p.shape.n_q; ++i) {
          const std::int64_t pos = p.shape.position(i);
          if (pos < r.from || pos >= r.to) continue;
          for (int c = 0; c < dim; ++c) p.q[(std::size_t(h) * p.shape.n_q + i) * dim + c] += strength * u[c];
        }
    }
  }
  return p;
}

// True when the plan lets query `i` of `head` see every key of [first, end).
inline bool selects_all(const Plan& plan, int head, std::int64_t i, std::int64_t first, std::int64_t end) {
  for (std::int64_t key = first; key < end; ++key)
    if (!plan.selects(head, i, key)) return false;
  return true;
}

// Fraction of planted (query, key range) pairs whose whole key range the plan selects.
inline double planted_coverage(const PlantedInput& p, const Plan& plan, Pattern pattern) {
  std::int64_t total = 0, covered = 0;
  for (const Planted& r : planted_ranges(pattern, p.shape.n_k))
    for (int h = 0; h < p.shape.heads; ++h)
      for (std::int64_t i = 0; i < p.shape.n_q; i += 3) {
        const std::int64_t pos = p.shape.position(i);
        if (pos < r.from || pos >= r.to) continue;
        ++total;
        covered += selects_all(plan, h, i, r.first, r.end);
      }
  return total ? double(covered) / double(total) : -1.0;  // -1: nothing planted, never a pass
}

struct Recall {
  double mean = 0.0;
  double min = 1.0;
};

// Attention mass the plan keeps, exact softmax in double, on every `row_step`-th query of
// every head (sampled rows; never the full n×n matrix).
inline Recall recall(const PlantedInput& p, const Plan& plan, std::int64_t row_step = 13) {
  const AttnShape& s = p.shape;
  const double scale = s.softmax_scale();
  std::vector<double> scores(s.n_k);
  Recall r;
  std::int64_t rows = 0;
  for (int h = 0; h < s.heads; ++h) {
    const int g = s.kv_head_of(h);
    for (std::int64_t i = s.n_q - 1; i >= 0; i -= row_step) {
      const std::int64_t pos = s.position(i);
      double top = -std::numeric_limits<double>::infinity();
      for (std::int64_t key = 0; key <= pos; ++key) {
        double dot = 0.0;
        for (int c = 0; c < s.dim; ++c)
          dot += double(p.q[(std::size_t(h) * s.n_q + i) * s.dim + c]) * p.k[(std::size_t(g) * s.n_k + key) * s.dim + c];
        scores[key] = dot * scale;
        top = std::max(top, scores[key]);
      }
      double all = 0.0, kept = 0.0;
      for (std::int64_t key = 0; key <= pos; ++key) {
        const double w = std::exp(scores[key] - top);
        all += w;
        if (plan.selects(h, i, key)) kept += w;
      }
      r.mean += kept / all;
      r.min = std::min(r.min, kept / all);
      ++rows;
    }
  }
  r.mean /= double(rows);
  return r;
}

// Plan A selects every pair plan B selects (same shape and blocks).
inline bool is_superset(const Plan& a, const Plan& b, const AttnShape& s, std::int64_t row_step = 11) {
  for (int h = 0; h < s.heads; ++h)
    for (std::int64_t i = 0; i < s.n_q; i += row_step)
      for (std::int64_t key = 0; key <= s.position(i); ++key)
        if (b.selects(h, i, key) && !a.selects(h, i, key)) return false;
  return true;
}

inline bool same_plan(const Plan& a, const Plan& b) {
  return a.heads == b.heads && a.row_heads == b.row_heads && a.block_q == b.block_q && a.block_k == b.block_k &&
         a.range_offsets == b.range_offsets && a.ranges == b.ranges && a.column_offsets == b.column_offsets &&
         a.columns == b.columns;
}

}  // namespace ls::testing

namespace ls::testing {

// Builds `spec` on `p` with one thread and with several; both must validate and agree.
inline Plan build_checked(const std::string& spec, const PlantedInput& p, bool* deterministic) {
  auto method = MethodRegistry::instance().make_prefill(spec);
  const int threads = num_threads();
  set_num_threads(1);
  Plan one = method->build_plan(p.input(), {});
  set_num_threads(std::max(2, threads));
  Plan many = method->build_plan(p.input(), {});
  Plan again = method->build_plan(p.input(), {});
  set_num_threads(threads);
  validate(one);
  validate(many);
  *deterministic = same_plan(one, many) && same_plan(many, again);
  return many;
}

inline Plan build(const std::string& spec, const PlantedInput& p) {
  return MethodRegistry::instance().make_prefill(spec)->build_plan(p.input(), {});
}

// Largest |plan output − dense output| over all heads and queries (naive references).
inline double output_error(const PlantedInput& p, const Plan& plan) {
  std::vector<float> dense(p.q.size()), sparse(p.q.size());
  reference_attention(p.input(), dense.data());
  reference_plan_attention(p.input(), plan, sparse.data());
  double worst = 0.0;
  for (std::size_t i = 0; i < dense.size(); ++i) worst = std::max(worst, double(std::abs(dense[i] - sparse[i])));
  return worst;
}

}  // namespace ls::testing
