// Deterministic random numbers for task generation: splitmix64 for seeding, xoshiro256** for
// the stream, and our own integer-only sampling helpers. std:: distributions are avoided on
// purpose: their output differs between standard libraries, and task files must be
// byte-identical on every machine for the same (task, length, seed, sample index).
#pragma once

#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

namespace ls::eval {

inline std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Seed of one sample: a hash of the task name mixed with length, user seed and sample index.
inline std::uint64_t sample_seed(std::string_view task, std::int64_t length, std::uint64_t seed,
                                 std::int64_t index) {
  std::uint64_t h = 0xCBF29CE484222325ull;  // FNV-1a over the task name
  for (unsigned char c : task) h = (h ^ c) * 0x100000001B3ull;
  std::uint64_t state = h;
  std::uint64_t mixed = splitmix64(state);
  for (std::uint64_t part : {static_cast<std::uint64_t>(length), seed, static_cast<std::uint64_t>(index)}) {
    state = mixed ^ part;
    mixed = splitmix64(state);
  }
  return mixed;
}

class Rng {
 public:
  explicit Rng(std::uint64_t seed) {
    std::uint64_t state = seed;
    for (auto& word : s_) word = splitmix64(state);
  }

  std::uint64_t next() {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  // Uniform integer in [0, n), n > 0, without modulo bias (rejection on the top range).
  std::uint64_t below(std::uint64_t n) {
    const std::uint64_t limit = ~std::uint64_t{0} - (~std::uint64_t{0} % n);
    std::uint64_t x;
    do x = next();
    while (x >= limit);
    return x % n;
  }

  // Uniform integer in [lo, hi] (inclusive).
  std::int64_t uniform(std::int64_t lo, std::int64_t hi) {
    return lo + static_cast<std::int64_t>(below(static_cast<std::uint64_t>(hi - lo) + 1));
  }

  // Uniform in [0, 1) with 53 bits; used only for comparisons with fixed probabilities.
  double unit() { return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0); }

  template <typename T>
  void shuffle(std::vector<T>& items) {  // Fisher–Yates
    for (std::size_t i = items.size(); i > 1; --i) std::swap(items[i - 1], items[below(i)]);
  }

  template <typename T>
  const T& choice(const std::vector<T>& items) { return items[below(items.size())]; }

  // k distinct indices from [0, n) in random order (partial Fisher–Yates; O(n) memory).
  std::vector<std::int64_t> sample(std::int64_t n, std::int64_t k) {
    std::vector<std::int64_t> all(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) all[i] = i;
    for (std::int64_t i = 0; i < k; ++i) std::swap(all[i], all[i + static_cast<std::int64_t>(below(n - i))]);
    all.resize(static_cast<std::size_t>(k));
    return all;
  }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::uint64_t s_[4];
};

}  // namespace ls::eval
