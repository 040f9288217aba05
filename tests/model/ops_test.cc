// Forward-pass operations against hand-computed values, and prompt fitting.
#include "model/ops.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/error.h"
#include "model/generate.h"
#include "simd_targets.h"

namespace ls {
namespace {

TEST(Ops, RmsNormMatchesHandComputation) {
  const float x[] = {1, 2, 3, 4}, w[] = {1, 1, 2, 0.5f};
  float out[4];
  rms_norm(x, w, 4, 1e-5f, out);
  const double s = 1.0 / std::sqrt(30.0 / 4 + 1e-5);  // mean of squares 7.5
  EXPECT_NEAR(out[0], 1 * s, 1e-6);
  EXPECT_NEAR(out[1], 2 * s, 1e-6);
  EXPECT_NEAR(out[2], 6 * s, 1e-6);
  EXPECT_NEAR(out[3], 2 * s, 1e-6);
}

TEST(Ops, RopeRotatesAdjacentPairs) {
  // Two heads of 6 with RoPE on the first 4 dims, theta 100: pair 0 turns by p, pair 1 by p/10.
  Rope rope(4, 100.0);
  rope.reserve(3);
  std::vector<float> x = {1, 2, 3, 4, 5, 6, -1, 0.5f, 2, -2, 7, 8};
  const std::vector<float> original = x;
  rope.apply(x.data(), 2, 6, 2);
  for (int h = 0; h < 2; ++h) {
    const float* o = original.data() + 6 * h;
    const float* r = x.data() + 6 * h;
    const double a0 = 2.0, a1 = 0.2;
    EXPECT_NEAR(r[0], o[0] * std::cos(a0) - o[1] * std::sin(a0), 1e-6);
    EXPECT_NEAR(r[1], o[0] * std::sin(a0) + o[1] * std::cos(a0), 1e-6);
    EXPECT_NEAR(r[2], o[2] * std::cos(a1) - o[3] * std::sin(a1), 1e-6);
    EXPECT_NEAR(r[3], o[2] * std::sin(a1) + o[3] * std::cos(a1), 1e-6);
    EXPECT_EQ(r[4], o[4]);  // beyond rope_dims: untouched
    EXPECT_EQ(r[5], o[5]);
  }
  // Position 0 is the identity.
  std::vector<float> y = original;
  rope.apply(y.data(), 2, 6, 0);
  EXPECT_EQ(y, original);
  EXPECT_THROW(rope.apply(y.data(), 2, 6, 3), Error);
}

// The two-table (angle addition) cos/sin against the direct formula at far positions, in the
// NEOX pairing, across table growth.
TEST(Ops, RopeIsExactAtFarPositions) {
  const int dims = 256;
  Rope rope(dims, 1e6, /*neox=*/true);
  rope.reserve(300);
  rope.reserve(32768);  // grows the coarse table
  std::vector<float> x(dims);
  for (int i = 0; i < dims; ++i) x[i] = std::sin(0.37 * i) + 0.1f;
  for (std::int64_t p : {0, 255, 256, 257, 1000, 12345, 32767}) {
    std::vector<float> r = x;
    rope.apply(r.data(), 1, dims, p);
    for (int i = 0; i < dims / 2; ++i) {
      const double angle = double(p) * std::pow(1e6, -2.0 * i / dims);
      const double a = x[i], b = x[i + dims / 2];
      ASSERT_NEAR(r[i], a * std::cos(angle) - b * std::sin(angle), 1e-6) << p << " " << i;
      ASSERT_NEAR(r[i + dims / 2], a * std::sin(angle) + b * std::cos(angle), 1e-6) << p << " " << i;
    }
  }
}

// On every Highway target, with lengths that leave a tail shorter than a vector.
TEST(Ops, ElementwiseKernelsMatchFormulasOnEverySimdTarget) {
  testing::for_each_simd_target([] {
    for (int n : {37, 64, 5}) {
      std::vector<float> gate(n), up(n), out(n), sum(n);
      for (int i = 0; i < n; ++i) gate[i] = -9.0f + 0.5f * i, up[i] = 0.25f * i - 3.0f;
      silu_mul(gate.data(), up.data(), n, out.data());
      for (int i = 0; i < n; ++i) {
        double g = gate[i];
        EXPECT_NEAR(out[i], g / (1.0 + std::exp(-g)) * up[i], 1e-5 * (1 + std::fabs(up[i] * g))) << i;
      }
      gelu_tanh_mul(gate.data(), up.data(), n, out.data());
      for (int i = 0; i < n; ++i) {
        double x = gate[i];
        double gelu = 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
        EXPECT_NEAR(out[i], gelu * up[i], 1e-5 * (1 + std::fabs(up[i] * x))) << i;
      }
      sum = gate;
      add_inplace(sum.data(), up.data(), n);
      for (int i = 0; i < n; ++i) EXPECT_EQ(sum[i], gate[i] + up[i]) << i;
    }
  });
}

TEST(FitPrompt, KeepsOrCutsAsAsked) {
  const std::vector<std::int32_t> prompt = {1, 2, 3, 4, 5, 6, 7};
  EXPECT_EQ(fit_prompt(prompt, 7, Truncation::None), prompt);
  EXPECT_EQ(fit_prompt(prompt, 4, Truncation::Left), (std::vector<std::int32_t>{4, 5, 6, 7}));
  EXPECT_EQ(fit_prompt(prompt, 5, Truncation::Middle), (std::vector<std::int32_t>{1, 2, 5, 6, 7}));
  try {
    fit_prompt(prompt, 6, Truncation::None);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("--truncate"));
  }
  EXPECT_THROW(fit_prompt(prompt, 0, Truncation::Left), Error);
  EXPECT_EQ(parse_truncation("middle"), Truncation::Middle);
  EXPECT_THROW(parse_truncation("right"), Error);
}

}  // namespace
}  // namespace ls
