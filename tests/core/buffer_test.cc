#include "core/buffer.h"

#include <gtest/gtest.h>

#include <cstdint>

#include "core/error.h"
#include "core/parallel.h"

namespace ls {
namespace {

TEST(Buffer, IsAlignedAndMovable) {
  Buffer<float> a(1000, /*zero=*/true);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(a.data()) % kAlignment, 0u);
  EXPECT_EQ(a[999], 0.0f);
  a[3] = 7.0f;
  Buffer<float> b = std::move(a);
  EXPECT_TRUE(a.empty());
  EXPECT_EQ(b[3], 7.0f);
  Buffer<float> c = b.Copy();
  c[3] = 1.0f;
  EXPECT_EQ(b[3], 7.0f);
}

TEST(MatrixView, StridedRows) {
  float data[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
  MatrixView<float> m(data, 3, 2, 4);
  EXPECT_EQ(m(2, 1), 9.0f);
  EXPECT_EQ(m.block_rows(1, 2)(0, 0), 4.0f);
}

TEST(Error, CheckFormatsMessage) {
  try {
    LS_CHECK(1 + 1 == 3, "bad value {} for '{}'", 42, "x");
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "bad value 42 for 'x'");
  }
}

TEST(Parallel, CoversEveryIndexOnce) {
  std::vector<int> hits(1000, 0);
  parallel_for(1000, [&](std::int64_t i) { hits[i] += 1; });
  for (int h : hits) EXPECT_EQ(h, 1);
}

}  // namespace
}  // namespace ls
