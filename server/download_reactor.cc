#include "server/download_reactor.h"

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "server/authorize.h"
#include "server/convert.h"
#include "server/download_message.h"
#include "server/download_reactor_base.h"
#include "storage/engine/buffer_pool.h"
#include "storage/engine/sync.h"
#include "third_party/system/crc32c.h"

namespace ringstore::server {
namespace {

using storage::Backend;
using storage::BufferPool;
using storage::PooledBuffer;

// How a download runs (download_reactor_base.h: calls, Advance, the end).
// Its calls are a wait for a pool buffer, the small-file read, the open
// and each chunk's read; Advance starts reads while there is room, sends
// the next chunk, or ends the RPC.
class DownloadReactor final : public DownloadReactorBase {
 public:
  DownloadReactor(grpc::CallbackServerContext* context, storage::Store* store,
                  const ServiceOptions* options, absl::StatusOr<v1::DownloadRequest> request)
      : DownloadReactorBase(context, store, options, "download"),
        path_(request.ok() ? request->path() : ""),
        offset_(request.ok() ? request->offset() : 0),
        limit_(request.ok() ? request->limit() : 0),
        if_generation_match_(request.ok() && request->has_if_generation_match()
                                 ? std::optional<int64_t>(request->if_generation_match())
                                 : std::nullopt) {
    absl::Status invalid = request.status();
    if (invalid.ok()) invalid = Authorize(*options_, *context_, Scope::kRead, path_);
    if (invalid.ok() && (offset_ < 0 || limit_ < 0)) {
      invalid = absl::InvalidArgumentError("offset and limit must not be negative");
    }
    if (!invalid.ok()) {
      Stop(ToGrpcStatus(invalid));
      // From the constructor, Finish only records the status in this
      // object; gRPC acts on it once the handler has returned, so the
      // object is alive here and its writes must be ordered too.
      RS_HAPPENS_BEFORE(this);
      return;
    }
    BeginCall();
    if (offset_ == 0) {
      // Most files fit in one buffer: try one engine operation first.
      store_->pool().Acquire(
          [this, loan = store_->pool().TryLend()](PooledBuffer buffer) mutable {
            ReadSmall(std::move(buffer), std::move(loan));
          },
          &cancel_);
    } else {
      Open();
    }
  }

 private:
  // A chunk read and not yet sent: its data in a pool buffer lent to gRPC,
  // or in a copy (download_message.h).
  struct Chunk {
    grpc::Slice data;
    uint32_t crc32c = 0;
  };

  // A read to start: `loan` set for a whole pool buffer sent without a
  // copy, else a kCopyChunk read that is copied.
  struct PlannedRead {
    int64_t offset;
    size_t length;
    BufferPool::Loan loan;
  };

  // --- Storage calls: each starts with BeginCall (or within Advance) and
  // ends with Advance(1), EndCall or Withdrawn.

  void BeginCall() {
    MutexLock lock(&mu_);
    ++calls_;
  }

  // Reads the whole file into `buffer` with one engine operation (all of
  // it with a loan, else the first kCopyHeld * kCopyChunk bytes); a file
  // that does not fit comes back opened and streams (OnOpened, the same
  // call).
  void ReadSmall(PooledBuffer buffer, BufferPool::Loan loan) {
    if (!buffer.valid()) return Withdrawn();
    if (Ending()) return EndCall();  // `buffer` goes back
    // Taken before the call: the callback's capture moves `buffer`, and the
    // order in which a call's arguments are evaluated is unspecified.
    const absl::Span<char> span =
        loan.valid() ? buffer.span()
                     : buffer.span().subspan(0, std::min(buffer.capacity(), kCopyHeld * kCopyChunk));
    store_->ReadSmall(path_, span, &cancel_,
                      [this, buffer = std::move(buffer), loan = std::move(loan)](
                          absl::StatusOr<storage::Store::SmallRead> r, Backend backend) mutable {
                        OnSmallRead(std::move(r), backend, std::move(buffer), std::move(loan));
                      });
  }

