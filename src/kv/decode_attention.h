// Dense attention of one new token over a layer's KV cache (decode). The keys are split into
// chunks processed in parallel, each with its own running max and sum, merged at the end
// (flash-decoding), so two threads stay busy even with 3 KV heads. The query heads of a GQA
// group share each key and value row read from memory. Rows are read in the cache's element
// type: an f16 / bf16 / q8_0 chunk is converted into a per-thread fp32 tile of 256 rows (in
// L2) just before it is used, so no fp32 copy of the cache exists. A ring layer (sliding
// window) attends over the slots it holds, which are exactly the window's keys.
#pragma once

#include <cstdint>

#include "core/buffer.h"
#include "kv/kv_cache.h"

namespace ls {

class DecodeAttention {
 public:
  // out [heads][dim] = softmax(q·Kᵀ·scale)·V over keys [0, n_keys) of `layer` (a ring layer:
  // the last `slots` of them), q [heads][dim]. heads must be a multiple of the cache's KV
  // heads (query head h uses KV head h / group).
  void run(const KvCache& cache, int layer, const float* q, int heads, std::int64_t n_keys, float scale,
           float* out);

 private:
  Buffer<float> partials_;  // [heads][chunks][dim + 2]: accumulator, then running max and sum
  Buffer<float> scores_;    // [threads][group][chunk keys]
  Buffer<float> tiles_;     // [threads][2][chunk keys][dim]: keys and values as fp32
};

}  // namespace ls
