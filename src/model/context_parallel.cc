// Context parallelism (see context_parallel.h): the layout of the blocks, the driver of the
// two phases, and the attention of each phase.
#include "model/context_parallel.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "attn/flash.h"
#include "attn/merge.h"
#include "core/error.h"
#include "core/timer.h"

namespace ls {

ContextMode parse_context_mode(std::string_view name) {
  if (name == "ring") return ContextMode::Ring;
  if (name == "star") return ContextMode::Star;
  fail("unknown --context-parallel mode '{}'; valid: ring (exact), star (Star Attention)", name);
}

const char* context_mode_name(ContextMode mode) { return mode == ContextMode::Ring ? "ring" : "star"; }

namespace {

// One FLOP of the attention kernel costs this many FLOPs of the int8 weight products: on
// AMD EPYC (Zen 5) with one thread, the products run at 248 GFLOP/s and the dense attention
// kernel at 94 GFLOP/s (SmolLM2, 8190 tokens; docs/context-parallel.md).
constexpr double kAttentionFlopCost = 2.6;

// The boundary x where c_token·x + c_pair·x(x + 1)/2 = target (the positive root).
std::int64_t cut_at(double pair_cost, double target) {
  if (pair_cost <= 0) return std::int64_t(std::llround(target));
  const double a = pair_cost / 2, b = 1 + pair_cost / 2;
  return std::int64_t(std::llround((-b + std::sqrt(b * b + 4 * a * target)) / (2 * a)));
}

}  // namespace

double ContextParallel::pair_cost(const ModelConfig& c) {
  const double D = c.head_dim, E = c.embedding;
  const double weights = E * (c.heads + 2.0 * c.kv_heads) * D + c.heads * D * E + 3.0 * E * c.ffn;
  const double per_pair_layer = 4.0 * c.heads * D * kAttentionFlopCost;  // QKᵀ and PV
  const int global = int(c.global_layers().size());
  // Local layers attend to at most their window: linear work per token.
  const double local = double(c.layers - global) * per_pair_layer * double(std::max<std::int64_t>(c.sliding_window, 0));
  const double per_token = 2.0 * weights * c.layers + local;
  return global > 0 ? per_pair_layer * global / per_token : 0.0;
}

ContextLayout ContextLayout::make(ContextMode mode, int ranks, std::int64_t prompt, std::int64_t query,
                                  std::int64_t anchor, double pair_cost, std::int64_t align) {
  LS_CHECK(ranks >= 1, "context parallelism over {} ranks", ranks);
  LS_CHECK(query >= 0 && query < prompt, "a query of {} tokens in a prompt of {}", query, prompt);
  LS_CHECK(mode == ContextMode::Star || query == 0, "ring attention has no separate query");
  LS_CHECK(mode == ContextMode::Star || anchor == 0, "ring attention has no anchor block");
  ContextLayout l;
  l.mode = mode;
  l.ranks = ranks;
  l.context = prompt - query;
  l.query = query;
  LS_CHECK(l.context >= ranks, "a context of {} tokens cannot be split over {} ranks (each needs at least one)",
           l.context, ranks);
  l.begin.resize(ranks + 1);
  for (int r = 0; r <= ranks; ++r) l.begin[r] = l.context * r / ranks;
  if (mode == ContextMode::Ring && pair_cost > 0) {
    const double n = double(l.context);
    const double total = n + pair_cost * n * (n + 1) / 2;
    // At least one token per rank, in order.
    for (int r = 1; r < ranks; ++r)
      l.begin[r] = std::clamp(cut_at(pair_cost, total * r / ranks), l.begin[r - 1] + 1, l.context - (ranks - r));
  }
  if (align > 1) {
    for (int r = 1; r < ranks; ++r) {
      l.begin[r] = (l.begin[r] + align / 2) / align * align;
      LS_CHECK(l.begin[r] > l.begin[r - 1] && l.begin[r] < l.context,
               "a context of {} tokens cannot be split over {} ranks in whole blocks of {} tokens", l.context, ranks,
               align);
    }
  }
  if (mode == ContextMode::Star) {
    l.anchor = anchor > 0 ? anchor : l.block(0);
    LS_CHECK(l.anchor <= l.block(0), "the anchor block ({} tokens) is longer than a context block ({})", l.anchor,
             l.block(0));
  }
  return l;
}

double ContextLayout::density() const {
  if (mode == ContextMode::Ring || context == 0) return 1.0;
  double computed = 0.0;
  for (int r = 0; r < ranks; ++r) {
    const double m = double(block(r));
    computed += m * (m + 1) / 2 + (r > 0 ? m * double(anchor) : 0.0);
  }
  return computed / (double(context) * double(context + 1) / 2);
}

std::string ContextLayout::describe() const {
  std::string blocks;
  for (int r = 0; r < ranks; ++r) blocks += fmt::format("{}{}", r ? ", " : "", block(r));
  std::string s = fmt::format("{} over {} rank{}: blocks of {} tokens", context_mode_name(mode), ranks,
                              ranks == 1 ? "" : "s", blocks);
  if (mode == ContextMode::Star)
    s += fmt::format(", anchor {}, query {} (phase-1 density {:.3f})", anchor, query, density());
  return s;
}

ContextParallel::ContextParallel(Communicator& comm, ContextMode mode, std::int64_t anchor)
    : comm_(comm), mode_(mode), anchor_request_(anchor) {
  LS_CHECK(anchor >= 0, "a negative anchor block ({})", anchor);
  LS_CHECK(mode == ContextMode::Star || anchor == 0, "--cp-anchor applies to star only");
}

ContextParallel::~ContextParallel() {
  if (model_ && model_->context() == this) model_->set_context(nullptr);
}

PrefillStats ContextParallel::prefill(Transformer& model, std::span<const std::int32_t> tokens, std::int64_t query,
                                      KvCache& cache, float* logits, const PrefillHooks& hooks) {
  const std::int64_t n = std::int64_t(tokens.size());
  const int r = comm_.rank(), R = comm_.size();
  LS_CHECK(cache.size() == 0, "a context-parallel prefill starts from an empty cache ({} tokens cached)",
           cache.size());
  LS_CHECK(n <= cache.capacity(), "prompt of {} tokens exceeds the context of {}", n, cache.capacity());
  LS_CHECK(mode_ == ContextMode::Ring || !hooks.attention,
           "star attention's phase 1 is its own sparsity (anchor + local block); it takes no --prefill method");
  {
    // Every rank must run the same prompt, model and settings.
    const ModelConfig& c = model.config();
    std::string key(reinterpret_cast<const char*>(tokens.data()), tokens.size_bytes());
    key += fmt::format("|{}|{}|{}|{}|{}|{}|{}|{}|{}", context_mode_name(mode_), anchor_request_, query, c.layers,
                       c.embedding, c.vocab, cache.capacity(), int(cache.key_type()), int(cache.value_type()));
    comm_.check_same(key, "the prompt, model or settings");
  }
  layout_ = ContextLayout::make(mode_, R, n, query, anchor_request_, equal_blocks_ ? 0.0 : pair_cost(model.config()),
                                align_);
  stats_ = {};
  model_ = &model;
  const std::int64_t bytes_before = comm_.bytes_sent();
  std::vector<float> scratch(model.config().vocab);

  // Phase 1: this rank's block (star: after the anchor, encoded without context attention).
  Timer phase1;
  phase_ = Phase::Blocks;
  PrefillStats stats;
  if (mode_ == ContextMode::Star && r > 0) {
    model.set_context(nullptr);
    model.prefill(tokens.first(layout_.anchor), cache, scratch.data());
  }
  model.set_context(this);
  cache.set_size(layout_.begin[r]);
  const std::int64_t b0 = layout_.begin[r], b1 = layout_.begin[r + 1];
  const bool last_here = query == 0 && r == R - 1;
  const PrefillStats s1 = model.prefill(tokens.subspan(b0, b1 - b0), cache, last_here ? logits : scratch.data(), hooks);
  stats.attention_ms += s1.attention_ms;
  stats.estimate_ms += s1.estimate_ms;
  {
    Timer wait;
    comm_.complete_sends(0);
    stats_.wait_ms += wait.ms();
  }
  stats_.phase1_ms = phase1.ms();

  // Every rank now counts the whole context as cached; each holds its own block of it.
  cache.set_size(layout_.context);
  phase_ = Phase::Shared;
  if (query > 0) {
    Timer phase2;
    PrefillHooks shared = hooks;
    shared.attention = nullptr;
    const PrefillStats s2 = model.prefill(tokens.subspan(layout_.context), cache, logits, shared);
    stats.attention_ms += s2.attention_ms;
    stats_.phase2_ms = phase2.ms();
  } else {
    Timer wait;
    comm_.broadcast(logits, std::size_t(model.config().vocab) * sizeof(float), R - 1);
    stats_.wait_ms += wait.ms();
  }
  stats_.bytes_sent = comm_.bytes_sent() - bytes_before;
  return stats;
}

bool ContextParallel::stores(std::int64_t) const {
  return phase_ == Phase::Blocks || comm_.rank() == comm_.size() - 1;
}

bool ContextParallel::needs(int j, int r, std::int64_t window) const {
  if (j < 0 || j >= r) return false;
  // The last key of block j against the first query of block r.
  return window == 0 || layout_.begin[j + 1] - 1 >= layout_.begin[r] - window + 1;
}

void ContextParallel::prefill(int layer, const AttnInput& in, std::int64_t p0, const KvCache& cache,
                              LayerAttention* method, float* out) {
  if (phase_ == Phase::Shared) return shared(layer, in, p0, cache, out);
  LS_CHECK(p0 == layout_.begin[comm_.rank()] && in.shape.n_q == layout_.block(comm_.rank()),
           "context parallelism: batch at {} of {} tokens is not this rank's block", p0, in.shape.n_q);
  if (mode_ == ContextMode::Ring) return ring(layer, in, method, out);
  star(layer, in, cache, out);
}

void ContextParallel::ring(int layer, const AttnInput& in, LayerAttention* method, float* out) {
  const AttnShape& s = in.shape;
  const int r = comm_.rank(), R = comm_.size(), G = s.kv_heads, D = s.dim;
  const std::int64_t m = s.n_q, W = s.window;
  // The keys of block j that travel: all of them, or in a sliding-window layer (dense
  // there: a method runs on global layers) the last window − 1, the only ones a later query
  // sees. Both ends of a link compute the same, from the layer alone.
  const bool trim = W > 0 && method == nullptr;
  const auto first_sent = [&](int j) {
    return trim ? std::max(layout_.begin[j], layout_.begin[j + 1] - W + 1) : layout_.begin[j];
  };
  const auto sent = [&](int j) { return layout_.begin[j + 1] - first_sent(j); };
  const auto block_floats = [&](int j) { return 2 * std::int64_t(G) * sent(j) * D; };
  std::int64_t largest = 0;
  for (int j = 0; j < R; ++j) largest = std::max(largest, block_floats(j));
  // The own block as it travels: [K: G × sent × D][V: G × sent × D]. It goes out at once
  // and is not waited for (post_send): a rank with less work in this layer goes on to the
  // next ones, up to kSendBuffers − 1 layers ahead of the rank after it, instead of moving
  // in lockstep with it (blocks balanced over the whole model are not balanced per layer
  // when local and global layers mix). Blocks passed on (t ≥ 2) go with the exchanges.
  const bool send_own = r + 1 < R && needs(r, r + 1, W);
  {
    Timer wait;
    comm_.complete_sends(kSendBuffers - 1);  // the buffer about to be filled is free
    stats_.wait_ms += wait.ms();
  }
  Buffer<float>* own = &send_buffers_[sends_posted_ % kSendBuffers];
  if (send_own) ++sends_posted_;
  const std::int64_t own_n = sent(r), skip = m - own_n;
  own->ensure(block_floats(r));
  for (int g = 0; g < G; ++g) {
    std::memcpy(own->data() + g * own_n * D, in.k + (g * m + skip) * D, own_n * D * sizeof(float));
    std::memcpy(own->data() + (G + g) * own_n * D, in.v + (g * m + skip) * D, own_n * D * sizeof(float));
  }
  if (send_own) comm_.post_send(r + 1, own->data(), std::size_t(block_floats(r)) * sizeof(float));
  ring_[0].ensure(largest);
  ring_[1].ensure(largest);

  // A sparse method sees this rank's queries against keys [0, end of the block): the blocks
  // are gathered in place as they pass. Dense attention merges each block's part instead.
  const bool gather = method != nullptr && r > 0;
  const std::int64_t end = layout_.begin[r + 1];
  if (gather) {
    all_k_.ensure(G * end * D);
    all_v_.ensure(G * end * D);
  } else {
    lse_.ensure(std::int64_t(s.heads) * m);
    part_.ensure(std::int64_t(s.heads) * m * D);
    part_lse_.ensure(std::int64_t(s.heads) * m);
  }
  const auto attend = [&](int j, const float* block) {
    const std::int64_t n = sent(j), first = first_sent(j);
    const float* k = block;
    const float* v = block + G * n * D;
    if (gather) {
      for (int g = 0; g < G; ++g) {
        std::memcpy(all_k_.data() + (g * end + first) * D, k + g * n * D, n * D * sizeof(float));
        std::memcpy(all_v_.data() + (g * end + first) * D, v + g * n * D, n * D * sizeof(float));
      }
      return;
    }
    if (j == r) {
      if (method) return method->prefill(layer, in, {}, out);  // rank 0 with a sparse method
      return attention_at(in, 0, out, lse_.data());
    }
    Timer timer;
    const AttnInput pair{in.q, k, v, {s.heads, G, m, n, D, s.scale, W}};
    attention_at(pair, layout_.begin[r] - first, part_.data(), part_lse_.data());
    merge_attention(out, lse_.data(), part_.data(), part_lse_.data(), std::int64_t(s.heads) * m, D);
    stats_.remote_ms += timer.ms();
    ++stats_.remote_pairs;
  };

  // Step t: pass the block held (received at step t − 1) on to r + 1, receive block r − t
  // from r − 1, and meanwhile attend to the block held (the own block at t = 1, sent above).
  const float* current = own->data();
  int owner = r;
  for (int t = 1;; ++t) {
    const int incoming_block = r - t;
    const bool receive = needs(incoming_block, r, W);
    const bool send = t > 1 && r + 1 < R && needs(owner, r + 1, W);
    float* incoming = ring_[t % 2].data();
    if (send || receive)
      comm_.start_exchange(send ? r + 1 : -1, current, std::size_t(block_floats(owner)) * sizeof(float),
                           receive ? r - 1 : -1, incoming,
                           receive ? std::size_t(block_floats(incoming_block)) * sizeof(float) : 0);
    attend(owner, current);
    if (send || receive) {
      Timer wait;
      comm_.wait_exchange();
      stats_.wait_ms += wait.ms();
    }
    if (!receive) break;
    current = incoming;
    owner = incoming_block;
  }
  if (gather) {
    Timer timer;
    const AttnInput all{in.q, all_k_.data(), all_v_.data(), {s.heads, G, m, end, D, s.scale, W}};
    method->prefill(layer, all, {}, out);
    stats_.remote_ms += timer.ms();
  }
}

void ContextParallel::star(int layer, const AttnInput& in, const KvCache& cache, float* out) {
  const AttnShape& s = in.shape;
  const int r = comm_.rank(), G = s.kv_heads, D = s.dim;
  const std::int64_t m = s.n_q, rows = std::int64_t(s.heads) * m;
  lse_.ensure(rows);
  attention_at(in, 0, out, lse_.data());  // the own block, causal
  if (r == 0) return;                     // block 0 is the anchor's own block
  // The anchor's keys this layer still holds (a sliding-window layer: only its last window)
  // that the block's first query can see.
  const std::int64_t a = layout_.anchor;
  std::int64_t first = cache.first_held(layer, a);
  if (s.window > 0) first = std::max(first, layout_.begin[r] - s.window + 1);
  if (first >= a) return;
  Timer timer;
  const std::int64_t n = a - first;
  all_k_.ensure(G * n * D);
  all_v_.ensure(G * n * D);
  cache.read(layer, first, a, all_k_.data(), all_v_.data());
  part_.ensure(rows * D);
  part_lse_.ensure(rows);
  const AttnInput anchor{in.q, all_k_.data(), all_v_.data(), {s.heads, G, m, n, D, s.scale, s.window}};
  attention_at(anchor, layout_.begin[r] - first, part_.data(), part_lse_.data());
  merge_attention(out, lse_.data(), part_.data(), part_lse_.data(), rows, D);
  stats_.remote_ms += timer.ms();
  ++stats_.remote_pairs;
}

std::pair<std::int64_t, std::int64_t> ContextParallel::held(int layer, std::int64_t p, bool with_p,
                                                            std::int64_t window, const KvCache& cache) const {
  const int r = comm_.rank(), R = comm_.size();
  // The last rank also holds the tokens after the context (the query and generated tokens).
  const std::int64_t end = r == R - 1 ? p + (with_p ? 1 : 0) : layout_.begin[r + 1];
  std::int64_t first = std::max(layout_.begin[r], cache.first_held(layer, end));
  if (window > 0) first = std::max(first, p - window + 1);
  return {first, std::max(first, end)};
}

void ContextParallel::shared(int layer, const AttnInput& in, std::int64_t p0, const KvCache& cache, float* out) {
  const AttnShape& s = in.shape;
  const int G = s.kv_heads, D = s.dim;
  const std::int64_t m = s.n_q, rows = std::int64_t(s.heads) * m;
  lse_.ensure(rows);
  // Keys of the positions this rank holds before the batch, then (the last rank) the batch's own.
  const auto [first, end] = held(layer, p0, false, s.window, cache);
  std::fill_n(out, rows * D, 0.0f);
  std::fill_n(lse_.data(), rows, -std::numeric_limits<double>::infinity());
  if (first < end) {
    all_k_.ensure(G * (end - first) * D);
    all_v_.ensure(G * (end - first) * D);
    cache.read(layer, first, end, all_k_.data(), all_v_.data());
    const AttnInput past{in.q, all_k_.data(), all_v_.data(), {s.heads, G, m, end - first, D, s.scale, s.window}};
    attention_at(past, p0 - first, out, lse_.data());
  }
  if (stores(p0)) {
    part_.ensure(rows * D);
    part_lse_.ensure(rows);
    attention_at(in, 0, part_.data(), part_lse_.data());
    merge_attention(out, lse_.data(), part_.data(), part_lse_.data(), rows, D);
  }
  merge_ranks(out, lse_.data(), rows, D);
}

namespace {

// The keys of positions [first, end) of a layer as a context of their own (positions from
// 0), for a decode selector on one rank. Summaries are the cache's, which is why `first`
// must start a page and a block.
class HeldKeys final : public DecodeKeys {
 public:
  HeldKeys(const DecodeKeys& all, std::int64_t first, std::int64_t end) : all_(all), first_(first), end_(end) {
    LS_CHECK(!all.page_min(0) || first % all.page_size() == 0,
             "a decode selector's pages of {} tokens straddle two ranks (blocks must start at multiples of {})",
             all.page_size(), ContextParallel::kBlockAlignment);
    LS_CHECK(!all.block_mean(0) || first % all.block_size() == 0,
             "a decode selector's blocks of {} tokens straddle two ranks (blocks must start at multiples of {})",
             all.block_size(), ContextParallel::kBlockAlignment);
  }
  int kv_heads() const override { return all_.kv_heads(); }
  int dim() const override { return all_.dim(); }
  std::int64_t size() const override { return end_ - first_; }
  std::int64_t page_size() const override { return all_.page_size(); }
  const float* page_min(int g) const override { return shifted(all_.page_min(g), first_ / all_.page_size()); }
  const float* page_max(int g) const override { return shifted(all_.page_max(g), first_ / all_.page_size()); }
  std::int64_t block_size() const override { return all_.block_size(); }
  const float* block_mean(int g) const override { return shifted(all_.block_mean(g), first_ / all_.block_size()); }
  std::span<const int> label_channels(int g) const override { return all_.label_channels(g); }
  const float* labels(int g) const override {
    const float* l = all_.labels(g);
    return l ? l + first_ * std::int64_t(all_.label_channels(g).size()) : nullptr;
  }
  std::int64_t key_row_bytes() const override { return all_.key_row_bytes(); }
  void read_keys(int g, std::int64_t first, std::int64_t last, float* out) const override {
    all_.read_keys(g, first_ + first, first_ + last, out);
  }

