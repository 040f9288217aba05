// Element types of the KV cache, with llama.cpp's names (`-ctk` / `-ctv`): f32, f16 (the
// default, as llama.cpp), bf16, and q8_0 (blocks of 32 int8 values with one fp16 scale, the
// layout and rounding of ggml's quantize_row_q8_0). A cache row (one token of one KV head)
// is `dim` elements; q8_0 needs dim to be a multiple of 32.
//
// Rounding bounds of one stored element x (fp32 in, fp32 out):
//   f32   exact;   f16  |err| ≤ 2^-11·|x| (normal range);   bf16  |err| ≤ 2^-8·|x|;
//   q8_0  |err| ≤ d/2 + 2^-11·|x|, d = max|block| / 127 (the scale is stored as fp16).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace ls {

enum class KvType { F32, F16, BF16, Q8_0 };

inline constexpr int kQ8BlockSize = 32;

// "f32" | "f16" | "bf16" | "q8_0"; throws ls::Error listing the valid names otherwise.
KvType parse_kv_type(std::string_view name);
const char* kv_type_name(KvType type);
std::string kv_type_names();  // "f32, f16, bf16, q8_0"

// Bytes of one row of `dim` elements; throws ls::Error when q8_0 cannot hold `dim`.
std::int64_t kv_row_bytes(KvType type, int dim);
// Relative rounding bound of one element as documented above (q8_0: of the block's max).
double kv_type_rel_bound(KvType type);

// One row: fp32 → stored type, and back.
void kv_encode_row(KvType type, const float* x, int dim, void* out);
void kv_decode_row(KvType type, const void* row, int dim, float* out);
// `count` consecutive rows (row_bytes apart) decoded into out [count][dim].
void kv_decode_rows(KvType type, const void* rows, std::int64_t count, int dim, float* out);

}  // namespace ls
