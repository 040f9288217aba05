// Context parallelism: one prompt's prefill split over the R processes ("ranks") of an MPI job
// (core/comm.h), each running the whole model on its own contiguous block of the prompt, and
// decoding afterwards with each rank keeping its part of the KV cache.
//
// Two modes (`--context-parallel ring|star`):
//  - ring (exact; Ring Attention, Liu et al. 2023, applied to causal prefill): in every layer
//    each rank attends its block's queries to its own block (causal) and to every earlier
//    block, which travel rank to rank along the ring (r → r + 1) while the rank computes with
//    the previous one; the parts merge through their log-sum-exp (attn/merge.h). Blocks only
//    travel as far as they are needed: causally, rank r needs blocks 0..r − 1, so rank R − 1
//    never sends and the wrap-around link (R − 1 → 0) is never used; a sliding-window layer
//    sends only a block's last window − 1 keys, and only to the ranks whose window reaches
//    it. The result equals one process up to floating-point order. A sparse prefill method (global layers) runs on the rank
//    that owns the queries: the rank gathers the earlier blocks as they pass and runs the
//    method on its queries against keys [0, end of its block), exactly as a chunked prefill
//    (--ubatch) of that block would.
//  - star (Star Attention, Acharya et al. 2024, "Star Attention: Efficient LLM Inference over
//    Long Sequences", §2; NVIDIA/Star-Attention): phase 1, the context is split into R
//    blocks and each rank r > 0 encodes the anchor block (the context's first `anchor`
//    tokens, default the block size as in the paper, positions 0..anchor − 1) followed by its
//    own block (its own positions), with local attention only and no communication; the
//    anchor's keys and values are then dropped. Phase 2: the query (the prompt's tokens
//    after the context) and every generated token attend to all ranks' caches: each rank
//    computes its part over the positions it holds, the parts are gathered and merged on
//    every rank, and only the last rank stores the new tokens.
// Ring blocks are contiguous, and balanced for causality by a cost model rather than striped
// or zig-zagged: contiguous so that each rank's cache is one range of positions and the
// forward pass, RoPE and the cache are unchanged (a zig-zag rank would hold two ranges and
// run two RoPE segments per batch). With causal attention a block at the end of the prompt
// costs more than one at the start (queries at position p see p + 1 keys), so the blocks are
// cut where the cumulative cost c_token·x + c_pair·x²/2 reaches r/R of the whole (pair_cost =
// c_pair / c_token, ContextParallel::pair_cost): earlier ranks get longer blocks. Star's blocks
// are equal, as in the paper (each rank's attention is its own block plus the anchor).
// Decode after either mode is the phase-2 step: every rank runs the token through the model
// (the same arithmetic, so the same logits and tokens on every rank), attention merges the
// ranks' parts. With a decode selector (--decode), each rank runs its own copy over the keys
// it holds, as if they were a context of their own (its block's first keys are its sinks, its
// last ones its recent window), with the selector's whole budget: R ranks attend to up to R
// budgets' keys. Page summaries need blocks that start on a page: set_block_alignment().
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "attn/selection.h"
#include "core/buffer.h"
#include "core/comm.h"
#include "kv/decode_attention.h"
#include "model/transformer.h"

namespace ls {

enum class ContextMode { Ring, Star };
ContextMode parse_context_mode(std::string_view name);  // "ring" | "star"; throws otherwise
const char* context_mode_name(ContextMode mode);

// Which positions each rank encodes in phase 1.
struct ContextLayout {
  ContextMode mode = ContextMode::Ring;
  int ranks = 1;
  std::int64_t context = 0;  // positions [0, context) split over the ranks
  std::int64_t query = 0;    // star: positions [context, context + query), run by every rank in phase 2
  std::int64_t anchor = 0;   // star: the anchor block, positions [0, anchor)
  std::vector<std::int64_t> begin;  // [ranks + 1]: rank r encodes [begin[r], begin[r + 1])

  // Ring: the whole prompt is context (query must be 0); pair_cost > 0 balances the blocks
  // (see above), 0 gives equal blocks. Star: equal blocks; anchor 0 means the paper's default,
  // the block size. Throws on an impossible layout (fewer context tokens than ranks, an anchor
  // longer than a block).
  // align > 1: every block but the last starts and ends at a multiple of align tokens.
  static ContextLayout make(ContextMode mode, int ranks, std::int64_t prompt, std::int64_t query,
                            std::int64_t anchor = 0, double pair_cost = 0.0, std::int64_t align = 1);
  std::int64_t block(int rank) const { return begin[rank + 1] - begin[rank]; }
  // Star: query-key pairs phase 1 computes over the context / its causal pairs (ring: 1).
  double density() const;
  std::string describe() const;  // "ring over 2 ranks: blocks of 4096, 4096 tokens"
};

// What this rank did (prefill, summed over layers).
struct ContextStats {
  double phase1_ms = 0.0;       // encoding this rank's block (star: with the anchor)
  double phase2_ms = 0.0;       // star: the query, attending to every rank
  double wait_ms = 0.0;         // waiting for blocks, gathers and broadcasts to arrive
  double remote_ms = 0.0;       // attention over other ranks' blocks (ring) or the anchor (star)
  std::int64_t remote_pairs = 0;   // (layer, remote block) pairs attended
  std::int64_t bytes_sent = 0;     // by this rank, prefill and decode
};

class ContextParallel final : public ContextAttention {
 public:
  // `comm` must outlive this object. anchor: star's anchor block (0: the block size).
  ContextParallel(Communicator& comm, ContextMode mode, std::int64_t anchor = 0);
  ~ContextParallel() override;
  ContextParallel(const ContextParallel&) = delete;
  ContextParallel& operator=(const ContextParallel&) = delete;

