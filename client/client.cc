#include "client/client.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/download_decoder.h"
#include "third_party/system/crc32c.h"

namespace ringstore::client {
namespace {

std::string TrailerBackend(const grpc::ClientContext& context) {
  const auto& trailers = context.GetServerTrailingMetadata();
  auto it = trailers.find("ringstore-backend");
  if (it == trailers.end()) return "";
  return std::string(it->second.data(), it->second.size());
}

grpc::Status DataLoss(const std::string& what) {
  return grpc::Status(grpc::StatusCode::DATA_LOSS, what);
}

// Reads up to `n` bytes, retrying short reads until EOF: at `offset`
// (pread), or from the current position when `offset` is negative (read:
// stdin may be a pipe).
ssize_t ReadFull(int fd, char* buf, size_t n, int64_t offset = -1) {
  size_t done = 0;
  while (done < n) {
    const ssize_t r =
        offset < 0 ? read(fd, buf + done, n - done)
                   : pread(fd, buf + done, n - done, offset + static_cast<int64_t>(done));
    if (r < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (r == 0) break;
    done += static_cast<size_t>(r);
  }
  return static_cast<ssize_t>(done);
}

grpc::Status ReadError(int err) {
  return grpc::Status(grpc::StatusCode::INTERNAL,
                      absl::StrCat("reading input: ", std::strerror(err)));
}

// The local file ended before the size it had when the put started.
grpc::Status Shrunk(int64_t offset, int64_t size) {
  return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                      absl::StrCat("the local file ended at ", offset, " of its ", size,
                                   " bytes: it changed during the upload"));
}

// A download is written at most kWritePiece bytes a writev: on this
// project's VM (Linux 6.18, ext4) writing a 1 GiB download into the page
// cache in 1 MiB write()s cost 1.8-2.2 s of system time, in 128 or 256 KiB
// pieces 0.74-0.97 s (bench/cli_vs_curl.sh's output file; probably the
// larger folios a bigger write allocates, each first touch of which the
// hypervisor charges; not profiled further). Smaller pieces cost syscalls.
constexpr size_t kWritePiece = 256 << 10;

}  // namespace

std::string BackendName(v1::Backend backend) {
  // The proto's enum is the one list of backends the client knows:
  // BACKEND_IO_URING -> "io_uring".
  constexpr absl::string_view kPrefix = "BACKEND_";
  if (backend == v1::BACKEND_UNSPECIFIED || !v1::Backend_IsValid(backend)) return "";
  return absl::AsciiStrToLower(absl::StripPrefix(v1::Backend_Name(backend), kPrefix));
}

Client::Client(const ClientOptions& options) : options_(options) {
  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (options.tls_ca_pem.empty() && options.tls_cert_pem.empty() && options.tls_key_pem.empty()) {
    creds = grpc::InsecureChannelCredentials();
  } else {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = options.tls_ca_pem;
    ssl.pem_cert_chain = options.tls_cert_pem;
    ssl.pem_private_key = options.tls_key_pem;
    creds = grpc::SslCredentials(ssl);
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  // Reconnect on the schedule of the transfers' own retries (100 ms
  // doubling to 5 s) rather than gRPC's default (1 s growing to 120 s), so
  // that a retry after a restart finds the channel trying again. (Not
  // GRPC_ARG_MIN_RECONNECT_BACKOFF_MS: that is the time a connection
  // attempt may take, 20 s by default; 100 ms failed handshakes on a busy
  // machine.)
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 5000);
  channel_ = grpc::CreateCustomChannel(options.server, creds, args);
  stub_ = v1::FileStore::NewStub(channel_);
}

void Client::Prepare(grpc::ClientContext* context, bool unary) const {
  if (!options_.token.empty()) {
    context->AddMetadata("authorization", absl::StrCat("Bearer ", options_.token));
  }
  if (unary) {
    context->set_deadline(absl::ToChronoTime(absl::Now() + options_.unary_timeout));
  }
}

grpc::Status Client::Put(int fd, const std::string& remote, const PutOptions& options,
                         v1::FileInfo* info, std::string* backend) {
  grpc::ClientContext context;
  Prepare(&context, /*unary=*/false);
  v1::UploadResponse response;
  std::unique_ptr<grpc::ClientWriter<v1::UploadRequest>> writer =
      stub_->Upload(&context, &response);

  v1::UploadRequest request;
  v1::UploadSpec* spec = request.mutable_spec();
  spec->set_path(remote);
  spec->set_size(options.size);
  if (options.if_absent) spec->set_if_generation_match(0);

  // One request message for the whole stream: the file is read straight
  // into its data field, whose buffer is reused for every message (no
  // allocation and no copy per message besides gRPC's serialisation), and
  // each message's CRC is computed once and folded into the file's.
  std::string* buf = request.mutable_data();
  buf->resize(options.chunk_bytes);
  int64_t offset = 0;
  uint32_t crc = 0;
  bool stream_ok = true;
  grpc::Status local_error;
  for (;;) {
    const ssize_t n = ReadFull(fd, &(*buf)[0], options.chunk_bytes);
    if (n < 0) {
      local_error = grpc::Status(grpc::StatusCode::INTERNAL,
                                 absl::StrCat("reading input: ", std::strerror(errno)));
      context.TryCancel();
      break;
    }
    const bool last = static_cast<size_t>(n) < options.chunk_bytes;
    if (last) buf->resize(static_cast<size_t>(n));
    const uint32_t message_crc = Crc32c(*buf);
    request.set_offset(offset);
    request.set_crc32c(message_crc);
    request.set_finish(last);
    crc = Crc32cCombine(crc, message_crc, static_cast<uint64_t>(n));
    offset += n;
    if (!writer->Write(request)) {
      stream_ok = false;  // the server ended the call; Finish says why
      break;
    }
    if (options.progress) options.progress(offset, options.size);
    if (last) break;
    request.clear_spec();  // only the first message carries it
  }
  if (stream_ok) writer->WritesDone();
  grpc::Status status = writer->Finish();
  if (!local_error.ok()) return local_error;
  if (!status.ok()) return status;
  *backend = BackendName(response.backend());
  if (backend->empty()) *backend = TrailerBackend(context);
  *info = response.file();
  if (info->size() != offset) {
    return DataLoss(absl::StrCat("server stored ", info->size(), " bytes, sent ", offset));
  }
  if (info->crc32c() != crc) {
    return DataLoss(absl::StrCat("server crc32c ", info->crc32c(), " differs from local ", crc));
  }
  return grpc::Status::OK;
}

grpc::Status Client::Get(const std::string& remote, const GetOptions& options, int fd,
                         v1::FileInfo* info, std::string* backend) {
  bool first = true;           // no message yet: `info` and `total` unknown
  int64_t expected = options.offset;
  int64_t total = 0;
  uint32_t crc = 0;
  absl::Duration backoff = absl::Milliseconds(100);
  for (int attempt = 0;; ++attempt) {
    // Everything arrived but the stream's end: nothing left to ask for.
    if (!first && expected - options.offset == total) break;
    grpc::ClientContext context;
    Prepare(&context, /*unary=*/false);
    v1::DownloadRequest request;
    request.set_path(remote);
    request.set_offset(expected);
    if (!first) {
      // A resumed stream: the rest of the same generation.
      request.set_limit(total - (expected - options.offset));
      request.set_if_generation_match(info->generation());
    } else {
      request.set_limit(options.length);
    }
    // Raw responses: the data is checked and written from the slices gRPC
    // received it in (download_decoder.h), never copied into a message.
    std::unique_ptr<grpc::ClientReader<grpc::ByteBuffer>> reader =
        ReadDownload(channel_, &context, request);
    grpc::ByteBuffer raw;
    DownloadChunk chunk;
    bool stream_first = true;
    grpc::Status local_error;
    while (reader->Read(&raw)) {
      const absl::Status decoded = DecodeDownloadResponse(&raw, &chunk);
      if (decoded.ok() && stream_first && first) {
        *info = chunk.info;
        *backend = BackendName(chunk.backend);
        const int64_t rest = info->size() - options.offset;
        total = options.length > 0 && options.length < rest ? options.length : rest;
        first = false;
      }
      stream_first = false;
      if (!decoded.ok()) {
        local_error = DataLoss(std::string(decoded.message()));
      } else if (chunk.offset != expected) {
        local_error = DataLoss(absl::StrCat("chunk at ", chunk.offset, ", expected ", expected));
      } else if (!WriteChunk(fd, chunk, kWritePiece)) {
        local_error = grpc::Status(grpc::StatusCode::INTERNAL,
                                   absl::StrCat("writing output: ", std::strerror(errno)));
      }
      if (!local_error.ok()) {
        context.TryCancel();
        break;
      }
      crc = Crc32cCombine(crc, chunk.data_crc32c, static_cast<uint64_t>(chunk.data_size));
      expected += chunk.data_size;
      if (options.progress) options.progress(expected - options.offset, total);
    }
    grpc::Status status = reader->Finish();
    if (!local_error.ok()) return local_error;
    if (status.error_code() == grpc::StatusCode::UNAVAILABLE && attempt < options.retries) {
      absl::SleepFor(backoff);
      backoff = std::min(backoff * 2, absl::Seconds(5));
      continue;
    }
    if (!status.ok()) {
      if (status.error_code() == grpc::StatusCode::FAILED_PRECONDITION && attempt > 0) {
        return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                            absl::StrCat("\"", remote, "\" was replaced while it was downloaded (",
                                         status.error_message(), ")"));
      }
      return status;
    }
    if (backend->empty()) *backend = TrailerBackend(context);
    break;
  }
  if (expected - options.offset != total) {
    return DataLoss(absl::StrCat("received ", expected - options.offset, " bytes, expected ", total));
  }
  const bool whole = options.offset == 0 && total == info->size();
  if (whole && info->crc32c() != 0 && info->crc32c() != crc) {
    return DataLoss("crc32c of the downloaded file differs from the server's");
  }
  return grpc::Status::OK;
}

