// A decode Selection (docs/DESIGN.md §5): for each KV head of one layer, the key positions one
// new query attends to, as sorted, disjoint ranges [begin, end) of positions. Pages, memory
// units, blocks, single tokens, the sink and the recent window are all ranges; the query heads
// of a GQA group share their KV head's ranges, so the gather kernel reads each row once for
// the group. Dense decode is one range [first held, n) per head. Plain data, a few KB.
#pragma once

#include <cstdint>
#include <vector>

namespace ls {

struct TokenRange {
  std::int64_t begin = 0, end = 0;  // positions [begin, end)
};

class Selection {
 public:
  // Starts an empty selection of `kv_heads` heads over keys [0, n_keys).
  void reset(int kv_heads, std::int64_t n_keys);
  // Every key of every head (dense decode); `first` skips the positions a ring no longer holds.
  void set_dense(int kv_heads, std::int64_t n_keys, std::int64_t first = 0);

  // Adds [begin, end) ∩ [0, n_keys) to head g's candidates; order and overlaps do not matter.
  void add(int g, std::int64_t begin, std::int64_t end);
  // Sorts and merges every head's candidates into disjoint ranges. Must follow the adds and
  // precede the readers below.
  void finish();

  int kv_heads() const { return static_cast<int>(offsets_.size()) - 1; }
  std::int64_t n_keys() const { return n_keys_; }
  // Head g's ranges: ranges()[offsets()[g] .. offsets()[g + 1]).
  const std::vector<std::int64_t>& offsets() const { return offsets_; }
  const std::vector<TokenRange>& ranges() const { return ranges_; }
  std::int64_t tokens(int g) const;  // keys head g attends to
  std::int64_t tokens() const;       // summed over heads
  bool contains(int g, std::int64_t position) const;

 private:
  std::int64_t n_keys_ = 0;
  std::vector<std::int64_t> offsets_ = {0};
  std::vector<TokenRange> ranges_;
  std::vector<std::vector<TokenRange>> pending_;  // per head, between reset() and finish()
};

}  // namespace ls
