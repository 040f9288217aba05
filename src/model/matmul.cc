// Quantized matmul: weight packing at load, the int8 route's work split and dispatch, the
// sgemm route (see matmul.h).
//
// Tiles of 16 output rows × 32 columns (one quant block of each row); 32-bit lane r of each
// 64-byte chunk belongs to row r:
//   Q4_1x16 (320 B): 4 × 64 B of nibbles, then 16 fp16 scales d, then 16 fp16 mins m. In the
//     i-th 64 bytes, lane r holds row r's elements 4i .. 4i+3 in the low nibbles and
//     16+4i .. 16+4i+3 in the high ones, so "& 15" and ">> 4" give two column groups of 4.
//   Q8_0x16 (544 B): 8 × 64 B, lane r of the k-th holding row r's quants 4k .. 4k+3 plus 128
//     (vpdpbusd multiplies unsigned by signed bytes), then 16 fp16 d.
//   Q6_Kx16 (640 B): the quants as in Q8_0x16 (Q6_K's q − 32 plus 128), then 16 fp32 scales of
//     columns 0..15 and 16 of columns 16..31 (d·sc of the Q6_K sub-blocks of 16, exact).
//   U8x16 (576 B): quants 0..31 as bytes in Q8_0x16's order (no offset), 16 fp16 d, 16 fp16 m.
// A block dot product with activations quantized as x ≈ dx·qx (per 32, Σqx = sx):
//   Q4_1, U8: Σ (dw·qw + m)·dx·qx = dw·dx·Σ qw·qx + m·dx·sx
//   Q8_0:     Σ dw·qw·dx·qx       = dw·dx·Σ qw·qx
//   Q6_K:     the same per half block of 16, with that half's scale.
// The file types map onto them: Q4_0 (d·(q − 8)) and Q5_0 (d·(q − 16)) are exact Q8_0 blocks;
// Q5_1 is exactly a U8 block; a Q4_K (Q5_K) sub-block of 32, d·sc·q − dmin·m, is a Q4_1 (U8)
// block with scale d·sc and min −dmin·m rounded to fp16 (2^-11 of each scale at most, far below
// the 4-bit steps; the sgemm route reads the file's exact values).
#include "model/matmul.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/cpu.h"
#include "core/error.h"
#include "core/half.h"
#include "core/parallel.h"
#include "model/quant.h"

