#include "core/npz.h"

#include <zlib.h>

#include <cstdio>
#include <cstring>

#include "core/error.h"
#include "core/npy.h"

namespace ls {

namespace {

void put16(std::string& out, std::uint32_t v) {
  out.push_back(char(v & 0xff));
  out.push_back(char((v >> 8) & 0xff));
}
void put32(std::string& out, std::uint32_t v) {
  put16(out, v & 0xffff);
  put16(out, v >> 16);
}

// UTF-8 → code points; malformed bytes become U+FFFD.
std::vector<std::uint32_t> code_points(std::string_view s) {
  std::vector<std::uint32_t> out;
  for (std::size_t i = 0; i < s.size();) {
    const unsigned char c = s[i];
    int length = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    std::uint32_t cp = length == 1 ? c : length == 2 ? c & 0x1f : length == 3 ? c & 0x0f : c & 0x07;
    bool ok = length > 0 && i + length <= s.size();
    for (int k = 1; ok && k < length; ++k) {
      const unsigned char d = s[i + k];
      ok = (d >> 6) == 2;
      cp = (cp << 6) | (d & 0x3f);
    }
    out.push_back(ok ? cp : 0xfffd);
    i += ok ? length : 1;
  }
  return out;
}

}  // namespace

void NpzWriter::add(const std::string& name, const std::string& descr, const std::vector<std::int64_t>& shape,
                    const void* data, std::size_t bytes) {
  for (const Member& m : members_) LS_CHECK(m.name != name + ".npy", "npz: member '{}' added twice", name);
  Member member{name + ".npy", npy_header(descr, shape)};
  member.bytes.append(static_cast<const char*>(data), bytes);
  members_.push_back(std::move(member));
}

void NpzWriter::add(const std::string& name, const std::vector<std::int64_t>& values, std::vector<std::int64_t> shape) {
  if (shape.empty()) shape = {std::int64_t(values.size())};
  add(name, "<i8", shape, values.data(), values.size() * sizeof(std::int64_t));
}

void NpzWriter::add(const std::string& name, const std::vector<std::int32_t>& values, std::vector<std::int64_t> shape) {
  if (shape.empty()) shape = {std::int64_t(values.size())};
  add(name, "<i4", shape, values.data(), values.size() * sizeof(std::int32_t));
}

void NpzWriter::add_scalar(const std::string& name, std::int64_t value) { add(name, "<i8", {}, &value, sizeof value); }

void NpzWriter::add_scalar(const std::string& name, double value) { add(name, "<f8", {}, &value, sizeof value); }

void NpzWriter::add_string(const std::string& name, std::string_view utf8) {
  std::vector<std::uint32_t> cps = code_points(utf8);
  if (cps.empty()) cps.push_back(0);  // numpy has no '<U0'; a single NUL reads back as ""
  add(name, "<U" + std::to_string(cps.size()), {}, cps.data(), cps.size() * sizeof(std::uint32_t));
}

void NpzWriter::write(const std::string& path) const {
  // Zip (APPNOTE 6.3): per member a local header and the data (method 0, stored), then the
  // central directory and its end record. A fixed date (1980-01-01) keeps the bytes the same
  // for the same plan.
  const std::uint32_t kDosDate = (0 << 9) | (1 << 5) | 1, kDosTime = 0;
  std::string archive, directory;
  for (const Member& m : members_) {
    LS_CHECK(m.bytes.size() < 0xffffffffull && archive.size() < 0xffffffffull,
             "npz: '{}' is over 4 GiB, which this writer does not support", path);
    const std::uint32_t crc =
        std::uint32_t(crc32(0L, reinterpret_cast<const Bytef*>(m.bytes.data()), uInt(m.bytes.size())));
    const std::uint32_t offset = std::uint32_t(archive.size()), size = std::uint32_t(m.bytes.size());
    put32(archive, 0x04034b50);
    put16(archive, 20), put16(archive, 0), put16(archive, 0);  // version needed, flags, method
    put16(archive, kDosTime), put16(archive, kDosDate);
    put32(archive, crc), put32(archive, size), put32(archive, size);
    put16(archive, std::uint32_t(m.name.size())), put16(archive, 0);
    archive += m.name;
    archive += m.bytes;

    put32(directory, 0x02014b50);
    put16(directory, 20), put16(directory, 20), put16(directory, 0), put16(directory, 0);
    put16(directory, kDosTime), put16(directory, kDosDate);
    put32(directory, crc), put32(directory, size), put32(directory, size);
    put16(directory, std::uint32_t(m.name.size()));
    put16(directory, 0), put16(directory, 0), put16(directory, 0), put16(directory, 0);  // extra, comment, disk, attrs
    put32(directory, 0), put32(directory, offset);
    directory += m.name;
  }
  LS_CHECK(archive.size() + directory.size() < 0xffffffffull, "npz: '{}' is over 4 GiB", path);
  std::string end;
  put32(end, 0x06054b50);
  put16(end, 0), put16(end, 0);
  put16(end, std::uint32_t(members_.size())), put16(end, std::uint32_t(members_.size()));
  put32(end, std::uint32_t(directory.size())), put32(end, std::uint32_t(archive.size()));
  put16(end, 0);
  std::FILE* f = std::fopen(path.c_str(), "wb");
  LS_CHECK(f, "cannot write '{}'", path);
  bool ok = std::fwrite(archive.data(), 1, archive.size(), f) == archive.size() &&
            std::fwrite(directory.data(), 1, directory.size(), f) == directory.size() &&
            std::fwrite(end.data(), 1, end.size(), f) == end.size();
  ok = (std::fclose(f) == 0) && ok;
  LS_CHECK(ok, "failed writing '{}'", path);
}

}  // namespace ls
