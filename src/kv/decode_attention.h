// Attention of one new token over a layer's KV cache (decode): the gather kernel of docs/
// DESIGN.md §5. It attends over exactly the keys of a Selection (attn/selection.h: ranges of
// positions per KV head); dense decode is the selection of every key. The selected keys of
// each KV head are split into chunks of 256 processed in parallel, each with its own running max and sum, merged at the end
// (flash-decoding), so two threads stay busy even with 3 KV heads. The query heads of a GQA
// group share each key and value row read from memory. Rows are read in the cache's element
// type: an f16 / bf16 / q8_0 chunk is converted into a per-thread fp32 tile of 256 rows (in
// L2) just before it is used, so no fp32 copy of the cache exists. A ring layer (sliding
// window) attends over the slots it holds, which are exactly the window's keys; a selection
// over it may only name positions the ring still holds.
#pragma once

#include <cstdint>

#include <functional>
#include <vector>

#include "attn/selection.h"
#include "core/buffer.h"
#include "kv/kv_cache.h"

namespace ls {

// A cap on the relative distance RoPE sees at decode (LM-Infinite; StreamingLLM's position
// shift; InfLLM's memory): a key more than `limit` positions behind the query is scored with
// the query rotated to position `limit` against the key with its own rotation undone, i.e. as
// if the two were exactly `limit` apart.
struct DecodeFar {
  std::int64_t limit = 0;   // 0: no cap
  const float* q = nullptr; // [heads][dim]: the query before RoPE, rotated to position `limit`
  std::function<void(std::int64_t position, float* row)> unrotate;  // undoes RoPE of a key row
};

class DecodeAttention {
 public:
  // out [heads][dim] = softmax(q·Kᵀ·scale)·V over keys [0, n_keys) of `layer` (a ring layer:
  // the last `slots` of them), q [heads][dim]. heads must be a multiple of the cache's KV
  // heads (query head h uses KV head h / group).
  void run(const KvCache& cache, int layer, const float* q, int heads, std::int64_t n_keys, float scale,
           float* out);
  // out [heads][dim] = softmax over exactly the selected keys (selection.n_keys() keys cached).
  // With `lse`, also each head's log-sum-exp of its scaled scores, lse [heads] (natural log),
  // to merge with attention over other keys (attn/merge.h).
  void run(const KvCache& cache, int layer, const float* q, int heads, const Selection& selection, float scale,
           float* out, const DecodeFar& far = {}, double* lse = nullptr);

 private:
  Selection dense_;
  std::vector<std::int64_t> item_head_, item_first_;  // per work item: KV head, first selected key
  std::vector<std::int64_t> head_items_, head_keys_;  // per KV head: first work item, selected keys
  std::vector<std::int64_t> range_start_;  // per range: selected keys of its head before it
  Buffer<float> partials_;  // [heads][chunks][dim + 2]: accumulator, then running max and sum
  Buffer<float> scores_;    // [threads][group][chunk keys]
  Buffer<float> tiles_;     // [threads][2][chunk keys][dim]: keys and values as fp32
  Buffer<std::int64_t> positions_;  // [threads][chunk keys]: the position of each tile row
};

}  // namespace ls
