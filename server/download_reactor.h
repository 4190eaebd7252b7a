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
// Memory: a download holds at most kReadAhead pool buffers (reads in flight
// or waiting for the writer) plus the one gRPC is sending, however slow the
// client: the data goes out of its pool buffer without a copy
// (download_message.h). Reads run ahead only while there is room, so the
// gRPC writer paces the disk. Disk work never runs in a reaction.
#ifndef RINGSTORE_SERVER_DOWNLOAD_REACTOR_H_
#define RINGSTORE_SERVER_DOWNLOAD_REACTOR_H_

#include <grpcpp/grpcpp.h>

#include "ringstore/v1/ringstore.pb.h"
#include "server/service_options.h"
#include "storage/store.h"

namespace ringstore::server {

// Pool buffers one download may hold at once.
inline constexpr int kReadAhead = 2;

// Starts a Download for the raw (serialised) DownloadRequest `request`; the
// reactor deletes itself when the RPC is done. `store` and `options` outlive
// it.
grpc::ServerWriteReactor<grpc::ByteBuffer>* NewDownloadReactor(
    grpc::CallbackServerContext* context, storage::Store* store,
    const ServiceOptions* options, const grpc::ByteBuffer* request);

}  // namespace ringstore::server

#endif  // RINGSTORE_SERVER_DOWNLOAD_REACTOR_H_
