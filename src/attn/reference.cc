#include "attn/reference.h"

#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"

namespace ls {

namespace {

template <typename Selects>
void reference_impl(const AttnInput& in, float* out, Selects&& selects) {
  const AttnShape& s = in.shape;
  s.validate();
  const double scale = s.softmax_scale();
  std::vector<double> scores(s.n_k);
  std::vector<double> acc(s.dim);
  for (int h = 0; h < s.heads; ++h) {
    const int g = s.kv_head_of(h);
    for (std::int64_t i = 0; i < s.n_q; ++i) {
      const std::int64_t p = s.position(i);
      const float* q = in.q_row(h, i);
      double row_max = -std::numeric_limits<double>::infinity();
      for (std::int64_t key = s.first_key(p); key <= p; ++key) {
        if (!selects(h, i, key)) {
          scores[key] = -std::numeric_limits<double>::infinity();
          continue;
        }
        const float* k = in.k_row(g, key);
        double dot = 0.0;
        for (int c = 0; c < s.dim; ++c) dot += double(q[c]) * double(k[c]);
        scores[key] = dot * scale;
        row_max = std::max(row_max, scores[key]);
      }
      LS_CHECK(std::isfinite(row_max), "reference attention: head {} query {} sees no key", h, i);
      std::fill(acc.begin(), acc.end(), 0.0);
      double sum = 0.0;
      for (std::int64_t key = s.first_key(p); key <= p; ++key) {
        if (!std::isfinite(scores[key])) continue;
        double w = std::exp(scores[key] - row_max);
        sum += w;
        const float* v = in.v_row(g, key);
        for (int c = 0; c < s.dim; ++c) acc[c] += w * double(v[c]);
      }
      float* o = out + (std::int64_t(h) * s.n_q + i) * s.dim;
      for (int c = 0; c < s.dim; ++c) o[c] = float(acc[c] / sum);
    }
  }
}

}  // namespace

void reference_attention(const AttnInput& in, float* out) {
  reference_impl(in, out, [](int, std::int64_t, std::int64_t) { return true; });
}

void reference_plan_attention(const AttnInput& in, const Plan& plan, float* out) {
  LS_CHECK(plan.heads == in.shape.heads && plan.n_q == in.shape.n_q && plan.n_k == in.shape.n_k,
           "reference: plan shape (heads {}, n_q {}, n_k {}) does not match the input (heads {}, n_q {}, n_k {})",
           plan.heads, plan.n_q, plan.n_k, in.shape.heads, in.shape.n_q, in.shape.n_k);
  reference_impl(in, out, [&](int h, std::int64_t i, std::int64_t key) { return plan.selects(h, i, key); });
}

}  // namespace ls
