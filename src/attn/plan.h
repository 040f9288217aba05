// The prefill Plan (docs/DESIGN.md §4): which keys each (query head, query block) attends to.
//
// For row r = (row head, query block) the plan holds, in CSR form,
//   - sorted, disjoint, non-adjacent ranges of key blocks [begin, end) computed densely, and
//   - sorted individual key indices outside those ranges (gathered "vertical" columns).
// Query block b covers queries [b*block_q, min(n_q, (b+1)*block_q)); key block j covers keys
// [j*block_k, (j+1)*block_k). Plans may over-select: the executor always applies causality
// (and the shape's sliding window), so a plan can never make a query see the future.
// A plan with row_heads == kv_heads is shared by the query heads of each GQA group.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace ls {

struct BlockRange {
  std::int32_t begin = 0;  // first key block
  std::int32_t end = 0;    // one past the last key block
  bool operator==(const BlockRange&) const = default;
};

struct Plan {
  int heads = 1;       // query heads H
  int row_heads = 1;   // heads that own rows: H (per query head) or G (one row per KV head)
  std::int64_t n_q = 0;
  std::int64_t n_k = 0;
  int block_q = 64;
  int block_k = 64;

  std::vector<std::int64_t> range_offsets{0};   // [rows + 1]
  std::vector<BlockRange> ranges;               // [range_offsets.back()]
  std::vector<std::int64_t> column_offsets{0};  // [rows + 1]
  std::vector<std::int32_t> columns;            // [column_offsets.back()]

  std::int64_t q_blocks() const { return (n_q + block_q - 1) / block_q; }
  std::int64_t k_blocks() const { return (n_k + block_k - 1) / block_k; }
  std::int64_t rows() const { return std::int64_t(row_heads) * q_blocks(); }
  // The row a query head reads for a query block.
  std::int64_t row(int head, std::int64_t q_block) const {
    return std::int64_t(head / (heads / row_heads)) * q_blocks() + q_block;
  }
  std::span<const BlockRange> row_ranges(std::int64_t r) const {
    return {ranges.data() + range_offsets[r], std::size_t(range_offsets[r + 1] - range_offsets[r])};
  }
  std::span<const std::int32_t> row_columns(std::int64_t r) const {
    return {columns.data() + column_offsets[r], std::size_t(column_offsets[r + 1] - column_offsets[r])};
  }
  // Position of the first and last query of a query block.
  std::int64_t first_position(std::int64_t q_block) const { return n_k - n_q + q_block * block_q; }
  std::int64_t last_position(std::int64_t q_block) const;
  // Whether the plan lets query `query` of `head` see `key` (plan membership only; the
  // executor adds causality and the window on top).
  bool selects(int head, std::int64_t query, std::int64_t key) const;
  // Bytes held by the index arrays.
  std::size_t bytes() const;
};

// Builds a normalised Plan. Rows may be filled in any order, and distinct rows from different
// threads at once; finish() sorts and merges ranges, drops blocks entirely in the future of
// the row's last query, and drops columns that are duplicated, in the future, or inside a
// range (rows in parallel; the result does not depend on the thread count).
class PlanBuilder {
 public:
  PlanBuilder(int heads, int row_heads, std::int64_t n_q, std::int64_t n_k, int block_q = 64,
              int block_k = 64);

  std::int64_t rows() const { return std::int64_t(rows_.size()); }
  std::int64_t q_blocks() const { return plan_.q_blocks(); }
  std::int64_t k_blocks() const { return plan_.k_blocks(); }
  const Plan& shape() const { return plan_; }  // sizes only; the index arrays are empty

  // Key blocks [begin, end), clipped to the valid range.
  void add_blocks(std::int64_t row, std::int64_t begin, std::int64_t end);
  // Every key block touching keys [first, last] (inclusive), clipped to [0, n_k).
  void add_keys(std::int64_t row, std::int64_t first, std::int64_t last);
  // One gathered key column.
  void add_column(std::int64_t row, std::int64_t key);
  // The key blocks holding the row's own query positions (always required).
  void add_diagonal(std::int64_t row);
  // The first `tokens` keys as columns (attention sinks).
  void add_sink(std::int64_t row, std::int64_t tokens);
  // The blocks covering the last `window` keys of every query of the row.
  void add_window(std::int64_t row, std::int64_t window);
  // The blocks covering the diagonal line at `offset` = query position - key position.
  void add_diagonal_offset(std::int64_t row, std::int64_t offset);
  // Every causal key block (dense row).
  void add_dense(std::int64_t row);

  std::int64_t q_block_of_row(std::int64_t row) const { return row % plan_.q_blocks(); }

  Plan finish();

 private:
  void normalise_row(std::int64_t r);  // finish()'s work on one row, in place
  struct Row {
    std::vector<BlockRange> ranges;
    std::vector<std::int32_t> columns;
  };
  Plan plan_;
  std::vector<Row> rows_;
};

// A plan of every causal block for every row: dense attention.
Plan make_dense_plan(int heads, int row_heads, std::int64_t n_q, std::int64_t n_k, int block_q = 64,
                     int block_k = 64);

// Throws ls::Error naming the first problem: sizes, offsets, ranges out of range / unsorted /
// overlapping, columns out of range / unsorted / inside a range, a row without its diagonal
// block (the block holding its last query's position).
void validate(const Plan& plan);

// Computed causal pairs / all causal pairs, over all query heads. With window > 0 both counts
// are restricted to the window.
double density(const Plan& plan, std::int64_t window = 0);

// One line for logs: "rows=..., ranges=..., columns=..., density=...".
std::string describe(const Plan& plan);

}  // namespace ls
