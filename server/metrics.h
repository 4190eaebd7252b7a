// A small metrics registry and its Prometheus text exposition (format
// 0.0.4: HELP and TYPE lines, then one sample a line).
//
// Three kinds of family, each with fixed label names:
//   - counters and histograms whose cells the code updates: a cell is found
//     (or created) once per label set with Get(), under the family's mutex;
//     the pointer it returns stays valid as long as the registry, and
//     updating it is one relaxed atomic add, no lock. Callers on a hot path
//     keep the pointers (call_observer.cc keeps one per method, code and
//     backend);
//   - families read at scrape time by a callback (gauges such as the buffer
//     pool's, and counters kept elsewhere such as the engine's), which emits
//     the samples it has.
// Render() writes families in registration order and, within a family,
// label sets in lexicographic order of their values, so output is stable.
// Every method is thread-safe. Families are registered before serving
// begins (each AddX checks the name is new and valid; a bad one is a
// programming error and aborts).
#ifndef RINGSTORE_SERVER_METRICS_H_
#define RINGSTORE_SERVER_METRICS_H_

#include <atomic>
#include <cstdlib>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "storage/engine/sync.h"

namespace ringstore::server {

using LabelValues = std::vector<std::string>;

class Counter {
 public:
  void Add(uint64_t n) { value_.fetch_add(n, std::memory_order_relaxed); }
  void Inc() { Add(1); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// A gauge the code sets or moves (for example calls in flight).
class Gauge {
 public:
  void Add(int64_t n) { value_.fetch_add(n, std::memory_order_relaxed); }
  void Set(int64_t n) { value_.store(n, std::memory_order_relaxed); }
  int64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> value_{0};
};

// Fixed buckets (upper bounds, ascending; +Inf is implicit).
class Histogram {
 public:
  explicit Histogram(const std::vector<double>* bounds);
  void Observe(double value);

  struct Snapshot {
    std::vector<uint64_t> cumulative;  // one per bound, then +Inf
    double sum = 0;
    uint64_t count = 0;
  };
  Snapshot Read() const;

 private:
  const std::vector<double>* const bounds_;
  // Per bucket (not cumulative); the last is +Inf.
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;
  std::atomic<double> sum_{0};
};

template <typename Cell>
class Family {
 public:
  // The cell of this label set (one value per label name, in order),
  // created on first use.
  Cell* Get(const LabelValues& values);

 private:
  friend class MetricsRegistry;
  explicit Family(std::function<std::unique_ptr<Cell>()> make) : make_(std::move(make)) {}
  size_t label_count_ = 0;
  std::function<std::unique_ptr<Cell>()> make_;
  mutable ringstore::Mutex mu_;
  std::map<LabelValues, std::unique_ptr<Cell>> cells_ ABSL_GUARDED_BY(mu_);
};

using CounterFamily = Family<Counter>;
using GaugeFamily = Family<Gauge>;
using HistogramFamily = Family<Histogram>;

// What a scrape-time callback emits into.
class SampleSink {
 public:
  virtual ~SampleSink() = default;
  // One sample: a value per label name of the family, in order.
  virtual void Add(const LabelValues& values, double value) = 0;
};

enum class MetricType { kCounter, kGauge };

class MetricsRegistry {
 public:
  MetricsRegistry();
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;
  ~MetricsRegistry();

  // Families that live as long as the registry. Counter names end in
  // "_total" by Prometheus convention (not enforced).
  CounterFamily* AddCounter(std::string name, std::string help,
                            std::vector<std::string> label_names);
  GaugeFamily* AddGauge(std::string name, std::string help, std::vector<std::string> label_names);
  HistogramFamily* AddHistogram(std::string name, std::string help,
                                std::vector<std::string> label_names, std::vector<double> bounds);
  // A family whose samples `collect` emits at each scrape. It runs on the
  // scraping thread with no lock of the registry held, and must be quick.
  void AddCallback(std::string name, std::string help, MetricType type,
                   std::vector<std::string> label_names,
                   std::function<void(SampleSink&)> collect);
  // A single unlabelled sample read at each scrape.
  void AddCallbackGauge(std::string name, std::string help, std::function<double()> read);

  // Every family in the text format (ends with a newline unless empty).
  std::string Render() const;

 private:
  struct Entry;
  static std::unique_ptr<Entry> NewEntry(std::string name, std::string help,
                                         std::vector<std::string> label_names, const char* type);
  Entry* Insert(std::unique_ptr<Entry> entry);

  mutable ringstore::Mutex mu_;
  std::vector<std::unique_ptr<Entry>> entries_ ABSL_GUARDED_BY(mu_);
};

// Helpers of the text format, exposed for tests.
// A sample value: integers as integers, others as the shortest decimal
// that reads back exactly; "+Inf", "-Inf", "NaN".
std::string FormatMetricValue(double value);
// Escapes a label value (backslash, double quote, newline).
std::string EscapeLabelValue(absl::string_view value);

template <typename Cell>
Cell* Family<Cell>::Get(const LabelValues& values) {
  if (values.size() != label_count_) std::abort();  // a programming error
  ringstore::MutexLock lock(&mu_);
  std::unique_ptr<Cell>& cell = cells_[values];
  if (cell == nullptr) cell = make_();
  return cell.get();
}

}  // namespace ringstore::server

#endif  // RINGSTORE_SERVER_METRICS_H_
