#include "attn/selection.h"

#include <algorithm>

#include "core/error.h"

namespace ls {

void Selection::reset(int kv_heads, std::int64_t n_keys) {
  LS_CHECK(kv_heads > 0 && n_keys >= 0, "selection of {} KV heads over {} keys", kv_heads, n_keys);
  n_keys_ = n_keys;
  pending_.resize(kv_heads);
  for (auto& p : pending_) p.clear();
  offsets_.assign(kv_heads + 1, 0);
  ranges_.clear();
}

void Selection::set_dense(int kv_heads, std::int64_t n_keys, std::int64_t first) {
  reset(kv_heads, n_keys);
  for (int g = 0; g < kv_heads; ++g) add(g, first, n_keys);
  finish();
}

void Selection::add(int g, std::int64_t begin, std::int64_t end) {
  LS_CHECK(g >= 0 && g < static_cast<int>(pending_.size()), "selection: KV head {} out of range", g);
  begin = std::max<std::int64_t>(begin, 0);
  end = std::min(end, n_keys_);
  if (begin < end) pending_[g].push_back({begin, end});
}

void Selection::finish() {
  ranges_.clear();
  offsets_.assign(pending_.size() + 1, 0);
  for (std::size_t g = 0; g < pending_.size(); ++g) {
    auto& p = pending_[g];
    std::sort(p.begin(), p.end(), [](const TokenRange& a, const TokenRange& b) { return a.begin < b.begin; });
    const std::size_t start = ranges_.size();
    for (const TokenRange& r : p) {
      if (ranges_.size() > start && r.begin <= ranges_.back().end) {
        ranges_.back().end = std::max(ranges_.back().end, r.end);
      } else {
        ranges_.push_back(r);
      }
    }
    offsets_[g + 1] = static_cast<std::int64_t>(ranges_.size());
    p.clear();
  }
}

std::int64_t Selection::tokens(int g) const {
  std::int64_t total = 0;
  for (std::int64_t i = offsets_[g]; i < offsets_[g + 1]; ++i) total += ranges_[i].end - ranges_[i].begin;
  return total;
}

std::int64_t Selection::tokens() const {
  std::int64_t total = 0;
  for (const TokenRange& r : ranges_) total += r.end - r.begin;
  return total;
}

bool Selection::contains(int g, std::int64_t position) const {
  auto first = ranges_.begin() + offsets_[g], last = ranges_.begin() + offsets_[g + 1];
  auto it = std::upper_bound(first, last, position, [](std::int64_t p, const TokenRange& r) { return p < r.begin; });
  return it != first && position < std::prev(it)->end;
}

}  // namespace ls
