#include "storage/engine/fault_injection.h"

namespace ringstore::storage {

absl::string_view StepName(Step step) {
  switch (step) {
    case Step::kOpen:
      return "open";
    case Step::kRead:
      return "read";
    case Step::kWrite:
      return "write";
    case Step::kFsync:
      return "fsync";
    case Step::kClose:
      return "close";
    case Step::kStat:
      return "stat";
    case Step::kGetXattr:
      return "getxattr";
    case Step::kSetXattr:
      return "setxattr";
    case Step::kRename:
      return "rename";
    case Step::kUnlink:
      return "unlink";
    case Step::kMkdir:
      return "mkdir";
    case Step::kRmdir:
      return "rmdir";
    case Step::kTruncate:
      return "truncate";
    case Step::kCount:
      break;
  }
  return "unknown";
}

void FaultInjector::Fail(Step step, int err, int every, int count) {
  MutexLock lock(&mu_);
  rules_[static_cast<size_t>(step)].push_back(Rule{err, every < 1 ? 1 : every, count});
}

void FaultInjector::Clear() {
  MutexLock lock(&mu_);
  for (auto& rules : rules_) rules.clear();
}

int FaultInjector::Take(Step step) {
  MutexLock lock(&mu_);
  const size_t i = static_cast<size_t>(step);
  for (Rule& rule : rules_[i]) {
    if (rule.count == 0) continue;
    if (++rule.seen % rule.every != 0) continue;
    if (rule.count > 0) --rule.count;
    ++injected_[i];
    return rule.err;
  }
  return 0;
}

int FaultInjector::injected(Step step) const {
  MutexLock lock(&mu_);
  return injected_[static_cast<size_t>(step)];
}

}  // namespace ringstore::storage
