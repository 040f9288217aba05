// MInference-style offline pattern search and per-head recall on sampled rows (see pattern_search.h).
#include "methods/pattern_search.h"

#include <algorithm>
#include <memory>

#include "core/error.h"
#include "core/parallel.h"
#include "methods/estimate_util.h"
#include "methods/registry.h"

namespace ls {

namespace {

// Probability mass of one softmax row (probs over keys [first, p]) inside a plan row.
double row_mass(const Plan& plan, std::int64_t r, std::int64_t first, std::int64_t p,
                const std::vector<double>& probs) {
  double mass = 0.0;
  for (const BlockRange& range : plan.row_ranges(r)) {
    const std::int64_t a = std::max<std::int64_t>(first, std::int64_t(range.begin) * plan.block_k);
    const std::int64_t b = std::min<std::int64_t>(p, std::int64_t(range.end) * plan.block_k - 1);
    for (std::int64_t key = a; key <= b; ++key) mass += probs[key];
  }
  for (std::int32_t key : plan.row_columns(r))
    if (key >= first && key <= p) mass += probs[key];
  return mass;
}

std::string mapped_spec(const std::string& spec) {
  const std::string name = parse_method_spec(spec).name;
  std::string mapped = spec;
  if (name == "streaming") mapped = "vertical-slash:v=100,s=800";
  if (name == "block-sparse") mapped = "vertical-slash:v=1000,s=6096";
  return MethodRegistry::instance().make_prefill(mapped)->spec();
}

}  // namespace

std::vector<std::string> default_pattern_candidates() {
  return {"streaming:sink=100,window=800",  "vertical-slash:v=30,s=800",  "vertical-slash:v=100,s=750",
          "vertical-slash:v=500,s=700",     "vertical-slash:v=3500,s=100", "block-sparse:topk=100"};
}

std::vector<std::int64_t> sample_queries(const AttnShape& shape, std::int64_t min_position, std::int64_t count) {
  LS_CHECK(count > 0, "pattern search: need at least one sampled row (got {})", count);
  const std::int64_t start_position = std::min(min_position, shape.n_k / 3);
  const std::int64_t first = std::max<std::int64_t>(0, start_position - (shape.n_k - shape.n_q));
  const std::int64_t last = shape.n_q - 1;
  const std::int64_t available = last - first + 1;
  std::vector<std::int64_t> rows;
  if (available <= count) {
    for (std::int64_t i = first; i <= last; ++i) rows.push_back(i);
    return rows;
  }
  for (std::int64_t j = 0; j < count; ++j) rows.push_back(last - (j * (available - 1)) / (count - 1 > 0 ? count - 1 : 1));
  std::sort(rows.begin(), rows.end());
  rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
  return rows;
}

std::vector<std::vector<double>> plan_recall_rows(const AttnInput& in, const Plan& plan,
                                                  std::span<const std::int64_t> queries) {
  const AttnShape& s = in.shape;
  s.validate();
  LS_CHECK(plan.heads == s.heads && plan.n_q == s.n_q && plan.n_k == s.n_k,
           "recall: plan (heads {}, n_q {}, n_k {}) does not match the input (heads {}, n_q {}, n_k {})", plan.heads,
           plan.n_q, plan.n_k, s.heads, s.n_q, s.n_k);
  for (std::int64_t i : queries) LS_CHECK(i >= 0 && i < s.n_q, "recall: query {} out of range [0, {})", i, s.n_q);
  std::vector<std::vector<double>> recall(s.heads, std::vector<double>(queries.size(), 0.0));
  parallel_for(s.heads, [&](std::int64_t h) {
    std::vector<double> probs(s.n_k);
    for (std::size_t j = 0; j < queries.size(); ++j) {
      const std::int64_t i = queries[j], p = s.position(i), first = s.first_key(p);
      estimate::softmax_row(in, int(h), in.q_row(int(h), i), first, p, probs);
      recall[h][j] = row_mass(plan, plan.row(int(h), i / plan.block_q), first, p, probs);
    }
  });
  return recall;
}

std::vector<double> plan_recall(const AttnInput& in, const Plan& plan, std::span<const std::int64_t> queries) {
  std::vector<double> mean(in.shape.heads, 0.0);
  if (queries.empty()) return mean;
  auto rows = plan_recall_rows(in, plan, queries);
  for (int h = 0; h < in.shape.heads; ++h) {
    for (double r : rows[h]) mean[h] += r;
    mean[h] /= double(queries.size());
  }
  return mean;
}

std::vector<HeadPattern> search_patterns(const AttnInput& in, const PatternSearchOptions& options) {
  const AttnShape& s = in.shape;
  s.validate();
  LS_CHECK(!options.candidates.empty(), "pattern search: no candidate patterns given");
  const std::vector<std::int64_t> rows = sample_queries(s, options.min_position, options.sample_rows);
  std::vector<std::vector<double>> recall;  // [candidates][heads]
  std::vector<std::string> specs;           // canonical, every parameter spelled out
  std::vector<bool> eligible;               // plan is sparse at this length
  for (const std::string& spec : options.candidates) {
    std::unique_ptr<PrefillMethod> method = MethodRegistry::instance().make_prefill(spec);
    Plan plan = method->build_plan(in, PlanContext{});
    recall.push_back(plan_recall(in, plan, rows));
    specs.push_back(method->spec());
    eligible.push_back(density(plan) < 1.0);
  }
  // A candidate that is dense at this length (e.g. vertical-slash v=3500 on a 2k prompt) would
  // win every head trivially; it competes only when no candidate is sparse.
  if (std::none_of(eligible.begin(), eligible.end(), [](bool e) { return e; })) eligible.assign(eligible.size(), true);
  std::vector<HeadPattern> result(s.heads);
  for (int h = 0; h < s.heads; ++h) {
    HeadPattern& head = result[h];
    std::size_t best = recall.size();
    for (std::size_t c = 0; c < recall.size(); ++c) {
      head.candidate_recall.push_back(recall[c][h]);
      if (eligible[c] && (best == recall.size() || recall[c][h] > recall[best][h])) best = c;  // ties: earlier
    }
    head.recall = recall[best][h];
    head.spec = options.minference_mapping ? mapped_spec(specs[best]) : specs[best];
  }
  return result;
}

}  // namespace ls
