"""Resumable upload sessions across server restarts and --upload_ttl
(DESIGN.md §3): a stock Python gRPC client against the real server, each
test with servers of its own on one root."""

import os
import threading
import time
import unittest

import grpc

import testlib
from ringstore.v1 import ringstore_pb2 as pb
from ringstore.v1 import ringstore_pb2_grpc as pbg

MiB = 1 << 20


def requests(upload_id, data, offset, end, finish, crc=True):
    """Upload by id: data[offset:end] in 1 MiB messages, each with its
    CRC32C unless `crc` is False (testlib's is pure Python: 0.35 s a MiB
    here)."""
    msgs = []
    for off in range(offset, end, MiB):
        piece = data[off:min(off + MiB, end)]
        msgs.append(pb.UploadRequest(offset=off, data=piece))
        if crc:
            msgs[-1].crc32c = testlib.crc32c(piece)
    if not msgs:
        msgs.append(pb.UploadRequest(offset=offset))
    msgs[0].upload_id = upload_id
    msgs[-1].finish = finish
    return msgs


class Session:
    """A server on `root` and a stub for it."""

    def __init__(self, root, args=()):
        self.server = testlib.Server(root=root, args=args)
        self.channel = grpc.insecure_channel(self.server.address)
        self.stub = pbg.FileStoreStub(self.channel)

    def close(self):
        self.channel.close()


