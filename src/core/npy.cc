#include "core/npy.h"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>

#include "core/error.h"
#include "core/half.h"

namespace ls {

std::int64_t NpyArray::elements() const {
  std::int64_t n = 1;
  for (std::int64_t d : shape) n *= d;
  return n;
}

std::string npy_header(const std::string& descr, const std::vector<std::int64_t>& shape) {
  std::string dims;
  for (std::int64_t d : shape) dims += std::to_string(d) + ", ";
  if (shape.size() > 1) dims.resize(dims.size() - 1);  // "(3, 4,)"; "(3, )"; "()"
  std::string dict = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (" + dims + "), }";
  // magic(6) + version(2) + header_len(2) + dict + '\n', padded to a multiple of 64.
  const std::size_t total = 10 + dict.size() + 1;
  dict.append((64 - total % 64) % 64, ' ');
  dict.push_back('\n');
  LS_CHECK(dict.size() <= 0xffff, "npy header of {} bytes is too long", dict.size());
  std::string header = {'\x93', 'N', 'U', 'M', 'P', 'Y', 1, 0, static_cast<char>(dict.size() & 0xff),
                        static_cast<char>(dict.size() >> 8)};
  return header + dict;
}

void write_npy(const std::string& path, const float* data, const std::vector<std::int64_t>& shape) {
  std::int64_t elements = 1;
  for (std::int64_t d : shape) elements *= d;
  const std::string header = npy_header("<f4", shape);
  std::FILE* f = std::fopen(path.c_str(), "wb");
  LS_CHECK(f, "cannot write '{}'", path);
  bool ok = std::fwrite(header.data(), 1, header.size(), f) == header.size() &&
            std::fwrite(data, sizeof(float), std::size_t(elements), f) == std::size_t(elements);
  ok = (std::fclose(f) == 0) && ok;
  LS_CHECK(ok, "failed writing '{}'", path);
}

namespace {

// Extracts the value text of 'key' from a Python dict literal header.
std::string header_value(const std::string& header, const std::string& key, const std::string& source) {
  std::size_t at = header.find("'" + key + "'");
  LS_CHECK(at != std::string::npos, "{}: npy header lacks '{}'", source, key);
  std::size_t colon = header.find(':', at);
  LS_CHECK(colon != std::string::npos, "{}: malformed npy header", source);
  std::size_t begin = header.find_first_not_of(' ', colon + 1);
  LS_CHECK(begin != std::string::npos, "{}: malformed npy header", source);
  std::size_t end = header[begin] == '(' ? header.find(')', begin) + 1 : header.find_first_of(",}", begin);
  LS_CHECK(end != std::string::npos && end > begin, "{}: malformed npy header", source);
  return header.substr(begin, end - begin);
}

}  // namespace

NpyArray parse_npy(const std::uint8_t* bytes, std::size_t size, const std::string& source) {
  LS_CHECK(size >= 10 && std::memcmp(bytes, "\x93NUMPY", 6) == 0, "{}: not a .npy file", source);
  int major = bytes[6];
  LS_CHECK(major == 1 || major == 2, "{}: unsupported npy version {}", source, major);
  std::size_t header_len = 0, offset = 0;
  if (major == 1) {
    header_len = bytes[8] | (std::size_t(bytes[9]) << 8);
    offset = 10;
  } else {
    LS_CHECK(size >= 12, "{}: truncated npy header", source);
    header_len = bytes[8] | (std::size_t(bytes[9]) << 8) | (std::size_t(bytes[10]) << 16) |
                 (std::size_t(bytes[11]) << 24);
    offset = 12;
  }
  LS_CHECK(header_len <= size - offset, "{}: truncated npy header", source);
  std::string header(reinterpret_cast<const char*>(bytes + offset), header_len);
  std::string descr = header_value(header, "descr", source);
  LS_CHECK(descr == "'<f4'" || descr == "'<f2'",
           "{}: dtype {} is neither little-endian float32 ('<f4') nor float16 ('<f2')", source, descr);
  const std::size_t element_bytes = descr == "'<f2'" ? 2 : 4;
  LS_CHECK(header_value(header, "fortran_order", source) == "False", "{}: Fortran-order arrays are not supported",
           source);
  std::string shape_text = header_value(header, "shape", source);
  NpyArray array;
  std::int64_t elements = 1;
  for (std::size_t i = 1; i + 1 < shape_text.size();) {
    std::size_t j = shape_text.find_first_of(",)", i);
    std::string item = shape_text.substr(i, j - i);
    item.erase(0, item.find_first_not_of(' '));
    if (!item.empty()) {
      char* end = nullptr;
      long long d = std::strtoll(item.c_str(), &end, 10);
      LS_CHECK(end && *end == '\0' && d >= 0 && d < (1ll << 40), "{}: bad dimension '{}' in npy shape", source, item);
      LS_CHECK(d == 0 || elements <= std::numeric_limits<std::int64_t>::max() / 4 / d, "{}: npy shape too large",
               source);
      elements *= d;
      array.shape.push_back(d);
    }
    if (j == std::string::npos) break;
    i = j + 1;
  }
  std::size_t data_offset = offset + header_len;
  LS_CHECK(std::uint64_t(elements) * element_bytes == size - data_offset, "{}: npy data holds {} bytes, shape needs {}",
           source, size - data_offset, std::uint64_t(elements) * element_bytes);
  array.data.reset(std::size_t(elements));
  if (element_bytes == 4) {
    if (elements) std::memcpy(array.data.data(), bytes + data_offset, std::size_t(elements) * 4);
  } else {
    for (std::int64_t i = 0; i < elements; ++i) {
      std::uint16_t h;
      std::memcpy(&h, bytes + data_offset + 2 * i, 2);
      array.data[std::size_t(i)] = fp16_to_fp32(h);
    }
  }
  return array;
}

NpyArray read_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  LS_CHECK(in, "cannot read '{}'", path);
  std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return parse_npy(bytes.data(), bytes.size(), path);
}

}  // namespace ls
