"""Memory is bounded by the buffer pool: stalled downloads do not make the
server allocate, and SIGTERM still ends the server while they are open."""

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

    def test_sigterm_lets_an_upload_in_flight_finish(self):
        server = testlib.Server(args=["--drain_timeout=20s"])
        try:
            stub = pbg.FileStoreStub(grpc.insecure_channel(server.address))
            sent_first = []

            def gen():
                yield pb.UploadRequest(spec=pb.UploadSpec(path="draining"))
                yield pb.UploadRequest(offset=0, data=b"a" * MiB)
                sent_first.append(True)
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
