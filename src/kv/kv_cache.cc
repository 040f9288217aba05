// KV cache storage (see kv_cache.h).
#include "kv/kv_cache.h"

#include <algorithm>

#include "core/error.h"
#include "core/parallel.h"

namespace ls {

KvCache::KvCache(const KvCacheShape& shape) : shape_(shape) {
  LS_CHECK(shape.layers > 0 && shape.kv_heads > 0 && shape.dim > 0 && shape.capacity > 0,
           "invalid KV cache shape: {} layers, {} KV heads, dim {}, capacity {}", shape.layers,
           shape.kv_heads, shape.dim, shape.capacity);
  LS_CHECK(shape.windows.empty() || int(shape.windows.size()) == shape.layers,
           "KV cache: {} layer windows for {} layers", shape.windows.size(), shape.layers);
  key_row_bytes_ = kv_row_bytes(shape.key_type, shape.dim);
  value_row_bytes_ = kv_row_bytes(shape.value_type, shape.dim);
  std::int64_t total = 0;
  for (int i = 0; i < shape.layers; ++i) {
    const std::int64_t w = shape.windows.empty() ? 0 : shape.windows[i];
    LS_CHECK(w >= 0, "KV cache: negative window {} in layer {}", w, i);
    Layer l;
    l.ring = w > 0 && w < shape.capacity;
    l.slots = l.ring ? w : shape.capacity;
    l.begin = total;
    total += layer_bytes(l.slots);
    layers_.push_back(l);
  }
  data_.reset(std::size_t(total));
}

void KvCache::write(int layer, std::int64_t position, std::int64_t n, const float* k, const float* v) {
  LS_CHECK(layer >= 0 && layer < shape_.layers, "KV cache layer {} out of range", layer);
  LS_CHECK(position >= 0 && n >= 0 && position + n <= shape_.capacity,
           "KV cache full: positions {}..{} do not fit its capacity of {} tokens", position,
           position + n - 1, shape_.capacity);
  const int dim = shape_.dim, G = shape_.kv_heads;
  const std::int64_t skip = layers_[layer].ring ? std::max<std::int64_t>(0, n - layers_[layer].slots) : 0;
  const std::int64_t stored = n - skip;
  auto store = [&](std::int64_t item) {
    const int g = static_cast<int>(item / stored);
    const std::int64_t t = skip + item % stored, slot = slot_of(layer, position + t);
    std::uint8_t* kr = data_.data() + offset(layer, g, 0) + slot * key_row_bytes_;
    std::uint8_t* vr = data_.data() + offset(layer, g, 1) + slot * value_row_bytes_;
    kv_encode_row(shape_.key_type, k + (g * n + t) * dim, dim, kr);
    kv_encode_row(shape_.value_type, v + (g * n + t) * dim, dim, vr);
  };
  if (G * stored >= 256) {
    parallel_for(G * stored, store, 64);
  } else {
    for (std::int64_t item = 0; item < G * stored; ++item) store(item);
  }
}

void KvCache::read(int layer, std::int64_t first, std::int64_t last, float* k, float* v,
                   std::int64_t head_rows) const {
  LS_CHECK(layer >= 0 && layer < shape_.layers, "KV cache layer {} out of range", layer);
  LS_CHECK(first >= 0 && first <= last && last <= shape_.capacity, "KV cache read of positions {}..{}", first,
           last);
  // A ring holds the last `slots` positions of max(size, last); this also bounds last - first.
  LS_CHECK(first >= first_held(layer, std::max(size_, last)), "KV cache layer {} no longer holds position {}",
           layer, first);
  const int dim = shape_.dim, G = shape_.kv_heads;
  const std::int64_t n = last - first;
  if (n == 0) return;
  // Runs of consecutive slots (a ring wraps at most once).
  parallel_for(G * 2, [&](std::int64_t item) {
    const int g = static_cast<int>(item / 2), which = static_cast<int>(item % 2);
    const KvType type = which ? shape_.value_type : shape_.key_type;
    const std::int64_t row_bytes = which ? value_row_bytes_ : key_row_bytes_;
    const std::uint8_t* base = data_.data() + offset(layer, g, which);
    float* out = (which ? v : k) + std::int64_t(g) * (head_rows > 0 ? head_rows : n) * dim;
    std::int64_t p = first;
    while (p < last) {
      const std::int64_t slot = slot_of(layer, p);
      const std::int64_t run = std::min(last - p, slots(layer) - slot);
      kv_decode_rows(type, base + slot * row_bytes, run, dim, out + (p - first) * dim);
      p += run;
    }
  });
}

void KvCache::set_size(std::int64_t size) {
  LS_CHECK(size >= 0 && size <= shape_.capacity, "KV cache size {} exceeds its capacity {}", size,
           shape_.capacity);
  size_ = size;
}

std::int64_t KvCache::bytes_used() const {
  std::int64_t total = 0;
  for (int i = 0; i < shape_.layers; ++i) total += layer_bytes(std::min(size_, layers_[i].slots));
  return total;
}

std::int64_t KvCache::bytes_per_token() const {
  std::int64_t total = 0;
  for (int i = 0; i < shape_.layers; ++i)
    if (!layers_[i].ring) total += layer_bytes(1);
  return total;
}

}  // namespace ls
