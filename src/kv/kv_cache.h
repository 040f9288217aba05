// The KV cache of a decoder: for every layer and KV head, the keys (after RoPE) and values of
// the tokens seen so far, in one of llama.cpp's element types (kv_type.h; f16 by default).
//
// A layer either keeps every position (a global layer: slots = the context capacity), or,
// when it attends through a sliding window of W keys, only the last W positions, in a ring of
// W slots (a local layer: position p lives in slot p mod W). So Gemma 3's 15 local layers
// hold 512 tokens each whatever the context. Memory is allocated up front, but pages of the
// allocation are only touched as tokens arrive, so a large capacity costs address space, not
// memory, until it is used.
//
// Pages (docs/DESIGN.md §5): a global layer's slots are positions in order, so page p of a KV
// head is the P consecutive rows [p·P, (p+1)·P): the page table is the identity and a page is
// addressed without indirection. Page summaries for the decode selectors (min/max per page,
// mean per block, the label channels of every key) are kept only when asked for
// (keep_summaries), on global layers, and are
// brought up to date by every write from the rows as stored (after rounding to the cache's
// type), so they equal summaries rebuilt from scratch after any sequence of writes.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "core/buffer.h"
#include "kv/kv_type.h"
#include "methods/decode_method.h"

namespace ls {

class KvCache;

// One global layer of a cache as a decode selector sees it (methods/decode_method.h).
class LayerKeys final : public DecodeKeys {
 public:
  LayerKeys(const KvCache& cache, int layer, std::int64_t size) : cache_(cache), layer_(layer), size_(size) {}
  int kv_heads() const override;
  int dim() const override;
  std::int64_t size() const override { return size_; }
  std::int64_t page_size() const override;
  const float* page_min(int kv_head) const override;
  const float* page_max(int kv_head) const override;
  std::int64_t block_size() const override;
  const float* block_mean(int kv_head) const override;
  std::span<const int> label_channels(int kv_head) const override;
  const float* labels(int kv_head) const override;
  void read_keys(int kv_head, std::int64_t first, std::int64_t last, float* out) const override;
  std::int64_t key_row_bytes() const override;

 private:
  const KvCache& cache_;
  int layer_;
  std::int64_t size_;
};

struct KvCacheShape {
  int layers = 0;
  int kv_heads = 0;
  int dim = 0;                // head dimension
  std::int64_t capacity = 0;  // positions (the context)
  // Per layer: 0 keeps every position; W > 0 keeps the last W (a ring of W slots). Empty: all 0.
  std::vector<std::int64_t> windows;
  KvType key_type = KvType::F16;
  KvType value_type = KvType::F16;
};

class KvCache {
 public:
  KvCache() = default;
  explicit KvCache(const KvCacheShape& shape);

  const KvCacheShape& shape() const { return shape_; }
  std::int64_t capacity() const { return shape_.capacity; }
  std::int64_t size() const { return size_; }  // positions stored in every layer
  KvType key_type() const { return shape_.key_type; }
  KvType value_type() const { return shape_.value_type; }
  std::int64_t key_row_bytes() const { return key_row_bytes_; }
  std::int64_t value_row_bytes() const { return value_row_bytes_; }

  // Slots of a layer (capacity, or its window) and whether it is a ring.
  std::int64_t slots(int layer) const { return layers_[layer].slots; }
  bool is_ring(int layer) const { return layers_[layer].ring; }
  std::int64_t slot_of(int layer, std::int64_t position) const {
    return layers_[layer].ring ? position % layers_[layer].slots : position;
  }
  // The first position a layer still holds when it has `end` positions.
  std::int64_t first_held(int layer, std::int64_t end) const {
    return layers_[layer].ring && end > layers_[layer].slots ? end - layers_[layer].slots : 0;
  }

  // Stored rows [slots] of one layer's KV head (row_bytes apart, in slot order).
  const std::uint8_t* keys(int layer, int kv_head) const { return data_.data() + offset(layer, kv_head, 0); }
  const std::uint8_t* values(int layer, int kv_head) const { return data_.data() + offset(layer, kv_head, 1); }

