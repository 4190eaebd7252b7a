"""Memory is bounded by the buffer pool: stalled downloads do not make the
server allocate, slow readers of a big file cost a bounded amount each,
and SIGTERM still ends the server while they are open."""

import threading
import time
import unittest

import grpc

import testlib
from ringstore.v1 import ringstore_pb2 as pb
from ringstore.v1 import ringstore_pb2_grpc as pbg

MiB = 1 << 20
FILE_MIB = 192
STALLED = 8
MAX_GROWTH_MIB = 64


# Slow readers (test_slow_readers_cost_a_bounded_amount_each): streams that
# keep reading, one message every SLOW_READ_S, from a pool of SLOW_BUFFERS
# buffers of 1 MiB. What one may cost beyond the pool: its copied chunks
# (server/download_reactor.h: at most kCopyHeld * kCopyChunk = 128 KiB) and
# gRPC's state for the stream; fairness_test.py measured the latter at well
# under 100 KiB for a stalled stream.
SLOW_READERS = 200
SLOW_CHANNELS = 4       # 50 streams a connection, under the default 100
SLOW_BUFFERS = 16
SLOW_READ_S = 0.2
SLOW_RUN_S = 8
SLOW_FILE_MIB = 128     # more than a stream can read in SLOW_RUN_S
PER_STREAM_KIB = 256
SLACK_MIB = 24


def proc_mib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    raise AssertionError("no " + field)


def self_rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise AssertionError("no VmRSS")


