// Ownership of one file descriptor of this process.
//
// A ScopedFd closes its descriptor when it is destroyed or reset, exactly
// once; release() hands the descriptor on without closing it. Move-only. The
// close is a plain close(2) whose result is ignored (Linux frees the
// descriptor even when close fails): a descriptor whose close result
// matters, such as a file written through, is closed explicitly instead
// (PosixFiles::Close). Not thread-safe; never blocks except as close(2) may.
#ifndef RINGSTORE_STORAGE_ENGINE_SCOPED_FD_H_
#define RINGSTORE_STORAGE_ENGINE_SCOPED_FD_H_

#include <unistd.h>

#include <utility>

namespace ringstore::storage {

class ScopedFd {
 public:
  ScopedFd() = default;
  // Takes ownership of `fd` (-1: none).
  explicit ScopedFd(int fd) : fd_(fd) {}
  ScopedFd(ScopedFd&& other) noexcept : fd_(other.release()) {}
  ScopedFd& operator=(ScopedFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  ~ScopedFd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  // Gives up ownership without closing.
  int release() { return std::exchange(fd_, -1); }
  // Closes the descriptor held, if any, and takes `fd`.
  void reset(int fd = -1) {
    const int old = std::exchange(fd_, fd);
    if (old >= 0) ::close(old);
  }

 private:
  int fd_ = -1;
};

}  // namespace ringstore::storage

#endif  // RINGSTORE_STORAGE_ENGINE_SCOPED_FD_H_
