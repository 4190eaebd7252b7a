// baseline_server: the ringstore.v1.FileStore service written the way most
// people first write a gRPC file server, as the peer ringstore is measured
// against (bench/load_gen drives both with the same requests).
//
// What makes it the baseline: the synchronous gRPC API (FileStore::Service
// with blocking methods, so gRPC's default sync server runs each call on a
// thread of its own), std::ifstream reads and std::ofstream writes, and
// 1 MiB messages. What keeps the comparison fair: uploads are as durable as
// ringstore's before they are answered (temp file → fsync → rename into
// place → fsync of the directory), downloads carry the crc32c of every
// message (the same SSE4.2 CRC32C as ringstore, so neither is slowed by a
// slower checksum), and paths are checked so nothing is written outside
// --root.
//
// Flags: --listen (default 127.0.0.1:50052; port 0 picks a free port),
// --root (default ./baseline-data, created if missing). On start it prints
//   baseline-server listening on HOST:PORT
// on stdout; SIGTERM or SIGINT stops it (calls in flight get 5 s) with exit 0.
//
// RPCs:
//   Upload         first message must carry `spec` (upload_id: UNIMPLEMENTED);
//                  messages must arrive in order (offset = bytes so far) and
//                  the last must have finish=true, else INVALID_ARGUMENT; a
//                  message crc32c or spec.crc32c that does not match is
//                  DATA_LOSS; spec.size, when set, must equal the bytes sent
//                  (INVALID_ARGUMENT); if_generation_match=0 on an existing
//                  file is ALREADY_EXISTS (other values: UNIMPLEMENTED).
//                  Nothing is visible before the commit; a failed upload
//                  removes its temp file.
//   Download       streams 1 MiB messages from `offset` for `limit` bytes
//                  (0 = to the end), each with offset and crc32c; the first
//                  carries FileInfo. NOT_FOUND for a missing file,
//                  OUT_OF_RANGE for an offset past the end.
//   Stat           FileInfo from stat(2).
//   GetServerInfo  engine "baseline", backend BACKEND_UNSPECIFIED.
//   others         UNIMPLEMENTED (the generated base class).
// FileInfo: generation is the mtime in microseconds and crc32c is 0
// (unknown) except in UploadResponse, where it is the uploaded data's;
// `backend` is always BACKEND_UNSPECIFIED and no ringstore-backend trailer
// is sent.
//
// Paths: relative, '/'-separated, no empty, "." or ".." component, no NUL,
// not under ".baseline-tmp" (where uploads are written before the commit):
// INVALID_ARGUMENT otherwise. Symlinks inside --root are followed (unlike
// ringstore, which opens with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS).
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "ringstore/v1/ringstore.grpc.pb.h"
#include "third_party/system/crc32c.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50052",
          "Address to listen on, HOST:PORT; port 0 picks a free port.");
ABSL_FLAG(std::string, root, "./baseline-data", "Directory the files live in (created if missing).");

namespace ringstore::bench {
namespace {

namespace v1 = ::ringstore::v1;

constexpr size_t kChunkBytes = 1 << 20;
constexpr char kTempDir[] = ".baseline-tmp";

grpc::Status Error(grpc::StatusCode code, const std::string& message) {
  return grpc::Status(code, message);
}

// errno after a failed call on `what` as a status with the closest code.
grpc::Status ErrnoStatus(int err, const std::string& what) {
  const std::string message = absl::StrCat(what, ": ", std::strerror(err));
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return Error(grpc::StatusCode::NOT_FOUND, message);
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
      return Error(grpc::StatusCode::RESOURCE_EXHAUSTED, message);
    case EACCES:
    case EPERM:
      return Error(grpc::StatusCode::PERMISSION_DENIED, message);
    case EISDIR:
    case ENAMETOOLONG:
      return Error(grpc::StatusCode::INVALID_ARGUMENT, message);
    default:
      return Error(grpc::StatusCode::INTERNAL, message);
  }
}

grpc::Status CheckPath(const std::string& path) {
  if (path.empty()) return Error(grpc::StatusCode::INVALID_ARGUMENT, "empty path");
  if (path.size() > 1024) return Error(grpc::StatusCode::INVALID_ARGUMENT, "path too long");
  if (path.find('\0') != std::string::npos) {
    return Error(grpc::StatusCode::INVALID_ARGUMENT, "path contains NUL");
  }
  if (path.front() == '/') {
    return Error(grpc::StatusCode::INVALID_ARGUMENT, absl::StrCat("absolute path \"", path, "\""));
  }
  bool first = true;
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (part.empty() || part == "." || part == ".." || part.size() > 255 ||
        (first && part == kTempDir)) {
      return Error(grpc::StatusCode::INVALID_ARGUMENT,
                   absl::StrCat("bad path \"", path, "\": empty, \".\", \"..\", too long or ",
                                kTempDir, " component"));
    }
    first = false;
  }
  return grpc::Status::OK;
}

grpc::Status FsyncPath(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("open ", path));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return ErrnoStatus(err, absl::StrCat("fsync ", path));
  return grpc::Status::OK;
}

