#include "methods/registry.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace ls {
namespace {

TEST(MethodSpec, Parses) {
  MethodSpec spec = parse_method_spec("streaming:sink=4, window=128");
  EXPECT_EQ(spec.name, "streaming");
  ASSERT_EQ(spec.values.size(), 2u);
  EXPECT_EQ(spec.values[1].first, "window");
  EXPECT_EQ(spec.values[1].second, "128");
  EXPECT_THROW(parse_method_spec(":x=1"), Error);
  EXPECT_THROW(parse_method_spec("a:x"), Error);
}

TEST(MethodRegistry, UnknownMethodListsValidOnes) {
  try {
    MethodRegistry::instance().make_prefill("no-such-method");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("dense"), std::string::npos) << e.what();
  }
}

TEST(MethodRegistry, DenseHasNoParameters) {
  auto method = MethodRegistry::instance().make_prefill("dense");
  EXPECT_EQ(method->spec(), "dense");
  EXPECT_THROW(MethodRegistry::instance().make_prefill("dense:x=1"), Error);
}

}  // namespace
}  // namespace ls
