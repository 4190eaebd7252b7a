// slow_clients: many concurrent Downloads of one file, each read slowly.
//
// Opens --streams Download calls of --path over --channels channels (each
// its own HTTP/2 connection; the server allows --max_streams_per_connection
// streams on one, 100 by default, so keep streams / channels under that).
// Each stream takes one message, then waits --read_interval before it asks
// for the next: gRPC's client then holds at most about one message and its
// flow-control window a stream, and the server's writes to it stall between
// reads. With --bdp_probe=false (the default) every stream's window stays at
// HTTP/2's 64 KiB, so the stall is reached at once. The streams stay alive
// under the server's --idle_timeout as long as --read_interval is shorter:
// a slow reader reads, it is not idle.
//
// All streams run on the gRPC callback client API (one ClientReadReactor
// each) plus one timer thread that starts the delayed reads, so 1000
// streams need a handful of threads. After --duration it notes how many are
// still alive, cancels them all and prints one JSON object:
//   {"streams":1000,"channels":16,"read_interval_ms":500,"seconds":60.0,
//    "started":1000,"alive_at_end":1000,"messages":..., "bytes":...,
//    "bytes_per_stream":{"min":..,"p50":..,"max":..},"max_message_bytes":..,
//    "ended_early":{"DEADLINE_EXCEEDED":3}, "offset_errors":0}
// `ended_early` counts, by status code name, the streams that ended before
// the deadline (OK means one read the whole file); `started` counts the
// streams that received their first message.
//
// Exit status: 0 when the run completed (errors are in the JSON), 1 when
// the server cannot be reached, 2 for bad flags.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "ringstore/v1/ringstore.grpc.pb.h"

ABSL_FLAG(std::string, server, "127.0.0.1:50051", "Server address, HOST:PORT.");
ABSL_FLAG(std::string, path, "", "The file every stream downloads.");
ABSL_FLAG(int32_t, streams, 1000, "Concurrent Download streams.");
ABSL_FLAG(int32_t, channels, 16, "Channels (one TCP connection each) the streams share.");
ABSL_FLAG(absl::Duration, read_interval, absl::Milliseconds(500),
          "How long each stream waits after a message before it reads the next.");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(60), "How long the streams run.");
ABSL_FLAG(bool, bdp_probe, false,
          "Let gRPC's BDP probe grow the streams' flow-control windows (more "
          "client-side buffering before a stream stalls).");
ABSL_FLAG(absl::Duration, connect_timeout, absl::Seconds(10),
          "How long to wait for each channel to connect.");

namespace ringstore::bench {
namespace {

using Clock = std::chrono::steady_clock;
namespace v1 = ::ringstore::v1;

class SlowStream;

// Starts delayed reads. Every stream waits the same interval, so the queue
// is in due order by construction: one thread pops its front when due.
class ReadTimer {
 public:
  explicit ReadTimer(Clock::duration interval)
      : interval_(interval), thread_([this] { Loop(); }) {}
  ~ReadTimer() { Stop(); }

  // `stream`'s next read starts one interval from now; false (nothing
  // queued) once Stop has begun.
  bool Schedule(SlowStream* stream) {
    absl::MutexLock lock(&mu_);
    if (stopping_) return false;
    queue_.push_back({Clock::now() + interval_, stream});
    return true;
  }

  // Starts every read still waiting at once, and stops the thread.
  void Stop();

 private:
  struct Entry {
    Clock::time_point due;
    SlowStream* stream;
  };
  void Loop();