namespace ls {

using matmul_detail::kBlock;
using matmul_detail::kGroupRows;
using matmul_detail::Packing;
using matmul_detail::tile_bytes;

namespace {

std::int64_t row_bytes(GgmlType type, std::int64_t cols) {
  if (type == GgmlType::F32) return cols * 4;
  const GgmlTypeTraits* traits = ggml_type_traits(type);
  LS_CHECK(traits && traits->supported && can_dequantize(type), "weights of ggml type {} are not supported by the matmul",
           ggml_type_name(type));
  LS_CHECK(cols % traits->block_elements == 0, "rows of {} elements do not split into {} blocks of {}", cols,
           ggml_type_name(type), traits->block_elements);
  return cols / traits->block_elements * traits->block_bytes;
}

// One row of a file-layout weight to fp32.
void dequantize_file_row(GgmlType type, const std::uint8_t* src, std::int64_t cols, float* dst) {
  if (type == GgmlType::F32) std::memcpy(dst, src, cols * sizeof(float));
  else dequantize_row(type, src, dst, cols);
}

Packing packing_of(GgmlType type) {
  switch (type) {
    case GgmlType::Q4_1:
    case GgmlType::Q4_K: return Packing::Q4_1x16;
    case GgmlType::Q4_0:
    case GgmlType::Q5_0:
    case GgmlType::Q8_0: return Packing::Q8_0x16;
    case GgmlType::Q6_K: return Packing::Q6_Kx16;
    case GgmlType::Q5_1:
    case GgmlType::Q5_K: return Packing::U8x16;
    default: return Packing::Dense;
  }
}

// Whether the tiles hold the file's values exactly (not so for the K-quants' fp16-rounded
// sub-block scales and mins).
bool exact_packing(GgmlType type) { return type != GgmlType::Q4_K && type != GgmlType::Q5_K; }

// One block of 32 columns of one row, as its tile stores it.
struct TileBlock {
  std::uint8_t q[kBlock];     // the tile's quant values in element order (Q4_1: 0..15)
  std::uint16_t d = 0, m = 0;  // fp16 scale and min (Q4_1, Q8_0, U8)
  float s0 = 0.0f, s1 = 0.0f;  // Q6_K: the scales of columns 0..15 and 16..31
};

template <typename B>
B read_block(const std::uint8_t* p) {
  B b;
  std::memcpy(&b, p, sizeof b);
  return b;
}

std::uint8_t offset_byte(int signed_q) { return static_cast<std::uint8_t>(signed_q + 128); }

// The 5-bit quants of a Q5_0 / Q5_1 block.
template <typename B>
void five_bit_quants(const B& b, int* q) {
  std::uint32_t qh;
  std::memcpy(&qh, b.qh, 4);
  for (int j = 0; j < 16; ++j) {
    q[j] = (b.qs[j] & 15) | int(((qh >> j) & 1) << 4);
    q[j + 16] = (b.qs[j] >> 4) | int(((qh >> (j + 16)) & 1) << 4);
  }
}

// Block `b` (of 32 columns) of a file row in its type.
TileBlock tile_block(GgmlType type, const std::uint8_t* row, std::int64_t b) {
  TileBlock t;
  int q[kBlock];
  switch (type) {
    case GgmlType::Q4_0: {
      const auto blk = read_block<BlockQ4_0>(row + b * sizeof(BlockQ4_0));
      t.d = blk.d;
      for (int j = 0; j < 16; ++j) {
        t.q[j] = offset_byte((blk.qs[j] & 15) - 8);
        t.q[j + 16] = offset_byte((blk.qs[j] >> 4) - 8);
      }
      break;
    }
    case GgmlType::Q4_1: {
      const auto blk = read_block<BlockQ4_1>(row + b * sizeof(BlockQ4_1));
      t.d = blk.d, t.m = blk.m;
      for (int j = 0; j < 16; ++j) t.q[j] = blk.qs[j] & 15, t.q[j + 16] = blk.qs[j] >> 4;
      break;
    }
    case GgmlType::Q5_0: {
      const auto blk = read_block<BlockQ5_0>(row + b * sizeof(BlockQ5_0));
      five_bit_quants(blk, q);
      t.d = blk.d;
      for (int j = 0; j < kBlock; ++j) t.q[j] = offset_byte(q[j] - 16);
      break;
    }
    case GgmlType::Q5_1: {
      const auto blk = read_block<BlockQ5_1>(row + b * sizeof(BlockQ5_1));
      five_bit_quants(blk, q);
      t.d = blk.d, t.m = blk.m;
      for (int j = 0; j < kBlock; ++j) t.q[j] = static_cast<std::uint8_t>(q[j]);
      break;
    }
    case GgmlType::Q8_0: {
      const auto blk = read_block<BlockQ8_0>(row + b * sizeof(BlockQ8_0));
      t.d = blk.d;
      for (int j = 0; j < kBlock; ++j) t.q[j] = offset_byte(blk.qs[j]);
      break;
    }
    case GgmlType::Q4_K:
    case GgmlType::Q5_K: {
      const bool five = type == GgmlType::Q5_K;
      const std::int64_t super_bytes = five ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K);
      const std::uint8_t* p = row + (b / 8) * super_bytes;
      const int sub = int(b % 8);
      // Both layouts start with d, dmin, scales[12]; Q5_K then has qh[32] before qs.
      const auto head = read_block<BlockQ4_K>(p);
      std::uint8_t sc, mn;
      kquant_scale_min(head.scales, sub, &sc, &mn);
      t.d = fp32_to_fp16(fp16_to_fp32(head.d) * float(sc));
      t.m = fp32_to_fp16(-fp16_to_fp32(head.dmin) * float(mn));
      const std::uint8_t* qs = p + 4 + 12 + (five ? 32 : 0) + (sub / 2) * 32;
      const std::uint8_t* qh = p + 4 + 12;
      const int shift = sub % 2 ? 4 : 0;
      for (int l = 0; l < kBlock; ++l) {
        int v = (qs[l] >> shift) & 15;
        if (five) v |= ((qh[l] >> sub) & 1) << 4;
        t.q[l] = static_cast<std::uint8_t>(v);
      }
      break;
    }
    case GgmlType::Q6_K: {
      const auto blk = read_block<BlockQ6_K>(row + (b / 8) * sizeof(BlockQ6_K));
      std::int8_t quants[kQKK];
      q6_k_quants(blk, quants);
      const int j = int(b % 8);
      for (int l = 0; l < kBlock; ++l) t.q[l] = offset_byte(quants[32 * j + l]);
      const float d = fp16_to_fp32(blk.d);
      t.s0 = d * float(blk.scales[2 * j]);
      t.s1 = d * float(blk.scales[2 * j + 1]);
      break;
    }
    default: fail("no int8 packing for ggml type {}", ggml_type_name(type));
  }
  return t;
}

void store_block(Packing p, const TileBlock& t, int lane, std::uint8_t* tile) {
  if (p == Packing::Q4_1x16) {
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 4; ++j)
        tile[64 * i + 4 * lane + j] = static_cast<std::uint8_t>(t.q[4 * i + j] | (t.q[16 + 4 * i + j] << 4));
    std::memcpy(tile + 256 + 2 * lane, &t.d, 2);
    std::memcpy(tile + 288 + 2 * lane, &t.m, 2);
    return;
  }
  for (int k = 0; k < 8; ++k) std::memcpy(tile + 64 * k + 4 * lane, t.q + 4 * k, 4);
  if (p == Packing::Q6_Kx16) {
    std::memcpy(tile + 512 + 4 * lane, &t.s0, 4);
    std::memcpy(tile + 576 + 4 * lane, &t.s1, 4);
  } else {
    std::memcpy(tile + 512 + 2 * lane, &t.d, 2);
    if (p == Packing::U8x16) std::memcpy(tile + 544 + 2 * lane, &t.m, 2);
  }
}

