// A small synchronous client for the ringstore FileStore API.
//
// Each method makes one RPC (List follows pages) and returns its grpc::Status;
// on success the out-parameters are filled, including `backend`, the name of
// the engine that served the call ("io_uring", "posix_aio", "thread_pool"),
// taken from the response or the `ringstore-backend` trailer. Data is checked
// end to end with CRC32C: uploads send each message's checksum and compare
// the committed file's; downloads verify every message and, for whole files,
// the file's checksum. A mismatch is DATA_LOSS.
//
// Thread-safe: calls may run concurrently. Unary calls have a deadline
// (ClientOptions::unary_timeout); streams have none.
#ifndef RINGSTORE_CLIENT_CLIENT_H_
#define RINGSTORE_CLIENT_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "ringstore/v1/ringstore.grpc.pb.h"

namespace ringstore::client {

struct ClientOptions {
  std::string server = "127.0.0.1:50051";
  // TLS when any of the three is set, else plaintext. PEM root certificates
  // the server's certificate must chain to (empty with TLS: the system's).
  std::string tls_ca_pem;
  // PEM client certificate chain and its private key, for a server that
  // requires client certificates (mTLS); both or neither.
  std::string tls_cert_pem;
  std::string tls_key_pem;
  // Sent as "authorization: Bearer <token>" when not empty.
  std::string token;
  absl::Duration unary_timeout = absl::Seconds(30);
};

// Called as data moves: bytes done so far and the total (0 if unknown).
using Progress = std::function<void(int64_t done, int64_t total)>;

struct PutOptions {
  // Fail with ALREADY_EXISTS if the path exists.
  bool if_absent = false;
  // Total size if known (sent as UploadSpec.size), else 0. PutResumable
  // uploads exactly this many bytes of its file.
  int64_t size = 0;
  size_t chunk_bytes = 1 << 20;
  Progress progress;
  // PutResumable: how many times in a row a broken transfer is resumed
  // (the count starts again once a resumed stream has made progress).
  int retries = 5;
  // PutResumable: called with a new session's upload_id once StartUpload
  // has created it, before any data is sent (the CLI's tracker file).
  std::function<void(const std::string& upload_id)> on_session;
};

// Files of at least this size are uploaded resumably by the CLI.
inline constexpr int64_t kResumableMinBytes = 8 << 20;

// Whether PutResumable retries after `code`: UNAVAILABLE (a dropped
// connection, a restarting server), DEADLINE_EXCEEDED, and ABORTED (the
// server still holds the session for the stream that broke).
bool IsRetryable(grpc::StatusCode code);

struct GetOptions {
  int64_t offset = 0;
  // Bytes to read; 0 = to the end.
  int64_t length = 0;
  Progress progress;
  // A stream that breaks (UNAVAILABLE: the connection dropped, the server
  // restarted) is resumed where it stopped, pinned to the generation it
  // started with (DownloadRequest.if_generation_match: a file replaced
  // meanwhile ends the download with FAILED_PRECONDITION), up to this many
  // times, after 100 ms, 200 ms, ... (at most 5 s) of backoff.
  int retries = 0;
};

// The most paths one BatchGet (one BatchDownload call) may name.
inline constexpr int kMaxBatchPaths = 1000;

// Where BatchGet delivers the files of one BatchDownload. Called on the
// caller's thread, one call at a time; one file's calls come in order
// (Begin, Data in offset order, End), the files' calls interleaved.
class BatchSink {
 public:
  virtual ~BatchSink() = default;
  // File `index`'s first message arrived: its info and the engine.
  virtual void Begin(int index, const v1::FileInfo& info, const std::string& backend) = 0;
  // The file's bytes at `offset`, each message's CRC32C checked. A
  // non-OK return ends the file with that status (its other messages are
  // ignored; End is called with it).
  virtual grpc::Status Data(int index, int64_t offset, absl::string_view data) = 0;
  // The file is done: OK once all its bytes came and the whole file's
  // CRC32C matched info.crc32c (when the server knows it); else the
  // server's error for it (NOT_FOUND ...), DATA_LOSS for a bad message, or
  // Data's error. Begin may not have been called (a failed file). Files the
  // call did not reach before it failed get no End: the call's status says.
  virtual void End(int index, const grpc::Status& status) = 0;
};

// The checks the messages of one file of a BatchDownload get (BatchGet,
// bench/load_gen): the first carries info, offsets follow each other from
// 0, each message's CRC32C matches its data, and the last (`last`) ends at
// info.size with the whole file's CRC32C (when the server knows it).
class BatchFileCheck {
 public:
  // Checks `m`, a message of this file without error_code. OK, or
  // DATA_LOSS saying what is wrong.
  grpc::Status Add(const v1::BatchDownloadResponse& m);
  bool begun() const { return begun_; }
  int64_t size() const { return size_; }

