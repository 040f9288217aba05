// Feeds every file of the fuzz seed corpus (fuzz/corpus/gguf, written by fuzz/make_corpus.py)
// to the reader: ok_* files must parse and decode, bad_* files must be rejected with ls::Error,
// and nothing may crash. The fuzzer itself runs with `make fuzz`.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include "core/error.h"
#include "model/gguf.h"
#include "model/quant.h"

namespace ls {
namespace {

std::vector<std::uint8_t> read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// What the fuzz target does with a file that parses: format metadata, decode every row.
void exercise(const GgufFile& file) {
  for (const auto& [key, value] : file.metadata()) EXPECT_FALSE(value.to_string().empty());
  for (const GgufTensor& t : file.tensors()) {
    if (!can_dequantize(t.type)) continue;
    std::vector<float> rows(static_cast<std::size_t>(t.elements()));
    dequantize_rows(t, 0, t.rows(), rows.data());
  }
}

TEST(GgufCorpus, EveryFileParsesOrIsRejected) {
  const std::filesystem::path dir = std::filesystem::path(LONGSPARSE_SOURCE_DIR) / "fuzz/corpus/gguf";
  ASSERT_TRUE(std::filesystem::is_directory(dir)) << dir;
  int ok = 0, bad = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    const std::vector<std::uint8_t> bytes = read_file(entry.path());
    std::string error;
    try {
      auto file = GgufFile::parse(bytes.data(), bytes.size(), name);
      exercise(*file);
    } catch (const Error& e) {
      error = e.what();
    }
    if (name.rfind("ok_", 0) == 0) {
      EXPECT_EQ(error, "") << name;
      ++ok;
    } else {
      EXPECT_NE(error, "") << name << " parsed but should have been rejected";
      ++bad;
    }
  }
  EXPECT_GE(ok, 15);
  EXPECT_GE(bad, 30);
}

}  // namespace
}  // namespace ls
