#include "server/metrics.h"

#include <limits>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace ringstore::server {
namespace {

TEST(MetricsTest, RendersEveryKindExactly) {
  MetricsRegistry registry;
  CounterFamily* requests =
      registry.AddCounter("rs_requests_total", "Calls.\nBy method.", {"method", "code"});
  HistogramFamily* duration =
      registry.AddHistogram("rs_duration_seconds", "Call time.", {"method"}, {0.1, 1, 2.5});
  GaugeFamily* busy = registry.AddGauge("rs_busy", "Busy \\ calls.", {});
  registry.AddCallback("rs_pool", "Pool buffers.", MetricType::kGauge, {"state"},
                       [](SampleSink& sink) {
                         sink.Add({"free"}, 3);
                         sink.Add({"in_use"}, 1);
                       });
  registry.AddCallbackGauge("rs_ratio", "A fraction.", [] { return 0.25; });

  requests->Get({"Stat", "NOT_FOUND"})->Inc();
  requests->Get({"Download", "OK"})->Add(41);
  requests->Get({"Download", "OK"})->Inc();
  requests->Get({"Up\"load", "a\\b\nc"})->Inc();
  duration->Get({"Stat"})->Observe(0.05);
  duration->Get({"Stat"})->Observe(0.1);  // bounds are inclusive
  duration->Get({"Stat"})->Observe(2);
  duration->Get({"Stat"})->Observe(7);
  busy->Get({})->Add(2);
  busy->Get({})->Add(-1);

  EXPECT_EQ(registry.Render(),
            "# HELP rs_requests_total Calls.\\nBy method.\n"
            "# TYPE rs_requests_total counter\n"
            "rs_requests_total{method=\"Download\",code=\"OK\"} 42\n"
            "rs_requests_total{method=\"Stat\",code=\"NOT_FOUND\"} 1\n"
            "rs_requests_total{method=\"Up\\\"load\",code=\"a\\\\b\\nc\"} 1\n"
            "# HELP rs_duration_seconds Call time.\n"
            "# TYPE rs_duration_seconds histogram\n"
            "rs_duration_seconds_bucket{method=\"Stat\",le=\"0.1\"} 2\n"
            "rs_duration_seconds_bucket{method=\"Stat\",le=\"1\"} 2\n"
            "rs_duration_seconds_bucket{method=\"Stat\",le=\"2.5\"} 3\n"
            "rs_duration_seconds_bucket{method=\"Stat\",le=\"+Inf\"} 4\n"
            "rs_duration_seconds_sum{method=\"Stat\"} 9.15\n"
            "rs_duration_seconds_count{method=\"Stat\"} 4\n"
            "# HELP rs_busy Busy \\\\ calls.\n"
            "# TYPE rs_busy gauge\n"
            "rs_busy 1\n"
            "# HELP rs_pool Pool buffers.\n"
            "# TYPE rs_pool gauge\n"
            "rs_pool{state=\"free\"} 3\n"
            "rs_pool{state=\"in_use\"} 1\n"
            "# HELP rs_ratio A fraction.\n"
            "# TYPE rs_ratio gauge\n"
            "rs_ratio 0.25\n");
}

TEST(MetricsTest, FamilyWithoutSamplesHasOnlyItsHeader) {
  MetricsRegistry registry;
  registry.AddCounter("rs_none_total", "Nothing yet.", {"method"});
  EXPECT_EQ(registry.Render(), "# HELP rs_none_total Nothing yet.\n# TYPE rs_none_total counter\n");
}

TEST(MetricsTest, CellsAreFoundOnce) {
  MetricsRegistry registry;
  CounterFamily* f = registry.AddCounter("rs_x_total", "X.", {"a"});
  EXPECT_EQ(f->Get({"1"}), f->Get({"1"}));
  EXPECT_NE(f->Get({"1"}), f->Get({"2"}));
}

TEST(MetricsTest, ValuesFormatAsPrometheusReadsThem) {
  EXPECT_EQ(FormatMetricValue(0), "0");
  EXPECT_EQ(FormatMetricValue(12345678901), "12345678901");
  EXPECT_EQ(FormatMetricValue(-3), "-3");
  EXPECT_EQ(FormatMetricValue(0.1), "0.1");
  EXPECT_EQ(FormatMetricValue(1e-7), "1e-07");
  EXPECT_EQ(FormatMetricValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(FormatMetricValue(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(FormatMetricValue(std::numeric_limits<double>::quiet_NaN()), "NaN");
  EXPECT_EQ(EscapeLabelValue("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}

TEST(MetricsTest, ConcurrentUpdatesAreAllCounted) {
  MetricsRegistry registry;
  Counter* c = registry.AddCounter("rs_c_total", "C.", {})->Get({});
  Histogram* h = registry.AddHistogram("rs_h", "H.", {}, {1})->Get({});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        c->Inc();
        h->Observe(0.5);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(c->value(), 40000u);
  const Histogram::Snapshot s = h->Read();
  EXPECT_EQ(s.count, 40000u);
  EXPECT_EQ(s.sum, 20000);
}

}  // namespace
}  // namespace ringstore::server
