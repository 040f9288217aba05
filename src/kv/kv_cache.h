// The KV cache of a decoder: for every layer and KV head, the keys (after RoPE) and values of
// the tokens seen so far, fp32, with a fixed capacity (the context length) allocated up front.
// Pages of the allocation are only touched as tokens arrive, so a large capacity costs address
// space, not memory, until it is used.
#pragma once

#include <cstdint>

#include "core/buffer.h"

namespace ls {

struct KvCacheShape {
  int layers = 0;
  int kv_heads = 0;
  int dim = 0;                // head dimension
  std::int64_t capacity = 0;  // tokens
};

class KvCache {
 public:
  KvCache() = default;
  explicit KvCache(const KvCacheShape& shape);

  const KvCacheShape& shape() const { return shape_; }
  std::int64_t capacity() const { return shape_.capacity; }
  std::int64_t size() const { return size_; }  // tokens stored in every layer
  // Bytes per token over all layers (keys and values).
  std::int64_t bytes_per_token() const;
  // Bytes allocated (capacity × bytes_per_token) and bytes holding tokens (size × ...).
  std::int64_t bytes_allocated() const { return capacity() * bytes_per_token(); }
  std::int64_t bytes_used() const { return size_ * bytes_per_token(); }

  // Rows [capacity][dim] of one layer's KV head.
  float* keys(int layer, int kv_head) { return data_.data() + offset(layer, kv_head, 0); }
  float* values(int layer, int kv_head) { return data_.data() + offset(layer, kv_head, 1); }
  const float* keys(int layer, int kv_head) const { return data_.data() + offset(layer, kv_head, 0); }
  const float* values(int layer, int kv_head) const { return data_.data() + offset(layer, kv_head, 1); }

  // Stores n tokens at positions [position, position + n) of one layer from head-major
  // k and v [kv_heads][n][dim]. The size is not changed (layers are written one by one).
  void write(int layer, std::int64_t position, std::int64_t n, const float* k, const float* v);
  // Stores one token at `position` of one layer from k and v [kv_heads][dim].
  void write_token(int layer, std::int64_t position, const float* k, const float* v) {
    write(layer, position, 1, k, v);
  }
  // Declares tokens [0, size) present in every layer.
  void set_size(std::int64_t size);
  void clear() { size_ = 0; }

 private:
  std::int64_t offset(int layer, int kv_head, int which) const {
    return ((std::int64_t(layer) * 2 + which) * shape_.kv_heads + kv_head) * shape_.capacity * shape_.dim;
  }

  KvCacheShape shape_;
  std::int64_t size_ = 0;
  Buffer<float> data_;  // [layers][2 (keys, values)][kv_heads][capacity][dim]
};

}  // namespace ls