  const Clock::duration interval_;
  absl::Mutex mu_;
  std::deque<Entry> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// What all streams saw; the counters are written by gRPC's threads.
struct Totals {
  std::atomic<int64_t> messages{0};
  std::atomic<int64_t> bytes{0};
  std::atomic<int64_t> started{0};
  std::atomic<int64_t> offset_errors{0};
  std::atomic<int64_t> max_message{0};
  absl::Mutex mu;
  int64_t active ABSL_GUARDED_BY(mu) = 0;
  std::map<std::string, int64_t> ended ABSL_GUARDED_BY(mu);  // by code name
};

std::string CodeName(grpc::StatusCode code) {
  static const char* const kNames[] = {
      "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
      "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
      "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
      "UNAUTHENTICATED"};
  const int c = static_cast<int>(code);
  return c >= 0 && c < 17 ? kNames[c] : absl::StrCat("CODE_", c);
}

// One slow download. A read waiting for the timer is covered by a hold
// (AddHold), so the call cannot end under the timer's StartRead.
class SlowStream final : public grpc::ClientReadReactor<v1::DownloadResponse> {
 public:
  SlowStream(v1::FileStore::Stub* stub, const v1::DownloadRequest& request, ReadTimer* timer,
             Totals* totals)
      : timer_(timer), totals_(totals) {
    stub->async()->Download(&context_, &request, this);
    StartRead(&response_);
    StartCall();
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // end of stream or failure: OnDone follows
    if (messages_++ == 0) totals_->started.fetch_add(1, std::memory_order_relaxed);
    if (response_.offset() != received_) {
      totals_->offset_errors.fetch_add(1, std::memory_order_relaxed);
      context_.TryCancel();
      return;
    }
    const int64_t n = static_cast<int64_t>(response_.data().size());
    received_ += n;
    totals_->messages.fetch_add(1, std::memory_order_relaxed);
    totals_->bytes.fetch_add(n, std::memory_order_relaxed);
    int64_t max = totals_->max_message.load(std::memory_order_relaxed);
    while (n > max && !totals_->max_message.compare_exchange_weak(max, n)) {
    }
    AddHold();
    if (!timer_->Schedule(this)) ReadNow();  // the run is over
  }

  // From the timer's thread.
  void ReadNow() {
    StartRead(&response_);
    RemoveHold();
  }

  void OnDone(const grpc::Status& status) override {
    absl::MutexLock lock(&totals_->mu);
    done_ = true;
    if (!ending_) ++totals_->ended[CodeName(status.error_code())];
    --totals_->active;
  }

  // Called once the run is over, before the streams are cancelled: false
  // if this stream has ended already.
  bool MarkEnding() ABSL_LOCKS_EXCLUDED(totals_->mu) {
    absl::MutexLock lock(&totals_->mu);
    ending_ = true;
    return !done_;
  }

  void Cancel() { context_.TryCancel(); }
  int64_t received() const { return received_; }

 private:
  ReadTimer* const timer_;
  Totals* const totals_;
  grpc::ClientContext context_;
  v1::DownloadResponse response_;
  int64_t messages_ = 0;
  int64_t received_ = 0;
  bool done_ = false;    // guarded by totals_->mu
  bool ending_ = false;  // guarded by totals_->mu
};

void ReadTimer::Loop() {
  absl::MutexLock lock(&mu_);
  while (true) {
    if (stopping_) return;
    if (queue_.empty()) {
      mu_.Await(absl::Condition(
          +[](ReadTimer* t) ABSL_NO_THREAD_SAFETY_ANALYSIS {
            return t->stopping_ || !t->queue_.empty();
          },
          this));
      continue;
    }
    const Entry front = queue_.front();
    if (Clock::now() < front.due) {
      mu_.AwaitWithTimeout(
          absl::Condition(+[](bool* s) { return *s; }, &stopping_),
          absl::FromChrono(front.due - Clock::now()));
      continue;
    }
    queue_.pop_front();
    mu_.Unlock();
    front.stream->ReadNow();
    mu_.Lock();
  }
}

void ReadTimer::Stop() {
  std::deque<Entry> left;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  thread_.join();
  {
    absl::MutexLock lock(&mu_);
    left.swap(queue_);
  }
  for (const Entry& e : left) e.stream->ReadNow();
}

int Usage(const std::string& message) {
  std::cerr << "slow_clients: " << message << "\n";
  return 2;
}

int Main() {
  const std::string server = absl::GetFlag(FLAGS_server);
  const int streams = absl::GetFlag(FLAGS_streams);
  const int channels = std::min(absl::GetFlag(FLAGS_channels), streams);
  const absl::Duration interval = absl::GetFlag(FLAGS_read_interval);
  const absl::Duration duration = absl::GetFlag(FLAGS_duration);
  v1::DownloadRequest request;
  request.set_path(absl::GetFlag(FLAGS_path));
  if (request.path().empty()) return Usage("--path is required");
  if (streams < 1 || channels < 1) return Usage("--streams and --channels must be at least 1");
  if (interval < absl::ZeroDuration() || duration <= absl::ZeroDuration()) {
    return Usage("--read_interval must not be negative and --duration must be positive");
  }

  std::vector<std::unique_ptr<v1::FileStore::Stub>> stubs;
  const absl::Time connect_deadline = absl::Now() + absl::GetFlag(FLAGS_connect_timeout);
  for (int i = 0; i < channels; ++i) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(64 << 20);
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, absl::GetFlag(FLAGS_bdp_probe) ? 1 : 0);
    args.SetInt("ringstore.slow_clients.channel", i);
    std::shared_ptr<grpc::Channel> channel =
        grpc::CreateCustomChannel(server, grpc::InsecureChannelCredentials(), args);
    if (!channel->WaitForConnected(absl::ToChronoTime(connect_deadline))) {
      std::cerr << "slow_clients: cannot connect to " << server << "\n";
      return 1;
    }
    stubs.push_back(v1::FileStore::NewStub(channel));
  }

