"""Shared helpers for ringstore's end-to-end tests.

Starts the real ringstore-server binary on port 0 with a root under
$TEST_TMPDIR, runs the real CLI, and provides a unittest runner that writes
one JUnit <testcase> per test method to $XML_OUTPUT_FILE, so Bazel's
test.xml counts test cases rather than targets; a skipped test is written
with <skipped> and its reason. Suites that run on every engine mark their
class @per_engine: the engines come from the proto and the server, and one
that cannot start here skips its tests with the server's reason. Runs under
/usr/bin/python3 (Debian's python3-grpcio).
"""

import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
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


# Set by `bazel test --config=tsan`.
TSAN = os.environ.get("RINGSTORE_SANITIZER") == "tsan"

SERVER = runfile("server/ringstore-server")
CLI = runfile("client/ringstore")

# Generated Python code for the API.
sys.path.insert(0, runfile("proto"))


# The engines. Nothing here writes them out: every engine has a value in the
# proto's Backend enum (BACKEND_IO_URING is "io_uring"), and the server says
# which of them start on this machine, in its order of preference
# (storage/engine/engine_list.h), in GetServerInfo's engines_available.

def backend_enum(name):
    """The proto Backend value for an engine name."""
    from ringstore.v1 import ringstore_pb2 as pb
    return pb.Backend.Value("BACKEND_" + name.upper())


def all_engines():
    """Every engine the API names (the proto's Backend enum), whether or not
    it can start here, in the enum's order."""
    from ringstore.v1 import ringstore_pb2 as pb
    return [name[len("BACKEND_"):].lower()
            for name, number in sorted(pb.Backend.items(), key=lambda kv: kv[1]) if number != 0]


_available = None


def available_engines():
    """The engines a server can run on this machine, in its preference order:
    engines_available of a server started with --engine=auto (asked once)."""
    global _available
    if _available is None:
        import grpc
        from ringstore.v1 import ringstore_pb2 as pb
        from ringstore.v1 import ringstore_pb2_grpc as pbg
        server = Server(engine="auto")
        try:
            with grpc.insecure_channel(server.address) as channel:
                info = pbg.FileStoreStub(channel).GetServerInfo(pb.GetServerInfoRequest(),
                                                                timeout=30)
            _available = list(info.engines_available)
        finally:
            code = server.stop()
        if code != 0:
            raise AssertionError("the probing server exited with %s: %s"
                                 % (code, server.stderr_text()))
    return list(_available)


def engine_unavailable(name):
    """None if engine `name` can run here, else why not: the server's own
    error when asked for it (for a test to skip with)."""
    if name in available_engines():
        return None
    r = subprocess.run([SERVER, "--listen=127.0.0.1:0", "--root=" + os.path.join(tmpdir("probe"), "d"),
                        "--engine=" + name], capture_output=True, timeout=60)
    why = r.stderr.decode(errors="replace").strip().splitlines()
    return "engine %s cannot start here: %s" % (name, why[-1] if why else "exit %d" % r.returncode)


def require_engine(test, name):
    """Skips `test` (a unittest.TestCase) with the reason if engine `name`
    cannot start here."""
    why = engine_unavailable(name)
    if why:
        test.skipTest(why)


def per_engine(cls):
    """Class decorator: main() runs the TestCase class once per engine of
    all_engines(), as CLASS_ENGINE with the class attribute `engine` set to
    the engine's name (pass it to Server). On an engine that cannot start
    here each of its tests is skipped with the reason; none is passed."""
    cls._per_engine = True
    return cls