// Row `lane` of a tile group, blocks [0, blocks), to fp32: the values the tiles hold.
void unpack_row(Packing p, const std::uint8_t* tiles, std::int64_t blocks, int lane, float* dst) {
  const std::int64_t size = tile_bytes(p);
  for (std::int64_t b = 0; b < blocks; ++b, dst += kBlock) {
    const std::uint8_t* tile = tiles + b * size;
    auto half_at = [&](int offset) {
      std::uint16_t h;
      std::memcpy(&h, tile + offset, 2);
      return fp16_to_fp32(h);
    };
    for (int c = 0; c < kBlock; ++c) {
      switch (p) {
        case Packing::Q4_1x16: {
          const std::uint8_t byte = tile[64 * ((c % 16) / 4) + 4 * lane + c % 4];
          dst[c] = half_at(256 + 2 * lane) * float(c < 16 ? byte & 15 : byte >> 4) + half_at(288 + 2 * lane);
          break;
        }
        case Packing::Q8_0x16:
          dst[c] = half_at(512 + 2 * lane) * float(int(tile[64 * (c / 4) + 4 * lane + c % 4]) - 128);
          break;
        case Packing::Q6_Kx16: {
          float s;
          std::memcpy(&s, tile + (c < 16 ? 512 : 576) + 4 * lane, 4);
          dst[c] = s * float(int(tile[64 * (c / 4) + 4 * lane + c % 4]) - 128);
          break;
        }
        case Packing::U8x16:
          dst[c] = half_at(512 + 2 * lane) * float(tile[64 * (c / 4) + 4 * lane + c % 4]) + half_at(544 + 2 * lane);
          break;
        case Packing::Dense: break;
      }
    }
  }
}

const matmul_detail::Int8Kernels& int8_kernels() {
  switch (active_isa()) {
    case Isa::Avx512Vnni: return matmul_detail::kernels_avx512vnni();
    case Isa::AvxVnni: return matmul_detail::kernels_avxvnni();
    case Isa::Avx2: return matmul_detail::kernels_avx2();
    case Isa::Generic: break;
  }
  return matmul_detail::kernels_generic();
}

}  // namespace

