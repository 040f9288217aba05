// KV cache storage (see kv_cache.h).
#include "kv/kv_cache.h"

#include <algorithm>
#include <cstring>

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
  if (needs_.kinds && !layers_[layer].ring && n > 0) update_summaries(layer, position, position + n);
}

void KvCache::keep_summaries(const SummaryNeeds& needs) {
  LS_CHECK(needs.page_size > 0 && needs.block_size > 0, "KV summaries: page {} / block {} tokens", needs.page_size,
           needs.block_size);
  if (needs.kinds & kSummaryLabels) {
    const std::size_t heads = std::size_t(shape_.layers) * std::size_t(shape_.kv_heads);
    LS_CHECK(needs.label_channels.size() == heads,
             "KV label cache: channels given for {} layer x KV head pairs; the cache has {} layers x {} KV heads",
             needs.label_channels.size(), shape_.layers, shape_.kv_heads);
    const std::size_t count = needs.label_channels.front().size();
    for (const std::vector<int>& channels : needs.label_channels) {
      LS_CHECK(!channels.empty() && channels.size() == count, "KV label cache: {} and {} channels for two heads",
               count, channels.size());
      for (int c : channels)
        LS_CHECK(c >= 0 && c < shape_.dim, "KV label cache: channel {} outside a head dimension of {}", c, shape_.dim);
    }
  }
  needs_ = needs;
  summaries_.clear();
  summaries_.resize(shape_.layers);
  labels_.clear();
  labels_.resize(shape_.layers);
  label_count_ = needs.kinds & kSummaryLabels ? std::int64_t(needs.label_channels.front().size()) : 0;
  if (!needs.kinds) return;
  pages_ = (shape_.capacity + needs.page_size - 1) / needs.page_size;
  blocks_ = (shape_.capacity + needs.block_size - 1) / needs.block_size;
  const std::int64_t G = shape_.kv_heads, D = shape_.dim;
  for (int layer = 0; layer < shape_.layers; ++layer) {
    if (layers_[layer].ring) continue;
    auto& s = summaries_[layer];
    if (needs.kinds & kSummaryPageMinMax) {
      s[0].reset(std::size_t(G * pages_ * D));
      s[1].reset(std::size_t(G * pages_ * D));
    }
    if (needs.kinds & kSummaryBlockMean) s[2].reset(std::size_t(G * blocks_ * D));
    if (label_count_) labels_[layer].reset(std::size_t(G * shape_.capacity * label_count_));
    if (size_ > 0) update_summaries(layer, 0, size_);
  }
}

bool KvCache::keeps(const SummaryNeeds& needs) const {
  return (needs_.kinds & needs.kinds) == needs.kinds &&
         (!(needs.kinds & kSummaryPageMinMax) || needs_.page_size == needs.page_size) &&
         (!(needs.kinds & kSummaryBlockMean) || needs_.block_size == needs.block_size) &&
         (!(needs.kinds & kSummaryLabels) || needs_.label_channels == needs.label_channels);
}

const float* KvCache::summary(int layer, int kv_head, int which) const {
  LS_CHECK(layer >= 0 && layer < shape_.layers && kv_head >= 0 && kv_head < shape_.kv_heads,
           "KV summary of layer {} head {} out of range", layer, kv_head);
  if (summaries_.empty() || !summaries_[layer][which].data()) return nullptr;
  const std::int64_t units = which == 2 ? blocks_ : pages_;
  return summaries_[layer][which].data() + kv_head * units * shape_.dim;
}

std::span<const int> KvCache::label_channels(int layer, int kv_head) const {
  LS_CHECK(layer >= 0 && layer < shape_.layers && kv_head >= 0 && kv_head < shape_.kv_heads,
           "KV label channels of layer {} head {} out of range", layer, kv_head);
  if (labels_.empty() || !labels_[layer].data()) return {};
  return needs_.label_channels[std::size_t(layer) * std::size_t(shape_.kv_heads) + std::size_t(kv_head)];
}

const float* KvCache::labels(int layer, int kv_head) const {
  if (label_channels(layer, kv_head).empty()) return nullptr;
  return labels_[layer].data() + kv_head * shape_.capacity * label_count_;
}

void KvCache::update_labels(int layer, std::int64_t first, std::int64_t last) {
  const int G = shape_.kv_heads, D = shape_.dim;
  constexpr std::int64_t kRows = 256;  // rows decoded at once
  const std::int64_t chunks = (last - first + kRows - 1) / kRows;
  auto work = [&](std::int64_t item) {
    const int g = static_cast<int>(item / chunks);
    const std::int64_t p0 = first + item % chunks * kRows, p1 = std::min(last, p0 + kRows);
    const std::span<const int> channels = label_channels(layer, g);
    thread_local std::vector<float> rows;
    rows.resize(std::size_t((p1 - p0) * D));
    kv_decode_rows(shape_.key_type, data_.data() + offset(layer, g, 0) + p0 * key_row_bytes_, p1 - p0, D, rows.data());
    float* out = labels_[layer].data() + (g * shape_.capacity + p0) * label_count_;
    for (std::int64_t t = 0; t < p1 - p0; ++t)
      for (std::int64_t c = 0; c < label_count_; ++c) out[t * label_count_ + c] = rows[t * D + channels[c]];
  };
  if (G * chunks >= 4) {
    parallel_for(G * chunks, work, 1);
  } else {
    for (std::int64_t item = 0; item < G * chunks; ++item) work(item);
  }
}

