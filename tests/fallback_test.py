"""io_uring really forbidden: the server runs under a seccomp filter that
makes io_uring_setup/enter/register fail with EPERM (as Docker's default
profile does), and must fall back with --engine=auto, or refuse to start
with --engine=io_uring."""

import os
import subprocess
import unittest

import grpc

import testlib
from ringstore.v1 import ringstore_pb2 as pb
from ringstore.v1 import ringstore_pb2_grpc as pbg

SECCOMP_EXEC = testlib.runfile("tests/seccomp_exec")


class FallbackTest(unittest.TestCase):
    def test_filter_really_forbids_io_uring(self):
        # The filter is real: a program using io_uring fails under it ...
        r = subprocess.run([SECCOMP_EXEC, testlib.SERVER, "--listen=127.0.0.1:0",
                            "--root=" + os.path.join(testlib.tmpdir(), "d"), "--engine=io_uring"],
                           capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn(b"io_uring", r.stderr)
        self.assertIn(b"Operation not permitted", r.stderr)
        self.assertEqual(r.stdout, b"")
        # ... and works without it.
        server = testlib.Server(args=["--engine=io_uring"])
        self.assertEqual(server.engine, "io_uring")
        self.assertEqual(server.stop(), 0)

    def test_auto_falls_back_and_every_response_says_so(self):
        server = testlib.Server(prefix=[SECCOMP_EXEC], args=["--engine=auto"])
        try:
            self.assertEqual(server.engine, "thread_pool")
            channel = grpc.insecure_channel(server.address)
            stub = pbg.FileStoreStub(channel)
            info = stub.GetServerInfo(pb.GetServerInfoRequest())
            self.assertEqual(info.engine, "thread_pool")
            self.assertEqual(list(info.engines_available), ["thread_pool"])
            self.assertFalse(info.buffers_registered)

            def gen():
                yield pb.UploadRequest(spec=pb.UploadSpec(path="f/b"), data=b"payload", finish=True)
            resp, call = stub.Upload.with_call(gen())
            self.assertEqual(resp.backend, pb.BACKEND_THREAD_POOL)
            self.assertIn(("ringstore-backend", "thread_pool"), tuple(call.trailing_metadata()))
            msgs = list(stub.Download(pb.DownloadRequest(path="f/b")))
            self.assertEqual(msgs[0].backend, pb.BACKEND_THREAD_POOL)
            self.assertEqual(b"".join(m.data for m in msgs), b"payload")
            _, call = stub.Stat.with_call(pb.StatRequest(path="f/b"))
            self.assertIn(("ringstore-backend", "thread_pool"), tuple(call.trailing_metadata()))
            _, call = stub.List.with_call(pb.ListRequest())
            self.assertIn(("ringstore-backend", "thread_pool"), tuple(call.trailing_metadata()))
            d = stub.Delete(pb.DeleteRequest(path="f/b"))
            self.assertEqual(d.backend, pb.BACKEND_THREAD_POOL)
            r = testlib.cli(server.address, "info")
            self.assertIn(b"engine: thread_pool", r.stdout)
            channel.close()
        finally:
            self.assertEqual(server.stop(), 0)


if __name__ == "__main__":
    testlib.main()
