// The dense flash-attention kernel: every work item (KV head, query block of
// kFlashQueryBlock queries) attends to the single key interval its queries can see.
#include "attn/flash.h"

#include <algorithm>

#include "attn/flash_tile.h"
#include "core/error.h"
#include "core/parallel.h"

namespace ls {

void check_attention_input(const AttnInput& in, const float* out) {
  in.shape.validate();
  LS_CHECK(in.q && in.k && in.v && out, "attention: null Q, K, V or output pointer");
  LS_CHECK(in.shape.n_k < (std::int64_t(1) << 31) - 1, "attention: n_k={} exceeds the 2^31 key limit",
           in.shape.n_k);
}

void flash_attention(const AttnInput& in, float* out) {
  check_attention_input(in, out);
  const AttnShape& s = in.shape;
  const detail::PackedKeys keys(in);
  const int group = s.group();
  const std::int64_t q_blocks = (s.n_q + kFlashQueryBlock - 1) / kFlashQueryBlock;
  // The last query blocks see the most keys: hand them out first for a balanced finish.
  parallel_for(q_blocks * s.kv_heads, [&](std::int64_t item) {
    const std::int64_t qb = q_blocks - 1 - item / s.kv_heads;
    const int kv = int(item % s.kv_heads);
    const std::int64_t q0 = qb * kFlashQueryBlock;
    const std::int64_t q1 = std::min(s.n_q, q0 + kFlashQueryBlock);
    const detail::KeyInterval keys_seen{s.first_key(s.position(q0)), s.position(q1 - 1) + 1};
    detail::attend_rows(in, keys, kv * group, group, q0, q1, {&keys_seen, 1}, {}, out);
  });
}

const char* attention_simd_target() { return detail::simd_target(); }

}  // namespace ls