WeightMatrix WeightMatrix::from_parts(std::span<const WeightPart> parts, const ReleaseFn& release) {
  LS_CHECK(!parts.empty(), "a weight matrix needs at least one part");
  WeightMatrix w;
  w.cols_ = parts[0].cols;
  for (const WeightPart& part : parts) {
    LS_CHECK(part.cols == w.cols_, "stacked weights differ in row length ({} vs {})", part.cols, w.cols_);
    LS_CHECK(part.rows > 0 && part.data, "empty weight part");
    row_bytes(part.type, part.cols);  // checks the type is known
    LS_CHECK(part.type == GgmlType::F32 || part.type == GgmlType::F16 || part.type == GgmlType::BF16 ||
                 part.cols % kBlock == 0,
             "quantized rows must be a multiple of {} elements, got {}", kBlock, part.cols);
    w.rows_ += part.rows;
  }
  // Parts of one packing share it (Q5_0 stacked with Q8_0, say); other mixes are dense fp32.
  w.type_ = parts[0].type;
  w.packing_ = packing_of(parts[0].type);
  for (const WeightPart& part : parts) {
    if (packing_of(part.type) != w.packing_) w.packing_ = Packing::Dense;
    if (part.type != w.type_) w.type_ = GgmlType::F32;  // mixed
  }
  w.parts_.assign(parts.begin(), parts.end());

  const std::int64_t blocks = w.cols_ / kBlock;
  if (w.packing_ != Packing::Dense) {
    const std::int64_t tile = tile_bytes(w.packing_);
    w.exact_tiles_ = std::all_of(parts.begin(), parts.end(), [](const WeightPart& p) { return exact_packing(p.type); });
    const std::int64_t groups = (w.rows_ + kGroupRows - 1) / kGroupRows;
    w.packed_.reset(groups * blocks * tile, /*zero=*/true);  // padding rows: zero scales
    // In slices of rows, releasing each slice's source once it is packed.
    constexpr std::int64_t kSliceRows = 4096;
    std::int64_t row0 = 0;
    for (const WeightPart& part : parts) {
      const std::int64_t part_row_bytes = row_bytes(part.type, part.cols);
      const auto* src = static_cast<const std::uint8_t*>(part.data);
      for (std::int64_t r0 = 0; r0 < part.rows; r0 += kSliceRows) {
        const std::int64_t n = std::min(kSliceRows, part.rows - r0);
        parallel_for(n, [&](std::int64_t i) {
          const std::int64_t out_row = row0 + r0 + i;
          const std::int64_t group = out_row / kGroupRows;
          const int lane = int(out_row % kGroupRows);
          const std::uint8_t* row = src + (r0 + i) * part_row_bytes;
          for (std::int64_t b = 0; b < blocks; ++b)
            store_block(w.packing_, tile_block(part.type, row, b), lane, w.packed_.data() + (group * blocks + b) * tile);
        }, 64);
        if (release && w.exact_tiles_) release(src + r0 * part_row_bytes, static_cast<std::size_t>(n * part_row_bytes));
      }
      row0 += part.rows;
    }
  } else {
    Buffer<float> dense(w.rows_ * w.cols_);
    w.dequantize_rows(0, w.rows_, dense.data());  // dense_ still empty: reads the parts
    w.dense_ = std::move(dense);
    if (release)
      for (const WeightPart& part : parts)
        release(part.data, static_cast<std::size_t>(part.rows * row_bytes(part.type, part.cols)));
  }
  if (w.exact_tiles_) w.parts_.clear();  // the matrix owns what it needs: the parts' memory may go
  return w;
}

std::size_t WeightMatrix::bytes() const { return packed_.size() + dense_.size() * sizeof(float); }