 private:
  bool begun_ = false;
  int64_t next_ = 0;
  int64_t size_ = 0;
  uint32_t expected_crc_ = 0;
  uint32_t crc_ = 0;
};

// "thread_pool" for BACKEND_THREAD_POOL etc.; "" for unspecified.
std::string BackendName(v1::Backend backend);

class Client {
 public:
  explicit Client(const ClientOptions& options);

  // Uploads everything read from `fd` (until end of file) to `remote`.
  grpc::Status Put(int fd, const std::string& remote, const PutOptions& options,
                   v1::FileInfo* info, std::string* backend);
  // Writes `remote` (or the range) to `fd`. On error some data may already
  // have been written to `fd`; callers writing a file use a temp file.
  grpc::Status Get(const std::string& remote, const GetOptions& options, int fd,
                   v1::FileInfo* info, std::string* backend);
  // One BatchDownload of `paths` (1 to kMaxBatchPaths), its files
  // delivered to `sink` as they arrive. The call's status: OK when every
  // file was answered (each with its own status, in End), else why the call
  // failed (INVALID_ARGUMENT, PERMISSION_DENIED, UNAVAILABLE ...). `backend`
  // gets the ringstore-backend trailer.
  grpc::Status BatchGet(const std::vector<std::string>& paths, BatchSink* sink,
                        std::string* backend);
  grpc::Status Stat(const std::string& remote, v1::FileInfo* info, std::string* backend);
  // Calls `each` for every file under `prefix`, in path order.
  grpc::Status List(const std::string& prefix,
                    const std::function<void(const v1::FileInfo&)>& each,
                    std::string* backend);
  grpc::Status Delete(const std::string& remote, std::string* backend);
  grpc::Status GetServerInfo(v1::ServerInfo* info);
  // A resumable upload (DESIGN.md §3) of the first options.size bytes of
  // the regular file `fd`, read with pread (the file offset is left
  // alone). `*upload_id` names a session to continue (an earlier run's),
  // or is empty to start one. A session to continue is first attached by
  // an empty stream the client half-closes (the server then answers once
  // any stream it still held has persisted its bytes; a committed session
  // answers with its FileInfo, which ends the put); an unknown one
  // (NOT_FOUND: expired, cancelled, another token's) is replaced by a new
  // one. A new session comes from StartUpload, whose spec carries the size,
  // if_absent's precondition and the whole file's CRC32C (computed in a
  // first pass over the file); its id goes to `*upload_id` and
  // options.on_session before any data is sent. The file is then streamed
  // from QueryUpload's persisted_size. A retryable failure (IsRetryable)
  // of any of these calls waits 100 ms, 200 ms, ... (at most 5 s), attaches
  // again and resumes from persisted_size, up to options.retries times in
  // a row. Any other failure ends the put; the session is left as it is
  // (CancelUpload drops it). On success `info` is the committed file,
  // checked against the local size and CRC32C (DATA_LOSS otherwise).
  grpc::Status PutResumable(int fd, const std::string& remote, const PutOptions& options,
                            std::string* upload_id, v1::FileInfo* info, std::string* backend);
  grpc::Status StartUpload(const v1::UploadSpec& spec, std::string* upload_id);
  grpc::Status QueryUpload(const std::string& upload_id, v1::QueryUploadResponse* response);
  grpc::Status CancelUpload(const std::string& upload_id);

 private:
  void Prepare(grpc::ClientContext* context, bool unary) const;
  // One Upload stream on session `upload_id`: the file's bytes from
  // `offset` to options.size, the last message with finish. `offset` ==
  // options.size sends one message with finish and no data.
  grpc::Status StreamSession(int fd, const std::string& upload_id, int64_t offset,
                             const PutOptions& options, v1::UploadResponse* response,
                             std::string* trailer_backend);
  // The empty, half-closed stream that attaches to a session (PutResumable).
  grpc::Status AttachSession(const std::string& upload_id, v1::UploadResponse* response,
                             std::string* trailer_backend);

  const ClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::FileStore::Stub> stub_;
};

}  // namespace ringstore::client

#endif  // RINGSTORE_CLIENT_CLIENT_H_
