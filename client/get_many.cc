#include "client/get_many.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <iostream>
#include <map>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/cli_output.h"

namespace ringstore::client {
namespace {

grpc::Status LocalError(const std::string& what) {
  return grpc::Status(grpc::StatusCode::INTERNAL, absl::StrCat(what, ": ", std::strerror(errno)));
}

// A descriptor closed when it goes.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    std::swap(fd_, o.fd_);
    return *this;
  }
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

// The directory that holds `path` (SafeRelativePath) under `dir_fd`,
// created as needed, walked without following symbolic links; `*leaf` is
// the file's own name.
absl::StatusOr<int> OpenParent(int dir_fd, const std::string& path, std::string* leaf) {
  std::vector<std::string> parts = absl::StrSplit(path, '/');
  *leaf = parts.back();
  parts.pop_back();
  Fd current(dup(dir_fd));
  if (current.get() < 0) return absl::InternalError(std::strerror(errno));
  for (const std::string& part : parts) {
    if (mkdirat(current.get(), part.c_str(), 0755) != 0 && errno != EEXIST) {
      return absl::InternalError(absl::StrCat("mkdir ", part, ": ", std::strerror(errno)));
    }
    Fd next(openat(current.get(), part.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (next.get() < 0) {
      return absl::InternalError(absl::StrCat("open directory ", part, ": ", std::strerror(errno)));
    }
    current = std::move(next);
  }
  return current.release();
}

// Writes the files of one BatchGet under the target directory and reports
// each as it ends.
class DirSink final : public BatchSink {
 public:
  struct Totals {
    int ok = 0;
    int failed = 0;
    int64_t bytes = 0;
  };

  DirSink(int dir_fd, const std::string& dir, const std::vector<std::string>& paths, bool json,
          Progress progress, int64_t total_bytes, Totals* totals)
      : dir_fd_(dir_fd),
        dir_(dir),
        paths_(paths),
        json_(json),
        progress_(std::move(progress)),
        total_bytes_(total_bytes),
        totals_(totals) {}

  void Begin(int index, const v1::FileInfo& info, const std::string& backend) override {
    Open& f = open_[index];
    f.info = info;
    f.backend = backend;
    std::string leaf;
    absl::StatusOr<int> parent = OpenParent(dir_fd_, paths_[index], &leaf);
    if (!parent.ok()) {
      f.error = grpc::Status(grpc::StatusCode::INTERNAL, std::string(parent.status().message()));
      return;
    }
    f.parent = Fd(*parent);
    f.leaf = leaf;
    f.tmp = absl::StrCat(".", leaf, ".ringstore-", getpid(), "-", ++temp_counter_);
    f.fd = Fd(openat(f.parent.get(), f.tmp.c_str(),
                     O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
    if (f.fd.get() < 0) f.error = LocalError(absl::StrCat("create ", Local(index)));
  }

  grpc::Status Data(int index, int64_t offset, absl::string_view data) override {
    Open& f = open_[index];
    if (!f.error.ok()) return f.error;
    size_t done = 0;
    while (done < data.size()) {
      const ssize_t n = pwrite(f.fd.get(), data.data() + done, data.size() - done,
                               offset + static_cast<int64_t>(done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return f.error = LocalError(absl::StrCat("write ", Local(index)));
      done += static_cast<size_t>(n);
    }
    totals_->bytes += static_cast<int64_t>(data.size());
    if (progress_) progress_(totals_->bytes, total_bytes_);
    return grpc::Status::OK;
  }

  void End(int index, const grpc::Status& status) override {
    ended_.push_back(index);
    auto it = open_.find(index);
    grpc::Status s = status;
    if (s.ok() && it == open_.end()) s = grpc::Status(grpc::StatusCode::DATA_LOSS, "no data");
    if (it != open_.end()) {
      Open& f = it->second;
      if (s.ok()) s = f.error;
      if (s.ok() && close(f.fd.release()) != 0) s = LocalError(absl::StrCat("close ", Local(index)));
      if (s.ok() && renameat(f.parent.get(), f.tmp.c_str(), f.parent.get(), f.leaf.c_str()) != 0) {
        s = LocalError(absl::StrCat("rename to ", Local(index)));
      }
      if (!s.ok() && f.parent.get() >= 0 && !f.tmp.empty()) {
        unlinkat(f.parent.get(), f.tmp.c_str(), 0);
      }
    }
    if (s.ok()) {
      Report(index, it->second.info, it->second.backend);
    } else {
      ReportFailure(paths_[index], s);
    }
    if (it != open_.end()) open_.erase(it);
  }

  // Files of the call that got no End: they failed with the call.
  void FailUnanswered(const grpc::Status& status) {
    std::vector<bool> ended(paths_.size(), false);
    for (int i : ended_) ended[static_cast<size_t>(i)] = true;
    for (size_t i = 0; i < paths_.size(); ++i) {
      if (!ended[i]) End(static_cast<int>(i), status);
    }
  }

  void Report(int index, const v1::FileInfo& info, const std::string& backend) {
    ++totals_->ok;
    if (json_) {
      std::cout << FileInfoJson(info, backend) << "\n";
    } else {
      std::cout << "downloaded " << info.path() << " to " << Local(index) << " served by "
                << backend << "\n";
    }
  }

  void ReportFailure(const std::string& path, const grpc::Status& s) {
    ++totals_->failed;
    if (json_) {
      std::cout << "{\"path\":" << JsonString(path) << ",\"error\":"
                << JsonString(StatusName(s.error_code()))
                << ",\"message\":" << JsonString(s.error_message()) << "}\n";
    }
    Fail(grpc::Status(s.error_code(), absl::StrCat(path, ": ", s.error_message())));
  }

 private:
  struct Open {
    v1::FileInfo info;
    std::string backend;
    Fd parent;
    std::string leaf;
    std::string tmp;
    Fd fd;
    grpc::Status error;
  };

  std::string Local(int index) const { return absl::StrCat(dir_, "/", paths_[index]); }

  const int dir_fd_;
  const std::string dir_;
  const std::vector<std::string>& paths_;
  const bool json_;
  const Progress progress_;
  const int64_t total_bytes_;
  Totals* const totals_;
  std::map<int, Open> open_;
  std::vector<int> ended_;
  int temp_counter_ = 0;
};

}  // namespace

bool IsGetMany(const CliArgs& a) {
  return a.command == "get" && (!a.prefix.empty() || a.args.size() > 2 ||
                                (a.args.size() == 2 && absl::EndsWith(a.args[1], "/")));
}

bool SafeRelativePath(absl::string_view path) {
  if (path.empty() || path[0] == '/' || path.find('\0') != absl::string_view::npos) return false;
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (part.empty() || part == "." || part == "..") return false;
  }
  return true;
}

int CmdGetMany(Client& client, const CliArgs& a) {
  std::string dir = a.args.back();
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  std::vector<std::string> remotes(a.args.begin(), a.args.end() - 1);
  int64_t total_bytes = 0;
  if (!a.prefix.empty()) {
    std::string backend;
    grpc::Status s = client.List(
        a.prefix,
        [&](const v1::FileInfo& f) {
          remotes.push_back(f.path());
          total_bytes += f.size();
        },
        &backend);
    if (!s.ok()) return Fail(s);
    if (remotes.empty()) {
      std::cerr << "ringstore: no files under \"" << a.prefix << "\"\n";
      return kExitOk;
    }
  }
  if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return LocalFail(absl::StrCat("cannot create ", dir, ": ", std::strerror(errno)));
  }
  Fd dir_fd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir_fd.get() < 0) {
    return LocalFail(absl::StrCat("cannot open directory ", dir, ": ", std::strerror(errno)));
  }
  ProgressBar bar;
  const Progress progress = bar.callback();
  DirSink::Totals totals;
  std::vector<std::string> batch;
  std::string last_backend;
  auto flush = [&] {
    if (batch.empty()) return;
    DirSink sink(dir_fd.get(), dir, batch, a.json, progress, total_bytes, &totals);
    std::string backend;
    grpc::Status s = client.BatchGet(batch, &sink, &backend);
    bar.Clear();
    if (!backend.empty()) last_backend = backend;
    if (!s.ok()) sink.FailUnanswered(s);
    batch.clear();
  };
  for (const std::string& remote : remotes) {
    if (!SafeRelativePath(remote)) {
      std::vector<std::string> one = {remote};
      DirSink(dir_fd.get(), dir, one, a.json, nullptr, 0, &totals)
          .ReportFailure(remote, grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                              "not a relative path under " + dir + "/"));
      continue;
    }
    batch.push_back(remote);
    if (batch.size() == static_cast<size_t>(kMaxBatchPaths)) flush();
  }
  flush();
  if (!a.json) {
    std::cerr << totals.ok << " files (" << totals.bytes << " bytes) downloaded to " << dir
              << "/, " << totals.failed << " failed"
              << (last_backend.empty() ? "" : ", served by " + last_backend) << "\n";
  }
  return totals.failed == 0 ? kExitOk : kExitFailure;
}

}  // namespace ringstore::client