class UploadSessionRestartTest(testlib.RpcAssertions, unittest.TestCase):
    def setUp(self):
        self.root = os.path.join(testlib.tmpdir("sess"), "data")
        self.live = []

    def tearDown(self):
        for s in self.live:
            s.close()
            s.server.kill()

    def serve(self, args=()):
        s = Session(self.root, args)
        self.live.append(s)
        return s

    def uploads(self):
        d = os.path.join(self.root, ".ringstore", "uploads")
        return sorted(os.listdir(d)) if os.path.isdir(d) else []

    def content(self, stub, path):
        return b"".join(m.data for m in stub.Download(pb.DownloadRequest(path=path)))

    def test_session_survives_sigterm(self):
        data = testlib.random_bytes(5 * MiB + 3, seed=41)
        a = self.serve()
        uid = a.stub.StartUpload(pb.StartUploadRequest(spec=pb.UploadSpec(
            path="r/term.bin", size=len(data), crc32c=testlib.crc32c(data)))).upload_id
        resp = a.stub.Upload(iter(requests(uid, data, 0, 2 * MiB, False)), timeout=60)
        self.assertFalse(resp.HasField("file"))
        a.close()
        self.assertEqual(a.server.stop(), 0, a.server.stderr_text())

        b = self.serve()
        q = b.stub.QueryUpload(pb.QueryUploadRequest(upload_id=uid))
        self.assertEqual((q.persisted_size, q.complete), (2 * MiB, False))
        resp = testlib.attach(lambda: b.stub.Upload(
            iter(requests(uid, data, q.persisted_size, len(data), True)), timeout=60))
        self.assertEqual(resp.file.size, len(data))
        self.assertEqual(resp.file.crc32c, testlib.crc32c(data))
        self.assertEqual(self.content(b.stub, "r/term.bin"), data)

    def test_session_survives_kill_9_with_only_its_fsynced_bytes(self):
        """A stream cut by kill -9 loses what was never persisted: the
        restarted server reports what the half-closed stream made durable,
        and the upload resumes from there to a byte-exact file."""
        data = testlib.random_bytes(6 * MiB + 5, seed=42)
        a = self.serve()
        uid = a.stub.StartUpload(pb.StartUploadRequest(spec=pb.UploadSpec(
            path="r/kill.bin", size=len(data), crc32c=testlib.crc32c(data)))).upload_id
        a.stub.Upload(iter(requests(uid, data, 0, 3 * MiB, False)), timeout=60)
        self.assertEqual(a.stub.QueryUpload(pb.QueryUploadRequest(upload_id=uid)).persisted_size,
                         3 * MiB)
        # A second stream delivers more and stays open when the server dies.
        sent = threading.Event()
        hold = threading.Event()

        def open_stream():
            for m in requests(uid, data, 3 * MiB, 5 * MiB, False):
                yield m
            sent.set()
            hold.wait(30)

        future = a.stub.Upload.future(open_stream(), timeout=60)
        self.assertTrue(sent.wait(10))
        time.sleep(0.5)
        a.server.kill()
        hold.set()
        self.assertIsNotNone(future.exception(timeout=30))
        a.close()

        b = self.serve()
        q = b.stub.QueryUpload(pb.QueryUploadRequest(upload_id=uid))
        self.assertGreaterEqual(q.persisted_size, 3 * MiB)
        self.assertLessEqual(q.persisted_size, 5 * MiB)
        self.assertFalse(q.complete)
        resp = testlib.attach(lambda: b.stub.Upload(
            iter(requests(uid, data, q.persisted_size, len(data), True)), timeout=60))
        self.assertEqual(resp.file.size, len(data))
        self.assertEqual(self.content(b.stub, "r/kill.bin"), data)
        # Finished, the session answers with the file until it expires.
        again = testlib.attach(lambda: b.stub.Upload(iter(requests(uid, data, 0, 0, True)),
                                                     timeout=60))
        self.assertEqual(again.file, resp.file)

    def test_a_long_stream_persists_as_it_goes(self):
        """A resumed stream persists every 64 MiB: kill -9 in the middle of
        one loses at most that much of it."""
        data = b"".join(testlib.random_bytes(8 * MiB, seed=70 + i) for i in range(10))
        a = self.serve()
        uid = a.stub.StartUpload(pb.StartUploadRequest(spec=pb.UploadSpec(
            path="r/long.bin", size=len(data)))).upload_id
        sent = threading.Event()
        hold = threading.Event()

        def open_stream():
            for m in requests(uid, data, 0, 72 * MiB, False, crc=False):
                yield m
            sent.set()
            hold.wait(30)

        future = a.stub.Upload.future(open_stream(), timeout=60)
        self.assertTrue(sent.wait(30))
        # While the stream is attached, QueryUpload reports what is durable.
        self.assertTrue(testlib.wait_until(lambda: a.stub.QueryUpload(
            pb.QueryUploadRequest(upload_id=uid)).persisted_size >= 64 * MiB, timeout=30))
        a.server.kill()
        hold.set()
        self.assertIsNotNone(future.exception(timeout=30))
        a.close()
        b = self.serve()
        q = b.stub.QueryUpload(pb.QueryUploadRequest(upload_id=uid))
        self.assertGreaterEqual(q.persisted_size, 64 * MiB)
        resp = testlib.attach(lambda: b.stub.Upload(
            iter(requests(uid, data, q.persisted_size, len(data), True, crc=False)), timeout=60))
        self.assertEqual(resp.file.size, len(data))
        self.assertEqual(self.content(b.stub, "r/long.bin"), data)

    def test_a_dropped_stream_keeps_what_it_delivered(self):
        """A stream the client cancels (as a dropped connection) is not
        answered, but the server persists what it received."""
        data = testlib.random_bytes(4 * MiB, seed=44)
        s = self.serve()
        uid = s.stub.StartUpload(pb.StartUploadRequest(spec=pb.UploadSpec(
            path="r/drop.bin", size=len(data)))).upload_id
        sent = threading.Event()
        hold = threading.Event()

        def open_stream():
            for m in requests(uid, data, 0, 3 * MiB, False):
                yield m
            sent.set()
            hold.wait(30)

        future = s.stub.Upload.future(open_stream(), timeout=60)
        self.assertTrue(sent.wait(10))
        # The server takes in what was sent before the cancel.
        self.assertTrue(testlib.wait_until(
            lambda: testlib.session_data_size(self.root, uid) == 3 * MiB))
        future.cancel()
        hold.set()
        self.assertTrue(testlib.wait_until(lambda: s.stub.QueryUpload(
            pb.QueryUploadRequest(upload_id=uid)).persisted_size == 3 * MiB),
            s.stub.QueryUpload(pb.QueryUploadRequest(upload_id=uid)))
        resp = testlib.attach(lambda: s.stub.Upload(
            iter(requests(uid, data, 3 * MiB, len(data), True)), timeout=60))
        self.assertEqual(resp.file.size, len(data))
        self.assertEqual(self.content(s.stub, "r/drop.bin"), data)

    def test_upload_ttl_expires_idle_sessions(self):
        s = self.serve(["--upload_ttl=2s"])
        data = testlib.random_bytes(MiB, seed=43)
        uid = s.stub.StartUpload(pb.StartUploadRequest(spec=pb.UploadSpec(
            path="r/ttl.bin", size=len(data)))).upload_id
        s.stub.Upload(iter(requests(uid, data, 0, MiB // 2, False)), timeout=60)
        self.assertTrue([f for f in self.uploads() if f.startswith(uid)])
        started = time.monotonic()

        def gone():
            try:
                s.stub.QueryUpload(pb.QueryUploadRequest(upload_id=uid))
                return False
            except grpc.RpcError as e:
                self.assertEqual(e.code(), grpc.StatusCode.NOT_FOUND, e.details())
                return True

        self.assertTrue(testlib.wait_until(gone, timeout=20, interval=0.2))
        # Not before the TTL (2 s from the last persist).
        self.assertGreater(time.monotonic() - started, 1.0)
        self.assertTrue(testlib.wait_until(lambda: not [f for f in self.uploads()
                                                        if f.startswith(uid)]),
                        self.uploads())
        self.assertCode(grpc.StatusCode.NOT_FOUND, testlib.attach, lambda: s.stub.Upload(
            iter(requests(uid, data, MiB // 2, MiB, True))))
        self.assertCode(grpc.StatusCode.NOT_FOUND, s.stub.Stat, pb.StatRequest(path="r/ttl.bin"))
        self.assertIn("--upload_ttl", s.server.stderr_text())

    def test_upload_ttl_must_be_positive(self):
        for bad in ("0s", "-1s", "soon"):
            with self.subTest(ttl=bad):
                with self.assertRaises(AssertionError):
                    testlib.Server(root=self.root, args=["--upload_ttl=" + bad])


if __name__ == "__main__":
    testlib.main()
