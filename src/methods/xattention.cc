// xattention — XAttention (Xu et al., "XAttention: Block Sparse Attention with Antidiagonal
// Scoring", ICML 2025), §2.1 (antidiagonal scoring), §2.2 (threshold block selection).
// Official code consulted: github.com/mit-han-lab/x-attention, xattn/src/Xattention.py
// (xattn_estimate with select_mode "inverse", Xattention_prefill) and xattn/src/utils.py
// (find_blocks_chunked).
//
// Per query head (the official code repeats KV heads for GQA, so each query head is scored
// against its KV head):
//  1. Cut queries and keys into tiles of `stride` S consecutive tokens. The score of query
//     tile i against key tile j is the sum along the tile's antidiagonal,
//     Σ_k q[iS + S−1−k] · k[jS + k], scaled by softmax_scale / S (official: 1/(√d·S), norm 1).
//     This is one small GEMM: query tile rows are their S queries concatenated in reverse
//     order, key tile rows are their S keys concatenated (contiguous in memory).
//  2. Key tiles after the query tile are masked (tile-level causality); softmax over each
//     query tile's row; probabilities summed into block × block (128 × 128) cells.
//  3. Per query block row: block 0 and the diagonal block are always kept; the other blocks
//     follow in descending score while the mass kept so far is below tau × the row's total
//     (find_blocks_chunked: a block is added while the cumulative sum before it < required).
// Parameters: stride 8 (the paper uses 8 or 16; 8 for language models), block 128,
// tau 0.9 (the official `threshold`).
// Minimum length: none in the official code; with n ≤ 2·block every row keeps block 0 and its
// diagonal, which is all of its causal blocks, so short sequences are dense by construction.
// Choices where the official code is silent or our interface is more general:
//  - A last partial tile is padded with zeros (the official code pads to its chunk size).
//  - Query tiles partly past the end of the queries keep their real queries' terms; tiles
//    with no real query are dropped (the official code zeroes fully padded rows).
//  - With n_q < n_k, tile-level causality uses positions: query tile i sees key tiles j with
//    j·S ≤ position of its last query (the official offset is the same when aligned).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"
#include "methods/estimate_util.h"
#include "methods/registry.h"

namespace ls {
namespace {

struct XAttentionConfig {
  int stride = 8;
  int block = 128;
  double tau = 0.9;
};

class XAttention final : public PrefillMethod {
 public:
  explicit XAttention(XAttentionConfig config) : config_(config) {
    LS_CHECK(config_.block % config_.stride == 0, "xattention: stride {} must divide block {}", config_.stride,
             config_.block);
  }

  Plan build_plan(const AttnInput& in, const PlanContext&) const override {
    const AttnShape& s = in.shape;
    s.validate();
    const int stride = config_.stride, dim = s.dim;
    PlanBuilder builder(s.heads, s.heads, s.n_q, s.n_k, config_.block, config_.block);
    const Plan& shape = builder.shape();
    const std::int64_t q_blocks = shape.q_blocks();

    // Keys padded to whole tiles, per KV head: [kv_heads][key_tiles * stride][dim]. Only
    // copied when n_k is not a multiple of the stride.
    const std::int64_t key_tiles = (s.n_k + stride - 1) / stride;
    std::vector<float> padded_keys;
    const float* keys = in.k;
    if (s.n_k % stride != 0) {
      padded_keys.assign(std::size_t(s.kv_heads) * key_tiles * stride * dim, 0.0f);
      for (int g = 0; g < s.kv_heads; ++g)
        std::memcpy(padded_keys.data() + std::size_t(g) * key_tiles * stride * dim, in.k_row(g, 0),
                    sizeof(float) * s.n_k * dim);
      keys = padded_keys.data();
    }

    // Key tiles (rows of stride·dim floats) packed once per KV head.
    std::vector<estimate::PackedRows> packed_tiles(s.kv_heads);
    parallel_for(s.kv_heads, [&](std::int64_t g) {
      packed_tiles[g].pack(keys + std::size_t(g) * key_tiles * stride * dim, std::int64_t(stride) * dim, key_tiles,
                           std::int64_t(stride) * dim);
    });
    // Work items are (head, group of consecutive query blocks): the score GEMM then has
    // group · block / S query-tile rows, a multiple of the kernel's 12 rows when possible.
    const int tiles_per_block = config_.block / stride;
    const std::int64_t group = std::min<std::int64_t>(q_blocks, 12 / std::gcd(12, tiles_per_block));
    const std::int64_t groups = (q_blocks + group - 1) / group;
    // [heads * q_blocks] selected key blocks per row, filled in parallel, added in order.
    std::vector<std::vector<std::int32_t>> selected(std::size_t(s.heads * q_blocks));
    parallel_for(s.heads * groups, [&](std::int64_t item) {
      const int head = int(item / groups);
      const std::int64_t qb0 = (item % groups) * group, qb1 = std::min(q_blocks, qb0 + group);
      select_rows(in, head, qb0, qb1, packed_tiles[s.kv_head_of(head)], shape, selected.data() + head * q_blocks);
    });
    for (std::int64_t row = 0; row < builder.rows(); ++row) {
      builder.add_diagonal(row);
      for (std::int32_t kb : selected[row]) builder.add_blocks(row, kb, kb + 1);
    }
    return builder.finish();
  }