void KvCache::update_summaries(int layer, std::int64_t first, std::int64_t last) {
  const int G = shape_.kv_heads, D = shape_.dim;
  if (labels_[layer].data()) update_labels(layer, first, last);
  auto& s = summaries_[layer];
  // Units touched by the write, each recomputed from every row it holds so far.
  struct Kind {
    int which;
    std::int64_t size;
  };
  std::vector<Kind> kinds;
  if (s[0].data()) kinds.push_back({0, needs_.page_size});
  if (s[2].data()) kinds.push_back({2, needs_.block_size});
  for (const Kind& kind : kinds) {
    const std::int64_t u0 = first / kind.size, u1 = (last - 1) / kind.size + 1, units = u1 - u0;
    const std::int64_t per_head = kind.which == 2 ? blocks_ : pages_;
    auto work = [&](std::int64_t item) {
      const int g = static_cast<int>(item / units);
      const std::int64_t u = u0 + item % units, p0 = u * kind.size, p1 = std::min(last, p0 + kind.size);
      thread_local std::vector<float> rows;
      rows.resize(std::size_t((p1 - p0) * D));
      kv_decode_rows(shape_.key_type, data_.data() + offset(layer, g, 0) + p0 * key_row_bytes_, p1 - p0, D,
                     rows.data());
      if (kind.which == 0) {
        float* mn = s[0].data() + (g * per_head + u) * D;
        float* mx = s[1].data() + (g * per_head + u) * D;
        std::copy(rows.begin(), rows.begin() + D, mn);
        std::copy(rows.begin(), rows.begin() + D, mx);
        for (std::int64_t t = 1; t < p1 - p0; ++t)
          for (int e = 0; e < D; ++e) {
            mn[e] = std::min(mn[e], rows[t * D + e]);
            mx[e] = std::max(mx[e], rows[t * D + e]);
          }
      } else {
        float* mean = s[2].data() + (g * per_head + u) * D;
        for (int e = 0; e < D; ++e) {
          double sum = 0;
          for (std::int64_t t = 0; t < p1 - p0; ++t) sum += rows[t * D + e];
          mean[e] = static_cast<float>(sum / double(p1 - p0));
        }
      }
    };
    if (G * units >= 16) {
      parallel_for(G * units, work, 4);
    } else {
      for (std::int64_t item = 0; item < G * units; ++item) work(item);
    }
  }
}

std::int64_t KvCache::summary_bytes() const {
  std::int64_t total = 0;
  for (int layer = 0; layer < static_cast<int>(summaries_.size()); ++layer) {
    const auto& s = summaries_[layer];
    const std::int64_t row = std::int64_t(shape_.kv_heads) * shape_.dim * 4;
    if (s[0].data()) total += 2 * row * ((size_ + needs_.page_size - 1) / needs_.page_size);
    if (s[2].data()) total += row * ((size_ + needs_.block_size - 1) / needs_.block_size);
    if (labels_[layer].data()) total += std::int64_t(shape_.kv_heads) * label_count_ * 4 * size_;
  }
  return total;
}

int LayerKeys::kv_heads() const { return cache_.shape().kv_heads; }
int LayerKeys::dim() const { return cache_.shape().dim; }
std::int64_t LayerKeys::page_size() const { return cache_.summary_needs().page_size; }
std::int64_t LayerKeys::key_row_bytes() const { return cache_.key_row_bytes(); }
std::int64_t LayerKeys::block_size() const { return cache_.summary_needs().block_size; }
const float* LayerKeys::page_min(int g) const { return cache_.page_min(layer_, g); }
const float* LayerKeys::page_max(int g) const { return cache_.page_max(layer_, g); }
const float* LayerKeys::block_mean(int g) const { return cache_.block_mean(layer_, g); }
std::span<const int> LayerKeys::label_channels(int g) const { return cache_.label_channels(layer_, g); }
const float* LayerKeys::labels(int g) const { return cache_.labels(layer_, g); }

void LayerKeys::read_keys(int g, std::int64_t first, std::int64_t last, float* out) const {
  LS_CHECK(first >= cache_.first_held(layer_, size_) && first <= last && last <= size_,
           "read of keys {}..{} of layer {} (holding {})", first, last, layer_, size_);
  const std::int64_t slots = cache_.slots(layer_), row = cache_.key_row_bytes();
  for (std::int64_t p = first; p < last;) {
    const std::int64_t slot = cache_.slot_of(layer_, p), run = std::min(last - p, slots - slot);
    kv_decode_rows(cache_.key_type(), cache_.keys(layer_, g) + slot * row, run, cache_.shape().dim, out + (p - first) * cache_.shape().dim);
    p += run;
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

KvCache KvCache::clone() const {
  KvCache copy(shape_);
  copy.size_ = size_;
  for (int layer = 0; layer < shape_.layers; ++layer) {
    const std::int64_t held = std::min(size_, layers_[layer].slots);
    for (int g = 0; g < shape_.kv_heads; ++g)
      for (int which = 0; which < 2; ++which)
        std::memcpy(copy.data_.data() + offset(layer, g, which), data_.data() + offset(layer, g, which),
                    std::size_t(held * (which ? value_row_bytes_ : key_row_bytes_)));
  }
  if (needs_.kinds) copy.keep_summaries(needs_);
  return copy;
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
