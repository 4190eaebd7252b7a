#include "server/download_reactor.h"

#include <algorithm>
#include <limits>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "server/convert.h"
#include "server/download_message.h"
#include "storage/engine/buffer_pool.h"
#include "storage/engine/cancellation.h"
#include "third_party/system/crc32c.h"
#include "storage/engine/sync.h"

namespace ringstore::server {
namespace {

using storage::Backend;
using storage::PooledBuffer;

class DownloadReactor final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  DownloadReactor(grpc::CallbackServerContext* context, storage::Store* store,
                  absl::StatusOr<v1::DownloadRequest> request)
      : context_(context),
        store_(store),
        path_(request.ok() ? request->path() : ""),
        offset_(request.ok() ? request->offset() : 0) {
    absl::Status invalid = request.status();
    if (invalid.ok() && (request->offset() < 0 || request->limit() < 0)) {
      invalid = absl::InvalidArgumentError("offset and limit must not be negative");
    }
    if (!invalid.ok()) {
      Complete(ToGrpcStatus(invalid));
      // From the constructor, Finish only records the status in this
      // object; gRPC acts on it once the handler has returned, so the
      // object is alive here and its writes must be ordered too.
      RS_HAPPENS_BEFORE(this);
      return;
    }
    const int64_t limit = request->limit();
    if (offset_ == 0) {
      // Most files fit in one buffer: try one engine operation first.
      Hold();  // released by TrySmall
      store_->pool().Acquire([this, limit](PooledBuffer buffer) {
        TrySmall(std::move(buffer), limit);
      });
    } else {
      OpenLarge(limit);
    }
  }

  void OnWriteDone(bool ok) override {
    RS_HAPPENS_AFTER(this);
    bool stopping, all_sent;
    {
      MutexLock lock(&mu_);
      writing_ = false;
      stopping = stopping_;
      all_sent = next_write_ == end_;
    }
    // Stop ran during the write (OnCancel, say): it left the finish to us.
    if (stopping) return Complete(stop_status_);
    if (!ok) return Stop(absl::CancelledError("the client went away"));
    if (all_sent) return Complete(grpc::Status::OK);
    Pump();
    TryWrite();
  }

  // The client went away or the deadline passed: reads in flight end early
  // and none is started (Stop ends the RPC).
  void OnCancel() override {
    RS_HAPPENS_AFTER(this);
    cancel_.Cancel();
    Stop(absl::CancelledError("the client cancelled the download"));
  }

  void OnDone() override {
    RS_HAPPENS_AFTER(this);
    bool delete_now;
    {
      MutexLock lock(&mu_);
      done_ = true;
      delete_now = holds_ == 0;
    }
    if (delete_now) delete this;
  }

 private:
  struct Chunk {
    PooledBuffer buffer;
    size_t length = 0;
  };

  // Reads the whole file into `buffer` with Store::ReadSmall and sends it as
  // one message; a file that does not fit goes on to OpenLarge. Runs with a
  // hold, which it releases.
  void TrySmall(PooledBuffer buffer, int64_t limit) {
    // Taken before the call: the callback's capture moves `buffer`, and the
    // order in which a call's arguments are evaluated is unspecified.
    const absl::Span<char> span = buffer.span();
    char* data = span.data();
    store_->ReadSmall(path_, span, &cancel_, [this, buffer = std::move(buffer), data, limit](
                                                 absl::StatusOr<storage::Store::SmallRead> r,
                                                 Backend backend) mutable {
      backend_ = backend;
      if (!r.ok()) {
        buffer = PooledBuffer();
        Complete(ToGrpcStatus(r.status()));
      } else if (!r->complete) {
        buffer = PooledBuffer();
        if (!Stopping()) OpenLarge(limit);
      } else {
        info_ = std::move(r->info);
        const int64_t n = limit == 0 ? info_.size : std::min(limit, info_.size);
        header_.Clear();
        FillHeader();
        header_.set_offset(0);
        header_.set_crc32c(Crc32c(absl::string_view(data, static_cast<size_t>(n))));
        if (BeginLastWrite(n)) {
          message_ = EncodeDownloadResponse(header_, std::move(buffer), static_cast<size_t>(n));
          WriteAndFinish();
        }
        buffer = PooledBuffer();  // if stopping
      }
      Unhold();
    });
  }

