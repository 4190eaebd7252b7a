// The Download RPC: a storage::Reader streamed to the client in chunks of
// one pool buffer.
//
// The first message carries `info` (the file as opened) and `backend`; every
// message carries `offset`, `data` and the CRC32C of that data. `offset` and
// `limit` select a range (limit 0 = to the end); an offset past the end is
// OUT_OF_RANGE, an offset equal to the size gives one message with no data.
// The download reads the file it opened: a concurrent overwrite does not mix
// two versions into one stream.
//
// Memory and fairness. A chunk is read into a pool buffer and, while the
// pool may lend (BufferPool::TryLend: fewer than half its buffers lent),
// sent from that buffer without a copy, a whole buffer at
// a time (download_message.h); a download then holds at most kReadAhead
// chunks read ahead plus the one gRPC is sending. A buffer lent to a gRPC
// write cannot be taken back, and a client that stops reading never lets
// its write complete, so when the pool may not lend the download reads
// kCopyChunk bytes, copies them into a slice gRPC owns and gives the pool
// buffer back at once: it holds a pool buffer only for the disk read, and
// at most kCopyHeld such copies (the one being sent included), however long
// its client stalls. So stalled clients hold at most half the pool between
// them, the other half keeps serving everybody else, and each stalled
// download costs at most kCopyHeld * kCopyChunk bytes beyond the pool
// until --idle_timeout ends it (ServiceOptions::idle_timer: a write pending
// that long cancels the RPC, DEADLINE_EXCEEDED, which frees what gRPC held).
// Reads run ahead only while there is room, so the gRPC writer paces the
// disk. A wait for a pool buffer is withdrawn when the RPC is cancelled.
// Disk work never runs in a reaction.
#ifndef RINGSTORE_SERVER_DOWNLOAD_REACTOR_H_
#define RINGSTORE_SERVER_DOWNLOAD_REACTOR_H_

#include <grpcpp/grpcpp.h>

#include "ringstore/v1/ringstore.pb.h"
#include "server/service_options.h"
#include "storage/store.h"

namespace ringstore::server {

// Chunks one download may read ahead of the one being sent, lent pool
// buffers of a whole buffer each.
inline constexpr int kReadAhead = 2;
// When the pool may not lend: the size of a copied chunk, and how many
// copied chunks (including the one being sent) one download may hold. A
// one-message download of a small file without a loan reads up to
// kCopyHeld * kCopyChunk bytes.
inline constexpr size_t kCopyChunk = 64 << 10;
inline constexpr int kCopyHeld = 2;

// Starts a Download for the raw (serialised) DownloadRequest `request`; the
// reactor deletes itself when the RPC is done. `store` and `options` outlive
// it.
grpc::ServerWriteReactor<grpc::ByteBuffer>* NewDownloadReactor(
    grpc::CallbackServerContext* context, storage::Store* store,
    const ServiceOptions* options, const grpc::ByteBuffer* request);

}  // namespace ringstore::server

#endif  // RINGSTORE_SERVER_DOWNLOAD_REACTOR_H_
