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
//     This is one small GEMM: query tile rows are their S queries concatenated (read in
//     place from Q), key tile rows their S keys concatenated in reverse order (packed once
//     per KV head).
//  2. Key tiles after the query tile are masked (tile-level causality); softmax over each
//     query tile's row; probabilities summed into block × block (128 × 128) cells.
//  3. Per query block row, block0=paper: block 0 and the diagonal block are always kept; the
//     other blocks follow in descending score while the mass kept so far is below tau × the
//     row's total. block0=official (default): what find_blocks_chunked (commit e379887,
//     xattn/src/utils.py) does on the first chunk of 16384 queries, where its torch.eye
//     assignment overwrites the forced column 0: only the diagonal counts as kept, the
//     other blocks (block 0 among them) are ranked together, the top one is always taken
//     and the cumulative sum lags one entry, so a row keeps about one block more than the
//     paper's rule; block 0 is kept in the end through the index padding. Rows past the
//     first chunk follow the paper's rule in both modes, as the official code does.
// Parameters: stride 8 (the paper uses 8 or 16; 8 for language models), block 128,
// tau 0.9 (the official `threshold`), block0 official.
// Selections equal the official xattn_estimate block for block on captured inputs:
// tests/methods/official_fixture_test.cc, docs/fidelity.md.
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
  bool official_block0 = true;  // block0=official (default) or paper
};

