// Internal to src/attn: the tile engine shared by the dense flash kernel and the plan
// executor (both in flash.cc). Callers describe one work item — a set of query rows (up to
// a few query heads × one query block, all reading the same KV head) and the keys they
// attend to (contiguous key intervals plus gathered columns) — and the engine runs the
// flash loop over key tiles: S = Q·Kᵀ into registers, online softmax per row, O += P·V.
#pragma once

#include <cstdint>
#include <span>

#include "attn/attention.h"
#include "core/buffer.h"

namespace ls::detail {

// Keys per tile of the SIMD target that runs: four vectors (64 on AVX-512, 32 on AVX2).
int key_tile();
// Name of the Highway target the kernels run (core/simd.h), e.g. "AVX3", "AVX2", "SSE4".
const char* simd_target();

// bf16 score products (flash.h, set_attention_precision): whether the running target has them
// (compiled with AVX512-BF16 and the CPU has it), the process-wide switch, and whether the
// next PackedKeys will use them.
bool bf16_scores_supported();
void set_bf16_scores(bool on);
bool bf16_scores_on();

// K of every KV head packed tile by tile and transposed so the SIMD dimension runs over keys:
// [kv_heads][tiles][dim][tile_keys()], zero beyond n_k, tile_keys() = key_tile() when packed.
// O(n·d), built once per call into a buffer the calling thread keeps between calls (fresh
// pages would cost more than packing).
class PackedKeys {
 public:
  explicit PackedKeys(const AttnInput& in);
  ~PackedKeys();
  PackedKeys(const PackedKeys&) = delete;
  PackedKeys& operator=(const PackedKeys&) = delete;
  // The [dim][key_tile()] block of one tile.
  const float* tile(int kv_head, std::int64_t tile) const {
    return data_->data() + (std::int64_t(kv_head) * tiles_ + tile) * tile_floats_;
  }
  std::int64_t tiles() const { return tiles_; }
  int tile_keys() const { return tile_keys_; }
  // Packed as bf16 pairs ([dim/2][key_tile()] 32-bit words per tile): bf16_scores_on() held
  // when the keys were packed.
  bool bf16() const { return bf16_; }

 private:
  int tile_keys_ = 0;
  bool bf16_ = false;
  std::int64_t tiles_ = 0;
  std::int64_t tile_floats_ = 0;
  Buffer<float>* data_ = nullptr;  // [kv_heads][tiles][dim][key_tile]: the thread's buffer or own_
  Buffer<float> own_;              // used when the thread's buffer is taken by another PackedKeys
  bool* taken_ = nullptr;          // the thread buffer's flag, when we hold it
};

// Keys [begin, end), before causality and the window are applied.
struct KeyInterval {
  std::int64_t begin = 0;
  std::int64_t end = 0;
};

// One work item: query heads [first_head, first_head + head_count) (all in one GQA group),
// queries [q_begin, q_end); attends to the union of `intervals` (sorted, disjoint) and
// `columns` (sorted keys outside the intervals), always restricted to causal (and windowed)
// keys; writes the normalised rows of `out` [heads][n_q][dim] and, when `lse` is not null,
// each row's log-sum-exp of its scaled scores to lse [heads][n_q] (natural log; −inf for a
// row that saw no key). `shift` moves every query that many positions later than the shape
// places it (query i at position n_k − n_q + i + shift): keys of an earlier block of the
// sequence (flash.h, attention_at). `lse64`, when not null, gets the log-sum-exp in double
// precision. Uses per-thread scratch.
void attend_rows(const AttnInput& in, const PackedKeys& keys, int first_head, int head_count,
                 std::int64_t q_begin, std::int64_t q_end, std::span<const KeyInterval> intervals,
                 std::span<const std::int32_t> columns, float* out, float* lse = nullptr, std::int64_t shift = 0,
                 double* lse64 = nullptr);

}  // namespace ls::detail
