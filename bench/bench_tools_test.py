"""Smoke test of the end-to-end benchmark tools: bench/load_gen against the
real ringstore-server and against bench/baseline_server, each started on
port 0 with its root under $TEST_TMPDIR.

For each server: populate 50 files of 4 KiB, download them (concurrency 4,
count 200), upload 4 files of 256 KiB (concurrency 2, in 100,000-byte
messages so the last message is a short one), download a missing path
(every request must fail with NOT_FOUND), and a --duration-bound run; the
JSON must report exactly what was asked for. The baseline must also refuse
paths that would leave its root. Only checks counts, bytes, codes and the
order of the percentiles: timing claims live in the benchmarks, not here.

Runs under /usr/bin/python3 via tests/run_py_test.sh, with tests/testlib.py
for runfiles, temp dirs and the JUnit runner.
"""

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "tests"))
import testlib  # noqa: E402
from testlib import runfile, tmpdir  # noqa: E402

KiB = 1 << 10
POPULATE_FILES = 50
POPULATE_SIZE = 4 * KiB
UPLOAD_SIZE = 256 * KiB


LOAD_GEN = runfile("bench/load_gen")
BASELINE = runfile("bench/baseline_server")
RINGSTORE = runfile("server/ringstore-server")
GRPC_API_PROTO = runfile("bench/grpc_api_proto")


