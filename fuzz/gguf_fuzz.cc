// libFuzzer target for the GGUF reader: any input must either parse or throw ls::Error; when
// it parses, every metadata value is formatted, every array element (nested ones too) is read
// back, and the first rows of every dequantizable tensor are decoded, so the tensor bounds the
// reader accepted are exercised too.
// Build and run: `make fuzz` (clang, -fsanitize=fuzzer,address,undefined).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/error.h"
#include "model/gguf.h"
#include "model/quant.h"

namespace {

// Reads every element of an array back as a value (the array stores them by kind).
std::size_t walk(const ls::GgufArray& array) {
  std::size_t bytes = 0;
  for (const ls::GgufValue& item : array) {
    if (item.type == ls::GgufType::Array) {
      bytes += walk(item.as_array());
    } else if (item.type == ls::GgufType::String) {
      bytes += item.as_string().size();
    } else if (item.type == ls::GgufType::Bool) {
      bytes += item.as_bool();
    } else {
      bytes += static_cast<std::size_t>(item.as_float() != 0.0);
    }
  }
  return bytes;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    auto file = ls::GgufFile::parse(data, size, "fuzz");
    for (const auto& [key, value] : file->metadata()) {
      (void)value.to_string();
      if (value.type == ls::GgufType::Array) (void)walk(value.as_array());
    }
    std::vector<float> row;
    for (const ls::GgufTensor& t : file->tensors()) {
      if (!ls::can_dequantize(t.type)) continue;
      // At most 4 rows of at most 64 Ki elements each: enough to touch the whole row range
      // the reader promised without letting a large valid tensor dominate the run.
      const std::int64_t ne0 = t.dims[0];
      if (ne0 > (1 << 16)) continue;
      row.resize(static_cast<std::size_t>(ne0));
      const std::int64_t rows = t.rows() < 4 ? t.rows() : 4;
      for (std::int64_t r = 0; r < rows; ++r) ls::dequantize_rows(t, r, 1, row.data());
      if (t.rows() > 4) ls::dequantize_rows(t, t.rows() - 1, 1, row.data());  // the last row
    }
  } catch (const ls::Error&) {
    // Rejected input: the expected outcome for most mutations.
  }
  return 0;
}
