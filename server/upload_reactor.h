// The Upload RPC: a client stream of UploadRequest turned into one
// storage::Writer and committed on `finish`.
//
// Message rules (DESIGN.md §3): the first message carries `spec` (a plain
// upload: Store::CreateWriter) or `upload_id` (a resumable session started
// by StartUpload: Store::ResumeUpload); later messages carry neither.
// `data` of at most max_chunk_bytes (RESOURCE_EXHAUSTED) lands at `offset`,
// which must not pass the bytes the Writer holds (ABORTED; for a session,
// "offset X is past the persisted size Y"); bytes below it are skipped, as
// when resuming. A per-message `crc32c` must match (DATA_LOSS). The message
// with `finish` commits.
//
// A plain upload that ends without `finish` commits nothing
// (INVALID_ARGUMENT); on any failure its temp data is removed and nothing
// becomes visible.
//
// A resumed session: the call needs the `write` scope, and the token's
// path prefix is checked against the session's path once the store has
// answered (PERMISSION_DENIED). The owner is the token's hash
// (authorize.h's UploadOwner), so another token's session, like an unknown
// or expired one, is NOT_FOUND; a second stream on one session is ABORTED.
// A session already committed answers OK with its FileInfo and ignores the
// rest of the stream. A stream the client half-closes without `finish`
// persists what it delivered (Writer::Persist) and answers OK with `file`
// unset; one that is cancelled, dropped or idle drops its Writer, which
// persists in the background (store.h). A long stream also persists every
// 64 MiB, so a server that dies loses at most that much of it. A failed commit check removes the
// session (store.h); any other failure keeps it as last persisted.
//
// Exactly one step is in flight until the RPC ends: a read of the next
// message or one storage call; a message is released only when its data
// has been handed to the store. Disk work never runs in a reaction:
// reactions start storage calls, whose completions start the next read.
// A cancelled upload (the client went away, the deadline passed) stops
// writing at once: the append in flight ends Cancelled without starting
// another write or waiting for a pool buffer, the RPC ends, and the temp
// data is removed once the writes already in flight have given their
// buffers back.
#ifndef RINGSTORE_SERVER_UPLOAD_REACTOR_H_
#define RINGSTORE_SERVER_UPLOAD_REACTOR_H_

#include <grpcpp/grpcpp.h>

#include "ringstore/v1/ringstore.pb.h"
#include "server/service_options.h"
#include "storage/store.h"

namespace ringstore::server {

// Starts an Upload; the reactor deletes itself when the RPC is done.
// `store` and `options` outlive it.
grpc::ServerReadReactor<v1::UploadRequest>* NewUploadReactor(
    grpc::CallbackServerContext* context, storage::Store* store,
    const ServiceOptions* options, v1::UploadResponse* response);

}  // namespace ringstore::server

#endif  // RINGSTORE_SERVER_UPLOAD_REACTOR_H_
