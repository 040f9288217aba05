#include "attn/plan_io.h"

#include "core/npz.h"

namespace ls {

std::vector<std::int32_t> flat_ranges(const Plan& plan) {
  std::vector<std::int32_t> flat;
  flat.reserve(plan.ranges.size() * 2);
  for (const BlockRange& r : plan.ranges) flat.push_back(r.begin), flat.push_back(r.end);
  return flat;
}

void save_plan(const Plan& plan, const std::string& path, const PlanFileInfo& info) {
  validate(plan);
  NpzWriter npz;
  npz.add_string("format", kPlanFileFormat);
  npz.add_scalar("version", std::int64_t(kPlanFileVersion));
  npz.add_string("spec", info.spec);
  npz.add_scalar("layer", std::int64_t(info.layer));
  npz.add_scalar("heads", std::int64_t(plan.heads));
  npz.add_scalar("row_heads", std::int64_t(plan.row_heads));
  npz.add_scalar("n_q", plan.n_q);
  npz.add_scalar("n_k", plan.n_k);
  npz.add_scalar("block_q", std::int64_t(plan.block_q));
  npz.add_scalar("block_k", std::int64_t(plan.block_k));
  npz.add_scalar("window", info.window);
  npz.add_scalar("density", density(plan, info.window));
  npz.add("range_offsets", plan.range_offsets);
  npz.add("ranges", flat_ranges(plan), {std::int64_t(plan.ranges.size()), 2});
  npz.add("column_offsets", plan.column_offsets);
  npz.add("columns", plan.columns);
  npz.write(path);
}

}  // namespace ls