  void OpenLarge(int64_t limit) {
    Hold();
    store_->OpenReader(path_, [this, limit](absl::StatusOr<std::unique_ptr<storage::Reader>> r,
                                            Backend backend) {
      OnOpened(std::move(r), backend, limit);
      Unhold();
    });
  }

  void OnOpened(absl::StatusOr<std::unique_ptr<storage::Reader>> reader,
                Backend backend, int64_t limit) {
    backend_ = backend;
    if (!reader.ok()) return Complete(ToGrpcStatus(reader.status()));
    reader_ = *std::move(reader);
    info_ = reader_->info();
    const int64_t size = info_.size;
    if (offset_ > size) {
      return Complete(grpc::Status(
          grpc::StatusCode::OUT_OF_RANGE,
          absl::StrCat("offset ", offset_, " is past the end of the file (", size, " bytes)")));
    }
    const int64_t rest = size - offset_;
    {
      MutexLock lock(&mu_);
      end_ = offset_ + (limit == 0 ? rest : std::min(limit, rest));
      next_read_ = offset_;
      next_write_ = offset_;
    }
    if (end_ == offset_) {
      // Nothing to read: one message with the file's info.
      FillHeader();
      header_.set_offset(offset_);
      if (BeginLastWrite(offset_)) {
        message_ = EncodeDownloadResponse(header_, PooledBuffer(), 0);
        WriteAndFinish();
      }
      return;
    }
    Pump();
  }

  // Starts reads while the download holds fewer than kReadAhead buffers.
  void Pump() {
    std::vector<std::pair<int64_t, size_t>> reads;
    const size_t buffer_size = store_->pool().buffer_size();
    {
      MutexLock lock(&mu_);
      while (!stopping_ && next_read_ < end_ &&
             reads_in_flight_ + static_cast<int>(ready_.size()) < kReadAhead) {
        const size_t len = static_cast<size_t>(
            std::min<int64_t>(buffer_size, end_ - next_read_));
        reads.emplace_back(next_read_, len);
        next_read_ += static_cast<int64_t>(len);
        ++reads_in_flight_;
        ++holds_;
      }
    }
    for (const auto& [offset, len] : reads) {
      // Acquire may call back at once, or later on another thread.
      store_->pool().Acquire([this, offset = offset, len = len](PooledBuffer buffer) {
        StartRead(offset, len, std::move(buffer));
      });
    }
  }

  void StartRead(int64_t offset, size_t len, PooledBuffer buffer) {
    if (Stopping()) {
      buffer = PooledBuffer();
      ReadFinished();
      return;
    }
    char* data = buffer.data();
    reader_->Read(offset, absl::Span<char>(data, len), &cancel_,
                  [this, offset, len, buffer = std::move(buffer)](
                      absl::StatusOr<size_t> n, Backend) mutable {
                    if (!n.ok()) {
                      buffer = PooledBuffer();
                      Stop(n.status());
                    } else if (*n != len) {
                      buffer = PooledBuffer();
                      Stop(absl::AbortedError("the file changed during the download"));
                    } else {
                      {
                        MutexLock lock(&mu_);
                        if (!stopping_) ready_[offset] = Chunk{std::move(buffer), len};
                      }
                      buffer = PooledBuffer();  // only if stopping
                      TryWrite();
                    }
                    ReadFinished();
                  });
  }

  // A read (or its buffer wait) is over: the pipeline has room again.
  void ReadFinished() {
    {
      MutexLock lock(&mu_);
      --reads_in_flight_;
    }
    Pump();
    Unhold();
  }

  // Sends the next chunk if it has been read and no write is in flight.
  // Its buffer goes to gRPC with the message and back to the pool when the
  // bytes are on the socket (download_message.h).
  void TryWrite() {
    Chunk chunk;
    {
      MutexLock lock(&mu_);
      if (writing_ || stopping_) return;
      auto it = ready_.find(next_write_);
      if (it == ready_.end()) return;
      chunk = std::move(it->second);
      ready_.erase(it);
      header_.Clear();
      if (next_write_ == offset_) FillHeader();
      header_.set_offset(next_write_);
      next_write_ += static_cast<int64_t>(chunk.length);
      writing_ = true;
    }
    header_.set_crc32c(
        Crc32c(absl::string_view(chunk.buffer.data(), chunk.length)));
    message_ = EncodeDownloadResponse(header_, std::move(chunk.buffer), chunk.length);
    Write();
  }

