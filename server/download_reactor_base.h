// What Download and BatchDownload share: a server-streaming reactor whose
// storage steps complete on engine threads and which decides what to do
// next in one place.
//
// The model. Every storage step (a wait for a pool buffer, a small-file
// read, an open, a chunk's read) is a "call" counted in calls_. Its
// completion records its result under mu_ and then calls Advance(1), which
// ends the call in the same critical section that decides what comes next:
// start more calls while there is room, send the next message if no write
// is in flight, or end the RPC. So while a completion runs, its call still
// counts and the RPC cannot end under its feet. The RPC ends once
// outcome_ is known and nothing is in flight (no call, no write): the
// subclass's Advance sets finished_ and calls Finish (or
// StartWriteAndFinish) exactly once, and nothing touches the reactor after
// that but gRPC's reactions and the idle timer, which OnDone stops before
// it deletes the reactor.
//
// What this class does for both:
//   - OnWriteDone: the write in flight (writing_) is over; a failed one
//     ends the RPC (CANCELLED).
//   - OnCancel: the client went away or the deadline passed. Engine reads
//     in flight end early (cancel_), waits for pool buffers are withdrawn,
//     none is started, and the RPC ends once they have called back.
//   - The idle clock (idle_): the subclass arms it with each write; a client
//     that reads nothing for --idle_timeout while a write waits for it is
//     cut off with DEADLINE_EXCEEDED, which makes gRPC drop the pending
//     message and the buffer or copy it held.
//   - OnDone: closes the idle clock and deletes the reactor.
//
// Threads: the reactions run on gRPC's threads, the completions on engine
// threads or the pool's, OnIdle on the idle timer's; everything they share
// is under mu_. The RS_HAPPENS_* annotations (storage/engine/sync.h) tell
// ThreadSanitizer about the ordering gRPC provides between a Start* call
// and its reaction.
#ifndef RINGSTORE_SERVER_DOWNLOAD_REACTOR_BASE_H_
#define RINGSTORE_SERVER_DOWNLOAD_REACTOR_BASE_H_

#include <grpcpp/grpcpp.h>

#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "server/idle_timer.h"
#include "server/service_options.h"
#include "storage/engine/cancellation.h"
#include "storage/engine/sync.h"
#include "storage/store.h"

namespace ringstore::server {

class DownloadReactorBase : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  DownloadReactorBase(const DownloadReactorBase&) = delete;
  DownloadReactorBase& operator=(const DownloadReactorBase&) = delete;

  void OnWriteDone(bool ok) final;
  void OnCancel() final;
  void OnDone() final;

 protected:
  // `rpc` names the RPC in the messages of its errors ("download"; a
  // literal). `context`, `store` and `options` outlive the reactor.
  DownloadReactorBase(grpc::CallbackServerContext* context, storage::Store* store,
                      const ServiceOptions* options, absl::string_view rpc);
  ~DownloadReactorBase() override = default;

  // Ends `ended_calls` storage calls (the caller's own), then does what the
  // state allows now (see the model above). Called after every change, from
  // any thread, with mu_ not held.
  virtual void Advance(int ended_calls) = 0;

  // Ends the RPC with `status` unless its outcome is known already.
  void Stop(const grpc::Status& status);
  // Whether the outcome is known (a call that has just got its buffer
  // then starts nothing).
  bool Ending();
  void SetOutcome(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!outcome_) outcome_ = status;
  }
  // A call ended with nothing to record.
  void EndCall() { Advance(/*ended_calls=*/1); }
  // A wait for a pool buffer ended without one: the RPC was cancelled
  // (OnCancel fires cancel_, which withdraws the wait, possibly before
  // OnCancel has recorded the outcome: recorded here too, so that Advance
  // starts nothing more). Ends the call.
  void Withdrawn();

  grpc::CallbackServerContext* const context_;
  storage::Store* const store_;
  const ServiceOptions* const options_;
  // Cuts short the engine reads of a cancelled RPC and withdraws its waits
  // for pool buffers. Outlives them: the RPC ends only once every call has
  // called back.
  storage::Cancellation cancel_;
  // Armed while a write waits for the client; closed by OnDone.
  IdleWatch idle_;

  Mutex mu_;
  // Storage calls whose callback has not run.
  int calls_ ABSL_GUARDED_BY(mu_) = 0;
  // A write (StartWrite or StartWriteAndFinish) is in flight.
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  // How the RPC ends, once known (the first reason wins).
  std::optional<grpc::Status> outcome_ ABSL_GUARDED_BY(mu_);
  // Finish (or the last write with it) has been started.
  bool finished_ ABSL_GUARDED_BY(mu_) = false;

 private:
  // On the idle timer's thread. The last thing it does with the reactor is
  // the cancel: the reactions it triggers may run at once and end the RPC.
  void OnIdle();

  // CANCELLED, "the client cancelled the <rpc_>".
  grpc::Status Cancelled() const;

  const absl::string_view rpc_;
};

}  // namespace ringstore::server

#endif  // RINGSTORE_SERVER_DOWNLOAD_REACTOR_BASE_H_