grpc::Status BatchFileCheck::Add(const v1::BatchDownloadResponse& m) {
  if (!begun_) {
    if (!m.has_info()) return DataLoss("the first message of a file has no info");
    begun_ = true;
    size_ = m.info().size();
    expected_crc_ = m.info().crc32c();
  }
  const uint32_t message_crc = Crc32c(m.data());
  if (m.offset() != next_) {
    return DataLoss(absl::StrCat("chunk at ", m.offset(), ", expected ", next_));
  }
  if (message_crc != m.crc32c()) {
    return DataLoss(absl::StrCat("crc32c mismatch in chunk at ", m.offset()));
  }
  crc_ = Crc32cCombine(crc_, message_crc, m.data().size());
  next_ += static_cast<int64_t>(m.data().size());
  if (m.last() && next_ != size_) {
    return DataLoss(absl::StrCat("received ", next_, " bytes, expected ", size_));
  }
  if (m.last() && expected_crc_ != 0 && expected_crc_ != crc_) {
    return DataLoss("crc32c of the downloaded file differs from the server's");
  }
  return grpc::Status::OK;
}

grpc::Status Client::BatchGet(const std::vector<std::string>& paths, BatchSink* sink,
                              std::string* backend) {
  grpc::ClientContext context;
  Prepare(&context, /*unary=*/false);
  v1::BatchDownloadRequest request;
  for (const std::string& p : paths) request.add_paths(p);
  std::unique_ptr<grpc::ClientReader<v1::BatchDownloadResponse>> reader =
      stub_->BatchDownload(&context, request);
  std::vector<BatchFileCheck> checks(paths.size());
  std::vector<bool> done(paths.size(), false);
  grpc::Status call_error;
  v1::BatchDownloadResponse m;
  while (reader->Read(&m)) {
    if (m.index() < 0 || static_cast<size_t>(m.index()) >= paths.size()) {
      call_error = DataLoss(absl::StrCat("a message for file ", m.index(), " of ", paths.size()));
      context.TryCancel();
      break;
    }
    const int index = m.index();
    const size_t i = static_cast<size_t>(index);
    if (done[i]) continue;  // after a local error: the rest of it is dropped
    grpc::Status s;
    if (m.error_code() != 0) {
      s = grpc::Status(static_cast<grpc::StatusCode>(m.error_code()), m.error_message());
    } else {
      const bool first = !checks[i].begun();
      s = checks[i].Add(m);
      if (s.ok() && first) sink->Begin(index, m.info(), BackendName(m.backend()));
      if (s.ok() && !m.data().empty()) s = sink->Data(index, m.offset(), m.data());
      if (s.ok() && !m.last()) continue;
    }
    done[i] = true;
    sink->End(index, s);
  }
  grpc::Status status = reader->Finish();
  *backend = TrailerBackend(context);
  if (!call_error.ok()) return call_error;
  if (status.ok()) {
    for (size_t i = 0; i < paths.size(); ++i) {
      if (!done[i]) return DataLoss(absl::StrCat("the server did not answer for ", paths[i]));
    }
  }
  return status;
}

