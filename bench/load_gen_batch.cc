#include "bench/load_gen_batch.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/client.h"
#include "storage/engine/sync.h"

namespace ringstore::bench {
namespace {

using Clock = std::chrono::steady_clock;

// One BatchDownload, its messages checked by client::BatchFileCheck;
// deletes itself in OnDone.
class BatchCall final : public grpc::ClientReadReactor<v1::BatchDownloadResponse> {
 public:
  BatchCall(v1::FileStore::Stub* stub, const Config& config,
            const v1::BatchDownloadRequest* request, std::function<void(const BatchResult&)> done)
      : done_(std::move(done)), start_(Clock::now()), files_(request->paths_size()) {
    context_.set_deadline(absl::ToChronoTime(absl::Now() + config.rpc_timeout));
    if (!config.token.empty()) {
      context_.AddMetadata("authorization", absl::StrCat("Bearer ", config.token));
    }
    stub->async()->BatchDownload(&context_, request, this);
    RS_HAPPENS_BEFORE(this);
    StartRead(&response_);
    StartCall();
  }

  void OnReadDone(bool ok) override {
    RS_HAPPENS_AFTER(this);
    if (!ok) return;
    Check(response_);
    if (!local_error_.ok()) return;
    RS_HAPPENS_BEFORE(this);
    StartRead(&response_);
  }

  void OnDone(const grpc::Status& status) override {
    RS_HAPPENS_AFTER(this);
    BatchResult r;
    r.latency = Clock::now() - start_;
    r.status = !local_error_.ok() ? local_error_ : status;
    if (r.status.ok() && !file_error_.ok()) r.status = file_error_;
    if (r.status.ok() && answered_ != static_cast<int64_t>(files_.size())) {
      r.status = grpc::Status(grpc::StatusCode::DATA_LOSS,
                              absl::StrCat(answered_, " of ", files_.size(), " files answered"));
    }
    r.files = answered_;
    r.bytes = bytes_;
    r.backend = ReportedBackend(backend_, context_);
    std::function<void(const BatchResult&)> done = std::move(done_);
    delete this;
    done(r);
  }

 private:
  struct File {
    client::BatchFileCheck check;
    bool ended = false;
  };

  void Check(const v1::BatchDownloadResponse& m) {
    if (m.index() < 0 || static_cast<size_t>(m.index()) >= files_.size()) {
      return Fail(absl::StrCat("a message for index ", m.index()));
    }
    File& f = files_[static_cast<size_t>(m.index())];
    if (f.ended) return Fail(absl::StrCat("a message after the end of file ", m.index()));
    if (m.error_code() != 0) {
      f.ended = true;
      if (file_error_.ok()) {
        file_error_ = grpc::Status(static_cast<grpc::StatusCode>(m.error_code()),
                                   m.error_message());
      }
      return;
    }
    if (!f.check.begun() && backend_ == v1::BACKEND_UNSPECIFIED) backend_ = m.backend();
    if (grpc::Status s = f.check.Add(m); !s.ok()) {
      return Fail(absl::StrCat("file ", m.index(), ": ", s.error_message()));
    }
    if (m.last()) {
      f.ended = true;
      ++answered_;
      bytes_ += f.check.size();
    }
  }

  void Fail(std::string message) {
    local_error_ = grpc::Status(grpc::StatusCode::DATA_LOSS, std::move(message));
    context_.TryCancel();
  }

  std::function<void(const BatchResult&)> done_;
  const Clock::time_point start_;
  grpc::ClientContext context_;
  v1::BatchDownloadResponse response_;
  std::vector<File> files_;
  grpc::Status local_error_;
  grpc::Status file_error_;  // the first file the server failed
  int64_t answered_ = 0;
  int64_t bytes_ = 0;
  v1::Backend backend_ = v1::BACKEND_UNSPECIFIED;
};

}  // namespace

void StartBatchDownload(v1::FileStore::Stub* stub, const Config& config,
                        const v1::BatchDownloadRequest* request,
                        std::function<void(const BatchResult&)> done) {
  new BatchCall(stub, config, request, std::move(done));
}

}  // namespace ringstore::bench
