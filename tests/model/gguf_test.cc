// GGUF reader on hand-built images: every metadata type, versions, alignment, and each check
// of docs/gguf.md on a file that breaks exactly that rule.
#include "model/gguf.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <limits>
#include <string>

#include "core/error.h"
#include "model/quant.h"
#include "gguf_builder.h"

namespace ls {
namespace {

using ::testing::HasSubstr;
using testing::GgufBuilder;

std::unique_ptr<GgufFile> parse(const GgufBuilder& b) {
  return GgufFile::parse(b.bytes.data(), b.bytes.size(), "test.gguf");
}

// The message of the ls::Error that parsing `b` throws ("" when it parses).
std::string parse_error(const GgufBuilder& b) {
  try {
    parse(b);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// One F32 tensor [4, 2] = 0..7 after one string key.
GgufBuilder small_file(std::uint32_t version = 3) {
  GgufBuilder b;
  b.header(version, 1, 1).kv_str("general.architecture", "llama");
  b.tensor("w", {4, 2}, 0, 0).pad_to(32);
  for (int i = 0; i < 8; ++i) b.put(static_cast<float>(i));
  return b;
}

TEST(Gguf, ReadsEveryMetadataType) {
  GgufBuilder b;
  b.header(3, 0, 14);
  b.key("u8", 0).put<std::uint8_t>(200);
  b.key("i8", 1).put<std::int8_t>(-100);
  b.key("u16", 2).put<std::uint16_t>(60000);
  b.key("i16", 3).put<std::int16_t>(-30000);
  b.key("u32", 4).put<std::uint32_t>(4000000000u);
  b.key("i32", 5).put<std::int32_t>(-2000000000);
  b.key("f32", 6).put<float>(1e-5f);
  b.key("bool", 7).put<std::uint8_t>(1);
  b.key("string", 8).str("héllo");
  b.key("u64", 10).put<std::uint64_t>(1ull << 40);
  b.key("i64", 11).put<std::int64_t>(-(1ll << 40));
  b.key("f64", 12).put<double>(0.125);
  b.key("strings", 9).put<std::uint32_t>(8).put<std::uint64_t>(2).str("a").str("bc");
  // [[1, 2], [], [3]] as an array of u16 arrays.
  b.key("nested", 9).put<std::uint32_t>(9).put<std::uint64_t>(3);
  b.put<std::uint32_t>(2).put<std::uint64_t>(2).put<std::uint16_t>(1).put<std::uint16_t>(2);
  b.put<std::uint32_t>(2).put<std::uint64_t>(0);
  b.put<std::uint32_t>(2).put<std::uint64_t>(1).put<std::uint16_t>(3);
  auto f = parse(b);
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->metadata().size(), 14u);
  EXPECT_EQ(f->get("u8").as_int(), 200);
  EXPECT_EQ(f->get("i8").as_int(), -100);
  EXPECT_EQ(f->get("u16").as_int(), 60000);
  EXPECT_EQ(f->get("i16").as_int(), -30000);
  EXPECT_EQ(f->get("u32").as_int(), 4000000000ll);
  EXPECT_EQ(f->get("i32").as_int(), -2000000000);
  EXPECT_EQ(f->get("f32").as_float(), static_cast<double>(1e-5f));
  EXPECT_TRUE(f->get("bool").as_bool());
  EXPECT_EQ(f->get("string").as_string(), "héllo");
  EXPECT_EQ(f->get("u64").as_int(), 1ll << 40);
  EXPECT_EQ(f->get("i64").as_int(), -(1ll << 40));
  EXPECT_EQ(f->get("f64").as_float(), 0.125);
  const auto& strings = f->get("strings").as_array();
  ASSERT_EQ(strings.size(), 2u);
  EXPECT_EQ(strings[1].as_string(), "bc");
  const auto& nested = f->get("nested").as_array();
  ASSERT_EQ(nested.size(), 3u);
  EXPECT_EQ(nested[0].as_array()[1].as_int(), 2);
  EXPECT_TRUE(nested[1].as_array().empty());
  EXPECT_EQ(nested[1].element_type, GgufValue::Type::U16);
  EXPECT_EQ(nested[2].as_array()[0].as_int(), 3);
  // Typed getters: defaults for absent keys, errors naming the key for wrong types.
  EXPECT_EQ(f->get_int("absent", 7), 7);
  EXPECT_EQ(f->get_string("absent", "x"), "x");
  EXPECT_THAT([&] { f->get_int("string", 0); },
              ::testing::ThrowsMessage<Error>(HasSubstr("'string' is a string, not an integer")));
  EXPECT_THAT([&] { f->get("absent"); }, ::testing::ThrowsMessage<Error>(HasSubstr("'absent' is missing")));
  EXPECT_EQ(f->get("nested").to_string(), "[[1, 2], [], [3]]");
  EXPECT_EQ(f->get("f32").to_string(), "1e-05");
  EXPECT_EQ(f->alignment(), 32u);
  EXPECT_EQ(f->data_start(), (b.size() + 31) / 32 * 32);
}

// Arrays keep their elements by kind (integers, floats, bools, strings, nested arrays); each
// element reads back as the value it was, in order, by index and by iteration.
TEST(Gguf, ArraysOfEveryKindReadBackElementByElement) {
  GgufBuilder b;
  b.header(3, 0, 5);
  b.key("i32s", 9).put<std::uint32_t>(5).put<std::uint64_t>(3).put<std::int32_t>(-7).put<std::int32_t>(0).put<std::int32_t>(
      std::numeric_limits<std::int32_t>::min());
  b.key("u64s", 9).put<std::uint32_t>(10).put<std::uint64_t>(2);
  b.put<std::uint64_t>(std::numeric_limits<std::uint64_t>::max()).put<std::uint64_t>(5);
  b.key("f32s", 9).put<std::uint32_t>(6).put<std::uint64_t>(2).put<float>(-1.5f).put<float>(3e-8f);
  b.key("bools", 9).put<std::uint32_t>(7).put<std::uint64_t>(3).put<std::uint8_t>(1).put<std::uint8_t>(0).put<std::uint8_t>(1);
  b.key("strings", 9).put<std::uint32_t>(8).put<std::uint64_t>(4).str("").str("▁the").str("").str("<|im_end|>");
  auto f = parse(b);
  const GgufArray& i32s = f->get("i32s").as_array();
  ASSERT_EQ(i32s.size(), 3u);
  EXPECT_EQ(i32s.element_type, GgufValue::Type::I32);
  EXPECT_EQ(i32s[0].as_int(), -7);
  EXPECT_EQ(i32s[1].as_int(), 0);
  EXPECT_EQ(i32s[2].as_int(), std::numeric_limits<std::int32_t>::min());
  EXPECT_EQ(i32s[2].type, GgufValue::Type::I32);
  const GgufArray& u64s = f->get("u64s").as_array();
  ASSERT_EQ(u64s.size(), 2u);
  EXPECT_EQ(std::get<std::uint64_t>(u64s[0].value), std::numeric_limits<std::uint64_t>::max());
  EXPECT_THAT([&] { u64s[0].as_int("u64s"); }, ::testing::ThrowsMessage<Error>(HasSubstr("too large")));
  EXPECT_EQ(u64s[1].as_int(), 5);
  const GgufArray& f32s = f->get("f32s").as_array();
  EXPECT_EQ(f32s[0].as_float(), -1.5);
  EXPECT_EQ(f32s[1].as_float(), static_cast<double>(3e-8f));
  std::vector<bool> bools;
  for (const GgufValue& v : f->get("bools").as_array()) bools.push_back(v.as_bool());
  EXPECT_EQ(bools, (std::vector<bool>{true, false, true}));
  std::vector<std::string> strings;
  for (const GgufValue& v : f->get("strings").as_array()) strings.push_back(v.as_string());
  EXPECT_EQ(strings, (std::vector<std::string>{"", "▁the", "", "<|im_end|>"}));
  EXPECT_THAT([&] { f->get("strings").as_array()[1].as_int("strings"); },
              ::testing::ThrowsMessage<Error>(HasSubstr("'strings' is a string, not an integer")));
  EXPECT_EQ(f->get("strings").to_string(2), "[\"\", \"▁the\", …] (4 × string)");
}

TEST(Gguf, ToStringAbbreviatesLongArrays) {
  GgufBuilder b;
  b.header(3, 0, 1).key("tokens", 9).put<std::uint32_t>(5).put<std::uint64_t>(100);
  for (int i = 0; i < 100; ++i) b.put<std::int32_t>(i);
  auto f = parse(b);
  EXPECT_EQ(f->get("tokens").to_string(3), "[0, 1, 2, …] (100 × i32)");
}

TEST(Gguf, ReadsTensorsAndTheirData) {
  for (std::uint32_t version : {2u, 3u}) {
    GgufBuilder b = small_file(version);
    auto f = parse(b);
    EXPECT_EQ(f->version(), version);
    ASSERT_EQ(f->tensors().size(), 1u);
    const GgufTensor& t = f->tensor("w");
    EXPECT_EQ(t.dims, (std::vector<std::int64_t>{4, 2}));
    EXPECT_EQ(t.elements(), 8);
    EXPECT_EQ(t.rows(), 2);
    EXPECT_EQ(t.row_bytes(), 16);
    EXPECT_EQ(t.bytes, 32u);
    EXPECT_EQ(t.file_offset % 32, 0u);
    float row[4];
    dequantize_rows(t, 1, 1, row);
    EXPECT_EQ(row[0], 4.0f);
    EXPECT_EQ(row[3], 7.0f);
    EXPECT_EQ(f->find_tensor("v"), nullptr);
    EXPECT_THROW(dequantize_rows(t, 1, 2, row), Error);
  }
}

TEST(Gguf, RejectsBadHeaders) {
  EXPECT_THAT(parse_error(small_file(1)), HasSubstr("version 1 is not supported"));
  EXPECT_THAT(parse_error(small_file(4)), HasSubstr("unknown GGUF version 4"));
  EXPECT_THAT(parse_error(small_file(0x03000000)), HasSubstr("big-endian"));
  GgufBuilder bad = small_file();
  bad.bytes[0] = 'X';
  EXPECT_THAT(parse_error(bad), HasSubstr("not a GGUF file"));
  GgufBuilder empty;
  EXPECT_THAT(parse_error(empty), HasSubstr("not a GGUF file"));
}

TEST(Gguf, EveryTruncationIsAnError) {
  const GgufBuilder full = small_file();
  for (std::size_t n = 0; n < full.size(); ++n) {
    GgufBuilder cut;
    cut.bytes.assign(full.bytes.begin(), full.bytes.begin() + static_cast<std::ptrdiff_t>(n));
    EXPECT_THROW(parse(cut), Error) << "prefix of " << n << " bytes";
  }
}

TEST(Gguf, HugeCountsFailBeforeAllocating) {
  GgufBuilder array;
  array.header(3, 0, 1).key("a", 9).put<std::uint32_t>(0).put<std::uint64_t>(1ull << 60);
  EXPECT_THAT(parse_error(array), HasSubstr("array of 1152921504606846976 u8 elements"));
  GgufBuilder strings;
  strings.header(3, 0, 1).key("a", 9).put<std::uint32_t>(8).put<std::uint64_t>(1ull << 60);
  EXPECT_THAT(parse_error(strings), HasSubstr("array of"));
  GgufBuilder string;
  string.header(3, 0, 1).key("s", 8).put<std::uint64_t>(~0ull);
  EXPECT_THAT(parse_error(string), HasSubstr("file truncated: s claims"));
  GgufBuilder kvs;
  kvs.header(3, 0, 1ull << 60);
  EXPECT_THAT(parse_error(kvs), HasSubstr("metadata count 1152921504606846976 cannot fit"));
  GgufBuilder tensors;
  tensors.header(3, ~0ull, 0);
  EXPECT_THAT(parse_error(tensors), HasSubstr("tensor count"));
  GgufBuilder deep;
  deep.header(3, 0, 1).key("d", 9);
  for (int i = 0; i < 20; ++i) deep.put<std::uint32_t>(9).put<std::uint64_t>(1);
  deep.put<std::uint32_t>(0).put<std::uint64_t>(0);
  EXPECT_THAT(parse_error(deep), HasSubstr("nested deeper"));
}

TEST(Gguf, NamesTheByteOffset) {
  GgufBuilder b;
  b.header(3, 0, 1).key("b", 7).put<std::uint8_t>(2);
  // 24-byte header, 8 + 1 key bytes, 4 type bytes: the bool byte is at 37.
  EXPECT_THAT(parse_error(b), HasSubstr("bool byte is 2, not 0 or 1 (at byte 37)"));
  GgufBuilder t;
  t.header(3, 0, 1).key("x", 13).put<std::uint8_t>(0);
  EXPECT_THAT(parse_error(t), HasSubstr("unknown value type 13 (at byte 33)"));
}

TEST(Gguf, RejectsDuplicateKeysAndEmptyKeys) {
  GgufBuilder b;
  b.header(3, 0, 2).kv_u32("k", 1).kv_u32("k", 2);
  EXPECT_THAT(parse_error(b), HasSubstr("duplicate metadata key 'k'"));
  GgufBuilder e;
  e.header(3, 0, 1).kv_u32("", 1);
  EXPECT_THAT(parse_error(e), HasSubstr("is empty"));
}

TEST(Gguf, Alignment) {
  auto with_alignment = [](std::uint32_t alignment) {
    GgufBuilder b;
    b.header(3, 1, 1).kv_u32("general.alignment", alignment);
    b.tensor("w", {8}, 0, 0).pad_to(alignment ? alignment : 1).zeros(32);
    return b;
  };
  auto f = parse(with_alignment(64));
  EXPECT_EQ(f->alignment(), 64u);
  EXPECT_EQ(f->data_start() % 64, 0u);
  EXPECT_EQ(f->tensor("w").file_offset, f->data_start());
  EXPECT_THAT(parse_error(with_alignment(0)), HasSubstr("general.alignment is 0"));
  EXPECT_THAT(parse_error(with_alignment(24)), HasSubstr("power of two"));
  EXPECT_THAT(parse_error(with_alignment(4)), HasSubstr("multiple of 8"));
  GgufBuilder s;
  s.header(3, 0, 1).kv_str("general.alignment", "32");
  EXPECT_THAT(parse_error(s), HasSubstr("general.alignment is a string"));
}

// A file with one tensor described by (dims, type, offset) and `data_bytes` zero bytes of data.
GgufBuilder one_tensor(std::vector<std::uint64_t> dims, std::uint32_t type, std::uint64_t offset,
                       std::size_t data_bytes) {
  GgufBuilder b;
  b.header(3, 1, 0).tensor("t", std::move(dims), type, offset).pad_to(32).zeros(data_bytes);
  return b;
}

TEST(Gguf, ChecksTensorInfos) {
  EXPECT_NO_THROW(parse(one_tensor({64, 2}, 3, 0, 80)));  // Q4_1: 2 rows × 2 blocks × 20 B
  EXPECT_THAT(parse_error(one_tensor({64, 2}, 3, 0, 79)), HasSubstr("runs past the end"));
  EXPECT_THAT(parse_error(one_tensor({48, 2}, 3, 0, 80)),
              HasSubstr("row length 48 is not a multiple of the Q4_1 block size 32"));
  EXPECT_THAT(parse_error(one_tensor({1, 1, 1, 1, 1}, 0, 0, 4)), HasSubstr("has 5 dimensions"));
  EXPECT_THAT(parse_error(one_tensor({}, 0, 0, 4)), HasSubstr("has 0 dimensions"));
  EXPECT_THAT(parse_error(one_tensor({4, 0}, 0, 0, 4)), HasSubstr("dimension 1 is 0"));
  EXPECT_THAT(parse_error(one_tensor({1ull << 32, 1ull << 32}, 0, 0, 4)), HasSubstr("overflows"));
  EXPECT_THAT(parse_error(one_tensor({1ull << 62}, 0, 0, 4)), HasSubstr("byte size overflows"));
  EXPECT_THAT(parse_error(one_tensor({4}, 99, 0, 16)), HasSubstr("unknown ggml type 99"));
  EXPECT_THAT(parse_error(one_tensor({4}, 0, 16, 64)), HasSubstr("not a multiple of the alignment 32"));
  EXPECT_THAT(parse_error(one_tensor({4}, 0, 1ull << 63, 64)), HasSubstr("runs past the end"));
  EXPECT_THAT(parse_error(one_tensor({4}, 0, 0, 0)), HasSubstr("runs past the end"));
}

TEST(Gguf, RejectsDuplicateAndOverlappingTensors) {
  GgufBuilder dup;
  dup.header(3, 2, 0).tensor("a", {8}, 0, 0).tensor("a", {8}, 0, 32).pad_to(32).zeros(64);
  EXPECT_THAT(parse_error(dup), HasSubstr("duplicate tensor name 'a'"));
  GgufBuilder overlap;
  overlap.header(3, 2, 0).tensor("a", {16}, 0, 0).tensor("b", {8}, 0, 32).pad_to(32).zeros(96);
  EXPECT_THAT(parse_error(overlap), HasSubstr("'b' (data offset 32) overlaps tensor 'a'"));
  GgufBuilder long_name;
  long_name.header(3, 1, 0).tensor(std::string(65, 'n'), {8}, 0, 0).pad_to(32).zeros(32);
  EXPECT_THAT(parse_error(long_name), HasSubstr("65 bytes long"));
}

TEST(Gguf, UnsupportedTypesOpenButDoNotDequantize) {
  auto f = parse(one_tensor({256}, 10, 0, 84));  // one Q2_K block
  const GgufTensor& t = f->tensor("t");
  EXPECT_EQ(t.bytes, 84u);
  EXPECT_FALSE(t.supported());
  EXPECT_EQ(ggml_type_name(t.type), "Q2_K");
  float out[256];
  EXPECT_THAT([&] { dequantize_rows(t, 0, 1, out); },
              ::testing::ThrowsMessage<Error>(HasSubstr("type Q2_K, which longsparse cannot dequantize")));
}

TEST(Gguf, OpenMapsAFile) {
  const std::string path = ::testing::TempDir() + "gguf_open_test.gguf";
  const GgufBuilder b = small_file();
  {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(b.bytes.data()), static_cast<std::streamsize>(b.size()));
  }
  auto f = GgufFile::open(path);
  EXPECT_EQ(f->file_size(), b.size());
  EXPECT_EQ(f->get_string("general.architecture", ""), "llama");
  float row[4];
  dequantize_rows(f->tensor("w"), 0, 1, row);
  EXPECT_EQ(row[2], 2.0f);
  f.reset();
  std::remove(path.c_str());
  EXPECT_THAT([&] { GgufFile::open(path); },
              ::testing::ThrowsMessage<Error>(HasSubstr("cannot open model file")));
  { std::ofstream empty(path); }
  EXPECT_THAT([&] { GgufFile::open(path); }, ::testing::ThrowsMessage<Error>(HasSubstr("is empty")));
  std::remove(path.c_str());
}

}  // namespace
}  // namespace ls
