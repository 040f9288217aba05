// A decode selector: picks, for each new token and layer, the cached keys the token attends
// to (a Selection, attn/selection.h); one gather kernel attends over exactly them (kv/
// decode_attention.h). Selectors read the cache through DecodeKeys, which the KV cache
// implements, so methods know nothing of how keys are stored (docs/DESIGN.md §2, §5).
//
// Budget: every selector takes `budget`, the keys one KV head attends to in a sparse layer,
// sink and recent window included, so a budget means the same cost for every selector. A
// selector whose budget covers the whole context attends densely (as the papers do below
// their minimum context).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "attn/selection.h"

namespace ls {

// The page summaries a selector reads; the cache keeps only those some selector asked for.
enum SummaryKind : unsigned {
  kSummaryPageMinMax = 1u,  // channel-wise min and max of the keys of each page (Quest)
  kSummaryBlockMean = 2u,   // mean key of each block (NSA-style compressed keys, landmarks)
  kSummaryLabels = 4u,      // a few channels of every key: the label cache (Double Sparsity)
};

struct SummaryNeeds {
  unsigned kinds = 0;           // SummaryKind bits
  std::int64_t page_size = 16;  // tokens per page (min/max)
  std::int64_t block_size = 16; // tokens per block (means)
  // Label channels: [layer · kv_heads + g] -> the channels of KV head g's keys kept in layer's
  // label cache, the same count for every head; every layer of the model (ring layers keep none).
  // (The initializer lets {kinds, page, block} leave it out without a warning.)
  std::vector<std::vector<int>> label_channels = {};
};

// One layer's cached keys as a selector sees them: post-RoPE keys in fp32, and the summaries
// asked for. Page p covers positions [p·P, min((p+1)·P, size)); a summary of a partly filled
// page covers the tokens written so far.
class DecodeKeys {
 public:
  virtual ~DecodeKeys() = default;
  virtual int kv_heads() const = 0;
  virtual int dim() const = 0;
  virtual std::int64_t size() const = 0;  // keys held: positions [0, size)
  virtual std::int64_t page_size() const = 0;
  virtual const float* page_min(int kv_head) const = 0;  // [pages][dim]; nullptr when not kept
  virtual const float* page_max(int kv_head) const = 0;
  virtual std::int64_t block_size() const = 0;
  virtual const float* block_mean(int kv_head) const = 0;  // [blocks][dim]; nullptr when not kept
  // The label cache: the channels kept of KV head g's keys (empty when not kept) and those
  // channels of every key, [size][channels] (nullptr when not kept).
  virtual std::span<const int> label_channels(int /*kv_head*/) const { return {}; }
  virtual const float* labels(int /*kv_head*/) const { return nullptr; }
  // Bytes of one stored key row (what reading a key costs).
  virtual std::int64_t key_row_bytes() const = 0;
  // Keys of positions [first, last) of one KV head into out [last - first][dim].
  virtual void read_keys(int kv_head, std::int64_t first, std::int64_t last, float* out) const = 0;
};

// The new token of one decode step in one layer.
struct DecodeQuery {
  int layer = 0;            // model layer (0 outside a model)
  int layers = 1;           // layers of the model
  const float* q = nullptr; // [heads][dim], after RoPE
  int heads = 0;            // query heads; head h belongs to KV head h / (heads / kv_heads)
  float scale = 1.0f;       // softmax scale
};

class DecodeSelector {
 public:
  virtual ~DecodeSelector() = default;
  virtual SummaryNeeds needs() const { return {}; }
  // Keys attended per KV head in a sparse layer, sink and window included.
  virtual std::int64_t budget() const = 0;
  // Called once per decode step before its first layer (selectors sharing work across layers
  // or steps keep their state here).
  virtual void begin_step(std::int64_t /*position*/) {}
  // Selects the keys of `keys` (all of [0, keys.size())) the query attends to in this layer
  // and returns the bytes of summaries and keys read while selecting. Deterministic.
  virtual std::int64_t select(const DecodeQuery& query, const DecodeKeys& keys, Selection& out) = 0;
  // Clears state carried between steps (a new sequence).
  virtual void reset() {}
  // A cap on the relative distance RoPE sees at decode (0: none): keys farther behind the
  // query are scored as if exactly this far (kv/decode_attention.h, DecodeFar).
  virtual std::int64_t rope_distance_limit() const { return 0; }

  const std::string& spec() const { return spec_; }
  void set_spec(std::string spec) { spec_ = std::move(spec); }

 private:
  std::string spec_;
};

// Helpers shared by selectors.
namespace decode {

// Indices of the k largest scores (ties: the lower index), sorted ascending. k ≥ n: all.
std::vector<std::int64_t> top_k(const float* scores, std::int64_t n, std::int64_t k);

// Selection of every key of every head.
void select_dense(const DecodeKeys& keys, Selection& out);

// Quest's upper bound of q·k over each page, summed over the query heads of KV head g:
// out[p] = Σ_h Σ_c max(q_hc·min_pc, q_hc·max_pc) for pages [0, pages). Needs page min/max.
void page_upper_bounds(const DecodeQuery& query, const DecodeKeys& keys, int g, std::int64_t pages, float* out);

// Exact scores of every key for KV head g: softmax(q_h·k·scale) over [0, keys.size()),
// summed over the group's query heads, into out [size]. Reads every key.
void attention_probs(const DecodeQuery& query, const DecodeKeys& keys, int g, float* out);

// The budget split shared by selectors: throws ls::Error when the sink and window leave
// nothing to select, naming the selector.
void check_budget(const char* name, std::int64_t budget, std::int64_t reserved);

}  // namespace decode

}  // namespace ls
