#include "server/metrics.h"

#include <charconv>
#include <cmath>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace ringstore::server {
namespace {

// [a-zA-Z_:][a-zA-Z0-9_:]* for metric names, without ':' for label names.
bool ValidName(absl::string_view name, bool colon) {
  if (name.empty() || absl::ascii_isdigit(name[0])) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(c) && c != '_' && !(colon && c == ':')) return false;
  }
  return true;
}

std::string EscapeHelp(absl::string_view help) {
  std::string out;
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// {a="x",b="y"} (plus `extra`, already formatted, last); "" without labels.
std::string LabelText(const std::vector<std::string>& names, const LabelValues& values,
                      absl::string_view extra = {}) {
  if (names.empty() && extra.empty()) return "";
  std::string out = "{";
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += ",";
    absl::StrAppend(&out, names[i], "=\"", EscapeLabelValue(values[i]), "\"");
  }
  if (!extra.empty()) absl::StrAppend(&out, names.empty() ? "" : ",", extra);
  out += "}";
  return out;
}

class StringSink final : public SampleSink {
 public:
  StringSink(const std::string* name, const std::vector<std::string>* labels, std::string* out)
      : name_(name), labels_(labels), out_(out) {}
  void Add(const LabelValues& values, double value) override {
    if (values.size() != labels_->size()) std::abort();  // a programming error
    absl::StrAppend(out_, *name_, LabelText(*labels_, values), " ", FormatMetricValue(value),
                    "\n");
  }

 private:
  const std::string* const name_;
  const std::vector<std::string>* const labels_;
  std::string* const out_;
};

}  // namespace

std::string FormatMetricValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (value == std::floor(value) && std::fabs(value) < 1e15) {
    return absl::StrCat(static_cast<int64_t>(value));
  }
  char buf[64];
  const std::to_chars_result r = std::to_chars(buf, buf + sizeof(buf), value);
  return std::string(buf, r.ptr);
}

