#include "server/download_reactor_base.h"

#include <grpc/grpc.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace ringstore::server {

DownloadReactorBase::DownloadReactorBase(grpc::CallbackServerContext* context,
                                         storage::Store* store, const ServiceOptions* options,
                                         absl::string_view rpc)
    : context_(context),
      store_(store),
      options_(options),
      idle_(options->idle_timer, [this] { OnIdle(); }),
      rpc_(rpc) {}

void DownloadReactorBase::OnWriteDone(bool ok) {
  RS_HAPPENS_AFTER(this);
  idle_.Disarm();
  {
    MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) SetOutcome(grpc::Status(grpc::StatusCode::CANCELLED, "the client went away"));
  }
  Advance(/*ended_calls=*/0);
}

void DownloadReactorBase::OnCancel() {
  RS_HAPPENS_AFTER(this);
  cancel_.Cancel();
  Stop(Cancelled());
  // gRPC runs OnDone only after OnCancel has returned.
  RS_HAPPENS_BEFORE(this);
}

void DownloadReactorBase::OnDone() {
  RS_HAPPENS_AFTER(this);
  idle_.Close();  // waits for an OnIdle running on the timer's thread
  delete this;
}

void DownloadReactorBase::Stop(const grpc::Status& status) {
  {
    MutexLock lock(&mu_);
    SetOutcome(status);
  }
  Advance(/*ended_calls=*/0);
}

bool DownloadReactorBase::Ending() {
  MutexLock lock(&mu_);
  return outcome_.has_value();
}

void DownloadReactorBase::Withdrawn() {
  {
    MutexLock lock(&mu_);
    SetOutcome(Cancelled());
  }
  EndCall();
}

grpc::Status DownloadReactorBase::Cancelled() const {
  return grpc::Status(grpc::StatusCode::CANCELLED, absl::StrCat("the client cancelled the ", rpc_));
}

void DownloadReactorBase::OnIdle() {
  const absl::Duration timeout = options_->idle_timer != nullptr
                                     ? options_->idle_timer->timeout()
                                     : absl::InfiniteDuration();
  const std::string message =
      absl::StrCat("the client read nothing for ", absl::FormatDuration(timeout),
                   " (--idle_timeout)");
  {
    MutexLock lock(&mu_);
    SetOutcome(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, message));
  }
  grpc_call_cancel_with_status(context_->c_call(), GRPC_STATUS_DEADLINE_EXCEEDED,
                               message.c_str(), nullptr);
}

}  // namespace ringstore::server
