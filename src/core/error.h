// Error handling shared by every layer of ropepp.
//
// Input from outside (files, flags, HTTP fields) is validated at the boundary
// in every build type and reported with ropepp::Error: the message names the
// file or field, the value found, what was expected and how to fix it. Kernels
// then assume valid input and state their preconditions.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace ropepp {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Throws ropepp::Error with a message built by fmt::format.
template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace ropepp

// Checks a condition on caller input and throws ropepp::Error when it is false.
// Always on, also in release builds.
#define ROPEPP_CHECK(condition, ...)  \
  do {                                \
    if (!(condition)) {               \
      ::ropepp::fail(__VA_ARGS__);    \
    }                                 \
  } while (0)