def _engine_class(cls, engine):
    """The copy of per_engine class `cls` that runs on `engine`."""
    def setUpClass(k):
        k.engine_skip = engine_unavailable(engine)
        if not k.engine_skip:
            super(sub, k).setUpClass()

    def tearDownClass(k):
        if not k.engine_skip:
            super(sub, k).tearDownClass()

    def setUp(self):
        if self.engine_skip:
            self.skipTest(self.engine_skip)
        super(sub, self).setUp()

    sub = type("%s_%s" % (cls.__name__, engine), (cls,), {
        "engine": engine, "engine_skip": None, "__module__": cls.__module__,
        "setUpClass": classmethod(setUpClass), "tearDownClass": classmethod(tearDownClass),
        "setUp": setUp})
    return sub


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

    def __init__(self, root=None, args=(), prefix=(), preexec_fn=None, engine="auto"):
        """Starts it with --engine=`engine`; a named engine that cannot start
        here skips the test (unittest.SkipTest) with the reason."""
        self.root = root or os.path.join(tmpdir("srv"), "data")
        cmd = list(prefix) + [SERVER, "--listen=127.0.0.1:0", "--root=" + self.root,
                              "--engine=" + engine]
        cmd += list(args)  # a later --engine wins
        wanted = [a.split("=", 1)[1] for a in cmd if a.startswith("--engine=")][-1]
        if wanted != "auto":
            why = engine_unavailable(wanted)
            if why:
                raise unittest.SkipTest(why)
        self.stderr = tempfile.TemporaryFile(dir=os.environ.get("TEST_TMPDIR"))
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.stderr,
                                     preexec_fn=preexec_fn)
        line = self._read_line(timeout=30)
        m = re.match(r"ringstore-server listening on (\S+):(\d+) engine=(\w+)$", line)
        if not m:
            self.kill()
            raise AssertionError("unexpected start-up line: %r (stderr: %s)" % (line, self.stderr_text()))
        self.port = int(m.group(2))
        self.engine = m.group(3)
        if wanted != "auto" and self.engine != wanted:
            self.kill()
            raise AssertionError("asked for engine %s, got %s" % (wanted, self.engine))
        self.address = "127.0.0.1:%d" % self.port
        # Keep reading stdout so a chatty server never blocks on a full pipe.
        threading.Thread(target=self._drain_stdout, daemon=True).start()

    def _drain_stdout(self):
        try:
            while self.proc.stdout.read1(65536):
                pass
        except (OSError, ValueError):
            pass

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
    """Temp data of plain uploads: the files in .ringstore/tmp and in the
    servers' directories there, not the servers' lock files."""
    d = os.path.join(root, ".ringstore", "tmp")
    out = []
    for name in (os.listdir(d) if os.path.isdir(d) else []):
        full = os.path.join(d, name)
        if os.path.isdir(full) and not os.path.islink(full):
            try:
                out.extend(name + "/" + f for f in os.listdir(full))
            except FileNotFoundError:  # its server has just left
                pass
        elif not name.endswith(".lock"):
            out.append(name)
    return sorted(out)


def session_data_size(root, upload_id):
    """The size of the data file of resumable session `upload_id` under
    `root`, or -1 when it has none. A stream that attaches cuts the file to
    its persisted size and then writes what it receives, so a size past
    that shows the server has taken the stream in: a test waits for it
    instead of sleeping."""
    try:
        return os.stat(os.path.join(root, ".ringstore", "uploads", upload_id + ".data")).st_size
    except FileNotFoundError:
        return -1


