#include "core/simd.h"

#include <hwy/targets.h>

#include "core/error.h"

namespace ls {

namespace {

// hwy::SupportedTargets(), without its side effect: Highway 1.0.3's also sets the dispatch
// choice to every target the CPU has, ignoring DisableTargets (limit_simd_targets), so the
// choice is made again from the targets it returns.
std::int64_t supported_targets() {
  const std::int64_t targets = hwy::SupportedTargets();
  hwy::GetChosenTarget().Update(targets);
  return targets;
}

}  // namespace

std::vector<std::int64_t> simd_targets() {
  std::vector<std::int64_t> targets;
  for (std::int64_t left = supported_targets() & HWY_TARGETS; left != 0; left &= left - 1)
    targets.push_back(left & -left);  // best (lowest bit) first
  // With every compiled target limited away, the kernels fall back to the static target.
  if (targets.empty()) targets.push_back(HWY_STATIC_TARGET);
  return targets;
}

const char* simd_target_name(std::int64_t target) { return hwy::TargetName(target); }

void limit_simd_targets(Isa isa) {
  // The best ISA leaves every target (a CPU with AVX-512 but no VNNI still runs AVX3).
  std::int64_t disabled = 0;
  if (isa != best_isa() && isa < Isa::Avx512Vnni) disabled |= HWY_AVX3 | HWY_AVX3_DL;
  if (isa != best_isa() && isa < Isa::Avx2) disabled |= HWY_AVX2;
  // Highway then returns the best remaining target, or its baseline when none remains.
  hwy::DisableTargets(disabled);
}

void force_simd_target(std::int64_t target) {
  hwy::SetSupportedTargetsForTest(0);  // SupportedTargets() is the CPU's again
  if (target == 0) return;
  LS_CHECK(target == HWY_STATIC_TARGET ||
               ((target & (target - 1)) == 0 && (target & HWY_TARGETS & supported_targets()) != 0),
           "SIMD target {} ({}) is not compiled in or not run by this CPU", simd_target_name(target), target);
  hwy::SetSupportedTargetsForTest(target);
}

}  // namespace ls
