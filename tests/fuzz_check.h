// How a fuzz target (tests/fuzz.bzl) reports a broken property:
// FUZZ_CHECK(condition, message parts...) (at least one part) prints the condition, where it is
// and the message (absl::StrCat of the parts) to stderr, then aborts. Under
// libFuzzer that is a crash: it saves the input as crash-<sha1> and prints
// it; under the replay driver the test fails after naming the input file.
#ifndef RINGSTORE_TESTS_FUZZ_CHECK_H_
#define RINGSTORE_TESTS_FUZZ_CHECK_H_

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"

namespace ringstore::fuzz {

[[noreturn]] inline void Fail(const char* condition, const char* file, int line,
                              const std::string& message) {
  std::fprintf(stderr, "%s:%d: FUZZ_CHECK(%s) failed: %s\n", file, line, condition,
               message.c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace ringstore::fuzz

#define FUZZ_CHECK(condition, ...)                                              \
  do {                                                                          \
    if (!(condition)) {                                                         \
      ::ringstore::fuzz::Fail(#condition, __FILE__, __LINE__,                   \
                              ::absl::StrCat(__VA_ARGS__));                      \
    }                                                                           \
  } while (0)

#endif  // RINGSTORE_TESTS_FUZZ_CHECK_H_
