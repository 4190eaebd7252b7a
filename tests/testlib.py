"""Shared helpers for ringstore's end-to-end tests.

Starts the real ringstore-server binary on port 0 with a root under
$TEST_TMPDIR, runs the real CLI, and provides a unittest runner that writes
one JUnit <testcase> per test method to $XML_OUTPUT_FILE, so Bazel's
test.xml counts test cases rather than targets. Runs under /usr/bin/python3
(Debian's python3-grpcio).
"""

import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import xml.etree.ElementTree as ET


def runfile(path):
    """Absolute path of a runfile given relative to the workspace root."""
    base = os.environ.get("TEST_SRCDIR")
    if base:
        p = os.path.join(base, os.environ.get("TEST_WORKSPACE", "ringstore"), path)
        if os.path.exists(p):
            return p
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.join(os.path.dirname(here), "bazel-bin", path)


def _take_engine_arg():
    """--engine=NAME from the command line (set per target in BUILD)."""
    for i, arg in enumerate(sys.argv[1:], 1):
        if arg.startswith("--engine="):
            del sys.argv[i]
            return arg.split("=", 1)[1]
    return "auto"


# The engine the server under test runs; "auto" lets the server choose.
ENGINE = _take_engine_arg()

SERVER = runfile("server/ringstore-server")
CLI = runfile("client/ringstore")

# Generated Python code for the API.
sys.path.insert(0, runfile("proto"))


def backend_enum(name):
    """The proto Backend value for an engine name."""
    from ringstore.v1 import ringstore_pb2 as pb
    return {"io_uring": pb.BACKEND_IO_URING, "posix_aio": pb.BACKEND_POSIX_AIO,
            "thread_pool": pb.BACKEND_THREAD_POOL}[name]


def tmpdir(prefix="t"):
    return tempfile.mkdtemp(prefix=prefix, dir=os.environ.get("TEST_TMPDIR"))


_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ (0x82F63B78 if _c & 1 else 0)
    _TABLE.append(_c)


def crc32c(data, crc=0):
    """CRC32C (Castagnoli); pure Python, fine for test-sized data."""
    c = crc ^ 0xFFFFFFFF
    table = _TABLE
    for b in data:
        c = (c >> 8) ^ table[(c ^ b) & 0xFF]
    return c ^ 0xFFFFFFFF


def random_bytes(n, seed=None):
    rng = random.Random(seed)
    return rng.randbytes(n)


class Server:
    """A real ringstore-server process listening on a free port."""

    def __init__(self, root=None, args=(), prefix=(), preexec_fn=None):
        self.root = root or os.path.join(tmpdir("srv"), "data")
        cmd = list(prefix) + [SERVER, "--listen=127.0.0.1:0", "--root=" + self.root,
                              "--engine=" + ENGINE]
        cmd += list(args)  # a later --engine wins
        self.stderr = tempfile.TemporaryFile(dir=os.environ.get("TEST_TMPDIR"))
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.stderr,
                                     preexec_fn=preexec_fn)
        line = self._read_line(timeout=30)
        m = re.match(r"ringstore-server listening on (\S+):(\d+) engine=(\w+)$", line)
        if not m:
            self.proc.kill()
            raise AssertionError("unexpected start-up line: %r (stderr: %s)" % (line, self.stderr_text()))
        self.port = int(m.group(2))
        self.engine = m.group(3)
        if ENGINE != "auto" and self.engine != ENGINE:
            raise AssertionError("asked for engine %s, got %s" % (ENGINE, self.engine))
        self.address = "127.0.0.1:%d" % self.port

    def _read_line(self, timeout):
        import selectors
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.time() + timeout
        buf = b""
        while time.time() < deadline and not buf.endswith(b"\n"):
            if not sel.select(timeout=max(0.0, deadline - time.time())):
                break
            ch = self.proc.stdout.read1(1)
            if not ch:
                break
            buf += ch
        return buf.decode(errors="replace").strip()

    def stderr_text(self):
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")

    def rss_mib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
        raise AssertionError("no VmRSS")

    def stop(self, timeout=60):
        """SIGTERM, then the exit code (the server must exit by itself)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("server did not exit within %ss of SIGTERM" % timeout)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def cli(server_address, *args, stdin=None, timeout=300, json=False):
    """Runs the real CLI; returns CompletedProcess with bytes stdout/stderr."""
    cmd = [CLI, "--server=" + server_address]
    if json:
        cmd.append("--json")
    cmd += list(args)
    return subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout)


def visible_files(root):
    """Relative paths of all files under root, except in .ringstore."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        if rel == ".":
            dirnames[:] = [d for d in dirnames if d != ".ringstore"]
            rel = ""
        for f in filenames:
            out.append(os.path.join(rel, f) if rel else f)
    return sorted(out)


def temp_files(root):
    d = os.path.join(root, ".ringstore", "tmp")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def wait_until(predicate, timeout=10.0, interval=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


class _JUnitResult(unittest.TextTestResult):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.cases = []
        self._start = {}

    def startTest(self, test):
        self._start[test.id()] = time.time()
        super().startTest(test)

    def _record(self, test, kind=None, text=""):
        elapsed = time.time() - self._start.get(test.id(), time.time())
        self.cases.append((test, kind, text, elapsed))

    def addSuccess(self, test):
        super().addSuccess(test)
        self._record(test)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._record(test, "failure", self._exc_info_to_string(err, test))

    def addError(self, test, err):
        super().addError(test, err)
        self._record(test, "error", self._exc_info_to_string(err, test))

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._record(test, "skipped", reason)


def main():
    """Runs the tests of __main__ and writes JUnit XML for Bazel."""
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules["__main__"])
    runner = unittest.TextTestRunner(resultclass=_JUnitResult, verbosity=2)
    result = runner.run(suite)
    out = os.environ.get("XML_OUTPUT_FILE")
    if out:
        suites = ET.Element("testsuites")
        ts = ET.SubElement(suites, "testsuite", name=os.path.basename(sys.argv[0]),
                           tests=str(len(result.cases)))
        for test, kind, text, elapsed in result.cases:
            cls, _, name = test.id().rpartition(".")
            tc = ET.SubElement(ts, "testcase", classname=cls, name=name, time="%.3f" % elapsed)
            if kind:
                el = ET.SubElement(tc, kind, message=text.splitlines()[-1] if text else "")
                el.text = text
        ET.ElementTree(suites).write(out, encoding="utf-8", xml_declaration=True)
    sys.exit(0 if result.wasSuccessful() else 1)
