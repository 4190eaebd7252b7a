#include "storage/engine/status_util.h"

#include <cerrno>
#include <cstring>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"

namespace ringstore::storage {

absl::Status ErrnoToStatus(int err, absl::string_view what) {
  std::string message = absl::StrCat(what, ": ", std::strerror(err));
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return absl::NotFoundError(message);
    case EEXIST:
      return absl::AlreadyExistsError(message);
    case ENOSPC:
    case EDQUOT:
    case EMFILE:
    case ENFILE:
    case ENOMEM:
    case EFBIG:
      return absl::ResourceExhaustedError(message);
    case EACCES:
    case EPERM:
    case ELOOP:
    case EXDEV:
      return absl::PermissionDeniedError(message);
    case EINVAL:
    case ENAMETOOLONG:
      return absl::InvalidArgumentError(message);
    case EISDIR:
    case ENOTEMPTY:
      return absl::FailedPreconditionError(message);
    case EAGAIN:
    case EINTR:
      return absl::UnavailableError(message);
    case ECANCELED:
      return absl::CancelledError(message);
    case ENOSYS:
    case EOPNOTSUPP:
      return absl::UnimplementedError(message);
    default:
      return absl::InternalError(message);
  }
}

namespace {
constexpr char kRefusedPayload[] = "type.ringstore.dev/refused";
}  // namespace

absl::Status MarkRefused(absl::Status status) {
  if (!status.ok()) status.SetPayload(kRefusedPayload, absl::Cord("1"));
  return status;
}

bool IsRefusal(const absl::Status& status) {
  return status.GetPayload(kRefusedPayload).has_value();
}

}  // namespace ringstore::storage
