"""Tests of bench/compare_report.py (the tables of bench/compare.sh) and of
bench/perf_breakdown.py on synthetic input: medians over the rounds that
succeeded, ratios to ringstore-io_uring, failures listed, text outside the
markers kept, perf samples counted once each. No measurement.

Runs under /usr/bin/python3 via tests/run_py_test.sh, with tests/testlib.py.
"""

import os
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
import compare_report  # noqa: E402
import perf_breakdown  # noqa: E402
import testlib  # noqa: E402

MiB = 1 << 20


def meta(**kw):
    m = {"type": "meta", "date": "2026-01-01T00:00:00+00:00", "kernel": "6.1", "nproc": 2,
         "cpu": "cpu", "mem_gib": 8, "dir": "/var/tmp/x", "fs_source": "/dev/sda",
         "fs_type": "ext4", "load_before": "0.1 0.1 0.1", "rounds": 3, "quick": False,
         "big_bytes": 1 << 30, "small_count": 10000, "duration_s": 10, "iperf_s": 5,
         "fio_rand_s": 5, "peers": ["ringstore-io_uring", "baseline", "nginx"],
         "cases": ["download_big", "upload_big", "small_4k"], "command": "bench/compare.sh",
         "git": "abc123 subject", "git_dirty": False,
         "pin": {"server": "0", "client": "1"}, "preload": ""}
    m.update(kw)
    return m


def big(rnd, case, peer, mib_s, ok=True, **kw):
    r = {"type": "cell", "round": rnd, "case": case, "peer": peer, "ok": ok,
         "mib_s": mib_s, "bytes": 1 << 30, "seconds": 1.0, "errors": 0,
         "server_cpu_s": 1.0, "client_cpu_s": 0.5, "server_rss_kib": 10 * 1024}
    r.update(kw)
    return r


def small(rnd, peer, rps, p99, cpu_us=100):
    return {"type": "cell", "round": rnd, "case": "small_4k", "peer": peer, "ok": True,
            "rps": rps, "requests": int(rps * 10), "p50_ms": 1.0, "p99_ms": p99,
            "errors": 0, "server_cpu_s": rps * 10 * cpu_us * 1e-6, "client_cpu_s": 0.1,
            "server_rss_kib": 20 * 1024}


def records():
    recs = [meta()]
    for rnd in (1, 2, 3):
        recs.append({"type": "round", "round": rnd, "load": "1.0 1.0 1.0",
                     "order": ["ringstore-io_uring", "baseline", "nginx"]})
    recs += [big(1, "download_big", "ringstore-io_uring", 100),
             big(2, "download_big", "ringstore-io_uring", 300),
             big(3, "download_big", "ringstore-io_uring", 200),
             big(1, "download_big", "baseline", 50),
             big(2, "download_big", "baseline", 0, ok=False, error="server exited 1"),
             big(3, "download_big", "baseline", 150),
             big(1, "download_big", "nginx", 400, server_cpu_s=0.25),
             big(2, "download_big", "nginx", 999, errors=2, error_detail="HTTP 404"),
             big(3, "download_big", "nginx", 600, server_cpu_s=0.75)]
    for rnd in (1, 2, 3):
        recs.append(big(rnd, "upload_big", "ringstore-io_uring", 100))
        recs.append(big(rnd, "upload_big", "nginx", 200, fsync_s=1.0, mib_s_fsync=80))
        recs.append(small(rnd, "ringstore-io_uring", 1000 * rnd, 10.0))
        recs.append(small(rnd, "nginx", 4000 * rnd, 5.0, cpu_us=25))
        recs.append({"type": "ref", "round": rnd, "name": "iperf3", "ok": True,
                     "mib_s": 1000 + rnd})
    recs.append({"type": "end", "load": "2.0 2.0 2.0"})
    return recs


def row(text, prefix):
    lines = [l for l in text.splitlines() if l.startswith("| " + prefix)]
    if not lines:
        raise AssertionError("no row %r in:\n%s" % (prefix, text))
    return [c.strip() for c in lines[0].strip("|").split("|")]