  void FillHeader() {
    ToProto(info_, header_.mutable_info());
    header_.set_backend(ToProto(backend_));
  }

  // For the one-message downloads: marks everything up to `end` as sent,
  // a write in flight and the RPC finished (the finish goes with that
  // write), unless the download is being stopped (Stop finishes it then).
  bool BeginLastWrite(int64_t end) {
    MutexLock lock(&mu_);
    if (stopping_) return false;
    end_ = end;
    next_read_ = end;
    next_write_ = end;
    writing_ = true;
    finished_ = true;
    return true;
  }

  bool Stopping() {
    MutexLock lock(&mu_);
    return stopping_;
  }

  // Ends the download with `status`; buffers waiting to be sent go back.
  void Stop(const absl::Status& status) {
    std::map<int64_t, Chunk> dropped;
    bool finish_now;
    {
      MutexLock lock(&mu_);
      if (stopping_) return;
      stopping_ = true;
      dropped.swap(ready_);
      finish_now = !writing_;
      stop_status_ = ToGrpcStatus(status);
    }
    dropped.clear();
    // With a write in flight, Finish must wait for OnWriteDone, which sees
    // stopping_ and finishes with stop_status_.
    if (finish_now) Complete(stop_status_);
  }

  void Complete(const grpc::Status& status) {
    {
      MutexLock lock(&mu_);
      if (finished_) return;
      finished_ = true;
      stopping_ = true;
    }
    AddBackendTrailer(context_, backend_);
    RS_HAPPENS_BEFORE(this);
    RS_HAPPENS_BEFORE(store_);  // see main.cc
    Finish(status);
  }

  // Sends message_. The reaction may run on another thread, which gRPC
  // orders after this call.
  void Write() {
    RS_HAPPENS_BEFORE(this);
    StartWrite(&message_);
  }

  // Sends message_ and the trailers in one batch: one reaction (OnDone)
  // instead of OnWriteDone and then Finish's, and one thread hand-off less
  // per small download.
  void WriteAndFinish() {
    AddBackendTrailer(context_, backend_);
    RS_HAPPENS_BEFORE(this);
    RS_HAPPENS_BEFORE(store_);  // see main.cc
    StartWriteAndFinish(&message_, grpc::WriteOptions(), grpc::Status::OK);
  }

  // Hold/Unhold count callbacks that will still touch this reactor; it is
  // deleted when the RPC is done and none is left.
  void Hold() {
    MutexLock lock(&mu_);
    ++holds_;
  }
  void Unhold() {
    bool delete_now;
    {
      MutexLock lock(&mu_);
      delete_now = --holds_ == 0 && done_;
    }
    if (delete_now) delete this;
  }

  grpc::CallbackServerContext* const context_;
  storage::Store* const store_;
  const std::string path_;
  const int64_t offset_;
  // Cut short the engine reads of a cancelled RPC. Outlives them: the
  // reactor is deleted only once no callback is left (holds_).
  storage::Cancellation cancel_;
  std::unique_ptr<storage::Reader> reader_;
  // The file being sent, from the reader or the small-file read.
  storage::ObjectInfo info_;
  Backend backend_ = Backend::kUnspecified;
  // The message being sent (while writing_): its fields, and what gRPC
  // sends, the data still in its pool buffer.
  v1::DownloadResponse header_;
  grpc::ByteBuffer message_;

  Mutex mu_;
  int64_t end_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t next_read_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t next_write_ ABSL_GUARDED_BY(mu_) = 0;
  int reads_in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<int64_t, Chunk> ready_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  int holds_ ABSL_GUARDED_BY(mu_) = 0;
  grpc::Status stop_status_;
};

}  // namespace

grpc::ServerWriteReactor<grpc::ByteBuffer>* NewDownloadReactor(
    grpc::CallbackServerContext* context, storage::Store* store,
    const grpc::ByteBuffer* request) {
  return new DownloadReactor(context, store, DecodeDownloadRequest(*request));
}

}  // namespace ringstore::server
