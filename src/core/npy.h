// NumPy .npy files (format version 1.0/2.0) holding little-endian float32 arrays in C order:
// the exchange format for captured attention inputs (Q, K, V) that Python tools read directly.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/buffer.h"

namespace ls {

struct NpyArray {
  std::vector<std::int64_t> shape;
  Buffer<float> data;  // [product(shape)]
  std::int64_t elements() const;
};

// The header of a version 1.0 .npy file (magic, version, length, dict, padding to 64 bytes)
// for an array of dtype `descr` ('<f4', '<i8', '<U12', ...) and `shape` in C order.
std::string npy_header(const std::string& descr, const std::vector<std::int64_t>& shape);

// Writes data[product(shape)] as '<f4'. Throws ls::Error on I/O failure.
void write_npy(const std::string& path, const float* data, const std::vector<std::int64_t>& shape);

// Reads a '<f4' C-order array, or a '<f2' one converted to float32 (compact test fixtures);
// anything else (other dtypes, Fortran order, truncated data,
// malformed header) is an ls::Error naming the file and the problem.
NpyArray read_npy(const std::string& path);
NpyArray parse_npy(const std::uint8_t* bytes, std::size_t size, const std::string& source = "<memory>");

}  // namespace ls