// xattn_estimate's default chunk_size: find_blocks_chunked runs once per chunk of queries.
constexpr std::int64_t kOfficialChunk = 16384;

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

    // Key tiles, packed once per KV head: row j holds keys jS + S − 1, ..., jS (each `dim`
    // floats; zeros past n_k). With the keys reversed inside a tile, a query tile is just
    // its S consecutive query rows, read in place, and a dot product of the two sums the
    // tile's antidiagonal.
    const std::int64_t key_tiles = (s.n_k + stride - 1) / stride;
    const std::int64_t tile_width = std::int64_t(stride) * dim;
    thread_local std::vector<estimate::PackedRows> packed_storage;
    std::vector<estimate::PackedRows>& packed_tiles = packed_storage;  // reused by the next call
    if (packed_tiles.size() < std::size_t(s.kv_heads)) packed_tiles.resize(s.kv_heads);
    for (int g = 0; g < s.kv_heads; ++g) packed_tiles[g].resize(key_tiles, tile_width);
    const std::int64_t panels = packed_tiles[0].panels();
    parallel_for(s.kv_heads * panels, [&](std::int64_t item) {
      const int g = int(item / panels);
      const std::int64_t p = item % panels, tile0 = p * estimate::PackedRows::kPanel;
      const std::int64_t count = std::min<std::int64_t>(estimate::PackedRows::kPanel, key_tiles - tile0);
      thread_local std::vector<float> rows;
      rows.assign(std::size_t(count * tile_width), 0.0f);
      for (std::int64_t t = 0; t < count; ++t)
        for (int m = 0; m < stride; ++m) {
          const std::int64_t key = (tile0 + t) * stride + stride - 1 - m;
          if (key < s.n_k) std::copy_n(in.k_row(g, key), dim, rows.data() + t * tile_width + std::int64_t(m) * dim);
        }
      packed_tiles[g].pack_panel(p, rows.data(), tile_width);
    });
    // Work items are (head, group of consecutive query blocks): the score GEMM then has
    // group · block / S query-tile rows, a multiple of the kernel's 12 rows and at least 48
    // when the sequence allows, so that each packed key panel serves several row tiles.
    const int tiles_per_block = config_.block / stride;
    const std::int64_t unit = 12 / std::gcd(12, tiles_per_block);
    const std::int64_t group =
        std::min<std::int64_t>(q_blocks, unit * std::max<std::int64_t>(1, (48 + unit * tiles_per_block - 1) /
                                                                                  (unit * tiles_per_block)));
    const std::int64_t groups = (q_blocks + group - 1) / group;
    // [heads * q_blocks] selected key blocks per row, filled in parallel, added in order.
    std::vector<std::vector<std::int32_t>> selected(std::size_t(s.heads * q_blocks));
    parallel_for(s.heads * groups, [&](std::int64_t item) {
      const int head = int(item / groups);
      const std::int64_t qb0 = (item % groups) * group, qb1 = std::min(q_blocks, qb0 + group);
      select_rows(in, head, qb0, qb1, packed_tiles[s.kv_head_of(head)], shape, selected.data() + head * q_blocks);
    });
    parallel_for(builder.rows(), [&](std::int64_t row) {  // each touches only its own row
      builder.add_diagonal(row);
      for (std::int32_t kb : selected[row]) builder.add_blocks(row, kb, kb + 1);
    }, 16);
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

    // [tiles][visible_tiles] antidiagonal scores (up to the group's last tile): query tile t
    // is the S query rows from (first_tile + t)·S on, contiguous in Q. A last tile that runs
    // past the queries is copied, zero-padded.
    thread_local std::vector<float> scores, last_tile;
    scores.resize(std::size_t(tiles * visible_tiles));
    const float scale = s.softmax_scale() / float(stride);
    const std::int64_t whole_tiles = std::min(tiles, s.n_q / stride - first_tile);
    estimate::scores_packed(in.q_row(head, first_tile * stride), tile_width, whole_tiles, key_tiles, 0, visible_tiles,
                            scores.data(), visible_tiles, scale);
    if (whole_tiles < tiles) {
      const std::int64_t first_query = (first_tile + whole_tiles) * stride;
      last_tile.assign(std::size_t(tile_width), 0.0f);
      std::copy_n(in.q_row(head, first_query), (s.n_q - first_query) * dim, last_tile.data());
      estimate::scores_packed(last_tile.data(), tile_width, 1, key_tiles, 0, visible_tiles,
                              scores.data() + whole_tiles * visible_tiles, visible_tiles, scale);
    }
    // Each tile row's probabilities over the key tiles it sees, summed into key blocks.
    std::vector<float> block_mass(k_blocks);
    std::vector<std::int32_t> order;
    for (std::int64_t qb = qb0; qb < qb1; ++qb) {
      std::fill(block_mass.begin(), block_mass.end(), 0.0f);
      const std::int64_t t_end = std::min(tiles, (qb - qb0 + 1) * tiles_per_block);
      for (std::int64_t t = (qb - qb0) * tiles_per_block; t < t_end; ++t) {
        float* row = scores.data() + t * visible_tiles;
        const std::int64_t last_query = std::min(s.n_q - 1, (first_tile + t) * stride + stride - 1);
        const std::int64_t seen = s.position(last_query) / stride + 1;  // key tiles this row sees
        estimate::softmax(row, seen);
        for (std::int64_t kb = 0, j = 0; j < seen; ++kb) {
          const std::int64_t j_end = std::min(seen, j + tiles_per_block);
          float mass = 0.0f;
          for (; j < j_end; ++j) mass += row[j];
          block_mass[kb] += mass;
        }
      }

      double total = 0.0, kept = 0.0;
      for (float m : block_mass) total += m;
      const double required = config_.tau * total;
      const std::int64_t diag_first = shape.first_position(qb) / block, diag_last = shape.last_position(qb) / block;
      std::vector<std::int32_t>& chosen = selected[qb];
      chosen.assign(1, 0);  // block 0 is kept in both modes (see below)
      for (std::int64_t kb = diag_first; kb <= diag_last; ++kb) {
        kept += block_mass[kb];
        block_mass[kb] = -1.0f;
      }
      if (config_.official_block0 && shape.first_position(qb) < kOfficialChunk) {
        // find_blocks_chunked on the first chunk: torch.eye over columns [0, chunk) overwrites
        // the forced column 0, so only the diagonal counts as kept; the other blocks, block 0
        // among them, are ranked together, and the cumulative sum lags one entry behind
        // (sorted_values = [0, kept, others...]): the top other block is always taken, the
        // j-th (j ≥ 2) while kept + the first j − 2 others < required. Unselected entries of
        // the index point at column 0, so block 0 ends up kept all the same.
        estimate::order_descending(block_mass, order);
        double lagged = kept;
        for (std::size_t j = 0; j < order.size() && block_mass[order[j]] >= 0.0f; ++j) {
          if (j >= 2) lagged += block_mass[order[j - 2]];
          if (j >= 1 && lagged >= required) break;
          chosen.push_back(order[j]);
        }
        continue;
      }
      // Paper §2.2 (and the official code on later chunks): block 0 and the diagonal are kept,
      // then the other blocks in descending mass while the kept mass is below tau × total.
      if (diag_first > 0) kept += block_mass[0];
      block_mass[0] = -1.0f;
      estimate::order_descending(block_mass, order);
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
      {"block0", "official", "row selection as the official find_blocks_chunked does it, or as the paper states it",
       K::String, 0, 0, {"official", "paper"}},
  };
  info.make_prefill = [](const Params& p) {
    XAttentionConfig config;
    config.stride = int(p.get_int("stride"));
    config.block = int(p.get_int("block"));
    config.tau = p.get_float("tau");
    config.official_block0 = p.get_string("block0") == "official";
    return std::make_unique<XAttention>(config);
  };
  return info;
}

LS_REGISTER_METHOD(xattention_info());

}  // namespace
}  // namespace ls