void WeightMatrix::dequantize_rows(std::int64_t first, std::int64_t count, float* out) const {
  LS_CHECK(first >= 0 && count >= 0 && first + count <= rows_, "row range out of bounds");
  if (!dense_.empty()) {
    std::memcpy(out, dense_.data() + first * cols_, count * cols_ * sizeof(float));
    return;
  }
  if (!packed_.empty() && exact_tiles_) {
    const std::int64_t blocks = cols_ / kBlock;
    const std::int64_t tile = tile_bytes(packing_);
    parallel_for(count, [&](std::int64_t i) {
      const std::int64_t row = first + i;
      unpack_row(packing_, packed_.data() + row / kGroupRows * blocks * tile, blocks, int(row % kGroupRows),
                 out + i * cols_);
    }, 16);
    return;
  }
  parallel_for(count, [&](std::int64_t i) {
    std::int64_t row = first + i;
    for (const WeightPart& part : parts_) {
      if (row < part.rows) {
        const auto* src = static_cast<const std::uint8_t*>(part.data) + row * row_bytes(part.type, cols_);
        dequantize_file_row(part.type, src, cols_, out + i * cols_);
        return;
      }
      row -= part.rows;
    }
  }, 16);
}

void Matmul::run(const WeightMatrix& w, const float* x, std::int64_t m, float* y, MatmulRoute route) {
  if (m <= 0) return;
  if (route != MatmulRoute::Sgemm && w.has_int8_kernel()) run_int8(w, x, m, y);
  else run_sgemm(w, x, m, y);
}

void Matmul::run_sgemm(const WeightMatrix& w, const float* x, std::int64_t m, float* y) {
  const float* dense = w.dense_.data();
  if (!dense) {
    w_dense_.ensure(w.rows_ * w.cols_);
    w.dequantize_rows(0, w.rows_, w_dense_.data());
    dense = w_dense_.data();
  }
  if (m == 1) {
    cblas_sgemv(CblasRowMajor, CblasNoTrans, w.rows_, w.cols_, 1.0f, dense, w.cols_, x, 1, 0.0f, y, 1);
  } else {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, w.rows_, w.cols_, 1.0f, x, w.cols_, dense,
                w.cols_, 0.0f, y, w.rows_);
  }
}

void Matmul::run_int8(const WeightMatrix& w, const float* x, std::int64_t m, float* y) {
  const matmul_detail::Int8Kernels& kernels = int8_kernels();
  const std::int64_t blocks = w.cols_ / kBlock, cols = w.cols_;
  x_quants_.ensure(m * cols);
  x_scales_.ensure(m * blocks);
  x_sums_.ensure(m * blocks);
  x_scaled_sums_.ensure(m * blocks);
  x_half_sums_.ensure(m * 2 * blocks);
  const auto quantize = [&](std::int64_t t) {
    kernels.quantize(x + t * cols, blocks, x_quants_.data() + t * cols, x_scales_.data() + t * blocks,
                     x_sums_.data() + t * blocks, x_scaled_sums_.data() + t * blocks, x_half_sums_.data() + t * 2 * blocks);
  };
  if (m == 1) quantize(0);
  else parallel_for(m, quantize, 8);

  matmul_detail::GemmArgs args;
  args.packing = w.packing_;
  args.tiles = w.packed_.data();
  args.rows = w.rows_;
  args.blocks = blocks;
  args.x = {x_quants_.data(), x_scales_.data(), x_sums_.data(), x_scaled_sums_.data(), x_half_sums_.data()};
  args.y = y;
  // Work items: 2 tile groups (32 output rows; 4 for a single activation row) × chunks of up
  // to 128 activation rows. Consecutive items share their activation rows, which stay in
  // cache while the weight tiles stream past.
  const std::int64_t groups = (w.rows_ + kGroupRows - 1) / kGroupRows;
  const std::int64_t per_item = m == 1 ? 4 : 2;
  const std::int64_t items = (groups + per_item - 1) / per_item;
  constexpr std::int64_t kTokenChunk = 128;
  const std::int64_t chunks = (m + kTokenChunk - 1) / kTokenChunk;
  parallel_for(items * chunks, [&](std::int64_t item) {
    const std::int64_t c = item / items, g = item % items * per_item;
    kernels.gemm(args, g, std::min(groups, g + per_item), c * kTokenChunk, std::min(m, (c + 1) * kTokenChunk));
  }, items * chunks >= 512 ? 8 : 1);
}

const char* int8_kernel_name() { return int8_kernels().name; }

void set_blas_threads(int threads) { openblas_set_num_threads(threads); }

}  // namespace ls
