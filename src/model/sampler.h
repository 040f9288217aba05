// Token sampling from logits: greedy (temperature 0), or top-k → top-p → min-p filtering on the
// model's distribution, then temperature, then a draw from our own seeded generator
// (xoshiro256**), so the same seed gives the same tokens with any compiler or library.
#pragma once

#include <cstdint>
#include <span>

namespace ls {

struct SamplerConfig {
  float temperature = 0.8f;  // 0 = greedy (argmax); otherwise > 0
  int top_k = 40;            // keep the k most likely tokens; 0 = off
  float top_p = 0.95f;       // keep the smallest prefix whose probability reaches top_p; 1 = off
  float min_p = 0.05f;       // drop tokens below min_p × the top probability; 0 = off
  std::uint64_t seed = 0;
};

// Throws ls::Error naming the bad field and its valid range: temperature must be finite and
// >= 0, top_k >= 0, top_p in (0, 1], min_p in [0, 1].
void validate(const SamplerConfig& config);

// xoshiro256** seeded through splitmix64.
class Xoshiro256 {
 public:
  explicit Xoshiro256(std::uint64_t seed);
  std::uint64_t next();
  double uniform();  // in [0, 1), 53 random bits

 private:
  std::uint64_t state_[4];
};

class Sampler {
 public:
  explicit Sampler(SamplerConfig config);  // validates

  // The next token id. Throws ls::Error when logits are empty or contain NaN or +inf.
  // Ties are broken towards the lower id, so results do not depend on sort stability.
  std::int32_t sample(std::span<const float> logits);

  const SamplerConfig& config() const { return config_; }

 private:
  SamplerConfig config_;
  Xoshiro256 rng_;
};

}  // namespace ls
