// The BatchDownload RPC (DESIGN.md §3): many files in one server stream,
// for build caches and data sets full of small files.
//
// The request names up to kMaxBatchPaths paths; none, or more, is
// INVALID_ARGUMENT for the whole call, and so is a request that does not
// parse. With auth on the call needs the `read` scope and every path must
// lie under the token's prefix: one path outside it refuses the whole call
// with PERMISSION_DENIED (refused, not filtered), before any file is read.
//
// Each file is answered by its own messages, tagged with its `index` in
// the request: files complete in any order (many engine reads in flight),
// one file's messages come in offset order, its first carries `info` and
// `backend`, its last has `last` set (a file that fits in one message has
// both), and every message carries `offset`, `data` and the CRC32C of that
// data. A file that fails (NOT_FOUND, INVALID_ARGUMENT for a bad path, ...)
// gets one message with `error_code` (the gRPC code's number) and
// `error_message`, and nothing else; the others still arrive. A file that
// fails after some of its messages went out (a read error mid-file, which
// the store's open-then-read makes rare: an overwrite replaces the file by
// rename and the open one is read to its end) ends with such an error
// message instead of one with `last`: the client drops what it got of it.
// The call ends OK once every index has been answered; the trailer
// `ringstore-backend` names the engine that served its files.
//
// How it runs. A file is first read whole into one pool buffer with one
// engine operation (Store::ReadSmall: a linked chain on io_uring); a file
// larger than that is opened and read a chunk at a time, each chunk into a
// pool buffer. Up to InFlightCap(pool) files are being served at once
// (each with at most one engine operation in flight) and the call holds at
// most that many chunks (read or being read, queued or being sent), so one
// batch never takes more than a quarter of the pool (at most
// kMaxBatchInFlight buffers) and memory stays bounded by it. Buffers are
// lent to gRPC without a copy while the pool may lend
// (BufferPool::TryLend: less than half lent, as Download does,
// download_reactor.h); otherwise the call reads kBatchCopyChunk bytes
// at a time, copies them into a slice gRPC owns and gives the buffer back at
// once. Waits for buffers queue first-come first-served with everybody
// else's. One write is in flight at a time, and small messages wait in
// gRPC's write buffer while more are coming, so that many leave in one
// socket write; --idle_timeout ends a call whose client reads nothing
// (DEADLINE_EXCEEDED); a cancelled call cuts its engine reads short and
// withdraws its buffer waits. Disk work never runs in a reaction.
#ifndef RINGSTORE_SERVER_BATCH_DOWNLOAD_REACTOR_H_
#define RINGSTORE_SERVER_BATCH_DOWNLOAD_REACTOR_H_

#include <grpcpp/grpcpp.h>

#include <cstddef>

#include "server/service_options.h"
#include "storage/store.h"

namespace ringstore::server {

// Paths one BatchDownloadRequest may name.
inline constexpr int kMaxBatchPaths = 1000;
// The most files (and chunks) of one call in flight at once.
inline constexpr int kMaxBatchInFlight = 64;
// The size of a copied chunk when the pool may not lend.
inline constexpr size_t kBatchCopyChunk = 64 << 10;

// Files of one call in flight at once over a pool of `pool_count`
// buffers: a quarter of the pool, at least 1, at most kMaxBatchInFlight.
int InFlightCap(size_t pool_count);

// Starts a BatchDownload for the raw (serialised) BatchDownloadRequest
// `request`; the reactor deletes itself when the RPC is done. `store` and
// `options` outlive it.
grpc::ServerWriteReactor<grpc::ByteBuffer>* NewBatchDownloadReactor(
    grpc::CallbackServerContext* context, storage::Store* store,
    const ServiceOptions* options, const grpc::ByteBuffer* request);

}  // namespace ringstore::server

#endif  // RINGSTORE_SERVER_BATCH_DOWNLOAD_REACTOR_H_