grpc::Status Client::Stat(const std::string& remote, v1::FileInfo* info,
                          std::string* backend) {
  grpc::ClientContext context;
  Prepare(&context, true);
  v1::StatRequest request;
  request.set_path(remote);
  grpc::Status status = stub_->Stat(&context, request, info);
  *backend = TrailerBackend(context);
  return status;
}

grpc::Status Client::List(const std::string& prefix,
                          const std::function<void(const v1::FileInfo&)>& each,
                          std::string* backend) {
  v1::ListRequest request;
  request.set_prefix(prefix);
  for (;;) {
    grpc::ClientContext context;
    Prepare(&context, true);
    v1::ListResponse response;
    grpc::Status status = stub_->List(&context, request, &response);
    if (!status.ok()) return status;
    *backend = TrailerBackend(context);
    for (const v1::FileInfo& f : response.files()) each(f);
    if (response.next_page_token().empty()) return grpc::Status::OK;
    request.set_page_token(response.next_page_token());
  }
}

grpc::Status Client::Delete(const std::string& remote, std::string* backend) {
  grpc::ClientContext context;
  Prepare(&context, true);
  v1::DeleteRequest request;
  request.set_path(remote);
  v1::DeleteResponse response;
  grpc::Status status = stub_->Delete(&context, request, &response);
  *backend = BackendName(response.backend());
  if (backend->empty()) *backend = TrailerBackend(context);
  return status;
}