void FillInfo(const std::string& path, const struct stat& st, v1::FileInfo* info) {
  info->set_path(path);
  info->set_size(st.st_size);
  const int64_t micros = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000 +
                         st.st_mtim.tv_nsec / 1000;
  info->set_generation(micros);
  info->mutable_modified()->set_seconds(st.st_mtim.tv_sec);
  info->mutable_modified()->set_nanos(static_cast<int32_t>(st.st_mtim.tv_nsec));
}

class BaselineService final : public v1::FileStore::Service {
 public:
  explicit BaselineService(std::string root) : root_(std::move(root)) {}

  grpc::Status Upload(grpc::ServerContext* context, grpc::ServerReader<v1::UploadRequest>* reader,
                      v1::UploadResponse* response) override {
    v1::UploadRequest request;
    if (!reader->Read(&request)) {
      return Error(grpc::StatusCode::INVALID_ARGUMENT, "upload stream without a message");
    }
    if (!request.has_spec()) {
      return Error(grpc::StatusCode::UNIMPLEMENTED, "the baseline has no resumable uploads");
    }
    const v1::UploadSpec spec = request.spec();
    if (grpc::Status s = CheckPath(spec.path()); !s.ok()) return s;
    if (spec.has_if_generation_match() && spec.if_generation_match() != 0) {
      return Error(grpc::StatusCode::UNIMPLEMENTED, "if_generation_match other than 0");
    }
    const std::string temp =
        absl::StrCat(root_, "/", kTempDir, "/upload-", next_temp_.fetch_add(1));
    grpc::Status status = WriteTemp(reader, &request, spec, temp, response);
    if (status.ok()) status = Commit(spec, temp, response);
    if (!status.ok()) ::unlink(temp.c_str());
    return status;
  }

  grpc::Status Download(grpc::ServerContext* context, const v1::DownloadRequest* request,
                        grpc::ServerWriter<v1::DownloadResponse>* writer) override {
    if (grpc::Status s = CheckPath(request->path()); !s.ok()) return s;
    if (request->offset() < 0 || request->limit() < 0) {
      return Error(grpc::StatusCode::INVALID_ARGUMENT, "offset and limit must not be negative");
    }
    const std::string full = absl::StrCat(root_, "/", request->path());
    struct stat st;
    if (::stat(full.c_str(), &st) != 0) return ErrnoStatus(errno, request->path());
    if (!S_ISREG(st.st_mode)) {
      return Error(grpc::StatusCode::NOT_FOUND, absl::StrCat(request->path(), " is not a file"));
    }
    std::ifstream in(full, std::ios::binary);
    if (!in) return ErrnoStatus(errno, absl::StrCat("open ", request->path()));
    const int64_t size = st.st_size;
    if (request->offset() > size) {
      return Error(grpc::StatusCode::OUT_OF_RANGE,
                   absl::StrCat("offset ", request->offset(), " is past the end (", size, ")"));
    }
    int64_t offset = request->offset();
    const int64_t rest = size - offset;
    const int64_t end =
        offset + (request->limit() == 0 ? rest : std::min<int64_t>(request->limit(), rest));
    in.seekg(offset);

    v1::DownloadResponse response;
    FillInfo(request->path(), st, response.mutable_info());
    response.set_backend(v1::BACKEND_UNSPECIFIED);
    do {
      const size_t n = static_cast<size_t>(std::min<int64_t>(kChunkBytes, end - offset));
      std::string* data = response.mutable_data();
      data->resize(n);
      in.read(data->data(), static_cast<std::streamsize>(n));
      if (static_cast<size_t>(in.gcount()) != n) {
        return Error(grpc::StatusCode::INTERNAL,
                     absl::StrCat("short read of ", request->path(), " at ", offset));
      }
      response.set_offset(offset);
      response.set_crc32c(Crc32c(*data));
      if (!writer->Write(response)) {
        return Error(grpc::StatusCode::CANCELLED, "the client went away");
      }
      offset += static_cast<int64_t>(n);
      response.clear_info();
    } while (offset < end);
    return grpc::Status::OK;
  }

  grpc::Status Stat(grpc::ServerContext* context, const v1::StatRequest* request,
                    v1::FileInfo* response) override {
    if (grpc::Status s = CheckPath(request->path()); !s.ok()) return s;
    struct stat st;
    const std::string full = absl::StrCat(root_, "/", request->path());
    if (::stat(full.c_str(), &st) != 0) return ErrnoStatus(errno, request->path());
    if (!S_ISREG(st.st_mode)) {
      return Error(grpc::StatusCode::NOT_FOUND, absl::StrCat(request->path(), " is not a file"));
    }
    FillInfo(request->path(), st, response);
    return grpc::Status::OK;
  }

  grpc::Status GetServerInfo(grpc::ServerContext* context, const v1::GetServerInfoRequest* request,
                             v1::ServerInfo* response) override {
    response->set_engine("baseline");
    response->set_backend(v1::BACKEND_UNSPECIFIED);
    response->set_version("baseline-0.1.0");
    response->set_max_chunk_bytes(kChunkBytes);
    return grpc::Status::OK;
  }

