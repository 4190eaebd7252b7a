// Runs an operation that one engine refuses on the next one.
//
// DESIGN.md §2: if io_uring fails at run time for one operation with
// ENOSYS, EOPNOTSUPP or EPERM (a seccomp profile that forbids one opcode, a
// kernel built without it), that request is retried on the next engine and
// the response reports the engine that really served it. Engines mark such
// failures with MarkRefused (status_util.h); this wrapper forwards every
// operation to `primary` and, when the answer is a refusal, runs the same
// operation again on `fallback`, whose answer and Backend then stand.
//
// This works because every engine's FileHandle is a plain file descriptor of
// this process, valid for every other engine. info() is the primary's.
#ifndef RINGSTORE_STORAGE_ENGINE_FALLBACK_ENGINE_H_
#define RINGSTORE_STORAGE_ENGINE_FALLBACK_ENGINE_H_

#include <memory>

#include "storage/engine/engine.h"

namespace ringstore::storage {

std::unique_ptr<Engine> WithFallback(std::unique_ptr<Engine> primary,
                                     std::unique_ptr<Engine> fallback);

}  // namespace ringstore::storage

#endif  // RINGSTORE_STORAGE_ENGINE_FALLBACK_ENGINE_H_
