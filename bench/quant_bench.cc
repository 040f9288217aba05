// Dequantization throughput: the vector kernels (dequantize_row) against the scalar reference
// (dequantize_row_reference) on the same blocks, for each supported type. Compare the two
// rows of a type from the same run; the machine is shared, so absolute numbers are noisy.
#include <benchmark/benchmark.h>

#include <cstring>
#include <random>
#include <vector>

#include "core/half.h"
#include "model/quant.h"

namespace {

constexpr std::int64_t kElements = 576 * 64;  // 64 rows of SmolLM2's hidden size (L2-resident)

// Random quant bytes with a small finite fp16 in every 16-bit word (so every scale is sane).
std::vector<std::uint8_t> random_blocks(ls::GgmlType type) {
  const ls::GgmlTypeTraits* t = ls::ggml_type_traits(type);
  const std::int64_t elements = kElements / 256 * 256;
  std::vector<std::uint8_t> bytes(elements / t->block_elements * t->block_bytes);
  std::mt19937 rng(3);
  for (std::size_t i = 0; i + 1 < bytes.size(); i += 2) {
    const std::uint16_t h = ls::fp32_to_fp16(std::uniform_real_distribution<float>(-1, 1)(rng));
    std::memcpy(&bytes[i], &h, 2);
  }
  return bytes;
}

template <bool kReference>
void BM_Dequantize(benchmark::State& state) {
  const auto type = static_cast<ls::GgmlType>(state.range(0));
  const std::vector<std::uint8_t> src = random_blocks(type);
  const std::int64_t n = kElements / 256 * 256;
  std::vector<float> dst(n);
  for (auto _ : state) {
    if constexpr (kReference) {
      ls::dequantize_row_reference(type, src.data(), dst.data(), n);
    } else {
      ls::dequantize_row(type, src.data(), dst.data(), n);
    }
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * n);
  state.SetLabel(ls::ggml_type_name(type));
}

void Types(benchmark::internal::Benchmark* b) {
  for (auto type : {ls::GgmlType::F16, ls::GgmlType::BF16, ls::GgmlType::Q4_0, ls::GgmlType::Q4_1,
                    ls::GgmlType::Q5_0, ls::GgmlType::Q5_1, ls::GgmlType::Q8_0, ls::GgmlType::Q4_K,
                    ls::GgmlType::Q5_K, ls::GgmlType::Q6_K}) {
    b->Arg(static_cast<int>(type));
  }
}

BENCHMARK(BM_Dequantize<false>)->Name("dequantize/vector")->Apply(Types);
BENCHMARK(BM_Dequantize<true>)->Name("dequantize/reference")->Apply(Types);

}  // namespace
