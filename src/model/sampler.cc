// Sampling. The filters run in llama.cpp's default order and all act on the softmax of the raw
// logits (temperature is applied after them): top-k, then top-p, then min-p.
#include "model/sampler.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"

namespace ls {

void validate(const SamplerConfig& c) {
  LS_CHECK(std::isfinite(c.temperature) && c.temperature >= 0.0f,
           "sampler temperature must be a finite number >= 0 (0 = greedy), got {}", c.temperature);
  LS_CHECK(c.top_k >= 0, "sampler top_k must be >= 0 (0 = off), got {}", c.top_k);
  LS_CHECK(c.top_p > 0.0f && c.top_p <= 1.0f, "sampler top_p must be in (0, 1] (1 = off), got {}", c.top_p);
  LS_CHECK(c.min_p >= 0.0f && c.min_p <= 1.0f, "sampler min_p must be in [0, 1] (0 = off), got {}", c.min_p);
}

namespace {

std::uint64_t splitmix64(std::uint64_t& x) {
  std::uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

struct Candidate {
  float logit;
  std::int32_t id;
};

// Most likely first; equal logits: lower id first.
bool more_likely(const Candidate& a, const Candidate& b) {
  return a.logit != b.logit ? a.logit > b.logit : a.id < b.id;
}

}  // namespace

Xoshiro256::Xoshiro256(std::uint64_t seed) {
  for (auto& s : state_) s = splitmix64(seed);
}

std::uint64_t Xoshiro256::next() {
  const std::uint64_t result = rotl(state_[1] * 5, 7) * 9;
  const std::uint64_t t = state_[1] << 17;
  state_[2] ^= state_[0];
  state_[3] ^= state_[1];
  state_[1] ^= state_[2];
  state_[0] ^= state_[3];
  state_[2] ^= t;
  state_[3] = rotl(state_[3], 45);
  return result;
}

double Xoshiro256::uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

Sampler::Sampler(SamplerConfig config) : config_(config), rng_(config.seed) { validate(config_); }

std::int32_t Sampler::sample(std::span<const float> logits) {
  LS_CHECK(!logits.empty(), "cannot sample from an empty set of logits");
  LS_CHECK(logits.size() < (std::size_t{1} << 31), "too many logits ({})", logits.size());
  const auto n = static_cast<std::int32_t>(logits.size());
  std::int32_t best = 0;
  for (std::int32_t i = 0; i < n; ++i) {
    LS_CHECK(!std::isnan(logits[i]) && logits[i] != INFINITY, "logit {} is {}; the model output is broken", i,
             logits[i]);
    if (logits[i] > logits[best]) best = i;
  }
  const float max_logit = logits[best];
  LS_CHECK(max_logit != -INFINITY, "every logit is -inf; nothing can be sampled");
  if (config_.temperature == 0.0f) return best;

  thread_local std::vector<Candidate> candidates;  // [<= n]
  candidates.clear();
  if (config_.top_k > 0 && config_.top_k < n) {
    // One pass with a heap of the k best so far (least likely on top): most logits lose the
    // first comparison, so this costs little more than reading them.
    const auto k = static_cast<std::size_t>(config_.top_k);
    for (std::int32_t i = 0; i < n; ++i) {
      if (logits[i] == -INFINITY) continue;
      const Candidate c{logits[i], i};
      if (candidates.size() < k) {
        candidates.push_back(c);
        std::push_heap(candidates.begin(), candidates.end(), more_likely);
      } else if (more_likely(c, candidates.front())) {
        std::pop_heap(candidates.begin(), candidates.end(), more_likely);
        candidates.back() = c;
        std::push_heap(candidates.begin(), candidates.end(), more_likely);
      }
    }
  } else {
    for (std::int32_t i = 0; i < n; ++i) {
      if (logits[i] != -INFINITY) candidates.push_back({logits[i], i});
    }
  }
  // top-p is relative to the distribution after top-k; min-p only to the top probability,
  // which no filter removes, so it can drop tokens before the sort top-p needs.
  double total = 0.0;
  if (config_.top_p < 1.0f) {
    for (const Candidate& c : candidates) total += std::exp(static_cast<double>(c.logit) - max_logit);
  }
  if (config_.min_p > 0.0f) {
    // p_i / p_max = exp(l_i - l_max) >= min_p
    const double min_logit = max_logit + std::log(static_cast<double>(config_.min_p));
    std::erase_if(candidates, [&](const Candidate& c) { return c.logit < min_logit; });
  }
  std::sort(candidates.begin(), candidates.end(), more_likely);
  if (config_.top_p < 1.0f) {
    double cumulative = 0.0;
    for (std::size_t i = 0; i < candidates.size(); ++i) {
      cumulative += std::exp(static_cast<double>(candidates[i].logit) - max_logit) / total;
      if (cumulative >= config_.top_p) {
        candidates.resize(i + 1);
        break;
      }
    }
  }

  // Temperature, then one draw.
  const double inv_temperature = 1.0 / config_.temperature;
  thread_local std::vector<double> weights;  // [candidates]
  weights.resize(candidates.size());
  double sum = 0.0;
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    weights[i] = std::exp((static_cast<double>(candidates[i].logit) - max_logit) * inv_temperature);
    sum += weights[i];
  }
  const double target = rng_.uniform() * sum;
  double cumulative = 0.0;
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    cumulative += weights[i];
    if (target < cumulative) return candidates[i].id;
  }
  return candidates.back().id;  // rounding at the very top
}

}  // namespace ls
