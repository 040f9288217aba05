#include "core/cpu.h"

#include <cpuid.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "core/error.h"
#include "core/simd.h"

namespace ls {

namespace {

std::uint64_t xgetbv0() {
  std::uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (std::uint64_t(edx) << 32) | eax;
}

CpuFeatures detect() {
  CpuFeatures f;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = c & (1u << 27);
  const bool has_fma = c & (1u << 12), has_f16c = c & (1u << 29), has_avx = c & (1u << 28);
  const std::uint64_t xcr0 = osxsave ? xgetbv0() : 0;
  const bool os_avx = (xcr0 & 0x6) == 0x6;       // SSE and AVX state
  const bool os_avx512 = (xcr0 & 0xE6) == 0xE6;  // plus opmask and the upper ZMM registers
  if (__get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid_count(7, 0, a, b, c, d);
  f.avx2 = has_avx && os_avx && (b & (1u << 5));
  f.fma = has_fma && os_avx;
  f.f16c = has_f16c && os_avx;
  f.avx512f = os_avx512 && (b & (1u << 16));
  f.avx512dq = os_avx512 && (b & (1u << 17));
  f.avx512bw = os_avx512 && (b & (1u << 30));
  f.avx512vl = os_avx512 && (b & (1u << 31));
  f.avx512vnni = os_avx512 && (c & (1u << 11));
  f.amx_bf16 = d & (1u << 22);
  f.amx_tile = d & (1u << 24);
  f.amx_int8 = d & (1u << 25);
  __cpuid_count(7, 1, a, b, c, d);
  f.avxvnni = os_avx && (a & (1u << 4));
  f.avx512bf16 = os_avx512 && (a & (1u << 5));
  return f;
}

constexpr const char* kNames[] = {"generic", "avx2", "avx-vnni", "avx512-vnni"};

Isa initial_isa() {
  const char* env = std::getenv("LONGSPARSE_ISA");
  if (!env || !*env) return best_isa();
  Isa isa;
  LS_CHECK(isa_from_name(env, &isa), "LONGSPARSE_ISA={} is not one of generic, avx2, avx-vnni, avx512-vnni", env);
  LS_CHECK(cpu_runs(isa), "LONGSPARSE_ISA={}: this CPU ({}) cannot run it; the best it runs is {}", env, cpu_name(),
           isa_name(best_isa()));
  return isa;
}

std::atomic<int>& forced() {
  static std::atomic<int> isa{-1};
  return isa;
}

// The Highway kernels follow LONGSPARSE_ISA from their first call, whichever kernel runs
// first; a bad value is reported by active_isa().
[[maybe_unused]] const bool simd_follows_env = [] {
  const char* env = std::getenv("LONGSPARSE_ISA");
  Isa isa;
  if (env && isa_from_name(env, &isa) && cpu_runs(isa)) limit_simd_targets(isa);
  return true;
}();

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

std::string cpu_name() {
  unsigned regs[12] = {};
  unsigned a, b, c, d;
  if (__get_cpuid(0x80000000u, &a, &b, &c, &d) && a >= 0x80000004u) {
    for (unsigned i = 0; i < 3; ++i) __get_cpuid(0x80000002u + i, &regs[4 * i], &regs[4 * i + 1], &regs[4 * i + 2], &regs[4 * i + 3]);
    char text[49] = {};
    std::memcpy(text, regs, 48);
    std::string name(text);
    const auto first = name.find_first_not_of(' '), last = name.find_last_not_of(' ');
    if (first != std::string::npos) return name.substr(first, last - first + 1);
  }
  return "unknown x86-64";
}

const char* isa_name(Isa isa) { return kNames[static_cast<int>(isa)]; }

bool isa_from_name(std::string_view name, Isa* out) {
  for (int i = 0; i < 4; ++i)
    if (name == kNames[i]) {
      *out = static_cast<Isa>(i);
      return true;
    }
  return false;
}

bool cpu_runs(Isa isa) {
  const CpuFeatures& f = cpu_features();
  const bool avx2 = f.avx2 && f.fma && f.f16c;
  switch (isa) {
    case Isa::Generic: return true;
    case Isa::Avx2: return avx2;
    case Isa::AvxVnni: return avx2 && f.avxvnni;
    case Isa::Avx512Vnni: return avx2 && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.avx512vnni;
  }
  return false;
}

Isa best_isa() {
  for (Isa isa : {Isa::Avx512Vnni, Isa::AvxVnni, Isa::Avx2})
    if (cpu_runs(isa)) return isa;
  return Isa::Generic;
}

Isa active_isa() {
  static const Isa initial = initial_isa();
  const int f = forced().load(std::memory_order_relaxed);
  return f < 0 ? initial : static_cast<Isa>(f);
}

Isa force_isa(Isa isa) {
  LS_CHECK(cpu_runs(isa), "this CPU ({}) cannot run {} kernels", cpu_name(), isa_name(isa));
  const Isa previous = active_isa();
  forced().store(static_cast<int>(isa), std::memory_order_relaxed);
  limit_simd_targets(isa);
  return previous;
}

}  // namespace ls
