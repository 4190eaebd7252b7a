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


class MemoryTest(unittest.TestCase):
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

            streams = []
            for _ in range(STALLED):
                # One channel each, so every stream has its own flow control.
                ch = grpc.insecure_channel(server.address)
                channels.append(ch)
                it = pbg.FileStoreStub(ch).Download(pb.DownloadRequest(path="big"))
                first = next(it)
                self.assertEqual(first.info.size, FILE_MIB * MiB)
                streams.append(it)  # never read again: the client stalls
            time.sleep(5)
            growth = server.rss_mib() - before
            print("RSS before %.1f MiB, growth with %d stalled downloads: %.1f MiB"
                  % (before, STALLED, growth))
            self.assertLess(growth, MAX_GROWTH_MIB)

            # SIGTERM with the stalled streams open: drain times out after
            # --drain_timeout, the streams are cancelled, the server exits 0.
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
            self.assertEqual(server.proc.wait(timeout=30), 0)
            with open(server.root + "/draining", "rb") as f:
                self.assertEqual(f.read(), b"a" * MiB + b"b" * MiB)
        finally:
            server.kill()


if __name__ == "__main__":
    testlib.main()