def write_file(directory, name, data):
    """Writes `data` (bytes) to directory/name and returns that path."""
    path = os.path.join(directory, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


class RpcAssertions:
    """A unittest.TestCase mixin for calls of the generated Python stubs."""

    def assertCode(self, code, fn, *args, **kw):
        """fn(*args, **kw) (a stream is read to its end) fails with `code`;
        returns the grpc.RpcError."""
        import grpc  # only the tests that make RPCs import it
        with self.assertRaises(grpc.RpcError) as cm:
            r = fn(*args, **kw)
            if hasattr(r, "__iter__") and not isinstance(r, (bytes, str)):
                list(r)
        self.assertEqual(cm.exception.code(), code, cm.exception.details())
        return cm.exception


def wait_until(predicate, timeout=10.0, interval=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def attach(fn, timeout=10.0):
    """fn() (a call that attaches a stream to a resumable upload session),
    tried again while it fails ABORTED because the stream before it still
    holds the session: the server lets a session go once that stream's
    bytes are persisted, in the background, just after it answered."""
    import grpc
    deadline = time.time() + timeout
    while True:
        try:
            return fn()
        except grpc.RpcError as e:
            busy = e.code() == grpc.StatusCode.ABORTED and "another stream" in (e.details() or "")
            if not busy or time.time() > deadline:
                raise
            time.sleep(0.02)


class _JUnitResult(unittest.TextTestResult):
    """Collects one (test, outcome, text, seconds) per test method.

    A failing subTest fails its test method (unittest then never calls
    addSuccess for it); errors in setUpClass/tearDownClass arrive without
    startTest and are recorded as a case of their own."""

    _RANK = {None: 0, "skipped": 1, "failure": 2, "error": 3}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.cases = []
        self._open = {}  # test id -> [start time, outcome, texts]

    def startTest(self, test):
        self._open[test.id()] = [time.time(), None, []]
        super().startTest(test)

    def stopTest(self, test):
        super().stopTest(test)
        start, kind, texts = self._open.pop(test.id(), [time.time(), None, []])
        self.cases.append((test, kind, "\n".join(texts), time.time() - start))

    def _note(self, test, kind, text):
        state = self._open.get(test.id())
        if state is None:  # a class or module fixture, not a test method
            self.cases.append((test, kind, text, 0.0))
            return
        if self._RANK[kind] > self._RANK[state[1]]:
            state[1] = kind
        state[2].append(text)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._note(test, "failure", self._exc_info_to_string(err, test))

    def addError(self, test, err):
        super().addError(test, err)
        self._note(test, "error", self._exc_info_to_string(err, test))

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            kind = "failure" if issubclass(err[0], test.failureException) else "error"
            self._note(test, kind, "%s\n%s" % (subtest.id(), self._exc_info_to_string(err, test)))

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._note(test, "skipped", reason)

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._note(test, "failure", "unexpected success of a test marked expectedFailure")


_XML_BAD = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(s):
    """s without the characters XML 1.0 cannot carry."""
    return _XML_BAD.sub(lambda m: "\\x%02x" % ord(m.group()), s)


def _load_tests(module):
    """The tests of `module`, as unittest's loader finds them, with each
    per_engine class replaced by one copy per engine."""
    loader = unittest.defaultTestLoader
    suite = unittest.TestSuite()
    for name in dir(module):
        obj = getattr(module, name)
        if (not isinstance(obj, type) or not issubclass(obj, unittest.TestCase)
                or obj in (unittest.TestCase, unittest.FunctionTestCase)):
            continue
        if obj.__dict__.get("_per_engine"):
            for engine in all_engines():
                suite.addTests(loader.loadTestsFromTestCase(_engine_class(obj, engine)))
        else:
            suite.addTests(loader.loadTestsFromTestCase(obj))
    return suite


def main():
    """Runs the tests of __main__, writes JUnit XML for Bazel (one <testcase>
    per test method, a skipped one with <skipped>) and exits non-zero if any
    test failed."""
    suite = _load_tests(sys.modules["__main__"])
    runner = unittest.TextTestRunner(resultclass=_JUnitResult, verbosity=2)
    result = runner.run(suite)
    out = os.environ.get("XML_OUTPUT_FILE")
    if out:
        failures = sum(1 for c in result.cases if c[1] == "failure")
        errors = sum(1 for c in result.cases if c[1] == "error")
        skipped = sum(1 for c in result.cases if c[1] == "skipped")
        suites = ET.Element("testsuites")
        ts = ET.SubElement(suites, "testsuite", name=os.path.basename(sys.argv[0]),
                           tests=str(len(result.cases)), failures=str(failures),
                           errors=str(errors), skipped=str(skipped))
        for test, kind, text, elapsed in result.cases:
            tid = test.id()
            if isinstance(test, unittest.TestCase):
                cls, _, name = tid.rpartition(".")
            else:  # _ErrorHolder: "setUpClass (__main__.CliTest)"
                cls, name = "fixture", tid
            tc = ET.SubElement(ts, "testcase", classname=cls, name=_xml_text(name),
                               time="%.3f" % elapsed)
            if kind:
                text = _xml_text(text)
                lines = text.strip().splitlines()
                el = ET.SubElement(tc, kind, message=lines[-1] if lines else "")
                el.text = text
        ET.ElementTree(suites).write(out, encoding="utf-8", xml_declaration=True)
    sys.exit(0 if result.wasSuccessful() else 1)