def section(text, title):
    start = text.index(title)
    end = text.find("\n### ", start + 1)
    return text[start:end if end >= 0 else len(text)]


class ReportTest(unittest.TestCase):
    def setUp(self):
        self.text = compare_report.markdown(records())

    def test_medians_and_ratios(self):
        a = section(self.text, "### (a)")
        # Throughput, then the server's CPU per GiB, then their ratios.
        self.assertIn("| peer | MiB/s | server CPU s/GiB | × io_uring | server CPU × io_uring |",
                      a)
        self.assertEqual(row(a, "ringstore-server --engine=io_uring")[1:7],
                         ["200", "1.00", "1.00×", "1.00×", "100 / 300 / 200",
                          "1.00 / 1.00 / 1.00"])
        # A failed round and a round with errors are left out of the median.
        self.assertEqual(row(a, "bench/baseline_server")[1:6],
                         ["100", "1.00", "0.50×", "1.00×", "50 / fail / 150"])
        self.assertEqual(row(a, "nginx")[1:7], ["500", "0.50", "2.50×", "0.50×",
                                                "400 / fail / 600", "0.25 / fail / 0.75"])

    def test_upload_has_the_fsync_row_and_guarantees(self):
        b = section(self.text, "### (b)")
        r = row(b, "nginx, then fsync")
        self.assertIn("fsyncs", r[1])
        self.assertEqual(r[2:5], ["80", "1.00", "0.80×"])
        self.assertIn("no fsync", row(b, "nginx, sendfile")[1])
        self.assertNotIn("client CPU", b.splitlines()[4])

    def test_small_files(self):
        c = section(self.text, "### (c)")
        self.assertIn("| peer | req/s | server CPU µs/req | × io_uring | server CPU × io_uring |",
                      c)
        r = row(c, "nginx")
        self.assertEqual(r[1:11], ["8,000", "25.0", "4.00×", "0.25×", "1.00", "5.00", "0.50×",
                                   "4,000 / 8,000 / 12,000", "25.0 / 25.0 / 25.0", "1.2"])
        self.assertEqual(row(c, "ringstore-server --engine=io_uring")[1:5],
                         ["2,000", "100.0", "1.00×", "1.00×"])

    def test_the_header_says_how_the_processes_were_pinned(self):
        self.assertIn("every server on CPU 0 (`taskset -c 0`; nginx with `worker_processes 1`",
                      self.text)
        self.assertIn("every client (load_gen, curl, wrk, fio, iperf3's sender) on CPU 1",
                      self.text)
        self.assertNotIn("LD_PRELOAD", self.text)
        recs = records()
        recs[0] = meta(pin=None, preload="/usr/lib/libtcmalloc.so.4")
        text = compare_report.markdown(recs)
        self.assertIn("Not pinned: clients and servers share the machine's 2 cores.", text)
        self.assertIn("ringstore-server ran with `LD_PRELOAD=/usr/lib/libtcmalloc.so.4`.", text)

    def test_a_new_case_gets_a_generic_table(self):
        recs = records()
        recs[0] = meta(cases=["download_big", "other_4k"])
        for rnd in (1, 2, 3):
            r = small(rnd, "ringstore-io_uring", 500 * rnd, 2.0)
            r["case"] = "other_4k"
            recs.append(r)
        text = compare_report.markdown(recs)
        self.assertEqual(row(section(text, "### Case other_4k"),
                             "ringstore-server --engine=io_uring")[1:3], ["1,000", "100.0"])

    def test_cli_get_is_set_beside_load_gen(self):
        recs = records()
        recs[0] = meta(cases=["download_big", "cli_get_big"])
        for rnd, mib_s in ((1, 90), (2, 180), (3, 270)):
            recs.append(big(rnd, "cli_get_big", "ringstore-io_uring", mib_s, client_cpu_s=2.0))
            recs.append({"type": "cell", "round": rnd, "case": "cli_get_big", "peer": "nginx",
                         "skipped": True, "ok": True})
        text = compare_report.markdown(recs)
        got = row(section(text, "### (a2)"), "ringstore-server --engine=io_uring")
        # CLI median 180 MiB/s against load_gen's 200 (the (a) records).
        self.assertEqual(got[1:5], ["180", "200", "0.90×", "90 / 180 / 270"])
        self.assertEqual(got[5:7], ["2.00", "0.50"])
        self.assertNotIn("| nginx", section(text, "### (a2)"))

    def test_batch_files_per_second_with_baseline_not_applicable(self):
        recs = records()
        recs[0] = meta(cases=["batch_4k"], batch_size=100, batch_concurrency=4)
        for rnd in (1, 2, 3):
            # ringstore: 20,000 files/s in 200 calls/s, 20 µs of server CPU a file.
            recs.append({"type": "cell", "round": rnd, "case": "batch_4k",
                         "peer": "ringstore-io_uring", "ok": True,
                         "files_per_second": 10000.0 * rnd, "files": 100000 * rnd,
                         "calls_per_second": 100.0 * rnd, "requests": 1000 * rnd,
                         "p50_ms": 20.0, "p99_ms": 40.0, "errors": 0,
                         "server_cpu_s": 100000 * rnd * 20e-6, "client_cpu_s": rnd * 1.0,
                         "server_rss_kib": 30 * 1024})
            recs.append({"type": "cell", "round": rnd, "case": "batch_4k", "peer": "baseline",
                         "ok": False, "skipped": "no BatchDownload", "wall_s": 0.0})
            n = small(rnd, "nginx", 5000.0 * rnd, 3.0, cpu_us=40)
            n.update(case="batch_4k", files=n["requests"], files_per_second=n["rps"])
            recs.append(n)
        text = compare_report.markdown(recs)
        c2 = section(text, "### (c2)")
        self.assertIn("`load_gen --mode=batch --batch_size=100 --concurrency=4 --duration=10s`",
                      c2)
        self.assertIn("| peer | files/s | server CPU µs/file | × io_uring | server CPU × io_uring |",
                      c2)
        self.assertEqual(row(c2, "ringstore-server --engine=io_uring")[1:11],
                         ["20,000", "20.0", "1.00×", "1.00×", "20.00", "40.00",
                          "10,000 / 20,000 / 30,000", "20.0 / 20.0 / 20.0", "10.0", "30"])
        self.assertEqual(row(c2, "nginx")[1:5], ["10,000", "40.0", "0.50×", "2.00×"])
        self.assertEqual(row(c2, "bench/baseline_server"),
                         ["bench/baseline_server (sync gRPC, ifstream/ofstream) "
                          "(n/a: no BatchDownload)"] + ["n/a"] * 10)
        # Skipped is not failed.
        self.assertNotIn("batch_4k", section(text, "### Failures"))
        self.assertEqual(compare_report.brief(recs[-2]), "n/a: no BatchDownload")

    def test_cold_cases_have_nginx_aio_and_io_wq_columns(self):
        recs = records()
        recs[0] = meta(cases=["small_4k", "cold_1m"],
                       peers=["ringstore-io_uring", "baseline", "nginx", "nginx-aio"],
                       cold_sets={"cold_1m": [2000, 1 << 20]})
        for rnd in (1, 2, 3):
            for peer, rps in (("ringstore-io_uring", 100), ("nginx-aio", 300)):
                r = small(rnd, peer, rps * rnd, 50.0)
                r.update(case="cold_1m", iowq_max=8 * rnd, iowq_busy_mean=0.5,
                         disk_reads_s=400.0, disk_qd=1.25, disk_read_kib=128.0)
                recs.append(r)
        text = compare_report.markdown(recs)
        e = section(text, "### (e)")
        self.assertIn("fetch each of 2,000 1 MiB files once", e)
        self.assertEqual(row(e, "nginx, sendfile on, aio threads")[1:4],
                         ["600", "100.0", "3.00×"])
        self.assertIn("| peer | io-wq workers, most | io-wq busy, mean | disk reads/s "
                      "| disk queue depth | mean read KiB |", e)
        self.assertEqual([r for r in e.splitlines()
                          if r.startswith("| ringstore-server")][1].split(" | ")[1:],
                         ["16", "0.5", "400", "1.2", "128 |"])
        # nginx-aio ran the cold case only: no row elsewhere.
        self.assertNotIn("aio threads", section(text, "### (c)"))

    def test_references_and_failures(self):
        self.assertIn("| 1,002 MiB/s | 1,001 / 1,002 / 1,003 |", self.text)
        fails = section(self.text, "### Failures")
        self.assertIn("round 2, download_big / baseline: server exited 1", fails)
        self.assertIn("round 2, download_big / nginx: 2 errors: HTTP 404", fails)

    def test_quick_runs_say_so(self):
        recs = records()
        recs[0] = meta(quick=True)
        self.assertIn("--quick smoke test", compare_report.markdown(recs))

    def test_write_into_keeps_text_outside_the_markers(self):
        with tempfile.TemporaryDirectory(dir=os.environ.get("TEST_TMPDIR")) as d:
            path = os.path.join(d, "RESULTS.md")
            compare_report.write_into(path, compare_report.markdown(records()))
            with open(path) as f:
                first = f.read()
            self.assertTrue(first.startswith(compare_report.HEADER))
            with open(path, "a") as f:
                f.write("\n## Analysis\n\nhand-written\n")
            recs = records()
            recs[0] = meta(date="2027-02-02T00:00:00+00:00")
            compare_report.write_into(path, compare_report.markdown(recs))
            with open(path) as f:
                second = f.read()
            self.assertIn("2027-02-02", second)
            self.assertNotIn("2026-01-01", second)
            self.assertTrue(second.endswith("## Analysis\n\nhand-written\n"))
            self.assertEqual(second.count(compare_report.BEGIN), 1)


