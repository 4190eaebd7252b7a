// Error helpers shared by everything below server/.
//
// errno values become absl::Status in exactly one place (ErrnoToStatus) with
// the most specific code, and two small macros replace the status macros this
// Abseil release does not ship.
#ifndef RINGSTORE_STORAGE_ENGINE_STATUS_UTIL_H_
#define RINGSTORE_STORAGE_ENGINE_STATUS_UTIL_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ringstore::storage {

// Maps errno `err` to a Status whose message is "<what>: <strerror>".
// ENOENT/ENOTDIR → NotFound, EEXIST → AlreadyExists, ENOSPC/EDQUOT/EMFILE/
// ENFILE/ENOMEM/EFBIG → ResourceExhausted, EACCES/EPERM/ELOOP/EXDEV (path
// escapes the root) → PermissionDenied, EINVAL/ENAMETOOLONG → InvalidArgument,
// EISDIR/ENOTEMPTY → FailedPrecondition, EAGAIN/EINTR → Unavailable,
// ECANCELED → Cancelled, ENOSYS/EOPNOTSUPP → Unimplemented, else Internal.
absl::Status ErrnoToStatus(int err, absl::string_view what);

// A refusal: the kernel interface an engine is built on refused a call
// (ENOSYS, EOPNOTSUPP, or EPERM from a seccomp profile), so the same
// operation may succeed on another engine (fallback_engine.h). Marked with
// a payload; the code and message stay as they are.
absl::Status MarkRefused(absl::Status status);
bool IsRefusal(const absl::Status& status);

}  // namespace ringstore::storage

#define RS_STATUS_CONCAT_INNER_(a, b) a##b
#define RS_STATUS_CONCAT_(a, b) RS_STATUS_CONCAT_INNER_(a, b)

// Returns from the current function if `expr` (an absl::Status) is not OK.
#define RS_RETURN_IF_ERROR(expr)                 \
  do {                                           \
    ::absl::Status rs_status_ = (expr);          \
    if (!rs_status_.ok()) return rs_status_;     \
  } while (0)

// `lhs = value of expr` if `expr` (an absl::StatusOr) is OK, else returns its
// status from the current function.
#define RS_ASSIGN_OR_RETURN(lhs, expr) \
  RS_ASSIGN_OR_RETURN_IMPL_(RS_STATUS_CONCAT_(rs_statusor_, __LINE__), lhs, expr)
#define RS_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return tmp.status();             \
  lhs = std::move(tmp).value()

#endif  // RINGSTORE_STORAGE_ENGINE_STATUS_UTIL_H_
