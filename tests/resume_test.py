"""Resumed transfers (DESIGN.md §5, CLI additions): the real CLI against the
real server through a TCP proxy that breaks the connection mid-stream, as a
flaky link or a restarting server would: downloads resume where they
stopped, puts of 8 MiB or more resume from what the server persisted, and
`put --resume` finishes what a killed CLI left."""

import glob
import json
import os
import signal
import socket
import subprocess
import threading
import time
import unittest

import testlib

MiB = 1 << 20


class CuttingProxy:
    """Forwards 127.0.0.1:<port> to `target`. The first `cuts` connections
    are broken (both sockets closed) once `cut_after` bytes have gone from
    the server to the client (to_server=True: from the client to the
    server); `on_cut()` runs just before, while the client still waits.
    Counts the bytes sent each way (to_client, to_server). `max_rate`
    (bytes/s) slows each connection's client-to-server bytes. retarget()
    sends later connections to another server (one restarted on a new
    port); a connection the target refuses is closed at once."""

    def __init__(self, target, cut_after=None, cuts=1, on_cut=None, to_server=False,
                 max_rate=None):
        self.retarget(target)
        self.cut_after = cut_after
        self.cuts_left = cuts if cut_after is not None else 0
        self.on_cut = on_cut
        self.cut_to_server = to_server
        self.max_rate = max_rate
        self.to_client = 0
        self.to_server = 0
        self.cuts = 0
        self.lock = threading.Lock()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.address = "127.0.0.1:%d" % self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def retarget(self, target):
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))

    def close(self):
        self.listener.close()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()  # the server is down: the client sees UNAVAILABLE
                continue
            with self.lock:
                cut = self.cuts_left > 0
                self.cuts_left -= 1 if cut else 0
            cut_after = self.cut_after if cut else None
            done = threading.Event()
            threading.Thread(target=self._pump, args=(
                client, server, cut_after if self.cut_to_server else None, done, False),
                daemon=True).start()
            threading.Thread(target=self._pump, args=(
                server, client, None if self.cut_to_server else cut_after, done, True),
                daemon=True).start()

    def _count(self, to_client, n):
        with self.lock:
            if to_client:
                self.to_client += n
            else:
                self.to_server += n

    def _pump(self, src, dst, cut_after, done, to_client):
        sent = 0
        started = time.monotonic()
        try:
            while not done.is_set():
                data = src.recv(256 << 10)
                if not data:
                    break
                if cut_after is not None and sent + len(data) >= cut_after:
                    data = data[:cut_after - sent]
                    dst.sendall(data)
                    self._count(to_client, len(data))
                    with self.lock:
                        self.cuts += 1
                    if self.on_cut:
                        self.on_cut()
                    break
                dst.sendall(data)
                sent += len(data)
                self._count(to_client, len(data))
                if self.max_rate and not to_client:
                    ahead = sent / self.max_rate - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)
        except OSError:
            pass
        done.set()
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


class ResumedDownloadTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = testlib.Server()
        cls.data = testlib.random_bytes(48 * MiB, seed=21)
        cls.work = testlib.tmpdir("resume")
        src = testlib.write_file(cls.work, "src.bin", cls.data)
        r = testlib.cli(cls.server.address, "put", src, "big.bin")
        assert r.returncode == 0, r.stderr.decode()

    @classmethod
    def tearDownClass(cls):
        assert cls.server.stop() == 0, cls.server.stderr_text()

    def test_get_resumes_a_broken_download(self):
        # Broken twice: after 5 MiB, then after 5 MiB more.
        proxy = CuttingProxy(self.server.address, cut_after=5 * MiB, cuts=2)
        try:
            out = os.path.join(self.work, "out.bin")
            r = testlib.cli(proxy.address, "get", "big.bin", out)
            self.assertEqual(r.returncode, 0, r.stderr.decode())
            self.assertEqual(proxy.cuts, 2)
            self.assertEqual(testlib.read_file(out), self.data)
            # Resumed, not restarted: little more than the file crossed (each
            # cut wastes what was in flight in gRPC's and the kernel's
            # buffers, a few MiB; a restart would cost 10 MiB more).
            self.assertLess(proxy.to_client, len(self.data) + 8 * MiB, proxy.to_client)
        finally:
            proxy.close()

    def test_get_to_stdout_resumes_too(self):
        proxy = CuttingProxy(self.server.address, cut_after=3 * MiB)
        try:
            r = testlib.cli(proxy.address, "get", "big.bin", "-")
            self.assertEqual(r.returncode, 0, r.stderr.decode())
            self.assertEqual(proxy.cuts, 1)
            self.assertEqual(r.stdout, self.data)
        finally:
            proxy.close()

    def test_ranged_get_resumes_within_its_range(self):
        proxy = CuttingProxy(self.server.address, cut_after=2 * MiB)
        try:
            out = os.path.join(self.work, "range.bin")
            r = testlib.cli(proxy.address, "get", "big.bin", out, "--offset=1000",
                            "--length=%d" % (8 * MiB))
            self.assertEqual(r.returncode, 0, r.stderr.decode())
            self.assertEqual(proxy.cuts, 1)
            self.assertEqual(testlib.read_file(out), self.data[1000:1000 + 8 * MiB])
        finally:
            proxy.close()

    def test_without_retries_a_break_fails_and_leaves_nothing(self):
        proxy = CuttingProxy(self.server.address, cut_after=3 * MiB)
        try:
            out = os.path.join(self.work, "none.bin")
            r = testlib.cli(proxy.address, "get", "big.bin", out, "--retries=0")
            self.assertEqual(r.returncode, 1)
            self.assertIn("UNAVAILABLE", r.stderr.decode())
            self.assertFalse(os.path.exists(out))
            self.assertEqual([f for f in os.listdir(self.work) if f.startswith("none.bin")], [])
        finally:
            proxy.close()

    def test_a_file_replaced_between_attempts_is_not_mixed(self):
        """The resumed stream is pinned to the generation the download
        started with: a replacement in between ends it with
        FAILED_PRECONDITION instead of splicing two files."""
        server = testlib.Server()
        try:
            old = testlib.random_bytes(16 * MiB, seed=22)
            new = testlib.random_bytes(16 * MiB, seed=23)
            r = testlib.cli(server.address, "put", "-", "f", stdin=old)
            self.assertEqual(r.returncode, 0, r.stderr.decode())

            def replace():
                r = testlib.cli(server.address, "put", "-", "f", stdin=new)
                assert r.returncode == 0, r.stderr.decode()

            proxy = CuttingProxy(server.address, cut_after=3 * MiB, on_cut=replace)
            try:
                out = os.path.join(self.work, "mixed.bin")
                r = testlib.cli(proxy.address, "get", "f", out)
                self.assertEqual(r.returncode, 1)
                self.assertIn("FAILED_PRECONDITION", r.stderr.decode())
                self.assertIn("replaced while it was downloaded", r.stderr.decode())
                self.assertFalse(os.path.exists(out))
            finally:
                proxy.close()
        finally:
            self.assertEqual(server.stop(), 0)


