// GGUF reader (docs/MODELS.md §1, docs/gguf.md). The whole file is memory-mapped; nothing is
// copied except metadata values. Every count, length and offset read from the file is checked
// against the bytes that remain before it is used or allocated for, so a malformed or hostile
// file gives an ls::Error naming the problem and its byte offset, never a crash or a huge
// allocation.
#include "model/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>
#include <numeric>

#include "core/error.h"

namespace ls {
namespace {

static_assert(std::endian::native == std::endian::little, "GGUF is read in place: little-endian");

constexpr std::uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr std::uint64_t kDefaultAlignment = 32;
constexpr std::uint64_t kMaxKeyBytes = 65535;     // the spec's limit for keys
constexpr std::uint64_t kMaxTensorNameBytes = 64;  // GGML_MAX_NAME
constexpr std::uint32_t kMaxDims = 4;
constexpr int kMaxArrayDepth = 8;  // nested arrays allowed, but recursion stays bounded
constexpr std::uint32_t kLastValueType = 12;

// The fewest bytes one array element of `type` can take, for checking a count before
// allocating: a string is at least its u64 length, an array its type and count.
std::uint64_t min_element_bytes(GgufValue::Type type) {
  using T = GgufValue::Type;
  switch (type) {
    case T::U8: case T::I8: case T::Bool: return 1;
    case T::U16: case T::I16: return 2;
    case T::U32: case T::I32: case T::F32: return 4;
    case T::U64: case T::I64: case T::F64: case T::String: return 8;
    case T::Array: return 12;
  }
  return 1;
}

// A bounds-checked cursor over the file image.
class Reader {
 public:
  Reader(const std::uint8_t* data, std::size_t size, const std::string& source)
      : data_(data), size_(size), source_(source) {}

  std::uint64_t pos() const { return pos_; }
  std::uint64_t remaining() const { return size_ - pos_; }

  template <typename... Args>
  [[noreturn]] void fail_at(std::uint64_t offset, fmt::format_string<Args...> format,
                            Args&&... args) const {
    fail("{}: {} (at byte {})", source_, fmt::format(format, std::forward<Args>(args)...),
         offset);
  }

  void need(std::uint64_t bytes, std::string_view what) const {
    if (bytes > remaining()) {
      fail_at(pos_, "file truncated: {} needs {} bytes but only {} remain", what, bytes,
              remaining());
    }
  }