 private:
  // Writes the upload's data, starting with `first` (already read), to
  // `temp` and closes it; on success response->file() has size and crc32c.
  grpc::Status WriteTemp(grpc::ServerReader<v1::UploadRequest>* reader, v1::UploadRequest* first,
                         const v1::UploadSpec& spec, const std::string& temp,
                         v1::UploadResponse* response) {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    if (!out) return ErrnoStatus(errno, "create temp file");
    v1::UploadRequest& request = *first;
    int64_t written = 0;
    uint32_t crc = 0;
    bool finished = false;
    do {
      if (request.offset() != written) {
        return Error(grpc::StatusCode::INVALID_ARGUMENT,
                     absl::StrCat("message at offset ", request.offset(), ", expected ", written));
      }
      const std::string& data = request.data();
      const uint32_t data_crc = Crc32c(data);
      if (request.has_crc32c() && request.crc32c() != data_crc) {
        return Error(grpc::StatusCode::DATA_LOSS,
                     absl::StrCat("crc32c mismatch in the message at offset ", written));
      }
      out.write(data.data(), static_cast<std::streamsize>(data.size()));
      if (!out) return ErrnoStatus(errno, "write temp file");
      crc = Crc32cExtend(crc, data);
      written += static_cast<int64_t>(data.size());
      finished = request.finish();
    } while (!finished && reader->Read(&request));
    out.close();
    if (!out) return ErrnoStatus(errno, "close temp file");
    if (!finished) {
      return Error(grpc::StatusCode::INVALID_ARGUMENT,
                   "upload stream ended without finish=true; nothing was committed");
    }
    if (spec.size() != 0 && spec.size() != written) {
      return Error(grpc::StatusCode::INVALID_ARGUMENT,
                   absl::StrCat("spec.size is ", spec.size(), " but ", written, " bytes arrived"));
    }
    if (spec.has_crc32c() && spec.crc32c() != crc) {
      return Error(grpc::StatusCode::DATA_LOSS, "crc32c of the file differs from spec.crc32c");
    }
    response->mutable_file()->set_crc32c(crc);
    return grpc::Status::OK;
  }

  // fsync the temp file, rename it into place, fsync the directory.
  grpc::Status Commit(const v1::UploadSpec& spec, const std::string& temp,
                      v1::UploadResponse* response) {
    if (grpc::Status s = FsyncPath(temp, O_RDONLY); !s.ok()) return s;
    const std::string full = absl::StrCat(root_, "/", spec.path());
    const std::string dir = std::filesystem::path(full).parent_path().string();
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return ErrnoStatus(ec.value(), absl::StrCat("create directories of ", spec.path()));
    struct stat st;
    // Check-then-rename: racy against a concurrent upload of the same path,
    // as a first version would be.
    if (spec.has_if_generation_match() && ::stat(full.c_str(), &st) == 0) {
      return Error(grpc::StatusCode::ALREADY_EXISTS, absl::StrCat("\"", spec.path(), "\" exists"));
    }
    if (::rename(temp.c_str(), full.c_str()) != 0) {
      return ErrnoStatus(errno, absl::StrCat("rename into ", spec.path()));
    }
    if (grpc::Status s = FsyncPath(dir, O_RDONLY | O_DIRECTORY); !s.ok()) return s;
    if (::stat(full.c_str(), &st) != 0) return ErrnoStatus(errno, spec.path());
    const uint32_t crc = response->file().crc32c();
    FillInfo(spec.path(), st, response->mutable_file());
    response->mutable_file()->set_crc32c(crc);
    response->set_backend(v1::BACKEND_UNSPECIFIED);
    return grpc::Status::OK;
  }

  const std::string root_;
  std::atomic<int64_t> next_temp_{0};
};

int Run() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  const std::string root = absl::GetFlag(FLAGS_root);
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(root) / kTempDir, ec);
  if (ec) {
    std::cerr << "baseline-server: cannot create " << root << ": " << ec.message() << "\n";
    return 1;
  }
  // Temp files of an earlier run are garbage.
  for (const auto& entry :
       std::filesystem::directory_iterator(std::filesystem::path(root) / kTempDir, ec)) {
    std::filesystem::remove(entry.path(), ec);
  }

  BaselineService service(root);
  grpc::ServerBuilder builder;
  int port = 0;
  const std::string listen = absl::GetFlag(FLAGS_listen);
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::cerr << "baseline-server: cannot listen on " << listen << "\n";
    return 1;
  }
  const std::string host = listen.substr(0, listen.rfind(':'));
  std::printf("baseline-server listening on %s:%d\n", host.c_str(), port);
  std::fflush(stdout);

  int sig = 0;
  sigwait(&signals, &sig);
  server->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  server->Wait();
  return 0;
}

}  // namespace
}  // namespace ringstore::bench

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "A plain synchronous gRPC FileStore server, the baseline for benchmarks.\n"
      "Usage: baseline_server [--listen=HOST:PORT] [--root=DIR]");
  absl::ParseCommandLine(argc, argv);
  return ringstore::bench::Run();
}
