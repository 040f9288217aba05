#include "attn/plan.h"

#include <algorithm>

#include "core/error.h"
#include "core/parallel.h"

namespace ls {

std::int64_t Plan::last_position(std::int64_t q_block) const {
  return n_k - n_q + std::min(n_q, (q_block + 1) * block_q) - 1;
}

bool Plan::selects(int head, std::int64_t query, std::int64_t key) const {
  std::int64_t r = row(head, query / block_q);
  std::int64_t key_block = key / block_k;
  for (const BlockRange& range : row_ranges(r))
    if (key_block >= range.begin && key_block < range.end) return true;
  auto cols = row_columns(r);
  return std::binary_search(cols.begin(), cols.end(), std::int32_t(key));
}

std::size_t Plan::bytes() const {
  return range_offsets.size() * sizeof(std::int64_t) + ranges.size() * sizeof(BlockRange) +
         column_offsets.size() * sizeof(std::int64_t) + columns.size() * sizeof(std::int32_t);
}

PlanBuilder::PlanBuilder(int heads, int row_heads, std::int64_t n_q, std::int64_t n_k, int block_q,
                         int block_k) {
  LS_CHECK(heads > 0 && row_heads > 0 && heads % row_heads == 0,
           "plan: row_heads ({}) must divide heads ({})", row_heads, heads);
  LS_CHECK(n_q > 0 && n_q <= n_k, "plan: need 0 < n_q <= n_k (n_q={}, n_k={})", n_q, n_k);
  LS_CHECK(block_q > 0 && block_k > 0, "plan: block sizes must be positive ({}x{})", block_q, block_k);
  LS_CHECK(n_k < (std::int64_t(1) << 31), "plan: n_k={} exceeds the 2^31 key limit", n_k);
  plan_.heads = heads;
  plan_.row_heads = row_heads;
  plan_.n_q = n_q;
  plan_.n_k = n_k;
  plan_.block_q = block_q;
  plan_.block_k = block_k;
  rows_.resize(plan_.rows());
}

void PlanBuilder::add_blocks(std::int64_t row, std::int64_t begin, std::int64_t end) {
  begin = std::max<std::int64_t>(begin, 0);
  end = std::min<std::int64_t>(end, plan_.k_blocks());
  if (begin >= end) return;
  rows_[row].ranges.push_back({std::int32_t(begin), std::int32_t(end)});
}

void PlanBuilder::add_keys(std::int64_t row, std::int64_t first, std::int64_t last) {
  first = std::max<std::int64_t>(first, 0);
  last = std::min<std::int64_t>(last, plan_.n_k - 1);
  if (first > last) return;
  add_blocks(row, first / plan_.block_k, last / plan_.block_k + 1);
}

void PlanBuilder::add_column(std::int64_t row, std::int64_t key) {
  if (key < 0 || key >= plan_.n_k) return;
  rows_[row].columns.push_back(std::int32_t(key));
}

void PlanBuilder::add_diagonal(std::int64_t row) {
  std::int64_t qb = q_block_of_row(row);
  add_keys(row, plan_.first_position(qb), plan_.last_position(qb));
}

void PlanBuilder::add_sink(std::int64_t row, std::int64_t tokens) {
  tokens = std::min(tokens, plan_.n_k);
  for (std::int64_t key = 0; key < tokens; ++key) add_column(row, key);
}

void PlanBuilder::add_window(std::int64_t row, std::int64_t window) {
  if (window <= 0) return;
  std::int64_t qb = q_block_of_row(row);
  add_keys(row, plan_.first_position(qb) - window + 1, plan_.last_position(qb));
}

void PlanBuilder::add_diagonal_offset(std::int64_t row, std::int64_t offset) {
  std::int64_t qb = q_block_of_row(row);
  add_keys(row, plan_.first_position(qb) - offset, plan_.last_position(qb) - offset);
}

void PlanBuilder::add_dense(std::int64_t row) {
  add_keys(row, 0, plan_.last_position(q_block_of_row(row)));
}

void PlanBuilder::normalise_row(std::int64_t r) {
  Row& row = rows_[r];
  const std::int64_t last_key = plan_.last_position(q_block_of_row(r));
  const std::int64_t last_block = last_key / plan_.block_k;
  // Ranges: sorted by start (methods mostly add in order, so check first), clipped to the
  // row's causal blocks, overlapping or touching ones merged, in place.
  auto& ranges = row.ranges;
  const auto by_begin = [](const BlockRange& a, const BlockRange& b) { return a.begin < b.begin; };
  if (!std::is_sorted(ranges.begin(), ranges.end(), by_begin)) std::sort(ranges.begin(), ranges.end(), by_begin);
  std::size_t merged = 0;
  for (BlockRange range : ranges) {
    range.end = std::int32_t(std::min<std::int64_t>(range.end, last_block + 1));
    if (range.begin >= range.end) continue;
    if (merged > 0 && range.begin <= ranges[merged - 1].end)
      ranges[merged - 1].end = std::max(ranges[merged - 1].end, range.end);
    else
      ranges[merged++] = range;
  }
  ranges.resize(merged);
  // Columns: sorted, distinct, causal, and not inside a range, in place.
  auto& cols = row.columns;
  if (!std::is_sorted(cols.begin(), cols.end())) std::sort(cols.begin(), cols.end());
  cols.erase(std::unique(cols.begin(), cols.end()), cols.end());
  std::size_t kept = 0, range_index = 0;
  for (std::int32_t key : cols) {
    if (key > last_key) break;
    const std::int32_t block = key / plan_.block_k;
    while (range_index < ranges.size() && ranges[range_index].end <= block) ++range_index;
    if (range_index < ranges.size() && ranges[range_index].begin <= block) continue;
    cols[kept++] = key;
  }
  cols.resize(kept);
}

Plan PlanBuilder::finish() {
  const std::int64_t n = rows();
  // Rows are independent: normalised in parallel, then laid end to end in row order (the
  // plan does not depend on the thread count).
  parallel_for(n, [&](std::int64_t r) { normalise_row(r); }, 16);
  Plan plan = plan_;
  plan.range_offsets.assign(std::size_t(n + 1), 0);
  plan.column_offsets.assign(std::size_t(n + 1), 0);
  for (std::int64_t r = 0; r < n; ++r) {
    plan.range_offsets[r + 1] = plan.range_offsets[r] + std::int64_t(rows_[r].ranges.size());
    plan.column_offsets[r + 1] = plan.column_offsets[r] + std::int64_t(rows_[r].columns.size());
  }
  plan.ranges.resize(std::size_t(plan.range_offsets[n]));
  plan.columns.resize(std::size_t(plan.column_offsets[n]));
  parallel_for(n, [&](std::int64_t r) {
    Row& row = rows_[r];
    std::copy(row.ranges.begin(), row.ranges.end(), plan.ranges.begin() + plan.range_offsets[r]);
    std::copy(row.columns.begin(), row.columns.end(), plan.columns.begin() + plan.column_offsets[r]);
    row = Row{};
  }, 16);
  return plan;
}

Plan make_dense_plan(int heads, int row_heads, std::int64_t n_q, std::int64_t n_k, int block_q,
                     int block_k) {
  PlanBuilder builder(heads, row_heads, n_q, n_k, block_q, block_k);
  for (std::int64_t r = 0; r < builder.rows(); ++r) builder.add_dense(r);
  return builder.finish();
}

void validate(const Plan& plan) {
  LS_CHECK(plan.heads > 0 && plan.row_heads > 0 && plan.heads % plan.row_heads == 0,
           "invalid plan: row_heads {} must divide heads {}", plan.row_heads, plan.heads);
  LS_CHECK(plan.n_q > 0 && plan.n_q <= plan.n_k, "invalid plan: need 0 < n_q <= n_k (n_q={}, n_k={})",
           plan.n_q, plan.n_k);
  LS_CHECK(plan.block_q > 0 && plan.block_k > 0, "invalid plan: block sizes {}x{}", plan.block_q,
           plan.block_k);
  const std::int64_t rows = plan.rows();
  LS_CHECK(std::int64_t(plan.range_offsets.size()) == rows + 1 &&
               std::int64_t(plan.column_offsets.size()) == rows + 1,
           "invalid plan: offsets must have rows + 1 = {} entries (ranges {}, columns {})", rows + 1,
           plan.range_offsets.size(), plan.column_offsets.size());
  LS_CHECK(plan.range_offsets[0] == 0 && plan.column_offsets[0] == 0, "invalid plan: offsets must start at 0");
  LS_CHECK(plan.range_offsets[rows] == std::int64_t(plan.ranges.size()) &&
               plan.column_offsets[rows] == std::int64_t(plan.columns.size()),
           "invalid plan: last offsets must equal the index array sizes");
  const std::int64_t k_blocks = plan.k_blocks();
  for (std::int64_t r = 0; r < rows; ++r) {
    LS_CHECK(plan.range_offsets[r] <= plan.range_offsets[r + 1] &&
                 plan.column_offsets[r] <= plan.column_offsets[r + 1],
             "invalid plan: offsets decrease at row {}", r);
    auto ranges = plan.row_ranges(r);
    for (std::size_t i = 0; i < ranges.size(); ++i) {
      const BlockRange& range = ranges[i];
      LS_CHECK(range.begin >= 0 && range.end <= k_blocks && range.begin < range.end,
               "invalid plan: row {} has key-block range [{}, {}) out of range (key blocks: {})", r,
               range.begin, range.end, k_blocks);
      if (i > 0) {
        LS_CHECK(ranges[i - 1].begin < range.begin, "invalid plan: row {} has unsorted ranges", r);
        LS_CHECK(ranges[i - 1].end <= range.begin,
                 "invalid plan: row {} has overlapping ranges [{}, {}) and [{}, {})", r, ranges[i - 1].begin,
                 ranges[i - 1].end, range.begin, range.end);
      }
    }
    auto cols = plan.row_columns(r);
    std::size_t range_index = 0;
    for (std::size_t i = 0; i < cols.size(); ++i) {
      LS_CHECK(cols[i] >= 0 && cols[i] < plan.n_k, "invalid plan: row {} has column {} out of range [0, {})",
               r, cols[i], plan.n_k);
      LS_CHECK(i == 0 || cols[i - 1] < cols[i], "invalid plan: row {} has unsorted or repeated columns", r);
      std::int32_t block = cols[i] / plan.block_k;
      while (range_index < ranges.size() && ranges[range_index].end <= block) ++range_index;
      LS_CHECK(range_index >= ranges.size() || ranges[range_index].begin > block,
               "invalid plan: row {} has column {} inside a block range", r, cols[i]);
    }
    std::int64_t qb = r % plan.q_blocks();
    std::int64_t first_block = plan.first_position(qb) / plan.block_k;
    std::int64_t last_block = plan.last_position(qb) / plan.block_k;
    for (std::int64_t block = first_block; block <= last_block; ++block) {
      bool covered = std::any_of(ranges.begin(), ranges.end(),
                                 [&](const BlockRange& rg) { return rg.begin <= block && block < rg.end; });
      LS_CHECK(covered, "invalid plan: row {} (query block {}) lacks its diagonal key block {}", r, qb, block);
    }
  }
}

namespace {
// Σ over query positions p in [p0, p1] of |[max(a, lo(p)), min(b, p + 1))| where lo(p) is the
// first visible key. Computed per query; rows are at most block_q queries.
double pairs_in_keys(std::int64_t p0, std::int64_t p1, std::int64_t a, std::int64_t b, std::int64_t window) {
  double total = 0.0;
  for (std::int64_t p = p0; p <= p1; ++p) {
    std::int64_t lo = window > 0 && p >= window ? p - window + 1 : 0;
    std::int64_t count = std::min(b, p + 1) - std::max(a, lo);
    if (count > 0) total += double(count);
  }
  return total;
}
}  // namespace

double density(const Plan& plan, std::int64_t window) {
  double computed = 0.0, all = 0.0;
  const std::int64_t q_blocks = plan.q_blocks();
  const int heads_per_row = plan.heads / plan.row_heads;
  for (std::int64_t r = 0; r < plan.rows(); ++r) {
    std::int64_t qb = r % q_blocks;
    std::int64_t p0 = plan.first_position(qb), p1 = plan.last_position(qb);
    double row_pairs = 0.0;
    for (const BlockRange& range : plan.row_ranges(r))
      row_pairs += pairs_in_keys(p0, p1, std::int64_t(range.begin) * plan.block_k,
                                 std::min<std::int64_t>(std::int64_t(range.end) * plan.block_k, plan.n_k), window);
    for (std::int32_t key : plan.row_columns(r)) {
      // Queries at positions p >= key (and within the window) see this column.
      std::int64_t first_p = std::max<std::int64_t>(p0, key);
      std::int64_t last_p = window > 0 ? std::min<std::int64_t>(p1, key + window - 1) : p1;
      if (last_p >= first_p) row_pairs += double(last_p - first_p + 1);
    }
    computed += row_pairs * heads_per_row;
    all += pairs_in_keys(p0, p1, 0, plan.n_k, window) * heads_per_row;
  }
  return all > 0 ? computed / all : 0.0;
}

std::string describe(const Plan& plan) {
  return fmt::format("heads={} row_heads={} n_q={} n_k={} blocks={}x{} rows={} ranges={} columns={} density={:.4f}",
                     plan.heads, plan.row_heads, plan.n_q, plan.n_k, plan.block_q, plan.block_k, plan.rows(),
                     plan.ranges.size(), plan.columns.size(), density(plan));
}

}  // namespace ls
