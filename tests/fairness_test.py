"""Abuse limits (DESIGN.md §5, "Security, limits and operations"): buffer
fairness, --idle_timeout and --max_streams_per_connection, against the real
server binary.

Stalled clients are Python streams that are never read, on channels with
HTTP/2 BDP probing off, so that each stream's flow-control window stays at
gRPC's 64 KiB and the stall is reached at once (with BDP probing the client
would first buffer tens of MiB a stream, memory_test.py). Deadlines here
are liveness bounds, never timing claims.
"""

import os
import threading
import time
import unittest

import grpc

import testlib
from ringstore.v1 import ringstore_pb2 as pb
from ringstore.v1 import ringstore_pb2_grpc as pbg

KiB = 1 << 10
MiB = 1 << 20
BUFFERS = 16            # --buffer_count of the servers here
BUFFER_SIZE = MiB       # the default --buffer_size
BIG_MIB = 256           # the file the stalled clients download
STALLED = 200
PER_CHANNEL = 50        # under the default 100 streams per connection
LIVENESS_S = 30

# What a stalled download may cost beyond the pool (server/download_reactor.h:
# at most two copied 64 KiB chunks) plus gRPC's own state for a stream (its
# call arena, HTTP/2 stream and the frames it has queued: measured at well
# under 100 KiB): 256 KiB is twice the copies.
PER_STREAM_KIB = 256
SLACK_MIB = 24          # allocator and thread-stack noise (memory_test.py allows 64)


def channel(address):
    """A channel with its own connection and a fixed 64 KiB stream window."""
    return grpc.insecure_channel(address, options=[
        ("grpc.use_local_subchannel_pool", 1),
        ("grpc.http2.bdp_probe", 0),
    ])


def wait_all(calls, timeout):
    """True once every call has received its initial metadata (the server
    sends it with its first message), within `timeout` seconds."""
    done = threading.Event()

    def waiter():
        for c in calls:
            c.initial_metadata()
        done.set()

    threading.Thread(target=waiter, daemon=True).start()
    return done.wait(timeout)