 private:
  // Key blocks kept beyond the diagonal for the rows (head, qb) of query blocks [qb0, qb1),
  // written to selected[qb].
  void select_rows(const AttnInput& in, int head, std::int64_t qb0, std::int64_t qb1,
                   const estimate::PackedRows& key_tiles, const Plan& shape,
                   std::vector<std::int32_t>* selected) const {
    const AttnShape& s = in.shape;
    const int stride = config_.stride, block = config_.block, dim = s.dim;
    const int tiles_per_block = block / stride;
    const std::int64_t tile_width = std::int64_t(stride) * dim;
    const std::int64_t first_tile = qb0 * tiles_per_block;
    const std::int64_t tiles =
        std::min<std::int64_t>((qb1 - qb0) * tiles_per_block, (s.n_q + stride - 1) / stride - first_tile);
    const std::int64_t visible_tiles = shape.last_position(qb1 - 1) / stride + 1;
    const std::int64_t k_blocks = shape.k_blocks();

    // [tiles][tile_width]: each query tile's queries concatenated in reverse order, so that
    // a plain dot product with a key tile sums the antidiagonal.
    thread_local std::vector<float> query_tiles, scores;
    query_tiles.assign(std::size_t(tiles * tile_width), 0.0f);
    for (std::int64_t t = 0; t < tiles; ++t)
      for (int k = 0; k < stride; ++k) {
        const std::int64_t query = (first_tile + t) * stride + stride - 1 - k;
        if (query < s.n_q)
          std::memcpy(query_tiles.data() + t * tile_width + std::int64_t(k) * dim, in.q_row(head, query),
                      sizeof(float) * dim);
      }
    // [tiles][visible_tiles] antidiagonal scores (up to the group's last tile), then each
    // tile row's probabilities over the key tiles it sees.
    scores.resize(std::size_t(tiles * visible_tiles));
    estimate::scores_packed(query_tiles.data(), tile_width, tiles, key_tiles, 0, visible_tiles, scores.data(),
                            visible_tiles, s.softmax_scale() / float(stride));
    std::vector<float> block_mass(k_blocks);
    std::vector<std::int32_t> order;
    for (std::int64_t qb = qb0; qb < qb1; ++qb) {
      std::fill(block_mass.begin(), block_mass.end(), 0.0f);
      const std::int64_t t_end = std::min(tiles, (qb - qb0 + 1) * tiles_per_block);
      for (std::int64_t t = (qb - qb0) * tiles_per_block; t < t_end; ++t) {
        float* row = scores.data() + t * visible_tiles;
        const std::int64_t last_query = std::min(s.n_q - 1, (first_tile + t) * stride + stride - 1);
        const std::int64_t last_visible = s.position(last_query) / stride;
        std::fill(row + last_visible + 1, row + visible_tiles, -std::numeric_limits<float>::infinity());
        estimate::softmax(row, visible_tiles);
        for (std::int64_t j = 0; j <= last_visible; ++j) block_mass[j / tiles_per_block] += row[j];
      }

      // Forced blocks: 0 and the diagonal ones; the rest by descending mass up to tau.
      double total = 0.0, kept = 0.0;
      for (float m : block_mass) total += m;
      const std::int64_t diag_first = shape.first_position(qb) / block, diag_last = shape.last_position(qb) / block;
      std::vector<std::int32_t>& chosen = selected[qb];
      chosen.assign(1, 0);
      kept += block_mass[0];
      for (std::int64_t kb = std::max<std::int64_t>(diag_first, 1); kb <= diag_last; ++kb) kept += block_mass[kb];
      for (std::int64_t kb = diag_first; kb <= diag_last; ++kb) block_mass[kb] = -1.0f;
      block_mass[0] = -1.0f;
      estimate::order_descending(block_mass, order);
      const double required = config_.tau * total;
      for (std::int32_t kb : order) {
        if (kept >= required || block_mass[kb] < 0.0f) break;
        chosen.push_back(kb);
        kept += block_mass[kb];
      }
    }
  }

  XAttentionConfig config_;
};

MethodInfo xattention_info() {
  MethodInfo info;
  info.name = "xattention";
  info.phase = "prefill";
  info.paper = "XAttention (Xu et al., ICML 2025), §2.1-2.2";
  info.summary = "antidiagonal sums in stride x stride tiles score 128x128 blocks; keep blocks up to mass tau per row";
  using K = ParamSpec::Kind;
  info.params = {
      {"stride", "8", "antidiagonal tile size S (must divide block)", K::Int, 1, 128, {}},
      {"block", "128", "query and key block size (tokens)", K::Int, 16, 1024, {}},
      {"tau", "0.9", "cumulative block mass kept per query block row (official 'threshold')", K::Float, 0.0, 1.0, {}},
  };
  info.make_prefill = [](const Params& p) {
    XAttentionConfig config;
    config.stride = int(p.get_int("stride"));
    config.block = int(p.get_int("block"));
    config.tau = p.get_float("tau");
    return std::make_unique<XAttention>(config);
  };
  return info;
}

LS_REGISTER_METHOD(xattention_info());

}  // namespace
}  // namespace ls
