// ThreadSanitizer builds only: absl::Status's reference count, made visible.
//
// Debian's libabsl_status is not built with the sanitizer, so when the last
// reference to a Status's message goes, the acquire/release decrement in
// Status::UnrefNonInlined happens where the sanitizer cannot see it, and the
// free that follows looks unordered with every earlier use of the message
// on other threads. This definition takes the place of the library's (the
// dynamic linker binds the inline callers to the first definition it finds,
// which is this one) and does exactly what Abseil 20220623's does, in
// instrumented code. Nothing here is compiled outside --config=tsan.
#include "absl/base/config.h"  // ABSL_HAVE_THREAD_SANITIZER

#if defined(ABSL_HAVE_THREAD_SANITIZER)
#include <atomic>
#include <cstdint>

#include "absl/status/internal/status_internal.h"
#include "absl/status/status.h"

namespace absl {
ABSL_NAMESPACE_BEGIN

void Status::UnrefNonInlined(uintptr_t rep) {
  status_internal::StatusRep* r = RepToPointer(rep);
  if (r->ref.load(std::memory_order_acquire) == 1 ||
      r->ref.fetch_sub(1, std::memory_order_acq_rel) - 1 == 0) {
    delete r;
  }
}

ABSL_NAMESPACE_END
}  // namespace absl
#endif
