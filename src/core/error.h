// Errors: one exception type with a message that tells the user what went wrong and,
// where possible, what to do. Library code throws; the CLI catches, prints and exits non-zero.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>
#include <utility>

namespace ls {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Throws ls::Error with a fmt-formatted message.
template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace ls

// Checks a condition that depends on input (files, flags, shapes); throws ls::Error otherwise.
#define LS_CHECK(cond, ...)        \
  do {                             \
    if (!(cond)) ls::fail(__VA_ARGS__); \
  } while (0)
