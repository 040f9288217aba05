// Aligned, owning buffers and non-owning strided matrix views.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <type_traits>
#include <utility>

namespace ls {

inline constexpr std::size_t kAlignment = 64;  // one cache line; enough for AVX-512

// A move-only array of trivially copyable T, aligned to kAlignment. Not zeroed unless asked.
// A deep copy is explicit: Copy().
template <typename T>
class Buffer {
  static_assert(std::is_trivially_copyable_v<T>);

 public:
  Buffer() = default;
  explicit Buffer(std::size_t size, bool zero = false) { reset(size, zero); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  Buffer& operator=(Buffer&& other) noexcept {
    if (this != &other) {
      release();
      data_ = std::exchange(other.data_, nullptr);
      size_ = std::exchange(other.size_, 0);
    }
    return *this;
  }
  ~Buffer() { release(); }

  // Reallocates to `size` elements (contents are lost).
  void reset(std::size_t size, bool zero = false) {
    release();
    if (size == 0) return;
    std::size_t bytes = (size * sizeof(T) + kAlignment - 1) / kAlignment * kAlignment;
    data_ = static_cast<T*>(std::aligned_alloc(kAlignment, bytes));
    if (!data_) throw std::bad_alloc();
    size_ = size;
    if (zero) std::memset(static_cast<void*>(data_), 0, bytes);
  }
  // Grows (never shrinks) to at least `size` elements; contents are lost when it grows.
  void ensure(std::size_t size) {
    if (size > size_) reset(size);
  }
  void fill_zero() {
    if (data_) std::memset(static_cast<void*>(data_), 0, size_ * sizeof(T));
  }
  Buffer Copy() const {
    Buffer copy(size_);
    if (size_) std::memcpy(static_cast<void*>(copy.data_), data_, size_ * sizeof(T));
    return copy;
  }

  T* data() { return data_; }
  const T* data() const { return data_; }
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  T& operator[](std::size_t i) { return data_[i]; }
  const T& operator[](std::size_t i) const { return data_[i]; }
  T* begin() { return data_; }
  T* end() { return data_ + size_; }
  const T* begin() const { return data_; }
  const T* end() const { return data_ + size_; }

 private:
  void release() {
    std::free(data_);
    data_ = nullptr;
    size_ = 0;
  }
  T* data_ = nullptr;
  std::size_t size_ = 0;
};

// A row-major matrix view: rows × cols elements, `stride` elements between row starts.
template <typename T>
struct MatrixView {
  T* data = nullptr;
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  std::int64_t stride = 0;

  MatrixView() = default;
  MatrixView(T* data, std::int64_t rows, std::int64_t cols, std::int64_t stride = -1)
      : data(data), rows(rows), cols(cols), stride(stride < 0 ? cols : stride) {}
  // Implicit conversion to a view of const.
  operator MatrixView<const T>() const { return {data, rows, cols, stride}; }

  T* row(std::int64_t r) const { return data + r * stride; }
  T& operator()(std::int64_t r, std::int64_t c) const { return data[r * stride + c]; }
  MatrixView block_rows(std::int64_t first, std::int64_t count) const {
    return {data + first * stride, count, cols, stride};
  }
};

}  // namespace ls