  Totals totals;
  {
    absl::MutexLock lock(&totals.mu);
    totals.active = streams;
  }
  ReadTimer timer(absl::ToChronoNanoseconds(interval));
  const Clock::time_point start = Clock::now();
  std::vector<std::unique_ptr<SlowStream>> all;
  for (int i = 0; i < streams; ++i) {
    all.push_back(std::make_unique<SlowStream>(stubs[static_cast<size_t>(i % channels)].get(),
                                               request, &timer, &totals));
  }
  absl::SleepFor(duration);
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();

  int64_t alive = 0;
  for (auto& s : all) alive += s->MarkEnding() ? 1 : 0;
  for (auto& s : all) s->Cancel();
  timer.Stop();  // the reads it held start now and fail: every stream ends
  {
    absl::MutexLock lock(&totals.mu);
    totals.mu.Await(absl::Condition(
        +[](int64_t* active) { return *active == 0; }, &totals.active));
  }

  std::vector<int64_t> per_stream;
  for (const auto& s : all) per_stream.push_back(s->received());
  std::sort(per_stream.begin(), per_stream.end());
  std::vector<std::string> ended;
  {
    absl::MutexLock lock(&totals.mu);
    for (const auto& [code, n] : totals.ended) ended.push_back(absl::StrCat("\"", code, "\":", n));
  }
  std::cout << absl::StrCat(
                   "{\"streams\":", streams, ",\"channels\":", channels,
                   ",\"read_interval_ms\":", absl::ToInt64Milliseconds(interval),
                   ",\"seconds\":", seconds, ",\"started\":", totals.started.load(),
                   ",\"alive_at_end\":", alive, ",\"messages\":", totals.messages.load(),
                   ",\"bytes\":", totals.bytes.load(), ",\"bytes_per_stream\":{\"min\":",
                   per_stream.front(), ",\"p50\":", per_stream[per_stream.size() / 2],
                   ",\"max\":", per_stream.back(), "},\"max_message_bytes\":",
                   totals.max_message.load(), ",\"ended_early\":{", absl::StrJoin(ended, ","),
                   "},\"offset_errors\":", totals.offset_errors.load(), "}")
            << std::endl;
  return 0;
}

}  // namespace
}  // namespace ringstore::bench

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Many slow Download streams of one file; prints one JSON object.\n"
      "Usage: slow_clients --server=HOST:PORT --path=P [--streams=1000] "
      "[--read_interval=500ms] [--duration=60s]");
  absl::ParseCommandLine(argc, argv);
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return ringstore::bench::Main();
}
