// KV cache storage (see kv_cache.h).
#include "kv/kv_cache.h"

#include <cstring>

#include "core/error.h"

namespace ls {

KvCache::KvCache(const KvCacheShape& shape) : shape_(shape) {
  LS_CHECK(shape.layers > 0 && shape.kv_heads > 0 && shape.dim > 0 && shape.capacity > 0,
           "invalid KV cache shape: {} layers, {} KV heads, dim {}, capacity {}", shape.layers,
           shape.kv_heads, shape.dim, shape.capacity);
  data_.reset(std::size_t(shape.layers) * 2 * shape.kv_heads * shape.capacity * shape.dim);
}

std::int64_t KvCache::bytes_per_token() const {
  return std::int64_t(shape_.layers) * 2 * shape_.kv_heads * shape_.dim * std::int64_t(sizeof(float));
}

void KvCache::write(int layer, std::int64_t position, std::int64_t n, const float* k, const float* v) {
  LS_CHECK(layer >= 0 && layer < shape_.layers, "KV cache layer {} out of range", layer);
  LS_CHECK(position >= 0 && n >= 0 && position + n <= shape_.capacity,
           "KV cache full: positions {}..{} do not fit its capacity of {} tokens", position,
           position + n - 1, shape_.capacity);
  const std::int64_t dim = shape_.dim;
  for (int g = 0; g < shape_.kv_heads; ++g) {
    std::memcpy(keys(layer, g) + position * dim, k + g * n * dim, n * dim * sizeof(float));
    std::memcpy(values(layer, g) + position * dim, v + g * n * dim, n * dim * sizeof(float));
  }
}

void KvCache::set_size(std::int64_t size) {
  LS_CHECK(size >= 0 && size <= shape_.capacity, "KV cache size {} exceeds its capacity {}", size,
           shape_.capacity);
  size_ = size;
}

}  // namespace ls