  template <typename T>
  T read(std::string_view what) {
    need(sizeof(T), what);
    T value;
    std::memcpy(&value, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return value;
  }

  std::string read_string(std::string_view what, std::uint64_t max_bytes) {
    const std::uint64_t at = pos_;
    const auto length = read<std::uint64_t>(what);
    if (length > max_bytes) fail_at(at, "{} is {} bytes long; the limit is {}", what, length, max_bytes);
    if (length > remaining()) {
      fail_at(at, "file truncated: {} claims {} bytes but only {} remain", what, length,
              remaining());
    }
    std::string s(reinterpret_cast<const char*>(data_ + pos_), length);
    pos_ += length;
    return s;
  }

 private:
  const std::uint8_t* data_;
  std::uint64_t size_;
  std::uint64_t pos_ = 0;
  const std::string& source_;
};

GgufValue::Type read_value_type(Reader& r, std::string_view key) {
  const std::uint64_t at = r.pos();
  const auto type = r.read<std::uint32_t>("a metadata value type");
  if (type > kLastValueType) r.fail_at(at, "metadata key '{}' has unknown value type {}", key, type);
  return static_cast<GgufValue::Type>(type);
}

GgufValue read_value(Reader& r, GgufValue::Type type, std::string_view key, int depth) {
  using T = GgufValue::Type;
  GgufValue v;
  v.type = type;
  switch (type) {
    case T::U8: v.value = std::uint64_t{r.read<std::uint8_t>(key)}; break;
    case T::U16: v.value = std::uint64_t{r.read<std::uint16_t>(key)}; break;
    case T::U32: v.value = std::uint64_t{r.read<std::uint32_t>(key)}; break;
    case T::U64: v.value = r.read<std::uint64_t>(key); break;
    case T::I8: v.value = std::int64_t{r.read<std::int8_t>(key)}; break;
    case T::I16: v.value = std::int64_t{r.read<std::int16_t>(key)}; break;
    case T::I32: v.value = std::int64_t{r.read<std::int32_t>(key)}; break;
    case T::I64: v.value = r.read<std::int64_t>(key); break;
    case T::F32: v.value = double{r.read<float>(key)}; break;
    case T::F64: v.value = r.read<double>(key); break;
    case T::Bool: {
      const std::uint64_t at = r.pos();
      const auto b = r.read<std::uint8_t>(key);
      if (b > 1) r.fail_at(at, "metadata key '{}': bool byte is {}, not 0 or 1", key, b);
      v.value = b == 1;
      break;
    }
    case T::String:
      v.value = r.read_string(key, std::numeric_limits<std::uint64_t>::max());
      break;
    case T::Array: {
      const std::uint64_t at = r.pos();
      if (depth >= kMaxArrayDepth) {
        r.fail_at(at, "metadata key '{}': arrays nested deeper than {}", key, kMaxArrayDepth);
      }
      v.element_type = read_value_type(r, key);
      const std::uint64_t count_at = r.pos();
      const auto count = r.read<std::uint64_t>("an array count");
      const std::uint64_t least = min_element_bytes(v.element_type);
      if (count > r.remaining() / least) {
        r.fail_at(count_at,
                  "metadata key '{}': array of {} {} elements needs at least {} bytes per "
                  "element but only {} bytes remain",
                  key, count, gguf_type_name(v.element_type), least, r.remaining());
      }
      GgufArray items;
      items.element_type = v.element_type;
      items.reserve(count);
      for (std::uint64_t i = 0; i < count; ++i) {
        items.push_back(read_value(r, v.element_type, key, depth + 1));
      }
      v.value = std::move(items);
      break;
    }
  }
  return v;
}

std::uint64_t align_up(std::uint64_t x, std::uint64_t alignment) {
  return x + (alignment - x % alignment) % alignment;
}

}  // namespace

const GgmlTypeTraits& GgufTensor::traits() const {
  const GgmlTypeTraits* t = ggml_type_traits(type);
  LS_CHECK(t, "tensor '{}' has unknown ggml type {}", name, static_cast<std::uint32_t>(type));
  return *t;
}

std::int64_t GgufTensor::elements() const {
  return std::accumulate(dims.begin(), dims.end(), std::int64_t{1}, std::multiplies<>());
}

std::int64_t GgufTensor::rows() const {
  return dims.empty() ? 1 : elements() / dims[0];
}

std::int64_t GgufTensor::row_bytes() const {
  const GgmlTypeTraits& t = traits();
  return (dims.empty() ? 1 : dims[0]) / t.block_elements * t.block_bytes;
}

std::unique_ptr<GgufFile> GgufFile::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  LS_CHECK(fd >= 0, "cannot open model file '{}': {}", path, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail("'{}' is not a regular file", path);
  }
  if (st.st_size == 0) {
    ::close(fd);
    fail("'{}' is empty, not a GGUF file", path);
  }
  const auto size = static_cast<std::size_t>(st.st_size);
  void* mapping = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  const int map_errno = errno;
  ::close(fd);
  LS_CHECK(mapping != MAP_FAILED, "cannot map '{}': {}", path, std::strerror(map_errno));

