// FuzzInput: a fuzz target's input read as a stream of small values, for
// targets that build structured calls from the bytes (tests/fuzz.bzl).
// Reading past the end yields zeros and empty strings, so every input,
// however short, decodes to something.
#ifndef RINGSTORE_TESTS_FUZZ_INPUT_H_
#define RINGSTORE_TESTS_FUZZ_INPUT_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

namespace ringstore::fuzz {

class FuzzInput {
 public:
  FuzzInput(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  bool empty() const { return pos_ >= size_; }
  size_t remaining() const { return size_ - pos_; }

  uint8_t Byte() { return pos_ < size_ ? data_[pos_++] : 0; }
  // Little-endian, `n` bytes (at most 8).
  uint64_t Uint(int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= uint64_t{Byte()} << (8 * i);
    return v;
  }
  uint16_t U16() { return static_cast<uint16_t>(Uint(2)); }
  uint32_t U32() { return static_cast<uint32_t>(Uint(4)); }
  uint64_t U64() { return Uint(8); }
  // Up to `n` bytes (fewer at the end of the input).
  std::string Bytes(size_t n) {
    n = std::min(n, remaining());
    std::string s(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n;
    return s;
  }
  // A length byte, then that many bytes.
  std::string ShortString() { return Bytes(Byte()); }
  std::string Rest() { return Bytes(remaining()); }

 private:
  const uint8_t* const data_;
  const size_t size_;
  size_t pos_ = 0;
};

}  // namespace ringstore::fuzz

#endif  // RINGSTORE_TESTS_FUZZ_INPUT_H_