  void OnSmallRead(absl::StatusOr<storage::Store::SmallRead> r, Backend backend,
                   PooledBuffer buffer, BufferPool::Loan loan) {
    if (r.ok() && !r->complete) {
      buffer = PooledBuffer();
      loan = BufferPool::Loan();
      return OnOpened(std::move(r->reader), backend);
    }
    // The whole download in one message, sent with the trailers.
    grpc::ByteBuffer message;
    grpc::Status mismatch;
    if (r.ok()) {
      info_ = std::move(r->info);
      mismatch = CheckGeneration();
    }
    if (r.ok() && mismatch.ok()) {
      const size_t n = static_cast<size_t>(limit_ == 0 ? info_.size : std::min(limit_, info_.size));
      v1::DownloadResponse header;
      FillHeader(backend, &header);
      header.set_offset(0);
      const bool whole = n == static_cast<size_t>(info_.size);
      header.set_crc32c(r->crc32c_checked && whole ? info_.crc32c
                                                   : Crc32c(absl::string_view(buffer.data(), n)));
      message = EncodeDownloadResponse(header, ToGrpc(std::move(buffer), n, std::move(loan)));
    }
    {
      MutexLock lock(&mu_);
      backend_ = backend;
      if (!r.ok()) {
        SetOutcome(ToGrpcStatus(r.status()));
      } else if (!mismatch.ok()) {
        SetOutcome(mismatch);
      } else if (!outcome_) {
        SetLastMessage(&message);
      }
    }
    message.Clear();  // if not taken (stopping): its buffer goes back here
    Advance(/*ended_calls=*/1);
  }

  // Opens the file for a ranged or large download (the call is counted).
  void Open() {
    store_->OpenReader(path_, [this](absl::StatusOr<std::unique_ptr<storage::Reader>> r,
                                     Backend backend) { OnOpened(std::move(r), backend); });
  }

  void OnOpened(absl::StatusOr<std::unique_ptr<storage::Reader>> reader, Backend backend) {
    grpc::Status error;
    int64_t end = 0;
    grpc::ByteBuffer message;
    if (!reader.ok()) {
      error = ToGrpcStatus(reader.status());
    } else {
      // Set before streaming_ (below, under mu_) and constant until End.
      reader_ = *std::move(reader);
      info_ = reader_->info();
      const int64_t size = info_.size;
      const int64_t rest = size - offset_;
      end = offset_ + (limit_ == 0 ? rest : std::min(limit_, rest));
      if (grpc::Status mismatch = CheckGeneration(); !mismatch.ok()) {
        error = mismatch;
      } else if (offset_ > size) {
        error = grpc::Status(grpc::StatusCode::OUT_OF_RANGE,
                             absl::StrCat("offset ", offset_, " is past the end of the file (",
                                          size, " bytes)"));
      } else if (end == offset_) {
        // Nothing to read: one message with the file's info.
        v1::DownloadResponse header;
        FillHeader(backend, &header);
        header.set_offset(offset_);
        message = EncodeDownloadResponse(header, grpc::Slice());
      }
    }
    {
      MutexLock lock(&mu_);
      backend_ = backend;
      if (!error.ok()) {
        SetOutcome(error);
      } else if (end == offset_) {
        if (!outcome_) SetLastMessage(&message);
      } else {
        end_ = end;
        next_read_ = offset_;
        next_write_ = offset_;
        streaming_ = true;
      }
    }
    Advance(/*ended_calls=*/1);
  }

  // A pool buffer for the chunk at `offset` has come: read into it.
  void ReadChunk(int64_t offset, size_t len, BufferPool::Loan loan, PooledBuffer buffer) {
    if (!buffer.valid()) return Withdrawn();
    if (Ending()) return EndCall();  // `buffer` goes back
    char* data = buffer.data();
    reader_->Read(offset, absl::Span<char>(data, len), &cancel_,
                  [this, offset, len, buffer = std::move(buffer), loan = std::move(loan)](
                      absl::StatusOr<size_t> n, Backend) mutable {
                    OnChunkRead(offset, len, std::move(n), std::move(buffer), std::move(loan));
                  });
  }

