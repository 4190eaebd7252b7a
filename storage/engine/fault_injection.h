// A test seam that makes chosen kernel-level steps of an engine fail.
//
// Failure paths that the kernel rarely takes (an fsync that fails during a
// commit, a close cancelled inside a linked chain, an io_uring opcode that a
// seccomp profile refuses at run time) must be tested on the real engines,
// not on a mock. Each engine asks the injector before every step it hands to
// the kernel; a step the injector picks fails with the injector's errno
// exactly as if the kernel had returned it:
//   - the thread-pool engine skips the system call and takes the errno;
//   - the io_uring engine submits, in the step's place, a NOP whose result
//     the kernel sets to -errno (IORING_NOP_INJECT_RESULT), so a linked
//     chain breaks inside the kernel the way a real failure breaks it.
// Production code passes no injector (EngineOptions::faults is null), which
// costs one pointer test per step.
//
// Thread-safe.
#ifndef RINGSTORE_STORAGE_ENGINE_FAULT_INJECTION_H_
#define RINGSTORE_STORAGE_ENGINE_FAULT_INJECTION_H_

#include <array>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "storage/engine/sync.h"

namespace ringstore::storage {

// The kernel-level steps engines perform.
enum class Step {
  kOpen,      // openat2
  kRead,      // read, read_fixed, pread, aio_read
  kWrite,     // write, write_fixed, pwrite, aio_write
  kFsync,     // fsync or fdatasync of a file or directory
  kClose,     // close, close_direct
  kStat,      // statx, fstat
  kGetXattr,  // fgetxattr
  kSetXattr,  // fsetxattr
  kRename,    // renameat
  kUnlink,    // unlinkat of a file
  kMkdir,     // mkdirat
  kRmdir,     // unlinkat of a directory
  kTruncate,  // ftruncate
  kCount,
};

absl::string_view StepName(Step step);

class FaultInjector {
 public:
  FaultInjector() = default;
  FaultInjector(const FaultInjector&) = delete;
  FaultInjector& operator=(const FaultInjector&) = delete;

  // From now on, every `every`-th step of kind `step` fails with `err` (a
  // positive errno), `count` times in all (-1: without end). Rules add up:
  // the first rule of a step that fires decides.
  void Fail(Step step, int err, int every = 1, int count = -1);
  // Removes every rule.
  void Clear();

  // For engines: 0 if `step` goes ahead, else the errno it must fail with.
  int Take(Step step);
  // Failures injected so far, of one kind of step.
  int injected(Step step) const;

 private:
  struct Rule {
    int err;
    int every;
    int count;
    int seen = 0;
  };
  static constexpr size_t kSteps = static_cast<size_t>(Step::kCount);

  mutable Mutex mu_;
  std::array<std::vector<Rule>, kSteps> rules_ ABSL_GUARDED_BY(mu_);
  std::array<int, kSteps> injected_ ABSL_GUARDED_BY(mu_) = {};
};

// `faults->Take(step)`, or 0 without an injector.
inline int InjectedErrno(FaultInjector* faults, Step step) {
  return faults == nullptr ? 0 : faults->Take(step);
}

}  // namespace ringstore::storage

#endif  // RINGSTORE_STORAGE_ENGINE_FAULT_INJECTION_H_