std::string EscapeLabelValue(absl::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

Histogram::Histogram(const std::vector<double>* bounds)
    : bounds_(bounds), buckets_(new std::atomic<uint64_t>[bounds->size() + 1]) {
  for (size_t i = 0; i <= bounds_->size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double value) {
  size_t i = 0;
  while (i < bounds_->size() && value > (*bounds_)[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  double sum = sum_.load(std::memory_order_relaxed);
  while (!sum_.compare_exchange_weak(sum, sum + value, std::memory_order_relaxed)) {
  }
}

Histogram::Snapshot Histogram::Read() const {
  Snapshot s;
  uint64_t total = 0;
  for (size_t i = 0; i <= bounds_->size(); ++i) {
    total += buckets_[i].load(std::memory_order_relaxed);
    s.cumulative.push_back(total);
  }
  s.count = total;
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

struct MetricsRegistry::Entry {
  std::string name;
  std::string help;
  const char* type = "";
  std::vector<std::string> label_names;
  std::unique_ptr<CounterFamily> counters;
  std::unique_ptr<GaugeFamily> gauges;
  std::unique_ptr<HistogramFamily> histograms;
  std::vector<double> bounds;
  std::function<void(SampleSink&)> collect;

  void Render(std::string* out) const;
};

void MetricsRegistry::Entry::Render(std::string* out) const {
  absl::StrAppend(out, "# HELP ", name, " ", EscapeHelp(help), "\n# TYPE ", name, " ", type,
                  "\n");
  if (collect) {
    StringSink sink(&name, &label_names, out);
    collect(sink);
    return;
  }
  if (counters != nullptr) {
    ringstore::MutexLock lock(&counters->mu_);
    for (const auto& [values, cell] : counters->cells_) {
      absl::StrAppend(out, name, LabelText(label_names, values), " ", cell->value(), "\n");
    }
  }
  if (gauges != nullptr) {
    ringstore::MutexLock lock(&gauges->mu_);
    for (const auto& [values, cell] : gauges->cells_) {
      absl::StrAppend(out, name, LabelText(label_names, values), " ", cell->value(), "\n");
    }
  }
  if (histograms != nullptr) {
    ringstore::MutexLock lock(&histograms->mu_);
    for (const auto& [values, cell] : histograms->cells_) {
      const Histogram::Snapshot s = cell->Read();
      for (size_t i = 0; i <= bounds.size(); ++i) {
        const std::string le = absl::StrCat(
            "le=\"", i < bounds.size() ? FormatMetricValue(bounds[i]) : "+Inf", "\"");
        absl::StrAppend(out, name, "_bucket", LabelText(label_names, values, le), " ",
                        s.cumulative[i], "\n");
      }
      absl::StrAppend(out, name, "_sum", LabelText(label_names, values), " ",
                      FormatMetricValue(s.sum), "\n");
      absl::StrAppend(out, name, "_count", LabelText(label_names, values), " ", s.count, "\n");
    }
  }
}

MetricsRegistry::MetricsRegistry() = default;
MetricsRegistry::~MetricsRegistry() = default;

std::unique_ptr<MetricsRegistry::Entry> MetricsRegistry::NewEntry(std::string name, std::string help,
                                                  std::vector<std::string> label_names,
                                                  const char* type) {
  if (!ValidName(name, /*colon=*/true)) std::abort();
  for (const std::string& l : label_names) {
    if (!ValidName(l, /*colon=*/false) || l == "le") std::abort();
  }
  auto entry = std::make_unique<Entry>();
  entry->name = std::move(name);
  entry->help = std::move(help);
  entry->type = type;
  entry->label_names = std::move(label_names);
  return entry;
}

// Adds a family once it is complete: Render may run at any time.
MetricsRegistry::Entry* MetricsRegistry::Insert(std::unique_ptr<Entry> entry) {
  Entry* e = entry.get();
  ringstore::MutexLock lock(&mu_);
  for (const auto& other : entries_) {
    if (other->name == e->name) std::abort();
  }
  entries_.push_back(std::move(entry));
  return e;
}

CounterFamily* MetricsRegistry::AddCounter(std::string name, std::string help,
                                           std::vector<std::string> label_names) {
  std::unique_ptr<Entry> e =
      NewEntry(std::move(name), std::move(help), std::move(label_names), "counter");
  e->counters.reset(new CounterFamily([] { return std::make_unique<Counter>(); }));
  e->counters->label_count_ = e->label_names.size();
  return Insert(std::move(e))->counters.get();
}

GaugeFamily* MetricsRegistry::AddGauge(std::string name, std::string help,
                                       std::vector<std::string> label_names) {
  std::unique_ptr<Entry> e =
      NewEntry(std::move(name), std::move(help), std::move(label_names), "gauge");
  e->gauges.reset(new GaugeFamily([] { return std::make_unique<Gauge>(); }));
  e->gauges->label_count_ = e->label_names.size();
  return Insert(std::move(e))->gauges.get();
}

HistogramFamily* MetricsRegistry::AddHistogram(std::string name, std::string help,
                                               std::vector<std::string> label_names,
                                               std::vector<double> bounds) {
  std::unique_ptr<Entry> e =
      NewEntry(std::move(name), std::move(help), std::move(label_names), "histogram");
  e->bounds = std::move(bounds);
  const std::vector<double>* b = &e->bounds;
  e->histograms.reset(new HistogramFamily([b] { return std::make_unique<Histogram>(b); }));
  e->histograms->label_count_ = e->label_names.size();
  return Insert(std::move(e))->histograms.get();
}

void MetricsRegistry::AddCallback(std::string name, std::string help, MetricType type,
                                  std::vector<std::string> label_names,
                                  std::function<void(SampleSink&)> collect) {
  std::unique_ptr<Entry> e = NewEntry(std::move(name), std::move(help), std::move(label_names),
                                      type == MetricType::kCounter ? "counter" : "gauge");
  e->collect = std::move(collect);
  Insert(std::move(e));
}

void MetricsRegistry::AddCallbackGauge(std::string name, std::string help,
                                       std::function<double()> read) {
  AddCallback(std::move(name), std::move(help), MetricType::kGauge, {},
              [read = std::move(read)](SampleSink& sink) { sink.Add({}, read()); });
}

std::string MetricsRegistry::Render() const {
  std::vector<const Entry*> entries;
  {
    ringstore::MutexLock lock(&mu_);
    for (const auto& e : entries_) entries.push_back(e.get());
  }
  std::string out;
  for (const Entry* e : entries) e->Render(&out);
  return out;
}

}  // namespace ringstore::server