class ServerProcess:
    """A server binary on port 0; reads HOST:PORT from its first stdout line."""

    def __init__(self, cmd, pattern):
        self.stderr = tempfile.TemporaryFile(dir=os.environ.get("TEST_TMPDIR"))
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.stderr)
        line = self.proc.stdout.readline().decode(errors="replace").strip()
        self.match = re.match(pattern, line)
        if not self.match:
            self.kill()
            raise AssertionError("unexpected start-up line %r (stderr: %s)"
                                 % (line, self.stderr_text()))
        self.address = "%s:%s" % (self.match.group(1), self.match.group(2))

    def stderr_text(self):
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")

    def stop(self):
        """SIGTERM; returns the exit code (kills after 30 s)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def load_gen(address, *args, expect_rc=0):
    """Runs load_gen; returns its JSON output as a dict."""
    r = subprocess.run([LOAD_GEN, "--server=" + address] + list(args),
                       capture_output=True, timeout=60)
    out = r.stdout.decode(errors="replace")
    if r.returncode != expect_rc:
        raise AssertionError("load_gen %s exited %d (expected %d)\nstdout: %s\nstderr: %s"
                             % (" ".join(args), r.returncode, expect_rc, out,
                                r.stderr.decode(errors="replace")))
    lines = out.splitlines()
    if len(lines) != 1:
        raise AssertionError("load_gen printed %d lines, not one JSON object: %r" % (len(lines), out))
    return json.loads(lines[0])


class LoadGenContract:
    """Tests every server must pass; subclasses start the server in
    setUpClass and set cls.server, cls.root, cls.backend (the name the
    responses must report)."""

    @classmethod
    def populate(cls):
        cls.paths_file = os.path.join(tmpdir("paths"), "paths.txt")
        cls.populated = load_gen(
            cls.server.address, "--mode=populate", "--count=%d" % POPULATE_FILES,
            "--upload_size=%d" % POPULATE_SIZE, "--upload_prefix=pop", "--concurrency=4",
            "--paths_file=" + cls.paths_file)

    @classmethod
    def tearDownClass(cls):
        code = cls.server.stop()
        assert code == 0, "server exited %r: %s" % (code, cls.server.stderr_text())

    def assertRun(self, out, mode, requests, bytes_):
        self.assertEqual(out["mode"], mode)
        self.assertEqual(out["requests"], requests, out)
        self.assertEqual(out["errors"]["count"], 0, out)
        self.assertEqual(out["errors"]["first"], [])
        self.assertEqual(out["bytes"], bytes_)
        lat = out["latency_ms"]
        self.assertGreater(lat["p50"], 0)
        self.assertLessEqual(lat["p50"], lat["p99"])
        self.assertLessEqual(lat["p99"], lat["p999"])
        self.assertLessEqual(lat["p999"], lat["max"])
        self.assertGreater(out["seconds"], 0)
        self.assertGreater(out["throughput_mib_s"], 0)
        self.assertGreater(out["requests_per_second"], 0)
        self.assertEqual(out["backend"], self.backend)
        self.assertEqual(out["backends"], {self.backend: requests})

    def test_populate_writes_every_path(self):
        self.assertRun(self.populated, "populate", POPULATE_FILES, POPULATE_FILES * POPULATE_SIZE)
        with open(self.paths_file) as f:
            paths = f.read().splitlines()
        self.assertEqual(sorted(paths), sorted("pop/%d" % i for i in range(POPULATE_FILES)))
        for p in paths:
            self.assertEqual(os.path.getsize(os.path.join(self.root, p)), POPULATE_SIZE, p)

    def test_download(self):
        out = load_gen(self.server.address, "--mode=download", "--paths_file=" + self.paths_file,
                       "--concurrency=4", "--count=200", "--seed=7")
        self.assertRun(out, "download", 200, 200 * POPULATE_SIZE)
        self.assertEqual(out["concurrency"], 4)
        self.assertEqual(out["channels"], 1)

    def test_each_once_fetches_every_path_exactly_once(self):
        # Files of distinct sizes, placed by hand: the bytes add up to their
        # sum only if each was fetched once.
        sizes = [1000 * (i + 1) + i for i in range(12)]
        paths = []
        os.makedirs(os.path.join(self.root, "once"), exist_ok=True)
        for i, size in enumerate(sizes):
            paths.append("once/%d" % i)
            with open(os.path.join(self.root, paths[-1]), "wb") as f:
                f.write(os.urandom(size))
        paths_file = os.path.join(tmpdir("once"), "paths.txt")
        with open(paths_file, "w") as f:
            f.write("\n".join(paths) + "\n")
        for seed in (1, 2):
            out = load_gen(self.server.address, "--mode=download", "--paths_file=" + paths_file,
                           "--concurrency=5", "--each_once", "--seed=%d" % seed)
            self.assertRun(out, "download", len(sizes), sum(sizes))
        r = subprocess.run([LOAD_GEN, "--server=" + self.server.address, "--mode=download",
                            "--paths_file=" + paths_file, "--each_once", "--count=3"],
                           capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 2, r.stderr)

    def test_upload(self):
        out = load_gen(self.server.address, "--mode=upload", "--concurrency=2", "--count=4",
                       "--upload_size=%d" % UPLOAD_SIZE, "--chunk_bytes=100000",
                       "--upload_prefix=up/a")
        self.assertRun(out, "upload", 4, 4 * UPLOAD_SIZE)
        digests = set()
        for i in range(4):
            with open(os.path.join(self.root, "up/a/%d" % i), "rb") as f:
                data = f.read()
            self.assertEqual(len(data), UPLOAD_SIZE)
            digests.add(hashlib.sha256(data).hexdigest())
        self.assertEqual(len(digests), 1, "every upload carries the same data")
        # What was uploaded downloads intact (load_gen checks every crc32c).
        out = load_gen(self.server.address, "--mode=download", "--path=up/a/3", "--count=2")
        self.assertRun(out, "download", 2, 2 * UPLOAD_SIZE)

    def test_missing_path_counts_as_not_found(self):
        out = load_gen(self.server.address, "--mode=download", "--path=no/such/file",
                       "--concurrency=2", "--count=5")
        self.assertEqual(out["requests"], 5)
        self.assertEqual(out["errors"]["count"], 5)
        first = out["errors"]["first"]
        self.assertEqual(len(first), 1, first)
        self.assertEqual(first[0]["code"], "NOT_FOUND")
        self.assertEqual(first[0]["count"], 5)
        self.assertEqual(out["bytes"], 0)
        self.assertEqual(out["backends"], {})

    def test_duration_bounds_the_run(self):
        out = load_gen(self.server.address, "--mode=download", "--paths_file=" + self.paths_file,
                       "--concurrency=3", "--channels=2", "--duration=300ms")
        self.assertEqual(out["channels"], 2)
        self.assertGreater(out["requests"], 0)
        self.assertEqual(out["errors"]["count"], 0, out)
        self.assertEqual(out["bytes"], out["requests"] * POPULATE_SIZE)
        self.assertGreaterEqual(out["seconds"], 0.3)

    def test_bad_flags_exit_2(self):
        for args in (["--mode=fetch", "--count=1"], ["--mode=download", "--count=1"],
                     ["--mode=populate", "--count=3"], ["--concurrency=0", "--path=x"]):
            r = subprocess.run([LOAD_GEN, "--server=" + self.server.address] + args,
                               capture_output=True, timeout=60)
            self.assertEqual(r.returncode, 2, (args, r.stderr))
            self.assertEqual(r.stdout, b"", args)


class RingstoreTest(LoadGenContract, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = os.path.join(tmpdir("ringstore"), "data")
        cls.server = ServerProcess(
            [RINGSTORE, "--listen=127.0.0.1:0", "--root=" + cls.root],
            r"ringstore-server listening on (\S+):(\d+) engine=(\w+)$")
        cls.backend = cls.server.match.group(3)
        try:
            cls.populate()
        except Exception:
            cls.server.kill()
            raise

    def test_server_engine_is_named(self):
        self.assertIn(self.backend, testlib.all_engines())
        self.assertEqual(self.populated["server_engine"], self.backend)


class CompareTest(unittest.TestCase):
    """bench/compare.py (run by hand through compare.sh) loads, and takes its
    ringstore peers from the server binary: one per engine, preferred first."""

    def test_peers_are_the_servers_engines(self):
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import compare  # noqa: F401  (its modules import each other)
        import compare_peers
        engines = compare_peers.ringstore_engines(RINGSTORE)
        self.assertEqual(sorted(engines), sorted(testlib.all_engines()))
        # In the server's order of preference.
        available = testlib.available_engines()
        self.assertEqual([e for e in engines if e in available], available)
        self.assertEqual(compare_peers.all_peers(RINGSTORE),
                         tuple("ringstore-" + e for e in engines)
                         + ("baseline", "nginx", "nginx-aio"))
        args = compare.parse_args(["--ringstore=" + RINGSTORE, "--baseline=b", "--load_gen=l", "--cli=c",
                                   "--peers=nginx," + "ringstore-" + engines[-1]])
        self.assertEqual(args.peers, "nginx,ringstore-" + engines[-1])

    def test_servers_and_clients_are_pinned_apart_and_cases_registered(self):
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import compare
        import compare_cases
        import compare_peers
        base = ["--ringstore=" + RINGSTORE, "--baseline=b", "--load_gen=l", "--cli=c"]
        compare.parse_args(base)
        self.assertEqual(compare_peers.pinned(["x", "-y"], "server"),
                         ["taskset", "-c", "0", "x", "-y"])
        self.assertEqual(compare_peers.pinned(["x"], "client"), ["taskset", "-c", "1", "x"])
        self.assertIn("worker_processes 1;", compare_peers.NGINX_CONF)
        out, _, _ = compare_peers.client_run(["sh", "-c", "taskset -pc $$"], timeout=30)
        self.assertTrue(out.strip().endswith(": 1"), out)
        compare.parse_args(base + ["--pin=none"])
        self.assertEqual(compare_peers.pinned(["x"], "client"), ["x"])
        with self.assertRaises(SystemExit):
            compare.parse_args(base + ["--pin=1,1"])
        self.assertEqual(list(compare_cases.CASES),
                         ["download_big", "cli_get_big", "upload_big", "small_4k", "small_64k",
                          "batch_4k", "cold_64k", "cold_1m"])
        # nginx-aio runs the cold cases only; baseline cannot run batch_4k
        # (nor cli_get_big, a ringstore-only case).
        self.assertEqual([c for c in compare_cases.CASES
                          if compare_cases.runs(c, "nginx-aio")], ["cold_64k", "cold_1m"])
        self.assertEqual([c for c in compare_cases.CASES if compare_cases.runs(c, "baseline")
                          and "baseline" not in compare_cases.SKIPS[c]],
                         ["download_big", "upload_big", "small_4k", "small_64k", "cold_64k",
                          "cold_1m"])
        self.assertIn("aio threads;", compare_peers.NGINX_CONF.format(
            run="r", port=1, root="/x", aio="\n    aio threads;"))
        compare.parse_args(base)


class BaselineTest(LoadGenContract, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        base = tmpdir("baseline")
        cls.outside = base
        cls.root = os.path.join(base, "data")
        cls.server = ServerProcess(
            [BASELINE, "--listen=127.0.0.1:0", "--root=" + cls.root],
            r"baseline-server listening on (\S+):(\d+)$")
        cls.backend = "unspecified"
        try:
            cls.populate()
        except Exception:
            cls.server.kill()
            raise

    def test_server_engine_is_baseline(self):
        self.assertEqual(self.populated["server_engine"], "baseline")

    def test_paths_outside_the_root_are_refused(self):
        for prefix in ("../escape", os.path.join(self.outside, "abs"), "a//b", "a/./b",
                       ".baseline-tmp"):
            with self.subTest(prefix=prefix):
                out = load_gen(self.server.address, "--mode=upload", "--count=2",
                               "--upload_size=10", "--upload_prefix=" + prefix)
                self.assertEqual(out["errors"]["count"], 2, out)
                self.assertEqual(out["errors"]["first"][0]["code"], "INVALID_ARGUMENT")
        self.assertEqual(sorted(os.listdir(self.outside)), ["data"])
        self.assertEqual(os.listdir(os.path.join(self.root, ".baseline-tmp")), [])


class CompareAbTest(unittest.TestCase):
    """bench/compare_ab.py with a populated small-file set: two ringstore
    variants (one with extra flags and environment) and the async-API
    prototypes that read the same files (bench/grpc_api_proto), one round
    each. load_gen checks every message's offset and crc32c."""

    def test_variants_with_flags_env_and_populated_files(self):
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import compare_ab
        work = tmpdir("compare_ab")
        client = [LOAD_GEN, "--server={addr}", "--mode=download", "--concurrency=4",
                  "--count=40", "--duration=0s", "--paths_file={paths}"]
        server = [RINGSTORE, "--listen=127.0.0.1:0", "--root={root}"]
        variants = [{"name": "A", "server": server, "requests": 1, "client": client},
                    {"name": "B", "server": server + ["--engine=thread_pool"],
                     "env": {"RINGSTORE_AB_TEST": "1"}, "requests": 1, "client": client}]
        for name, api in (("C", "async_store"), ("D", "async_inline")):
            variants.append({"name": name, "requests": 1, "client": client, "server": [
                GRPC_API_PROTO, "--listen=127.0.0.1:0", "--api=" + api, "--root={root}"]})
        path = os.path.join(work, "variants.json")
        with open(path, "w") as f:
            json.dump(variants, f)
        res = compare_ab.main(["1", path, "--data=" + os.path.join(work, "data"),
                               "--count=20", "--size=4096", "--load_gen=" + LOAD_GEN,
                               "--workdir=" + os.path.join(work, "run")])
        for name in ("A", "B", "C", "D"):
            self.assertEqual(len(res[name]), 1)
            self.assertEqual(res[name][0]["req"], 40)
            self.assertEqual(res[name][0]["errors"], 0)
        with open(os.path.join(work, "data", "paths")) as f:
            self.assertEqual(len(f.read().split()), 20)
        with open(os.path.join(work, "run", "logs", "ab-B.log")) as f:
            self.assertIn("engine=thread_pool", f.read())
        with open(path + ".out") as f:
            self.assertEqual(sorted(json.load(f)), ["A", "B", "C", "D"])


if __name__ == "__main__":
    testlib.main()