class MemoryTest(unittest.TestCase):
    @unittest.skipIf(testlib.TSAN, "ThreadSanitizer's shadow memory makes RSS meaningless")
    def test_stalled_downloads_do_not_grow_rss(self):
        server = testlib.Server(args=["--drain_timeout=3s"])
        channels = []
        try:
            stub = pbg.FileStoreStub(grpc.insecure_channel(server.address))
            block = testlib.random_bytes(MiB, seed=5)

            def gen():
                yield pb.UploadRequest(spec=pb.UploadSpec(path="big", size=FILE_MIB * MiB))
                for i in range(FILE_MIB):
                    yield pb.UploadRequest(offset=i * MiB, data=block)
                yield pb.UploadRequest(offset=FILE_MIB * MiB, finish=True)

            self.assertEqual(stub.Upload(gen()).file.size, FILE_MIB * MiB)
            time.sleep(1)
            before = server.rss_mib()
            client_before = self_rss_mib()

            streams = []
            for _ in range(STALLED):
                # One channel each, so every stream has its own flow control.
                ch = grpc.insecure_channel(server.address)
                channels.append(ch)
                it = pbg.FileStoreStub(ch).Download(pb.DownloadRequest(path="big"))
                first = next(it)
                self.assertEqual(first.info.size, FILE_MIB * MiB)
                self.assertEqual(first.offset, 0)
                self.assertEqual(first.data, block[:len(first.data)])
                streams.append(it)  # never read again: the client stalls
            time.sleep(5)
            growth = server.rss_mib() - before
            client_growth = self_rss_mib() - client_before
            print("RSS before %.1f MiB, growth with %d stalled downloads: %.1f MiB "
                  "(client side buffered %.1f MiB)" % (before, STALLED, growth, client_growth))
            self.assertLess(growth, MAX_GROWTH_MIB)
            # The stall is real: the client's gRPC core buffers what flow
            # control lets through (about 27 MiB a stream), far from the whole
            # file, so the server holds the rest of every stream back.
            self.assertLess(client_growth, STALLED * FILE_MIB / 2)

            # A stalled stream is still alive and intact: read one to the end.
            # The file is `block` repeated; a message carries at most 2 MiB.
            repeated, offset = block * 3, len(first.data)
            for m in streams.pop():
                self.assertEqual(m.offset, offset)
                self.assertEqual(m.data, repeated[offset % MiB:offset % MiB + len(m.data)])
                offset += len(m.data)
            self.assertEqual(offset, FILE_MIB * MiB)

            # SIGTERM with the other stalled streams open. We do not cancel
            # them from the client first: the server must end them by itself.
            # Drain waits --drain_timeout (3 s here) for calls in flight, then
            # cancels them and exits 0; a server whose drain waited for these
            # never-reading clients would hang and fail this bound.
            start = time.time()
            self.assertEqual(server.stop(timeout=30), 0, server.stderr_text())
            self.assertLess(time.time() - start, 30)
        finally:
            for ch in channels:
                ch.close()
            server.kill()

    @unittest.skipIf(testlib.TSAN, "ThreadSanitizer's shadow memory makes RSS meaningless")
    def test_slow_readers_cost_a_bounded_amount_each(self):
        """SLOW_READERS streams of a big file, each read slowly (so the
        server's writes stall between reads and resume, over and over):
        the server's peak RSS stays under the pool plus PER_STREAM_KIB a
        stream, every stream stays alive and byte-exact, and a fresh
        download of the whole file completes byte-exact meanwhile."""
        server = testlib.Server(args=["--buffer_count=%d" % SLOW_BUFFERS,
                                      "--idle_timeout=10m", "--drain_timeout=2s"])
        channels, stop, failures = [], threading.Event(), []
        try:
            block = testlib.random_bytes(MiB, seed=7)
            with open(server.root + "/big", "wb") as f:
                for _ in range(SLOW_FILE_MIB):
                    f.write(block)
            repeated = block * 3
            with grpc.insecure_channel(server.address) as ch:  # warm up
                next(pbg.FileStoreStub(ch).Download(pb.DownloadRequest(path="big", limit=4096)))
            time.sleep(0.5)
            before = server.rss_mib()

            def check(m, offset):
                if m.offset != offset:
                    raise AssertionError("message at %d, expected %d" % (m.offset, offset))
                if m.data != repeated[offset % MiB:offset % MiB + len(m.data)]:
                    raise AssertionError("wrong bytes at %d" % offset)
                return offset + len(m.data)

            def reader(streams, read):
                offsets = [0] * len(streams)
                try:
                    while not stop.is_set():
                        for i, it in enumerate(streams):
                            offsets[i] = check(next(it), offsets[i])
                            read[i] += 1
                        stop.wait(SLOW_READ_S)
                except Exception as e:  # noqa: BLE001 (reported by the test)
                    failures.append(repr(e))

            per_channel = SLOW_READERS // SLOW_CHANNELS
            threads, reads = [], []
            for _ in range(SLOW_CHANNELS):
                ch = grpc.insecure_channel(server.address, options=[
                    ("grpc.use_local_subchannel_pool", 1), ("grpc.http2.bdp_probe", 0)])
                channels.append(ch)
                stub = pbg.FileStoreStub(ch)
                streams = [stub.Download(pb.DownloadRequest(path="big"))
                           for _ in range(per_channel)]
                reads.append([0] * per_channel)
                threads.append(threading.Thread(target=reader, args=(streams, reads[-1]),
                                                daemon=True))
            start = time.time()
            for t in threads:
                t.start()

            # A fresh download of the whole file, while they read.
            time.sleep(2)
            offset = 0
            with grpc.insecure_channel(server.address) as ch:
                for m in pbg.FileStoreStub(ch).Download(pb.DownloadRequest(path="big"),
                                                        timeout=120):
                    offset = check(m, offset)
            self.assertEqual(offset, SLOW_FILE_MIB * MiB)
            fresh_s = time.time() - start - 2
            stop.wait(max(0, SLOW_RUN_S - (time.time() - start)))
            peak = proc_mib(server.proc.pid, "VmHWM")
            stop.set()
            for t in threads:
                t.join(60)
            self.assertEqual(failures, [])
            least = min(min(r) for r in reads)
            bound = before + SLOW_BUFFERS + SLOW_READERS * PER_STREAM_KIB / 1024 + SLACK_MIB
            print("%d slow readers: RSS %.1f MiB before, peak %.1f MiB (bound %.0f); every "
                  "stream read at least %d messages; a fresh 128 MiB download took %.1f s" % (
                      SLOW_READERS, before, peak, bound, least, fresh_s))
            # They really read, again and again, and were never cut off.
            self.assertGreaterEqual(least, 3)
            self.assertLess(peak, bound)
        finally:
            stop.set()
            for ch in channels:
                ch.close()
            server.kill()

    def test_sigterm_lets_an_upload_in_flight_finish(self):
        server = testlib.Server(args=["--drain_timeout=20s"])
        try:
            stub = pbg.FileStoreStub(grpc.insecure_channel(server.address))

            def gen():
                yield pb.UploadRequest(spec=pb.UploadSpec(path="draining"))
                yield pb.UploadRequest(offset=0, data=b"a" * MiB)
                # The client has sent the first message, but the server may
                # not have taken the call yet: a SIGTERM then would refuse it.
                # Its temp file shows that the upload is in flight.
                self.assertTrue(testlib.wait_until(
                    lambda: testlib.temp_files(server.root)))
                server.proc.send_signal(15)  # SIGTERM mid-stream
                time.sleep(1)
                yield pb.UploadRequest(offset=MiB, data=b"b" * MiB, finish=True)

            resp = stub.Upload(gen())
            self.assertEqual(resp.file.size, 2 * MiB)
            self.assertEqual(server.proc.wait(timeout=30), 0, server.stderr_text())
            with open(server.root + "/draining", "rb") as f:
                self.assertEqual(f.read(), b"a" * MiB + b"b" * MiB)
        finally:
            server.kill()


if __name__ == "__main__":
    testlib.main()