class ResumedUploadTest(unittest.TestCase):
    """Resumable puts (files of 8 MiB or more). Each test keeps its CLI
    trackers in a cache directory of its own ($XDG_CACHE_HOME)."""

    @classmethod
    def setUpClass(cls):
        cls.work = testlib.tmpdir("resume-put")
        # In 8 MiB blocks of their own (randbytes takes at most 256 MiB bits).
        cls.data = b"".join(testlib.random_bytes(8 * MiB, seed=61 + i) for i in range(32))
        cls.src = testlib.write_file(cls.work, "big.bin", cls.data)

    def setUp(self):
        self.cache = testlib.tmpdir("cache")
        os.environ["XDG_CACHE_HOME"] = self.cache
        self.servers = []
        self.proxies = []

    def tearDown(self):
        for p in self.proxies:
            p.close()
        for s in self.servers:
            s.kill()

    def serve(self, root=None):
        s = testlib.Server(root=root)
        self.servers.append(s)
        return s

    def proxy(self, target, **kw):
        p = CuttingProxy(target, **kw)
        self.proxies.append(p)
        return p

    def trackers(self):
        return glob.glob(os.path.join(self.cache, "ringstore", "upload-*"))

    def assertStored(self, server, path, data):
        with open(os.path.join(server.root, path), "rb") as f:
            self.assertTrue(f.read() == data, "%s differs from what was put" % path)

    def persisted(self, server, at_least=128 * MiB):
        """persisted_size of the one session a tracker names, once it has
        reached `at_least` (what a broken stream delivered is persisted in
        the background just after it broke), or after 20 s."""
        import grpc
        from ringstore.v1 import ringstore_pb2 as pb
        from ringstore.v1 import ringstore_pb2_grpc as pbg
        [tracker] = self.trackers()
        with open(tracker) as f:
            uid = f.readline().strip()
        with grpc.insecure_channel(server.address) as channel:
            stub = pbg.FileStoreStub(channel)

            def query():
                return stub.QueryUpload(pb.QueryUploadRequest(upload_id=uid),
                                        timeout=30).persisted_size

            testlib.wait_until(lambda: query() >= at_least, timeout=20)
            return query()

    def assertSentOnlyTheRest(self, sent, persisted):
        """A resumed put sent the bytes past `persisted` (what the server
        had when it began; it may have grown since), not the whole file.
        More than 200 MiB had crossed when the first run broke, so the
        server had persisted at least 128 MiB (its 64 MiB step) by then."""
        self.assertGreaterEqual(persisted, 128 * MiB)
        self.assertLess(sent, len(self.data) - persisted + MiB, (sent, persisted))

    def test_put_survives_two_cuts_and_sends_little_twice(self):
        server = self.serve()
        # Cuts below the server's 64 MiB persist step: each loses at most
        # what was still in buffers (a stream that breaks keeps what the
        # server took in), so the bound below holds by construction.
        proxy = self.proxy(server.address, cut_after=48 * MiB, cuts=2, to_server=True)
        r = testlib.cli(proxy.address, "put", self.src, "cut.bin", json=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertEqual(proxy.cuts, 2)
        out = json.loads(r.stdout)
        self.assertEqual(out["size"], len(self.data))
        self.assertEqual(out["backend"], server.engine)
        self.assertStored(server, "cut.bin", self.data)
        # Resumed from what the server had, not restarted.
        print("put of %d MiB cut twice: %.1f MiB crossed to the server (%.2fx the file)"
              % (len(self.data) >> 20, proxy.to_server / MiB, proxy.to_server / len(self.data)))
        self.assertLess(proxy.to_server, 1.5 * len(self.data), proxy.to_server)
        self.assertEqual(self.trackers(), [])

    def test_put_survives_a_server_killed_and_restarted(self):
        root = os.path.join(testlib.tmpdir("restart"), "data")
        first = self.serve(root)
        state = {}

        def restart():
            first.kill()  # kill -9
            state["second"] = self.serve(root)
            proxy.retarget(state["second"].address)

        proxy = self.proxy(first.address, max_rate=400 * MiB)
        cli = subprocess.Popen([testlib.CLI, "--server=" + proxy.address, "put", "--retries=10",
                                self.src, "restart.bin"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
        try:
            self.assertTrue(testlib.wait_until(lambda: proxy.to_server > 64 * MiB, timeout=60))
            restart()
            out, err = cli.communicate(timeout=120)
        finally:
            if cli.poll() is None:
                cli.kill()
        self.assertEqual(cli.returncode, 0, err.decode())
        self.assertIn(b"uploaded restart.bin", out)
        self.assertStored(state["second"], "restart.bin", self.data)
        self.assertEqual(self.trackers(), [])

    def test_put_resume_finishes_what_a_killed_cli_left(self):
        server = self.serve()
        slow = self.proxy(server.address, max_rate=64 * MiB)
        cli = subprocess.Popen([testlib.CLI, "--server=" + slow.address, "put", self.src,
                                "killed.bin"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            self.assertTrue(testlib.wait_until(lambda: slow.to_server > 200 * MiB, timeout=60))
        finally:
            cli.send_signal(signal.SIGKILL)
            cli.communicate(timeout=30)
        self.assertEqual(len(self.trackers()), 1)
        persisted = self.persisted(server)
        # The same server address: the tracker is keyed by it.
        before = slow.to_server
        r = testlib.cli(slow.address, "put", "--resume", self.src, "killed.bin", timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertStored(server, "killed.bin", self.data)
        # Only the rest was sent again: what the killed run delivered stayed.
        self.assertSentOnlyTheRest(slow.to_server - before, persisted)
        self.assertEqual(self.trackers(), [])

    def test_put_without_retries_fails_then_resume_finishes(self):
        server = self.serve()
        proxy = self.proxy(server.address, cut_after=200 * MiB, to_server=True)
        r = testlib.cli(proxy.address, "put", "--retries=0", self.src, "once.bin", timeout=120)
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"UNAVAILABLE", r.stderr)
        self.assertIn(b"--resume", r.stderr)
        self.assertNotIn("once.bin", testlib.visible_files(server.root))
        self.assertEqual(len(self.trackers()), 1)
        persisted = self.persisted(server)
        before = proxy.to_server  # its one cut is spent
        r = testlib.cli(proxy.address, "put", "--resume", self.src, "once.bin", timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertStored(server, "once.bin", self.data)
        self.assertSentOnlyTheRest(proxy.to_server - before, persisted)
        self.assertEqual(self.trackers(), [])

    def test_put_resume_with_an_expired_session_starts_again(self):
        server = self.serve()
        small = testlib.write_file(self.work, "small.bin", self.data[:3 * MiB])
        proxy = self.proxy(server.address, cut_after=MiB, to_server=True)
        r = testlib.cli(proxy.address, "put", "--resume", "--retries=0", small, "exp.bin")
        self.assertEqual(r.returncode, 1)
        [tracker] = self.trackers()
        with open(tracker) as f:
            uid = f.readline().strip()
        # The session goes (as an expired one would): the tracker is stale.
        import grpc
        from ringstore.v1 import ringstore_pb2 as pb
        from ringstore.v1 import ringstore_pb2_grpc as pbg
        with grpc.insecure_channel(server.address) as channel:
            stub = pbg.FileStoreStub(channel)

            def cancelled():
                # ABORTED while the server still persists the broken stream.
                try:
                    stub.CancelUpload(pb.CancelUploadRequest(upload_id=uid), timeout=30)
                    return True
                except grpc.RpcError as e:
                    self.assertEqual(e.code(), grpc.StatusCode.ABORTED, e.details())
                    return False

            self.assertTrue(testlib.wait_until(cancelled))
        r = testlib.cli(proxy.address, "put", "--resume", small, "exp.bin")
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertStored(server, "exp.bin", self.data[:3 * MiB])
        self.assertEqual(self.trackers(), [])

    def test_put_resume_of_a_committed_session_reports_its_file(self):
        """A run that died after the commit but before removing its tracker:
        --resume finds the session complete and reports its file without
        sending the data again."""
        import hashlib
        import grpc
        from ringstore.v1 import ringstore_pb2 as pb
        from ringstore.v1 import ringstore_pb2_grpc as pbg
        server = self.serve()
        data = self.data[:2 * MiB]
        src = testlib.write_file(self.work, "committed.bin", data)
        with grpc.insecure_channel(server.address) as channel:
            stub = pbg.FileStoreStub(channel)
            uid = stub.StartUpload(pb.StartUploadRequest(spec=pb.UploadSpec(
                path="committed.bin", size=len(data))), timeout=30).upload_id
            done = stub.Upload(iter([pb.UploadRequest(upload_id=uid, data=data, finish=True)]),
                               timeout=30)
        # The tracker that run left (upload_tracker.h's key and format).
        proxy = self.proxy(server.address)
        st = os.stat(src)
        key = b"\0".join(str(x).encode() for x in (proxy.address, "committed.bin", st.st_size,
                                                    st.st_mtime_ns))
        os.makedirs(os.path.join(self.cache, "ringstore"))
        tracker = os.path.join(self.cache, "ringstore", "upload-" + hashlib.sha256(key).hexdigest())
        with open(tracker, "w") as f:
            f.write(uid + "\n")
        r = testlib.cli(proxy.address, "put", "--resume", src, "committed.bin", json=True)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertEqual(json.loads(r.stdout)["generation"], done.file.generation)
        self.assertLess(proxy.to_server, 64 << 10, proxy.to_server)
        self.assertEqual(self.trackers(), [])

    def test_put_from_stdin_stays_plain(self):
        server = self.serve()
        r = testlib.cli(server.address, "put", "-", "stdin.bin", stdin=self.data[:9 * MiB])
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertStored(server, "stdin.bin", self.data[:9 * MiB])
        self.assertEqual(self.trackers(), [])
        d = os.path.join(server.root, ".ringstore", "uploads")
        self.assertEqual(os.listdir(d) if os.path.isdir(d) else [], [])


if __name__ == "__main__":
    testlib.main()