  // Runs on an engine thread: the CRC32C and a copy are made here, not in
  // a reaction. Without a loan the pool buffer goes back at once.
  void OnChunkRead(int64_t offset, size_t len, absl::StatusOr<size_t> n, PooledBuffer buffer,
                   BufferPool::Loan loan) {
    Chunk chunk;
    absl::Status error;
    if (!n.ok()) {
      error = n.status();
    } else if (*n != len) {
      error = absl::AbortedError("the file changed during the download");
    } else {
      chunk.crc32c = Crc32c(absl::string_view(buffer.data(), len));
      chunk.data = ToGrpc(std::move(buffer), len, std::move(loan));
    }
    {
      MutexLock lock(&mu_);
      if (!error.ok()) {
        SetOutcome(ToGrpcStatus(error));
      } else if (!outcome_) {
        ready_[offset] = std::move(chunk);
      }
    }
    // A chunk (or buffer) not kept goes back here, with no lock held.
    chunk = Chunk();
    buffer = PooledBuffer();
    loan = BufferPool::Loan();
    Advance(/*ended_calls=*/1);
  }

  // --- Deciding and ending

  // The download is `*message` alone (taken, `*message` left empty): it
  // goes out with the trailers.
  void SetLastMessage(grpc::ByteBuffer* message) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    outcome_ = grpc::Status::OK;
    last_message_ = true;
    message_.Swap(message);
  }

  // Ends `ended_calls` storage calls (the caller's own), then does what the
  // state allows now: reads while there is room (download_reactor.h: a
  // lent whole buffer while the download holds fewer than kReadAhead + 1
  // chunks and the pool lends, else a copied kCopyChunk while it holds fewer
  // than kCopyHeld), the next chunk's write if it has been read and no write
  // is in flight, or, once the outcome is known and nothing is in flight,
  // the end of the RPC. Called after every change, from any thread. Touches
  // the reactor after its critical section only for what that section gave
  // this thread alone (reads it counted, the write it marked, the end).
  void Advance(int ended_calls) override {
    std::vector<PlannedRead> reads;
    std::optional<Chunk> send;
    int64_t send_offset = 0;
    bool first = false;
    std::map<int64_t, Chunk> dropped;
    std::optional<grpc::Status> finish;
    bool with_message = false;
    Backend backend = Backend::kUnspecified;
    {
      MutexLock lock(&mu_);
      calls_ -= ended_calls;
      if (finished_) return;
      backend = backend_;
      if (!outcome_ && streaming_) {
        BufferPool& pool = store_->pool();
        // Chunks held: read or being read (a wait for a buffer included),
        // and the one being sent.
        int held = calls_ + static_cast<int>(ready_.size()) + (writing_ ? 1 : 0);
        while (next_read_ < end_ && held < kReadAhead + 1) {
          BufferPool::Loan loan = pool.TryLend();
          if (!loan.valid() && held >= kCopyHeld) break;
          const size_t len = static_cast<size_t>(std::min<int64_t>(
              loan.valid() ? pool.buffer_size() : std::min(kCopyChunk, pool.buffer_size()),
              end_ - next_read_));
          reads.push_back(PlannedRead{next_read_, len, std::move(loan)});
          next_read_ += static_cast<int64_t>(len);
          ++calls_;
          ++held;
        }
        if (!writing_) {
          auto it = ready_.find(next_write_);
          if (it != ready_.end()) {
            send = std::move(it->second);
            ready_.erase(it);
            send_offset = next_write_;
            first = next_write_ == offset_;
            next_write_ += static_cast<int64_t>(send->data.size());
            writing_ = true;
          } else if (next_write_ == end_) {
            outcome_ = grpc::Status::OK;  // all sent
          }
        }
      }
      if (outcome_) {
        dropped.swap(ready_);
        if (!writing_ && calls_ == 0) {
          finished_ = true;
          finish = *outcome_;
          with_message = last_message_;
        }
      }
    }
    dropped.clear();  // buffers go back with no lock held
    for (PlannedRead& read : reads) {
      // Acquire may call back at once, or later on another thread.
      store_->pool().Acquire(
          [this, offset = read.offset, len = read.length,
           loan = std::move(read.loan)](PooledBuffer buffer) mutable {
            ReadChunk(offset, len, std::move(loan), std::move(buffer));
          },
          &cancel_);
    }
    if (send) Write(*std::move(send), send_offset, first, backend);
    if (finish) End(*finish, with_message, backend);
  }