  // Prefills `tokens` into an empty cache: phase 1 (this rank's block), then (star) the last
  // `query` tokens on every rank. Writes the logits of the last token on every rank, and
  // leaves the model in context mode (model.set_context(this)) for the decode steps that
  // follow, until this object is destroyed. hooks.attention (a sparse method) runs in the
  // ring's phase 1 only; hooks.logits receives the positions of this rank's block (and the
  // query's, on every rank). Every rank must call it with the same tokens (checked).
  PrefillStats prefill(Transformer& model, std::span<const std::int32_t> tokens, std::int64_t query,
                       KvCache& cache, float* logits, const PrefillHooks& hooks = {});

  // The cost of one causal query-key pair of global attention relative to one token's pass
  // through the rest of the model (projections, FFN, local layers' windows), from their FLOPs
  // and the measured ratio of their speeds (kAttentionFlopCost in the .cc).
  static double pair_cost(const ModelConfig& config);
  // Equal ring blocks instead of balanced ones (tests that need the blocks of --ubatch).
  void set_equal_blocks(bool equal) { equal_blocks_ = equal; }
  // Blocks cut at multiples of this many tokens (a decode selector's pages and blocks must not
  // straddle two ranks); 1: anywhere. The CLI uses kBlockAlignment.
  void set_block_alignment(std::int64_t tokens) { align_ = tokens; }
  static constexpr std::int64_t kBlockAlignment = 64;

  const ContextLayout& layout() const { return layout_; }
  const ContextStats& stats() const { return stats_; }
  Communicator& comm() const { return comm_; }
  ContextMode mode() const { return mode_; }

  // ContextAttention.
  void prefill(int layer, const AttnInput& in, std::int64_t p0, const KvCache& cache, LayerAttention* method,
               float* out) override;
  Decoded decode(const DecodeQuery& query, std::int64_t p, const KvCache& cache, DecodeSelector* selector,
                 float* out) override;
  bool stores(std::int64_t p0) const override;

 private:
  enum class Phase { Blocks, Shared };  // phase 1: each rank its block; phase 2: every rank the same tokens
  void ring(int layer, const AttnInput& in, LayerAttention* method, float* out);
  void star(int layer, const AttnInput& in, const KvCache& cache, float* out);
  void shared(int layer, const AttnInput& in, std::int64_t p0, const KvCache& cache, float* out);
  // The positions [first, end) this rank holds of `layer` that a query at position p may see
  // (with_p: including p itself, which the last rank has just written).
  std::pair<std::int64_t, std::int64_t> held(int layer, std::int64_t p, bool with_p, std::int64_t window,
                                             const KvCache& cache) const;
  // Gathers every rank's (out, lse) of the same rows and merges them in rank order into out;
  // `counts` (two numbers per rank) come back summed over the ranks.
  void merge_ranks(float* out, const double* lse, std::int64_t rows, int dim, double* counts = nullptr);
  // Whether rank `r`'s queries need block j's keys in a layer with this window.
  bool needs(int j, int r, std::int64_t window) const;

  Communicator& comm_;
  ContextMode mode_;
  std::int64_t anchor_request_ = 0;
  bool equal_blocks_ = false;
  std::int64_t align_ = 1;
  ContextLayout layout_;
  Phase phase_ = Phase::Blocks;
  ContextStats stats_;
  Transformer* model_ = nullptr;  // the model this object set itself on
  DecodeAttention decode_attention_;
  Selection selection_;
  Selection local_;  // a selector's choice among the held keys, positions from the first held

  // This rank's block of the last layers, as it travels ([2][kv_heads][keys][dim]: K then V);
  // up to kSendBuffers − 1 of them may still be on their way (posted sends).
  static constexpr int kSendBuffers = 3;
  Buffer<float> send_buffers_[kSendBuffers];
  std::int64_t sends_posted_ = 0;
  Buffer<float> ring_[2];        // blocks received and passed on, same layout
  Buffer<float> all_k_, all_v_;  // [kv_heads][keys][dim]: gathered blocks (sparse method) or held keys
  Buffer<double> lse_;           // [heads][rows]
  Buffer<float> part_;
  Buffer<double> part_lse_;
  Buffer<float> gathered_;       // [ranks + 1][heads · rows · (dim + 2) + 4]: outputs, the lse, two counts (as double)
  std::vector<double> merge_lse_, merge_part_lse_;
};

}  // namespace ls
