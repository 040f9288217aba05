// The int8 matmul kernels, one set per instruction set (core/cpu.h), behind one table of
// function pointers that Matmul picks at run time. Internal to src/model: matmul.cc packs the
// weights and splits the work; each matmul_<isa>.cc is compiled for its ISA only and includes
// nothing but this header and the intrinsics, so no inline function compiled for a higher ISA
// can be shared with code that runs everywhere.
//
// Packed weights: tiles of 16 output rows × 32 columns (one quant block of each row), laid out
// so that 32-bit lane r of each 64-byte chunk belongs to row r (matmul.cc documents each tile).
// Activations: per row of x and block of 32 columns, int8 quants q = round(x / d) with
// d = max|x| / 127, the sum s of the block's quants, d·s, and the sums of each half block.
// Every kernel computes the same integer dot products and applies the scales in the same
// order with fused multiply-adds, so all ISAs give the same results to the bit.
#pragma once

#include <cstdint>

namespace ls::matmul_detail {

enum class Packing : std::uint8_t {
  Q4_1x16,  // 4-bit quants 0..15, fp16 scale d and min m per row (Q4_1; Q4_K sub-blocks)
  Q8_0x16,  // int8 quants + 128, fp16 scale d per row (Q8_0; exact for Q4_0 and Q5_0)
  Q6_Kx16,  // int8 quants + 128, two fp32 scales per row (one per 16 columns; Q6_K)
  U8x16,    // quants 0..31 as bytes, fp16 scale d and min m per row (Q5_1; Q5_K sub-blocks)
  Dense,    // not packed: fp32 rows for sgemm
};

constexpr std::int64_t kBlock = 32;      // columns per quant block
constexpr std::int64_t kGroupRows = 16;  // output rows per tile

constexpr std::int64_t tile_bytes(Packing p) {
  switch (p) {
    case Packing::Q4_1x16: return 320;  // 256 B nibbles, 16 fp16 d, 16 fp16 m
    case Packing::Q8_0x16: return 544;  // 512 B quants, 16 fp16 d
    case Packing::Q6_Kx16: return 640;  // 512 B quants, 16 + 16 fp32 scales
    case Packing::U8x16: return 576;    // 512 B quants, 16 fp16 d, 16 fp16 m
    case Packing::Dense: return 0;
  }
  return 0;
}

// Quantized activation rows (see the header comment), row t at q + t·cols etc.
struct Activations {
  const std::int8_t* q = nullptr;        // [m][cols]
  const float* d = nullptr;              // [m][blocks]
  const std::int32_t* s = nullptr;       // [m][blocks]
  const float* ds = nullptr;             // [m][blocks]: d · s
  const std::int32_t* half_s = nullptr;  // [m][2 · blocks]
};

struct GemmArgs {
  Packing packing = Packing::Q8_0x16;
  const std::uint8_t* tiles = nullptr;  // [groups][blocks] tiles
  std::int64_t rows = 0;                // output rows (the last group may be partial)
  std::int64_t blocks = 0;              // cols / 32
  Activations x;
  float* y = nullptr;  // [m][rows]
};

struct Int8Kernels {
  const char* name;
  // One activation row to int8: q [blocks·32], d, s, ds [blocks], half_s [2·blocks].
  void (*quantize)(const float* x, std::int64_t blocks, std::int8_t* q, float* d, std::int32_t* s, float* ds,
                   std::int32_t* half_s);
  // y rows [t_begin, t_end) × output rows of tile groups [g_begin, g_end).
  void (*gemm)(const GemmArgs& args, std::int64_t g_begin, std::int64_t g_end, std::int64_t t_begin,
               std::int64_t t_end);
};

const Int8Kernels& kernels_generic();
const Int8Kernels& kernels_avx2();
const Int8Kernels& kernels_avxvnni();
const Int8Kernels& kernels_avx512vnni();

}  // namespace ls::matmul_detail
