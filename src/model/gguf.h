// GGUF reader (versions 2 and 3), memory-mapped. Every offset, size and count is checked
// against the file; a malformed file gives ls::Error naming the problem and the byte offset.
// Layout: docs/MODELS.md §1.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "model/ggml_type.h"

namespace ls {

struct GgufValue;

// The metadata value types of the format.
enum class GgufType : std::uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, Bool = 7, String = 8,
  Array = 9, U64 = 10, I64 = 11, F64 = 12,
};

// An array's elements, stored by kind rather than as values: a vocabulary of 262,144 strings
// with its scores and token types costs 38 MB as values (48 bytes each) and 10 MB so. Elements
// are read as values (operator[], or iterating).
class GgufArray {
 public:
  GgufType element_type = GgufType::U8;  // the declared element type (even when empty)

  std::size_t size() const;
  bool empty() const { return size() == 0; }
  GgufValue operator[](std::size_t i) const;  // i < size()

  class Iterator {
   public:
    Iterator(const GgufArray* array, std::size_t i) : array_(array), i_(i) {}
    GgufValue operator*() const;
    Iterator& operator++() { ++i_; return *this; }
    bool operator!=(const Iterator& o) const { return i_ != o.i_; }
   private:
    const GgufArray* array_;
    std::size_t i_;
  };
  Iterator begin() const { return {this, 0}; }
  Iterator end() const { return {this, size()}; }

  void push_back(GgufValue v);  // of element_type
  void reserve(std::size_t n);

 private:
  std::vector<std::uint64_t> scalars_;  // integers (two's complement), doubles' bits, bools
  std::string chars_;                   // strings, one after the other
  std::vector<std::uint64_t> ends_;     // [strings] end of each in chars_
  std::vector<GgufValue> arrays_;       // nested arrays
};

// A metadata value.
struct GgufValue {
  using Type = GgufType;
  Type type = Type::U8;
  Type element_type = Type::U8;  // arrays only: the declared element type (even when empty)
  std::variant<std::uint64_t, std::int64_t, double, bool, std::string, GgufArray> value;

  // Conversions; throw ls::Error naming `key` when the stored type does not convert.
  std::int64_t as_int(std::string_view key = {}) const;     // any integer type, range-checked
  double as_float(std::string_view key = {}) const;          // any integer or float type
  bool as_bool(std::string_view key = {}) const;
  const std::string& as_string(std::string_view key = {}) const;
  const GgufArray& as_array(std::string_view key = {}) const;
  // For `longsparse info`: arrays show their first max_items elements and the count; long
  // strings are cut (at a UTF-8 boundary) with their byte count.
  std::string to_string(std::size_t max_items = 8) const;
};

// "u32", "string", "array", ... (the GGUF metadata value type names).
std::string_view gguf_type_name(GgufValue::Type type);

struct GgufTensor {
  std::string name;
  std::vector<std::int64_t> dims;  // dims[0] (ne0) varies fastest: the row length
  GgmlType type = GgmlType::F32;
  std::uint64_t offset = 0;        // relative to the data section
  std::uint64_t bytes = 0;
  std::uint64_t file_offset = 0;   // absolute position of the data in the file
  const std::uint8_t* data = nullptr;  // into the mapping

  const GgmlTypeTraits& traits() const;  // the type is always known once the file has parsed
  bool supported() const { return traits().supported; }  // can be dequantized

  std::int64_t elements() const;
  std::int64_t rows() const;        // product of dims[1..]
  std::int64_t row_bytes() const;
};

class GgufFile {
 public:
  // Maps and parses the file; throws ls::Error on any inconsistency.
  static std::unique_ptr<GgufFile> open(const std::string& path);
  // Parses an in-memory image (used by tests and the fuzz target); `data` must outlive this.
  static std::unique_ptr<GgufFile> parse(const std::uint8_t* data, std::size_t size,
                                         std::string source = "<memory>");
  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  std::uint32_t version() const { return version_; }
  std::uint64_t alignment() const { return alignment_; }
  const std::string& path() const { return source_; }
  std::size_t file_size() const { return size_; }
  std::uint64_t data_start() const { return data_start_; }  // absolute offset of tensor data

  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return metadata_; }
  const GgufValue* find(std::string_view key) const;  // nullptr when absent
  const GgufValue& get(std::string_view key) const;   // throws naming the missing key
  // Typed getters with a default for absent keys.
  std::int64_t get_int(std::string_view key, std::int64_t fallback) const;
  double get_float(std::string_view key, double fallback) const;
  std::string get_string(std::string_view key, std::string fallback) const;

  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  const GgufTensor* find_tensor(std::string_view name) const;  // nullptr when absent
  const GgufTensor& tensor(std::string_view name) const;       // throws naming the tensor

  // Drops the pages wholly inside [data, data + bytes) of the mapping that this process holds
  // resident (a model that has repacked a tensor no longer pays for the file's copy in its
  // RSS). The mapping stays valid: a later read faults the pages back in from the page cache.
  // No-op for in-memory images.
  void release_pages(const void* data, std::size_t bytes) const;
  // The same for the whole file, once everything read from it has been copied: the metadata
  // (parsed at open) and the pages that the tensors' neighbours shared.
  void release_all_pages() const { release_pages(mapping_, size_); }

 private:
  GgufFile() = default;
  void parse_all();

  std::string source_;
  const std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
  void* mapping_ = nullptr;  // non-null when we own an mmap
  std::uint32_t version_ = 0;
  std::uint64_t alignment_ = 32;
  std::uint64_t data_start_ = 0;
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::vector<GgufTensor> tensors_;
  std::map<std::string, std::size_t, std::less<>> key_index_;     // key -> metadata_ index
  std::map<std::string, std::size_t, std::less<>> tensor_index_;  // name -> tensors_ index
};

}  // namespace ls
