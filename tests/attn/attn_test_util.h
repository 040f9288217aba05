// Random attention inputs and output comparison for the attn tests.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "attn/attention.h"

namespace ls::testing {

// Owns Q [heads][n_q][dim], K and V [kv_heads][n_k][dim] filled with uniform values in
// [-spread, spread] (a larger spread gives peakier softmax rows).
struct RandomAttention {
  std::vector<float> q, k, v;
  AttnInput in;

  RandomAttention(const AttnShape& shape, std::uint64_t seed, float spread = 1.0f) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<float> uniform(-spread, spread);
    q.resize(std::size_t(shape.heads) * shape.n_q * shape.dim);
    k.resize(std::size_t(shape.kv_heads) * shape.n_k * shape.dim);
    v.resize(k.size());
    for (float& x : q) x = uniform(rng);
    for (float& x : k) x = uniform(rng);
    for (float& x : v) x = uniform(rng);
    in.q = q.data();
    in.k = k.data();
    in.v = v.data();
    in.shape = shape;
  }
  std::size_t out_size() const { return std::size_t(in.shape.heads) * in.shape.n_q * in.shape.dim; }
};

inline AttnShape make_shape(int heads, int kv_heads, std::int64_t n_q, std::int64_t n_k, int dim,
                            std::int64_t window = 0) {
  AttnShape s;
  s.heads = heads;
  s.kv_heads = kv_heads;
  s.n_q = n_q;
  s.n_k = n_k;
  s.dim = dim;
  s.window = window;
  return s;
}

inline std::string describe(const AttnShape& s) {
  return "H=" + std::to_string(s.heads) + " G=" + std::to_string(s.kv_heads) + " n_q=" + std::to_string(s.n_q) +
         " n_k=" + std::to_string(s.n_k) + " d=" + std::to_string(s.dim) + " window=" + std::to_string(s.window);
}

// Largest absolute difference; fails with the first offending index when above `tolerance`.
inline double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0.0;
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) {
    double diff = std::fabs(double(a[i]) - double(b[i]));
    if (!(diff <= worst)) worst = std::isnan(diff) ? INFINITY : diff;
  }
  return worst;
}

}  // namespace ls::testing
