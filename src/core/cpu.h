// What this CPU can run, read once from CPUID and XGETBV (the OS must have enabled the
// AVX / AVX-512 register state, and for AMX granted the tile state), and the instruction
// sets our own dispatched kernels are built for.
//
// The int8 matmul kernels are compiled once per `Isa` and pick the best one this CPU runs (the
// Highway kernels dispatch the same way over Highway's targets: core/simd.h), so one binary
// built on any x86-64 machine runs the best path on each. LONGSPARSE_ISA=<name> in the
// environment (or force_isa) selects a lower one for both, for tests and comparisons; naming
// one the CPU cannot run is an error.
#pragma once

#include <string>
#include <string_view>

namespace ls {

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;  // with OS support for the AVX state
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;  // with OS AVX-512 state
  bool avx512vnni = false, avx512bf16 = false;
  bool avxvnni = false;  // the VEX (256-bit) form of vpdpbusd
  bool amx_tile = false, amx_int8 = false, amx_bf16 = false;  // advertised by the CPU
};

const CpuFeatures& cpu_features();
std::string cpu_name();  // the brand string, e.g. "AMD EPYC" ("unknown x86-64" when absent)

// Instruction sets of the dispatched kernels, lowest first.
enum class Isa {
  Generic,     // portable C++ (any CPU; also the kernels' reference)
  Avx2,        // AVX2 + FMA + F16C (Haswell and later, every Zen)
  AvxVnni,     // AVX2 with AVX-VNNI (Alder Lake and later)
  Avx512Vnni,  // AVX-512 F/BW/VL with VNNI (Ice Lake, Sapphire Rapids, Zen 4 and 5)
};

const char* isa_name(Isa isa);                  // "generic", "avx2", "avx-vnni", "avx512-vnni"
bool isa_from_name(std::string_view name, Isa* out);
bool cpu_runs(Isa isa);                         // whether this CPU (and OS) can run it
Isa best_isa();                                 // the highest this CPU runs
// The ISA the dispatched kernels use: best_isa(), or LONGSPARSE_ISA, or force_isa's.
Isa active_isa();
// Forces the kernels' ISA (for tests and benchmarks), and limits the Highway kernels to it
// (limit_simd_targets); an ISA the CPU cannot run is an error. Returns the previous one.
Isa force_isa(Isa isa);

}  // namespace ls