  std::unique_ptr<GgufFile> file(new GgufFile());
  file->mapping_ = mapping;  // owned from here: the destructor unmaps, also if parsing throws
  file->source_ = path;
  file->data_ = static_cast<const std::uint8_t*>(mapping);
  file->size_ = size;
  file->parse_all();
  return file;
}

std::unique_ptr<GgufFile> GgufFile::parse(const std::uint8_t* data, std::size_t size,
                                          std::string source) {
  std::unique_ptr<GgufFile> file(new GgufFile());
  file->source_ = std::move(source);
  file->data_ = data;
  file->size_ = size;
  file->parse_all();
  return file;
}

GgufFile::~GgufFile() {
  if (mapping_) ::munmap(mapping_, size_);
}

void GgufFile::release_pages(const void* data, std::size_t bytes) const {
  if (!mapping_ || !data || bytes == 0) return;
  static const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  // Only the pages wholly inside the range: its neighbours may still be in use.
  const auto begin = reinterpret_cast<std::uintptr_t>(data);
  const std::uintptr_t first = (begin + page - 1) / page * page, last = (begin + bytes) / page * page;
  if (last > first) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

void GgufFile::parse_all() {
  Reader r(data_, size_, source_);

  // Header.
  if (size_ < 4 || r.read<std::uint32_t>("the magic") != kMagic) {
    r.fail_at(0, "not a GGUF file (the first 4 bytes are not \"GGUF\")");
  }
  version_ = r.read<std::uint32_t>("the version");
  if (version_ == 1) r.fail_at(4, "GGUF version 1 is not supported (only versions 2 and 3)");
  if (version_ != 2 && version_ != 3) {
    if (__builtin_bswap32(version_) == 2 || __builtin_bswap32(version_) == 3) {
      r.fail_at(4, "GGUF version {} looks like a big-endian file; only little-endian is supported",
                version_);
    }
    r.fail_at(4, "unknown GGUF version {} (supported: 2 and 3)", version_);
  }
  const std::uint64_t tensor_count_at = r.pos();
  const auto tensor_count = r.read<std::uint64_t>("the tensor count");
  const std::uint64_t kv_count_at = r.pos();
  const auto kv_count = r.read<std::uint64_t>("the metadata count");
  // A key-value pair takes at least 8 (key length) + 1 (key) + 4 (type) + 1 bytes; a tensor
  // info at least 8 + 1 (name) + 4 (n_dims) + 8 (one dim) + 4 (type) + 8 (offset) bytes.
  if (kv_count > r.remaining() / 14) {
    r.fail_at(kv_count_at, "metadata count {} cannot fit in the {} bytes that remain", kv_count,
              r.remaining());
  }
  if (tensor_count > r.remaining() / 33) {
    r.fail_at(tensor_count_at, "tensor count {} cannot fit in the {} bytes that remain",
              tensor_count, r.remaining());
  }

  // Metadata.
  metadata_.reserve(kv_count);
  std::uint64_t alignment_at = 0;  // where general.alignment's value sits, for errors
  for (std::uint64_t i = 0; i < kv_count; ++i) {
    const std::uint64_t at = r.pos();
    std::string key = r.read_string(fmt::format("metadata key {}", i), kMaxKeyBytes);
    if (key.empty()) r.fail_at(at, "metadata key {} is empty", i);
    if (key_index_.count(key)) r.fail_at(at, "duplicate metadata key '{}'", key);
    const GgufValue::Type type = read_value_type(r, key);
    if (key == "general.alignment") alignment_at = r.pos();
    GgufValue value = read_value(r, type, key, 0);
    key_index_.emplace(key, metadata_.size());
    metadata_.emplace_back(std::move(key), std::move(value));
  }
  if (const GgufValue* a = find("general.alignment")) {
    using T = GgufValue::Type;
    if (a->type != T::U32 && a->type != T::U64 && a->type != T::U16 && a->type != T::U8) {
      r.fail_at(alignment_at, "general.alignment is a {}, not an unsigned integer",
                gguf_type_name(a->type));
    }
    const std::uint64_t alignment = std::get<std::uint64_t>(a->value);
    if (alignment == 0 || !std::has_single_bit(alignment) || alignment % 8 != 0) {
      r.fail_at(alignment_at, "general.alignment is {}; it must be a power of two and a multiple of 8",
                alignment);
    }
    alignment_ = alignment;
  } else {
    alignment_ = kDefaultAlignment;
  }

  // Tensor infos.
  tensors_.reserve(tensor_count);
  std::vector<std::uint64_t> offset_fields;  // where each tensor's offset was read, for errors
  offset_fields.reserve(tensor_count);
  for (std::uint64_t i = 0; i < tensor_count; ++i) {
    const std::uint64_t at = r.pos();
    GgufTensor t;
    t.name = r.read_string(fmt::format("tensor {} name", i), kMaxTensorNameBytes);
    if (t.name.empty()) r.fail_at(at, "tensor {} has an empty name", i);
    if (tensor_index_.count(t.name)) r.fail_at(at, "duplicate tensor name '{}'", t.name);
    const std::uint64_t dims_at = r.pos();
    const auto n_dims = r.read<std::uint32_t>("n_dims");
    if (n_dims == 0 || n_dims > kMaxDims) {
      r.fail_at(dims_at, "tensor '{}' has {} dimensions (must be 1 to {})", t.name, n_dims,
                kMaxDims);
    }
    std::int64_t elements = 1;
    for (std::uint32_t d = 0; d < n_dims; ++d) {
      const std::uint64_t dim_at = r.pos();
      const auto dim = r.read<std::uint64_t>("a dimension");
      if (dim == 0) r.fail_at(dim_at, "tensor '{}' dimension {} is 0", t.name, d);
      if (dim > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max() / elements)) {
        r.fail_at(dim_at, "tensor '{}' element count overflows (dimension {} is {})", t.name, d,
                  dim);
      }
      elements *= static_cast<std::int64_t>(dim);
      t.dims.push_back(static_cast<std::int64_t>(dim));
    }
    const std::uint64_t type_at = r.pos();
    const auto type = r.read<std::uint32_t>("a tensor type");
    const GgmlTypeTraits* traits = ggml_type_traits(type);
    if (!traits) r.fail_at(type_at, "tensor '{}' has unknown ggml type {}", t.name, type);
    t.type = static_cast<GgmlType>(type);
    if (t.dims[0] % traits->block_elements != 0) {
      r.fail_at(dims_at, "tensor '{}' row length {} is not a multiple of the {} block size {}",
                t.name, t.dims[0], traits->name, traits->block_elements);
    }
    const std::int64_t blocks = elements / traits->block_elements;
    if (blocks > std::numeric_limits<std::int64_t>::max() / traits->block_bytes) {
      r.fail_at(dims_at, "tensor '{}' byte size overflows", t.name);
    }
    t.bytes = static_cast<std::uint64_t>(blocks * traits->block_bytes);
    offset_fields.push_back(r.pos());
    t.offset = r.read<std::uint64_t>("a tensor offset");
    if (t.offset % alignment_ != 0) {
      r.fail_at(offset_fields.back(), "tensor '{}' offset {} is not a multiple of the alignment {}",
                t.name, t.offset, alignment_);
    }
    tensor_index_.emplace(t.name, tensors_.size());
    tensors_.push_back(std::move(t));
  }

  // Tensor data: starts at the next multiple of the alignment; each tensor must lie inside the
  // file and no two may overlap.
  data_start_ = align_up(r.pos(), alignment_);
  if (tensors_.empty()) return;
  if (data_start_ > size_) {
    r.fail_at(r.pos(), "file truncated: tensor data would start at byte {} but the file has {}",
              data_start_, size_);
  }
  const std::uint64_t data_bytes = size_ - data_start_;
  for (std::size_t i = 0; i < tensors_.size(); ++i) {
    GgufTensor& t = tensors_[i];
    if (t.offset > data_bytes || t.bytes > data_bytes - t.offset) {
      r.fail_at(offset_fields[i],
                "tensor '{}' data ({} bytes at data offset {}) runs past the end of the file "
                "(the data section holds {} bytes)",
                t.name, t.bytes, t.offset, data_bytes);
    }
    t.file_offset = data_start_ + t.offset;
    t.data = data_ + t.file_offset;
  }
  std::vector<std::size_t> order(tensors_.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::sort(order.begin(), order.end(),
            [&](std::size_t a, std::size_t b) { return tensors_[a].offset < tensors_[b].offset; });
  for (std::size_t k = 1; k < order.size(); ++k) {
    const GgufTensor& prev = tensors_[order[k - 1]];
    const GgufTensor& cur = tensors_[order[k]];
    if (prev.offset + prev.bytes > cur.offset) {
      r.fail_at(offset_fields[order[k]],
                "tensor '{}' (data offset {}) overlaps tensor '{}' ({} bytes at {})",
                cur.name, cur.offset, prev.name, prev.bytes, prev.offset);
    }
  }
}

const GgufValue* GgufFile::find(std::string_view key) const {
  auto it = key_index_.find(key);
  return it == key_index_.end() ? nullptr : &metadata_[it->second].second;
}

const GgufValue& GgufFile::get(std::string_view key) const {
  const GgufValue* v = find(key);
  LS_CHECK(v, "{}: metadata key '{}' is missing", source_, key);
  return *v;
}

std::int64_t GgufFile::get_int(std::string_view key, std::int64_t fallback) const {
  const GgufValue* v = find(key);
  return v ? v->as_int(key) : fallback;
}

double GgufFile::get_float(std::string_view key, double fallback) const {
  const GgufValue* v = find(key);
  return v ? v->as_float(key) : fallback;
}

std::string GgufFile::get_string(std::string_view key, std::string fallback) const {
  const GgufValue* v = find(key);
  return v ? v->as_string(key) : fallback;
}

const GgufTensor* GgufFile::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const GgufTensor& GgufFile::tensor(std::string_view name) const {
  const GgufTensor* t = find_tensor(name);
  LS_CHECK(t, "{}: tensor '{}' is missing", source_, name);
  return *t;
}

}  // namespace ls
