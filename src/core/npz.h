// NumPy .npz archives: a zip file of .npy members, stored without compression, that
// numpy.load() reads (plans on disk, docs/capture.md). Writing only; Python reads them.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ls {

class NpzWriter {
 public:
  // Adds member `name`.npy with dtype `descr` ('<i8', '<f8', ...) and `shape`; `bytes` holds
  // the elements in C order. Throws ls::Error on a duplicate name.
  void add(const std::string& name, const std::string& descr, const std::vector<std::int64_t>& shape,
           const void* data, std::size_t bytes);
  void add(const std::string& name, const std::vector<std::int64_t>& values, std::vector<std::int64_t> shape = {});
  void add(const std::string& name, const std::vector<std::int32_t>& values, std::vector<std::int64_t> shape = {});
  void add_scalar(const std::string& name, std::int64_t value);
  void add_scalar(const std::string& name, double value);
  // A 0-d unicode array ('<U' + length, UTF-32): numpy.load gives back a str with .item().
  void add_string(const std::string& name, std::string_view utf8);

  // Writes the archive (members in the order added). Throws ls::Error on I/O failure or a
  // member or archive over 4 GiB (no zip64).
  void write(const std::string& path) const;

 private:
  struct Member {
    std::string name;  // with ".npy"
    std::string bytes;  // the whole .npy file
  };
  std::vector<Member> members_;
};

}  // namespace ls