  // Stores n tokens at positions [position, position + n) of one layer from head-major fp32
  // k and v [kv_heads][n][dim], converted to the cache's types. A ring layer keeps only the
  // last `slots` of them (read what a chunk needs before writing it). The size is not changed
  // (layers are written one by one).
  void write(int layer, std::int64_t position, std::int64_t n, const float* k, const float* v);
  void write_token(int layer, std::int64_t position, const float* k, const float* v) {
    write(layer, position, 1, k, v);
  }
  // Reads positions [first, last) of one layer into head-major fp32 k and v: KV head g's rows
  // start at row g · head_rows (head_rows 0: last - first). The positions must still be held.
  void read(int layer, std::int64_t first, std::int64_t last, float* k, float* v, std::int64_t head_rows = 0) const;

  // Keeps the summaries `needs` asks for on every global layer from now on (what is stored
  // already is summarised at once). Asking again with other needs replaces them.
  void keep_summaries(const SummaryNeeds& needs);
  const SummaryNeeds& summary_needs() const { return needs_; }
  // Whether the summaries kept include everything `needs` asks for.
  bool keeps(const SummaryNeeds& needs) const;
  // Summaries of one KV head of a global layer: [pages][dim] (nullptr when not kept).
  const float* page_min(int layer, int kv_head) const { return summary(layer, kv_head, 0); }
  const float* page_max(int layer, int kv_head) const { return summary(layer, kv_head, 1); }
  const float* block_mean(int layer, int kv_head) const { return summary(layer, kv_head, 2); }
  // The label cache of one KV head of a global layer: its channels (empty when not kept) and
  // those channels of every position, [capacity][channels] (nullptr when not kept).
  std::span<const int> label_channels(int layer, int kv_head) const;
  const float* labels(int layer, int kv_head) const;
  // Bytes of the summaries of the positions stored.
  std::int64_t summary_bytes() const;
  // A global layer holding positions [0, size), as a decode selector reads it.
  LayerKeys layer_keys(int layer, std::int64_t size) const { return LayerKeys(*this, layer, size); }

  // A copy of the positions held (and their summaries), in a new allocation of the same shape.
  KvCache clone() const;

  // Declares positions [0, size) present in every layer.
  void set_size(std::int64_t size);
  void clear() { size_ = 0; }

  // Bytes allocated, and bytes holding tokens (keys and values of all layers).
  std::int64_t bytes_allocated() const { return static_cast<std::int64_t>(data_.size()); }
  std::int64_t bytes_used() const;
  // Bytes one more token adds once every ring is full (global layers only).
  std::int64_t bytes_per_token() const;

 private:
  struct Layer {
    std::int64_t slots = 0;
    bool ring = false;
    std::int64_t begin = 0;  // byte offset of the layer
  };
  std::int64_t offset(int layer, int kv_head, int which) const {
    const Layer& l = layers_[layer];
    const std::int64_t keys_bytes = l.slots * shape_.kv_heads * key_row_bytes_;
    return l.begin + (which ? keys_bytes + kv_head * l.slots * value_row_bytes_ : kv_head * l.slots * key_row_bytes_);
  }
  std::int64_t layer_bytes(std::int64_t slots) const {
    return slots * shape_.kv_heads * (key_row_bytes_ + value_row_bytes_);
  }

  // Recomputes the summaries of the pages and blocks holding positions [first, last).
  void update_summaries(int layer, std::int64_t first, std::int64_t last);
  void update_labels(int layer, std::int64_t first, std::int64_t last);
  const float* summary(int layer, int kv_head, int which) const;

  KvCacheShape shape_;
  std::int64_t size_ = 0;
  SummaryNeeds needs_;
  std::int64_t pages_ = 0, blocks_ = 0;  // per KV head of a global layer
  // Per layer (empty for ring layers): min and max [kv_heads][pages][dim], mean [kv_heads][blocks][dim].
  std::vector<std::array<Buffer<float>, 3>> summaries_;
  // Per layer (empty for ring layers): label channels [kv_heads][capacity][label_count_].
  std::vector<Buffer<float>> labels_;
  std::int64_t label_count_ = 0;
  std::int64_t key_row_bytes_ = 0, value_row_bytes_ = 0;
  std::vector<Layer> layers_;
  Buffer<std::uint8_t> data_;  // per layer: keys [kv_heads][slots] rows, then values
};

}  // namespace ls
