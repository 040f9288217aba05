#include "attn/attention.h"

#include "core/error.h"

namespace ls {

double AttnShape::causal_pairs() const {
  double pairs = 0.0;
  for (std::int64_t i = 0; i < n_q; ++i) pairs += double(visible_keys(position(i)));
  return pairs * heads;
}

void AttnShape::validate() const {
  LS_CHECK(heads > 0 && kv_heads > 0, "attention: heads ({}) and kv_heads ({}) must be positive", heads,
           kv_heads);
  LS_CHECK(heads % kv_heads == 0, "attention: heads ({}) must be a multiple of kv_heads ({})", heads,
           kv_heads);
  LS_CHECK(dim > 0 && dim % 16 == 0, "attention: head dim {} must be a positive multiple of 16", dim);
  LS_CHECK(n_k > 0 && n_q > 0 && n_q <= n_k, "attention: need 0 < n_q <= n_k (n_q={}, n_k={})", n_q, n_k);
  LS_CHECK(window >= 0, "attention: window {} must be >= 0", window);
}

}  // namespace ls
