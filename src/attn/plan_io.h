// Plans on disk: the CSR form of a Plan (plan.h) as a NumPy .npz archive, which
// `longsparse bench attention --save-plan` writes and the Python package's Plan.load reads.
// The members are described in docs/capture.md ("Plans on disk").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "attn/plan.h"

namespace ls {

inline constexpr const char* kPlanFileFormat = "longsparse-plan";
inline constexpr int kPlanFileVersion = 1;

// What a plan file records beside the plan itself.
struct PlanFileInfo {
  std::string spec;         // the method spec that built it ("" for a user's own plan)
  int layer = -1;           // the model layer it was built for, or -1
  std::int64_t window = 0;  // the attention window the density counts within (0: none)
};

// The plan's ranges as [begin, end) pairs, row-major [ranges][2]: the file's `ranges` member.
std::vector<std::int32_t> flat_ranges(const Plan& plan);

// Validates the plan and writes it. Throws ls::Error on an invalid plan or an I/O failure.
void save_plan(const Plan& plan, const std::string& path, const PlanFileInfo& info = {});

}  // namespace ls
