#include "storage/engine/engine.h"

namespace ringstore::storage {

absl::string_view BackendName(Backend backend) {
  switch (backend) {
    case Backend::kIoUring:
      return "io_uring";
    case Backend::kPosixAio:
      return "posix_aio";
    case Backend::kThreadPool:
      return "thread_pool";
    case Backend::kUnspecified:
      break;
  }
  return "unspecified";
}

}  // namespace ringstore::storage