 private:
  const float* shifted(const float* rows, std::int64_t by) const { return rows ? rows + by * all_.dim() : nullptr; }
  const DecodeKeys& all_;
  std::int64_t first_, end_;
};

}  // namespace

ContextAttention::Decoded ContextParallel::decode(const DecodeQuery& query, std::int64_t p, const KvCache& cache,
                                                  DecodeSelector* selector, float* out) {
  LS_CHECK(phase_ == Phase::Shared, "context parallelism: decode before the prefill");
  const int layer = query.layer, H = query.heads, G = cache.shape().kv_heads, D = cache.shape().dim;
  const std::int64_t window = cache.is_ring(layer) ? cache.slots(layer) : 0;
  // The last rank has written the token already: its range ends after it.
  const auto [first, end] = held(layer, p, stores(p), window, cache);
  lse_.ensure(H);
  double counts[2] = {0.0, 0.0};  // keys attended, bytes the selector read
  Decoded decoded;
  if (first < end) {
    if (selector && window == 0) {
      const LayerKeys all = cache.layer_keys(layer, end);
      const HeldKeys mine(all, first, end);
      Timer timer;
      counts[1] = double(selector->select(query, mine, local_));
      decoded.select_ms = timer.ms();
      selection_.reset(G, end);
      for (int g = 0; g < G; ++g)
        for (std::int64_t i = local_.offsets()[g]; i < local_.offsets()[g + 1]; ++i)
          selection_.add(g, first + local_.ranges()[i].begin, first + local_.ranges()[i].end);
      selection_.finish();
    } else {
      selection_.set_dense(G, end, first);
    }
    counts[0] = double(selection_.tokens());
    decode_attention_.run(cache, layer, query.q, H, selection_, query.scale, out, {}, lse_.data());
  } else {
    std::fill_n(out, std::int64_t(H) * D, 0.0f);
    std::fill_n(lse_.data(), H, -std::numeric_limits<double>::infinity());
  }
  merge_ranks(out, lse_.data(), H, D, counts);
  decoded.keys = std::int64_t(counts[0]);
  decoded.select_bytes = std::int64_t(counts[1]);
  return decoded;
}

void ContextParallel::merge_ranks(float* out, const double* lse, std::int64_t rows, int dim, double* counts) {
  const int R = comm_.size();
  if (R == 1) return;
  // Per rank: rows × dim floats of output, then rows doubles of lse and two doubles of counts
  // (two floats each).
  const std::int64_t slot = rows * (dim + 2) + 4;
  gathered_.ensure(slot * (R + 1));
  float* mine = gathered_.data() + slot * R;
  std::memcpy(mine, out, rows * dim * sizeof(float));
  std::memcpy(mine + rows * dim, lse, rows * sizeof(double));
  const double none[2] = {0.0, 0.0};
  std::memcpy(mine + rows * (dim + 2), counts ? counts : none, sizeof none);
  Timer wait;
  comm_.allgather(mine, slot * sizeof(float), gathered_.data());
  stats_.wait_ms += wait.ms();
  // The same order on every rank, so every rank computes the same result.
  std::vector<double>& acc = merge_lse_;
  acc.resize(rows);
  std::memcpy(out, gathered_.data(), rows * dim * sizeof(float));
  std::memcpy(acc.data(), gathered_.data() + rows * dim, rows * sizeof(double));
  std::vector<double>& part_lse = merge_part_lse_;
  part_lse.resize(rows);
  for (int r = 1; r < R; ++r) {
    const float* part = gathered_.data() + slot * r;
    std::memcpy(part_lse.data(), part + rows * dim, rows * sizeof(double));
    merge_attention(out, acc.data(), part, part_lse.data(), rows, dim);
  }
  if (counts) {
    counts[0] = counts[1] = 0.0;
    for (int r = 0; r < R; ++r) {
      double theirs[2];
      std::memcpy(theirs, gathered_.data() + slot * r + rows * (dim + 2), sizeof theirs);
      counts[0] += theirs[0];
      counts[1] += theirs[1];
    }
  }
}

}  // namespace ls