grpc::Status Client::GetServerInfo(v1::ServerInfo* info) {
  grpc::ClientContext context;
  Prepare(&context, true);
  return stub_->GetServerInfo(&context, v1::GetServerInfoRequest(), info);
}

bool IsRetryable(grpc::StatusCode code) {
  return code == grpc::StatusCode::UNAVAILABLE || code == grpc::StatusCode::DEADLINE_EXCEEDED ||
         code == grpc::StatusCode::ABORTED;
}

grpc::Status Client::StartUpload(const v1::UploadSpec& spec, std::string* upload_id) {
  grpc::ClientContext context;
  Prepare(&context, true);
  v1::StartUploadRequest request;
  *request.mutable_spec() = spec;
  v1::StartUploadResponse response;
  grpc::Status status = stub_->StartUpload(&context, request, &response);
  *upload_id = response.upload_id();
  return status;
}

grpc::Status Client::QueryUpload(const std::string& upload_id,
                                 v1::QueryUploadResponse* response) {
  grpc::ClientContext context;
  Prepare(&context, true);
  v1::QueryUploadRequest request;
  request.set_upload_id(upload_id);
  return stub_->QueryUpload(&context, request, response);
}

grpc::Status Client::CancelUpload(const std::string& upload_id) {
  grpc::ClientContext context;
  Prepare(&context, true);
  v1::CancelUploadRequest request;
  request.set_upload_id(upload_id);
  v1::CancelUploadResponse response;
  return stub_->CancelUpload(&context, request, &response);
}

grpc::Status Client::AttachSession(const std::string& upload_id, v1::UploadResponse* response,
                                   std::string* trailer_backend) {
  grpc::ClientContext context;
  // A deadline, unlike a data stream: the server answers once it has
  // persisted nothing new, or an old stream's bytes.
  Prepare(&context, true);
  std::unique_ptr<grpc::ClientWriter<v1::UploadRequest>> writer =
      stub_->Upload(&context, response);
  v1::UploadRequest request;
  request.set_upload_id(upload_id);
  if (writer->Write(request)) writer->WritesDone();
  grpc::Status status = writer->Finish();
  *trailer_backend = TrailerBackend(context);
  return status;
}

grpc::Status Client::StreamSession(int fd, const std::string& upload_id, int64_t offset,
                                   const PutOptions& options, v1::UploadResponse* response,
                                   std::string* trailer_backend) {
  grpc::ClientContext context;
  Prepare(&context, /*unary=*/false);
  std::unique_ptr<grpc::ClientWriter<v1::UploadRequest>> writer =
      stub_->Upload(&context, response);
  // As in Put: one message, its data buffer reused.
  v1::UploadRequest request;
  request.set_upload_id(upload_id);
  std::string* buf = request.mutable_data();
  grpc::Status local_error;
  bool stream_ok = true;
  for (;;) {
    const size_t want =
        static_cast<size_t>(std::min<int64_t>(options.chunk_bytes, options.size - offset));
    buf->resize(want);
    const ssize_t n = want == 0 ? 0 : ReadFull(fd, &(*buf)[0], want, offset);
    if (n < 0 || static_cast<size_t>(n) < want) {
      local_error = n < 0 ? ReadError(errno) : Shrunk(offset + n, options.size);
      context.TryCancel();
      break;
    }
    const bool last = offset + n == options.size;
    request.set_offset(offset);
    request.set_crc32c(Crc32c(*buf));
    request.set_finish(last);
    offset += n;
    if (!writer->Write(request)) {
      stream_ok = false;  // the server ended the call; Finish says why
      break;
    }
    if (options.progress) options.progress(offset, options.size);
    if (last) break;
    request.clear_upload_id();  // only the first message carries it
  }
  if (stream_ok && local_error.ok()) writer->WritesDone();
  grpc::Status status = writer->Finish();
  *trailer_backend = TrailerBackend(context);
  if (!local_error.ok()) return local_error;
  return status;
}