def make_sparse(root, name, size):
    path = os.path.join(root, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.truncate(size)


def read_all(stub, path, **kw):
    """The messages of a whole download, checked for offsets and size."""
    sizes, offset, data = [], 0, bytearray()
    for m in stub.Download(pb.DownloadRequest(path=path), **kw):
        assert m.offset == offset, (m.offset, offset)
        sizes.append(len(m.data))
        data += m.data
        offset += len(m.data)
    return bytes(data), sizes


class StalledClientsTest(unittest.TestCase):
    """Hundreds of clients that stopped reading never stop a new download or
    upload, and cost the server no more than the pool plus a small, bounded
    amount each."""

    def run_stalled(self, engine):
        server = testlib.Server(engine=engine, args=[
            "--buffer_count=%d" % BUFFERS, "--idle_timeout=10m", "--drain_timeout=2s"])
        channels = []
        try:
            make_sparse(server.root, "big", BIG_MIB * MiB)
            small = testlib.random_bytes(4 * KiB, seed=1)
            with open(os.path.join(server.root, "small"), "wb") as f:
                f.write(small)
            local = testlib.tmpdir("fair")
            with grpc.insecure_channel(server.address) as ch:  # warm up, then measure
                self.assertEqual(read_all(pbg.FileStoreStub(ch), "small")[0], small)
            time.sleep(0.5)
            before = server.rss_mib()

            calls = []
            for i in range(STALLED // PER_CHANNEL):
                ch = channel(server.address)
                channels.append(ch)
                stub = pbg.FileStoreStub(ch)
                calls += [stub.Download(pb.DownloadRequest(path="big"))
                          for _ in range(PER_CHANNEL)]
            self.assertTrue(wait_all(calls, 120),
                            "not every one of %d downloads got its first message" % STALLED)
            time.sleep(2)  # let every stream run into its stall
            stalled_rss = server.rss_mib()

            # A fresh client's 4 KiB download, and an upload of a few MiB and
            # its download, all through the real CLI.
            start = time.time()
            r = testlib.cli(server.address, "get", "small", "-", timeout=LIVENESS_S)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout, small)
            payload = testlib.random_bytes(5 * MiB + 123, seed=2)
            src = os.path.join(local, "up")
            with open(src, "wb") as f:
                f.write(payload)
            r = testlib.cli(server.address, "put", src, "fresh/up", timeout=LIVENESS_S)
            self.assertEqual(r.returncode, 0, r.stderr)
            r = testlib.cli(server.address, "get", "fresh/up", "-", timeout=LIVENESS_S)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout, payload)
            # And a Python download, which comes in copied chunks when the
            # stalled streams hold what the pool may lend.
            with grpc.insecure_channel(server.address) as ch:
                data, sizes = read_all(pbg.FileStoreStub(ch), "fresh/up", timeout=LIVENESS_S)
            self.assertEqual(data, payload)
            elapsed = time.time() - start

            growth = max(stalled_rss, server.rss_mib()) - before
            bound = BUFFERS * BUFFER_SIZE / MiB + STALLED * PER_STREAM_KIB / 1024 + SLACK_MIB
            print("%s: RSS %.1f MiB before, +%.1f MiB with %d stalled downloads (bound %.0f); "
                  "fresh get/put/get/download took %.1f s, largest message %d KiB" % (
                      server.engine, before, growth, STALLED, bound, elapsed, max(sizes) // KiB))
            self.assertLess(growth, bound)
            self.assertFalse([c.code() for c in calls if c.done()])  # all still open
        finally:
            for ch in channels:
                ch.close()
            server.kill()

    @unittest.skipIf(testlib.TSAN, "ThreadSanitizer's shadow memory makes RSS meaningless")
    def test_stalled_clients_do_not_stop_others_auto(self):
        self.run_stalled("auto")

    # The slowest engine: every read is a thread hand-off.
    @unittest.skipIf(testlib.TSAN, "ThreadSanitizer's shadow memory makes RSS meaningless")
    def test_stalled_clients_do_not_stop_others_thread_pool(self):
        self.run_stalled("thread_pool")


class IdleTimeoutTest(unittest.TestCase):
    """--idle_timeout=2s: streams whose client does nothing end with
    DEADLINE_EXCEEDED and give everything back; slow but live ones do not."""

    def setUp(self):
        self.server = testlib.Server(args=[
            "--buffer_count=%d" % BUFFERS, "--idle_timeout=2s", "--drain_timeout=2s"])
        make_sparse(self.server.root, "big", 64 * MiB)
        self.channels = []

    def tearDown(self):
        for ch in self.channels:
            ch.close()
        self.server.kill()

    def stub(self):
        ch = channel(self.server.address)
        self.channels.append(ch)
        return pbg.FileStoreStub(ch)

    def test_an_upload_that_sends_nothing_ends_and_leaves_no_temp_data(self):
        release = threading.Event()
        sent_spec = threading.Event()

        def requests():
            yield pb.UploadRequest(spec=pb.UploadSpec(path="idle/up"))
            yield pb.UploadRequest(offset=0, data=b"x" * 1000)
            sent_spec.set()
            release.wait(60)  # then nothing

        try:
            start = time.time()
            with self.assertRaises(grpc.RpcError) as caught:
                self.stub().Upload(requests(), timeout=60)
            self.assertEqual(caught.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED,
                             caught.exception.details())
            self.assertIn("idle_timeout", caught.exception.details())
            self.assertGreaterEqual(time.time() - start, 2)
            self.assertTrue(sent_spec.is_set())
        finally:
            release.set()
        self.assertTrue(testlib.wait_until(lambda: not testlib.temp_files(self.server.root),
                                           timeout=10), testlib.temp_files(self.server.root))
        self.assertEqual(testlib.visible_files(self.server.root), ["big"])

    def test_downloads_never_read_end_and_give_the_pool_back(self):
        stub = self.stub()
        calls = [stub.Download(pb.DownloadRequest(path="big")) for _ in range(BUFFERS)]
        self.assertTrue(wait_all(calls, 60))
        # Each ends by itself (the server cancels it) while nothing reads.
        # The Python client notices only when it reads, so wait three
        # timeouts first (the server ends an idle stream within the timeout
        # plus two ticks of a fifth of a second), then read: the status, and
        # nothing of what was in flight.
        time.sleep(6)
        for c in calls:
            with self.assertRaises(grpc.RpcError) as caught:
                for _ in c:
                    pass
            self.assertEqual(caught.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED,
                             caught.exception.details())
        # The pool is whole again: it lends whole buffers, and serves as
        # many parallel large downloads as it has buffers.
        data, sizes = read_all(self.stub(), "big", timeout=LIVENESS_S)
        self.assertEqual(len(data), 64 * MiB)
        self.assertEqual(max(sizes), BUFFER_SIZE)
        results = [None] * BUFFERS

        def one(i):
            results[i] = len(read_all(self.stub(), "big", timeout=LIVENESS_S)[0])

        threads = [threading.Thread(target=one, args=(i,)) for i in range(BUFFERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(LIVENESS_S * 2)
        self.assertEqual(results, [64 * MiB] * BUFFERS)

    def test_a_slow_reader_that_keeps_reading_is_not_cut_off(self):
        # One 1 MiB message every 0.5 s: 16 s in all, eight idle timeouts,
        # but never 2 s without a read.
        make_sparse(self.server.root, "medium", 32 * MiB)
        offset = 0
        for m in self.stub().Download(pb.DownloadRequest(path="medium"), timeout=120):
            self.assertEqual(m.offset, offset)
            offset += len(m.data)
            time.sleep(0.5)
        self.assertEqual(offset, 32 * MiB)

    def test_an_upload_that_keeps_sending_is_not_cut_off(self):
        def requests():
            yield pb.UploadRequest(spec=pb.UploadSpec(path="slow/up"))
            for i in range(10):
                time.sleep(0.5)
                yield pb.UploadRequest(offset=i * 1000, data=b"y" * 1000)
            yield pb.UploadRequest(offset=10000, finish=True)

        self.assertEqual(self.stub().Upload(requests(), timeout=60).file.size, 10000)


class FlagsTest(unittest.TestCase):
    def test_max_streams_per_connection(self):
        server = testlib.Server(args=["--max_streams_per_connection=2", "--idle_timeout=10m",
                                      "--drain_timeout=2s"])
        ch = channel(server.address)
        try:
            make_sparse(server.root, "big", 64 * MiB)
            stub = pbg.FileStoreStub(ch)
            a = stub.Download(pb.DownloadRequest(path="big"))
            b = stub.Download(pb.DownloadRequest(path="big"))
            self.assertTrue(wait_all([a, b], 30))
            # A third stream on this connection waits for one of the two.
            with self.assertRaises(grpc.RpcError) as caught:
                stub.Stat(pb.StatRequest(path="big"), timeout=2)
            self.assertEqual(caught.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
            # Another connection is not limited by this one.
            with channel(server.address) as other:
                self.assertEqual(pbg.FileStoreStub(other).Stat(
                    pb.StatRequest(path="big"), timeout=LIVENESS_S).size, 64 * MiB)
            a.cancel()
            self.assertEqual(stub.Stat(pb.StatRequest(path="big"), timeout=LIVENESS_S).size,
                             64 * MiB)
            b.cancel()
        finally:
            ch.close()
            server.kill()

    def test_bad_values_are_refused(self):
        for flag in ["--max_streams_per_connection=0", "--max_streams_per_connection=-3",
                     "--idle_timeout=-1s"]:
            with self.subTest(flag=flag):
                r = testlib.subprocess.run(
                    [testlib.SERVER, "--listen=127.0.0.1:0",
                     "--root=" + os.path.join(testlib.tmpdir("flags"), "d"), flag],
                    capture_output=True, timeout=30)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(flag.split("=")[0][2:], r.stderr.decode())


if __name__ == "__main__":
    testlib.main()