PERF_SCRIPT = """\
iou-wrk-7 7
\tffffffff81000001 io_fgetxattr ([kernel.kallsyms])
\tffffffff81000002 io_wq_worker ([kernel.kallsyms])

rs-uring 5
\t0000000000001000 __memcpy_avx_unaligned_erms (/usr/lib/x86_64-linux-gnu/libc.so.6)
\t0000000000002000 ringstore::Foo (/work/bazel-out/ringstore-server)

rs-uring 5
\tffffffff81000003 __memcpy_avx_unaligned_erms ([kernel.kallsyms])
\tffffffff81000004 tcp_sendmsg ([kernel.kallsyms])

nexting_thread 6
\t0000000000003000 grpc_chttp2_begin_write (/usr/lib/x86_64-linux-gnu/libgrpc.so.29)
"""


class PerfBreakdownTest(unittest.TestCase):
    def test_each_sample_counts_once_in_the_first_matching_category(self):
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False,
                                         dir=os.environ.get("TEST_TMPDIR")) as f:
            f.write(PERF_SCRIPT)
        try:
            samples = perf_breakdown.parse(f.name)
        finally:
            os.unlink(f.name)
        self.assertEqual(len(samples), 4)
        cats, threads = perf_breakdown.breakdown(samples)
        self.assertEqual(sum(cats.values()), 4)
        names = [n for n, _ in perf_breakdown.CATEGORIES]
        self.assertEqual(cats[names[0]], 1)  # io-wq
        self.assertEqual(cats["user-space copies (memcpy/memmove)"], 1)
        self.assertEqual(cats["kernel TCP send/receive, loopback delivery included"], 1)
        self.assertEqual(cats["gRPC, HTTP/2 and protobuf (user space)"], 1)
        self.assertEqual(threads, {"iou-wrk": 1, "rs-uring": 2, "nexting_thread": 1})


if __name__ == "__main__":
    testlib.main()
