// Scalar conversions between fp32 and the two 16-bit float formats found in model files and
// KV caches: IEEE binary16 (fp16) and bfloat16 (the top half of an fp32). Bit-exact, portable,
// round-to-nearest-even; they live in core because the KV cache and attention kernels (below
// the model layer) store fp16/bf16 too. Vector conversions belong in the kernels (Highway).
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>

namespace ls {

inline float fp16_to_fp32(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exponent = (h >> 10) & 0x1Fu;
  const std::uint32_t mantissa = h & 0x3FFu;
  if (exponent == 0x1F) {  // inf or NaN: keep the payload
    return std::bit_cast<float>(sign | 0x7F800000u | (mantissa << 13));
  }
  if (exponent == 0) {  // zero or subnormal: mantissa · 2^-24, exact in fp32
    const float magnitude = static_cast<float>(mantissa) * 0x1p-24f;
    return sign ? -magnitude : magnitude;
  }
  // Rebias the exponent from 15 to 127.
  return std::bit_cast<float>(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

inline std::uint16_t fp32_to_fp16(float f) {
  std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  const auto sign = static_cast<std::uint16_t>((x >> 16) & 0x8000u);
  x &= 0x7FFFFFFFu;
  if (x > 0x7F800000u) {  // NaN: keep it quiet and keep the top payload bits
    return static_cast<std::uint16_t>(sign | 0x7E00u | ((x >> 13) & 0x3FFu));
  }
  if (x >= 0x477FF000u) return static_cast<std::uint16_t>(sign | 0x7C00u);  // ≥ 65520 → inf
  if (x < 0x38800000u) {  // below the smallest normal fp16 (2^-14): subnormal or zero
    // Units of 2^-24; nearbyint rounds half to even in the default rounding mode.
    const float units = std::bit_cast<float>(x) * 0x1p24f;
    return static_cast<std::uint16_t>(sign | static_cast<std::uint16_t>(std::nearbyint(units)));
  }
  std::uint32_t h = ((x >> 23) - 112) << 10 | ((x >> 13) & 0x3FFu);
  const std::uint32_t rest = x & 0x1FFFu;  // the 13 dropped mantissa bits
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;  // a carry into the exponent is right
  return static_cast<std::uint16_t>(sign | h);
}

inline float bf16_to_fp32(std::uint16_t b) {
  return std::bit_cast<float>(static_cast<std::uint32_t>(b) << 16);
}

inline std::uint16_t fp32_to_bf16(float f) {
  const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) {  // NaN: truncating could turn it into inf
    return static_cast<std::uint16_t>((x >> 16) | 0x40u);
  }
  const std::uint32_t rounding = 0x7FFFu + ((x >> 16) & 1u);  // half to even
  return static_cast<std::uint16_t>((x + rounding) >> 16);
}

}  // namespace ls
