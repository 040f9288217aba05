// Runs a test body on every Highway target this CPU runs (core/simd.h), so that the AVX2 and
// SSE4 paths of the SIMD kernels are checked on an AVX-512 machine too.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "core/simd.h"

namespace ls::testing {

// fn() once per target, the kernels forced to it and the target named in failure messages;
// the normal choice is restored afterwards, also when fn fails or throws.
template <typename Fn>
void for_each_simd_target(Fn&& fn) {
  struct Restore {
    ~Restore() { force_simd_target(0); }
  } restore;
  for (std::int64_t target : simd_targets()) {
    force_simd_target(target);
    SCOPED_TRACE(std::string("SIMD target ") + simd_target_name(target));
    fn();
  }
}

}  // namespace ls::testing
