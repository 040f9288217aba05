// Vector dequantization kernels (Highway, dispatched at run time: core/simd.h). Internal to
// quant.cc: callers use ls::dequantize_row, which checks its arguments first.
#pragma once

#include <cstdint>

#include "model/ggml_type.h"

namespace ls::simd {

// Dequantizes n elements (a whole number of blocks) when a vector kernel exists for the type;
// returns false, writing nothing, when it does not.
bool dequantize_row(GgmlType type, const void* src, float* dst, std::int64_t n);

}  // namespace ls::simd
