// Builds GGUF images byte by byte for the reader tests, following the layout of
// docs/MODELS.md §1.1 directly (no code shared with the reader).
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

namespace ls::testing {

class GgufBuilder {
 public:
  std::vector<std::uint8_t> bytes;

  template <typename T>
  GgufBuilder& put(T value) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(&value);
    bytes.insert(bytes.end(), p, p + sizeof(T));
    return *this;
  }
  GgufBuilder& str(std::string_view s) {
    put<std::uint64_t>(s.size());
    bytes.insert(bytes.end(), s.begin(), s.end());
    return *this;
  }
  GgufBuilder& header(std::uint32_t version, std::uint64_t tensors, std::uint64_t kvs) {
    bytes.insert(bytes.end(), {'G', 'G', 'U', 'F'});
    return put(version).put(tensors).put(kvs);
  }
  // A key and its value type; the caller then puts the value.
  GgufBuilder& key(std::string_view name, std::uint32_t type) { return str(name).put(type); }
  GgufBuilder& kv_u32(std::string_view name, std::uint32_t v) { return key(name, 4).put(v); }
  GgufBuilder& kv_str(std::string_view name, std::string_view v) { return key(name, 8).str(v); }
  GgufBuilder& tensor(std::string_view name, std::vector<std::uint64_t> dims, std::uint32_t type,
                      std::uint64_t offset) {
    str(name).put<std::uint32_t>(static_cast<std::uint32_t>(dims.size()));
    for (auto d : dims) put(d);
    return put(type).put(offset);
  }
  GgufBuilder& pad_to(std::size_t alignment) {
    while (bytes.size() % alignment) bytes.push_back(0);
    return *this;
  }
  GgufBuilder& data(const void* p, std::size_t n) {
    const auto* b = static_cast<const std::uint8_t*>(p);
    bytes.insert(bytes.end(), b, b + n);
    return *this;
  }
  GgufBuilder& zeros(std::size_t n) {
    bytes.insert(bytes.end(), n, 0);
    return *this;
  }
  std::size_t size() const { return bytes.size(); }
};

}  // namespace ls::testing
