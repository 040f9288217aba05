#include "core/npy.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "core/error.h"

namespace ls {
namespace {

TEST(Npy, RoundTrip) {
  std::string path = (std::filesystem::temp_directory_path() / "ls_npy_test.npy").string();
  float values[6] = {1, 2, 3, -4.5f, 5, 6e-7f};
  write_npy(path, values, {2, 3});
  NpyArray a = read_npy(path);
  ASSERT_EQ(a.shape, (std::vector<std::int64_t>{2, 3}));
  for (int i = 0; i < 6; ++i) EXPECT_EQ(a.data[i], values[i]);
  write_npy(path, values, {6});
  EXPECT_EQ(read_npy(path).shape, (std::vector<std::int64_t>{6}));
  std::remove(path.c_str());
}

TEST(Npy, ReadsFloat16AsFloat32) {
  // np.array([1, -2.5, 65504, 2**-24], dtype='<f2').tobytes(): exact in both types.
  std::string header = "{'descr': '<f2', 'fortran_order': False, 'shape': (2, 2), }";
  std::string s = std::string("\x93NUMPY\x01\x00", 8);
  s.push_back(char(header.size()));
  s.push_back('\0');
  s += header;
  const unsigned char data[] = {0x00, 0x3c, 0x00, 0xc1, 0xff, 0x7b, 0x01, 0x00};
  s.append(reinterpret_cast<const char*>(data), sizeof data);
  NpyArray a = parse_npy(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
  ASSERT_EQ(a.shape, (std::vector<std::int64_t>{2, 2}));
  EXPECT_EQ(a.data[0], 1.0f);
  EXPECT_EQ(a.data[1], -2.5f);
  EXPECT_EQ(a.data[2], 65504.0f);
  EXPECT_EQ(a.data[3], 0x1p-24f);
}

TEST(Npy, RejectsMalformed) {
  std::string good = std::string("\x93NUMPY\x01\x00", 8);
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
  auto make = [&](const std::string& h, std::size_t data_bytes) {
    std::string s = good;
    s.push_back(char(h.size() & 0xff));
    s.push_back(char(h.size() >> 8));
    s += h;
    s.append(data_bytes, '\0');
    return s;
  };
  auto parse = [](const std::string& s) {
    return parse_npy(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
  };
  EXPECT_NO_THROW(parse(make(header, 8)));
  EXPECT_THROW(parse(make(header, 7)), Error);                          // truncated data
  EXPECT_THROW(parse(make("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", 16)), Error);
  EXPECT_THROW(parse(make("{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", 8)), Error);
  EXPECT_THROW(parse(make("{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }", 8)), Error);
  EXPECT_THROW(parse(make("{'descr': '<f2', 'fortran_order': False, 'shape': (2,), }", 3)), Error);
  EXPECT_THROW(parse(std::string("NUMPY")), Error);
  EXPECT_THROW(parse(good + std::string("\xff\xff", 2)), Error);  // header longer than the file
}

}  // namespace
}  // namespace ls
