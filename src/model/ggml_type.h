// ggml tensor types as stored in GGUF files (docs/MODELS.md §1.1, §2).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace ls {

enum class GgmlType : std::uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  BF16 = 30,
};

struct GgmlTypeTraits {
  std::string_view name;
  std::int64_t block_elements;  // elements per block (1 for float types)
  std::int64_t block_bytes;     // bytes per block
  bool supported;               // longsparse can dequantize / multiply it
};

// Traits of a type id; nullptr for ids longsparse does not know.
const GgmlTypeTraits* ggml_type_traits(std::uint32_t type);
inline const GgmlTypeTraits* ggml_type_traits(GgmlType type) {
  return ggml_type_traits(static_cast<std::uint32_t>(type));
}
// The type's name ("Q4_1"), or "type<id>" for an id longsparse does not know.
std::string ggml_type_name(std::uint32_t type);
inline std::string ggml_type_name(GgmlType type) {
  return ggml_type_name(static_cast<std::uint32_t>(type));
}

}  // namespace ls
