#include "attn/merge.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/parallel.h"

namespace ls {

void merge_attention(float* out, double* lse, const float* part_out, const double* part_lse, std::int64_t rows,
                     int dim) {
  parallel_for(rows, [&](std::int64_t r) {
    const double a = lse[r], b = part_lse[r];
    if (b == -std::numeric_limits<double>::infinity()) return;
    float* o = out + r * dim;
    const float* p = part_out + r * dim;
    if (a == -std::numeric_limits<double>::infinity()) {
      std::copy_n(p, dim, o);
      lse[r] = b;
      return;
    }
    const double m = std::max(a, b);
    const double wa = std::exp(a - m), wb = std::exp(b - m), total = wa + wb;
    const double ca = wa / total, cb = wb / total;
    for (int c = 0; c < dim; ++c) o[c] = float(ca * o[c] + cb * p[c]);
    lse[r] = m + std::log(total);
  }, 64);
}

}  // namespace ls
