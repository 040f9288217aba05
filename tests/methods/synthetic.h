// Synthetic attention inputs with planted structure whose right answer is known, for the
// method tests. Scores are built so that softmax(q·k·scale) puts almost all mass where planted.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "attn/attention.h"

namespace ls::test {

struct Synthetic {
  AttnShape shape;
  std::vector<float> q;  // [heads][n_q][dim]
  std::vector<float> k;  // [kv_heads][n_k][dim]
  std::vector<float> v;  // [kv_heads][n_k][dim]

  Synthetic(int heads, int kv_heads, std::int64_t n, int dim, std::uint32_t seed = 1, float noise = 0.02f) {
    shape.heads = heads;
    shape.kv_heads = kv_heads;
    shape.n_q = n;
    shape.n_k = n;
    shape.dim = dim;
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    q.resize(std::size_t(heads) * n * dim);
    k.resize(std::size_t(kv_heads) * n * dim);
    v.resize(std::size_t(kv_heads) * n * dim);
    for (float& x : q) x = noise * normal(rng);
    for (float& x : k) x = noise * normal(rng);
    for (float& x : v) x = normal(rng);
  }
  AttnInput input() const { return AttnInput{q.data(), k.data(), v.data(), shape}; }
  float* q_row(int h, std::int64_t i) { return &q[(std::size_t(h) * shape.n_q + i) * shape.dim]; }
  float* k_row(int g, std::int64_t j) { return &k[(std::size_t(g) * shape.n_k + j) * shape.dim]; }
  // Multiplier that turns a wanted logit into a q·k value (undoes the softmax scale).
  float unscale() const { return 1.0f / shape.softmax_scale(); }

  // Logit −c·((p − j)/width)² for key j seen from position p, through dims [at, at+3):
  // q = c/width²·[−p², 2p, −1], k = [1, j, j²]. Keys listed as sinks get 0 there instead, plus
  // `sink_logit` through dim at+3.
  void plant_locality(int at, double c, double width, std::int64_t sinks, float sink_logit) {
    const double a = c / (width * width) * unscale();
    for (int h = 0; h < shape.heads; ++h)
      for (std::int64_t i = 0; i < shape.n_q; ++i) {
        const double p = double(shape.position(i));
        float* row = q_row(h, i);
        row[at] = float(-a * p * p);
        row[at + 1] = float(2 * a * p);
        row[at + 2] = float(-a);
        row[at + 3] = sink_logit * unscale();
      }
    for (int g = 0; g < shape.kv_heads; ++g)
      for (std::int64_t j = 0; j < shape.n_k; ++j) {
        float* row = k_row(g, j);
        const bool sink = j < sinks;
        row[at] = sink ? 0.0f : 1.0f;
        row[at + 1] = sink ? 0.0f : float(j);
        row[at + 2] = sink ? 0.0f : float(double(j) * j);
        row[at + 3] = sink ? 1.0f : 0.0f;
      }
  }

  // Logit `peak` on every diagonal whose offset is a multiple of `period`, 0 elsewhere: a full
  // Fourier comb through 2·period dims starting at `at`.
  void plant_comb(int at, int period, double peak, int head = -1) {
    const double amp = peak / period * unscale();
    const double two_pi = 2.0 * M_PI;
    for (int h = 0; h < shape.heads; ++h) {
      if (head >= 0 && h != head) continue;
      for (std::int64_t i = 0; i < shape.n_q; ++i) {
        const double p = double(shape.position(i));
        float* row = q_row(h, i);
        for (int f = 0; f < period; ++f) {
          row[at + 2 * f] = float(amp * std::cos(two_pi * f * p / period));
          row[at + 2 * f + 1] = float(amp * std::sin(two_pi * f * p / period));
        }
      }
    }
    for (int g = 0; g < shape.kv_heads; ++g)
      for (std::int64_t j = 0; j < shape.n_k; ++j) {
        float* row = k_row(g, j);
        for (int f = 0; f < period; ++f) {
          row[at + 2 * f] = float(std::cos(two_pi * f * j / period));
          row[at + 2 * f + 1] = float(std::sin(two_pi * f * j / period));
        }
      }
  }

  // Logit `logit` for the listed keys from every query of `head` (all heads when -1), through
  // dim `at`.
  void plant_keys(int at, const std::vector<std::int64_t>& keys, float logit, int head = -1) {
    for (int h = 0; h < shape.heads; ++h)
      if (head < 0 || h == head)
        for (std::int64_t i = 0; i < shape.n_q; ++i) q_row(h, i)[at] = logit * unscale();
    // The dim carries only the plant: noise there would be amplified by the large logit.
    for (int g = 0; g < shape.kv_heads; ++g) {
      for (std::int64_t j = 0; j < shape.n_k; ++j) k_row(g, j)[at] = 0.0f;
      for (std::int64_t j : keys) k_row(g, j)[at] = 1.0f;
    }
  }
};

}  // namespace ls::test

namespace ls::test {

// Like Synthetic::plant_locality but for one head and centred on offset `offset`: logit
// −c·((p − offset − j)/width)² through dims [at, at+3) (keys must carry [1, j, j²] there, which
// plant_locality or plant_key_positions writes).
inline void plant_diagonal(Synthetic& syn, int at, int head, std::int64_t offset, double c, double width) {
  const double a = c / (width * width) * syn.unscale();
  for (std::int64_t i = 0; i < syn.shape.n_q; ++i) {
    const double centre = double(syn.shape.position(i) - offset);
    float* row = syn.q_row(head, i);
    row[at] = float(-a * centre * centre);
    row[at + 1] = float(2 * a * centre);
    row[at + 2] = float(-a);
  }
}

// Keys listed in `free_keys` get zeros there instead, so the diagonal's far-key penalty does
// not reach them (they get logit 0 from these dims, the diagonal's peak value).
inline void plant_key_positions(Synthetic& syn, int at, const std::vector<std::int64_t>& free_keys = {}) {
  for (int g = 0; g < syn.shape.kv_heads; ++g)
    for (std::int64_t j = 0; j < syn.shape.n_k; ++j) {
      float* row = syn.k_row(g, j);
      const bool free = std::find(free_keys.begin(), free_keys.end(), j) != free_keys.end();
      row[at] = free ? 0.0f : 1.0f;
      row[at + 1] = free ? 0.0f : float(j);
      row[at + 2] = free ? 0.0f : float(double(j) * j);
    }
}

inline double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double worst = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) worst = std::max(worst, double(std::abs(a[i] - b[i])));
  return worst;
}

}  // namespace ls::test
