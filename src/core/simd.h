// Highway targets of the SIMD kernels: the flash attention tile (attn/flash_tile.cc), decode
// attention and the KV element conversions (kv/decode_attention.cc, kv/kv_type.cc), the
// forward-pass ops (model/ops.cc) and dequantization (model/quant_simd.cc). Each is compiled
// once per target the build names (CMakeLists.txt: SSE4, AVX2 and AVX3 in the portable build;
// only the build machine's with LONGSPARSE_NATIVE) and picks the best one this CPU runs at its
// first call (Highway's dynamic dispatch, one exported entry per kernel).
//
// The target follows the project's ISA (core/cpu.h): LONGSPARSE_ISA or force_isa of an ISA
// below the CPU's best limits the kernels to AVX2 (avx2, avx-vnni) or to the baseline, SSE4
// (generic). A native build has one target, which the limit cannot lower.
#pragma once

#include <cstdint>
#include <vector>

#include "core/cpu.h"

namespace ls {

// Targets compiled in that this CPU runs, best first, as Highway's HWY_* bits.
std::vector<std::int64_t> simd_targets();
const char* simd_target_name(std::int64_t target);  // "AVX3", "AVX2", "SSE4", ...

// Kernels run targets no better than `isa` allows from their next call on (force_isa and
// LONGSPARSE_ISA call this); best_isa() allows every target.
void limit_simd_targets(Isa isa);

// For tests: the kernels run `target` (one of simd_targets()) from their next call on; 0
// returns to the normal choice.
void force_simd_target(std::int64_t target);

}  // namespace ls