  // Sends `chunk`, which starts at `offset`. Its data goes to gRPC with the
  // message; a lent buffer goes back to the pool when the bytes are on the
  // socket (download_message.h). header_ and message_ belong to the one
  // write in flight. The idle clock runs until the write completes. The
  // reaction may run on another thread, which gRPC orders after this call.
  void Write(Chunk chunk, int64_t offset, bool first, Backend backend) {
    header_.Clear();
    if (first) FillHeader(backend, &header_);
    header_.set_offset(offset);
    header_.set_crc32c(chunk.crc32c);
    message_ = EncodeDownloadResponse(header_, std::move(chunk.data));
    RS_HAPPENS_BEFORE(this);
    idle_.Arm();
    StartWrite(&message_);
  }

  // The one way the RPC ends: with the last message (a one-message
  // download sends it and the trailers in one batch, one reaction instead
  // of two) or without. Nothing is in flight; nothing touches the reactor
  // after this but gRPC's reactions.
  void End(const grpc::Status& status, bool with_message, Backend backend) {
    reader_.reset();  // closes the file in the background
    AddBackendTrailer(context_, backend);
    RS_HAPPENS_BEFORE(this);
    RS_HAPPENS_BEFORE(store_);  // see main.cc
    if (with_message) {
      // A client that never reads this message is cut off by the idle
      // timer too, so that gRPC lets go of the data (OnIdle; the status
      // stays the one given here).
      idle_.Arm();
      StartWriteAndFinish(&message_, grpc::WriteOptions(), status);
    } else {
      Finish(status);
    }
  }

  // FAILED_PRECONDITION unless the file opened (info_) is the generation
  // the request asked for, if it asked for one.
  grpc::Status CheckGeneration() const {
    if (!if_generation_match_ || info_.generation == *if_generation_match_) {
      return grpc::Status::OK;
    }
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        absl::StrCat("generation of \"", path_, "\" is ", info_.generation,
                                     ", not ", *if_generation_match_));
  }

  void FillHeader(Backend backend, v1::DownloadResponse* header) const {
    ToProto(info_, header->mutable_info());
    header->set_backend(ToProto(backend));
  }

  const std::string path_;
  const int64_t offset_;
  const int64_t limit_;
  const std::optional<int64_t> if_generation_match_;
  // Set by the open (or small read) before streaming_ or outcome_ says so,
  // constant afterwards; reader_ is released by End.
  std::unique_ptr<storage::Reader> reader_;
  storage::ObjectInfo info_;
  // The message being sent (a write in flight, or the last message), and
  // the reused fields of a chunk's message.
  grpc::ByteBuffer message_;
  v1::DownloadResponse header_;

  // Guarded by the base's mu_.
  Backend backend_ ABSL_GUARDED_BY(mu_) = Backend::kUnspecified;
  // Streaming a range: [next_read_, end_) is still to read, [next_write_,
  // end_) to send; ready_ holds chunks read and not yet sent, by offset.
  bool streaming_ ABSL_GUARDED_BY(mu_) = false;
  int64_t end_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t next_read_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t next_write_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<int64_t, Chunk> ready_ ABSL_GUARDED_BY(mu_);
  // The outcome is OK and message_ goes out with the trailers.
  bool last_message_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

grpc::ServerWriteReactor<grpc::ByteBuffer>* NewDownloadReactor(
    grpc::CallbackServerContext* context, storage::Store* store,
    const ServiceOptions* options, const grpc::ByteBuffer* request) {
  return new DownloadReactor(context, store, options, DecodeDownloadRequest(*request));
}

}  // namespace ringstore::server