grpc::Status Client::PutResumable(int fd, const std::string& remote, const PutOptions& options,
                                  std::string* upload_id, v1::FileInfo* info,
                                  std::string* backend) {
  // First pass: the whole file's CRC32C, for the spec and the final check.
  uint32_t crc = 0;
  {
    std::string buf(std::max<size_t>(options.chunk_bytes, 1), '\0');
    for (int64_t offset = 0; offset < options.size;) {
      const size_t want =
          static_cast<size_t>(std::min<int64_t>(buf.size(), options.size - offset));
      const ssize_t n = ReadFull(fd, &buf[0], want, offset);
      if (n < 0) return ReadError(errno);
      if (static_cast<size_t>(n) < want) return Shrunk(offset + n, options.size);
      crc = Crc32cCombine(crc, Crc32c(absl::string_view(buf.data(), want)), want);
      offset += n;
    }
  }

  int failures = 0;
  absl::Duration backoff = absl::Milliseconds(100);
  // Whether to try again after `status`; sleeps the backoff if so.
  auto again = [&](const grpc::Status& status) {
    if (!IsRetryable(status.error_code()) || failures >= options.retries) return false;
    ++failures;
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, absl::Seconds(5));
    return true;
  };
  v1::UploadResponse response;
  std::string trailer_backend;
  // Attaches to the session, then asks where it stands. False with
  // `*status` set if that failed for good; `*done` if it is committed.
  int64_t persisted = 0;
  auto locate = [&](grpc::Status* status, bool* done) {
    for (;;) {
      response.Clear();
      *status = AttachSession(*upload_id, &response, &trailer_backend);
      if (status->ok() && response.has_file()) {
        *done = true;
        return true;
      }
      if (status->ok()) {
        v1::QueryUploadResponse query;
        *status = QueryUpload(*upload_id, &query);
        if (status->ok()) {
          if (query.persisted_size() > persisted) {
            failures = 0;  // progress: the count of retries starts again
            backoff = absl::Milliseconds(100);
          }
          persisted = query.persisted_size();
          return true;
        }
      }
      if (!again(*status)) return false;
    }
  };

  grpc::Status status;
  bool done = false;
  if (!upload_id->empty()) {
    if (!locate(&status, &done)) {
      if (status.error_code() != grpc::StatusCode::NOT_FOUND) return status;
      upload_id->clear();  // expired or cancelled: start again
    }
  }
  if (upload_id->empty()) {
    v1::UploadSpec spec;
    spec.set_path(remote);
    spec.set_size(options.size);
    spec.set_crc32c(crc);
    if (options.if_absent) spec.set_if_generation_match(0);
    while (!(status = StartUpload(spec, upload_id)).ok()) {
      if (!again(status)) return status;
    }
    if (options.on_session) options.on_session(*upload_id);
    persisted = 0;
  }
  while (!done) {
    response.Clear();
    status = StreamSession(fd, *upload_id, persisted, options, &response, &trailer_backend);
    if (status.ok()) break;
    if (!again(status)) return status;
    if (!locate(&status, &done)) return status;
  }
  *backend = BackendName(response.backend());
  if (backend->empty()) *backend = trailer_backend;
  *info = response.file();
  if (!response.has_file()) {
    return grpc::Status(grpc::StatusCode::INTERNAL, "the server answered without the file");
  }
  if (info->size() != options.size) {
    return DataLoss(absl::StrCat("server stored ", info->size(), " bytes, sent ", options.size));
  }
  if (info->crc32c() != crc) {
    return DataLoss(absl::StrCat("server crc32c ", info->crc32c(), " differs from local ", crc));
  }
  return grpc::Status::OK;
}

}  // namespace ringstore::client
