"""io_uring really forbidden or constrained.

Under a seccomp filter that makes io_uring_setup/enter/register fail with
EPERM (as Docker's default profile does) the server must fall back to the
next engine, posix_aio, with --engine=auto and refuse to start with
--engine=io_uring. Under a real
RLIMIT_MEMLOCK without CAP_IPC_LOCK it must serve with unregistered buffers
and say so."""

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
        testlib.require_engine(self, "io_uring")
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
        # The engines that start here without io_uring, in the server's order:
        # posix_aio first (thread_pool in a ThreadSanitizer build, which has
        # no posix_aio).
        testlib.require_engine(self, "io_uring")
        rest = [e for e in testlib.available_engines() if e != "io_uring"]
        name = rest[0]
        backend = testlib.backend_enum(name)
        server = testlib.Server(prefix=[SECCOMP_EXEC], args=["--engine=auto"])
        try:
            self.assertEqual(server.engine, name)
            channel = grpc.insecure_channel(server.address)
            stub = pbg.FileStoreStub(channel)
            info = stub.GetServerInfo(pb.GetServerInfoRequest())
            self.assertEqual(info.engine, name)
            self.assertEqual(list(info.engines_available), rest)
            self.assertFalse(info.buffers_registered)

            def gen():
                yield pb.UploadRequest(spec=pb.UploadSpec(path="f/b"), data=b"payload", finish=True)
            resp, call = stub.Upload.with_call(gen())
            self.assertEqual(resp.backend, backend)
            self.assertIn(("ringstore-backend", name), tuple(call.trailing_metadata()))
            msgs = list(stub.Download(pb.DownloadRequest(path="f/b")))
            self.assertEqual(msgs[0].backend, backend)
            self.assertEqual(b"".join(m.data for m in msgs), b"payload")
            _, call = stub.Stat.with_call(pb.StatRequest(path="f/b"))
            self.assertIn(("ringstore-backend", name), tuple(call.trailing_metadata()))
            _, call = stub.List.with_call(pb.ListRequest())
            self.assertIn(("ringstore-backend", name), tuple(call.trailing_metadata()))
            d = stub.Delete(pb.DeleteRequest(path="f/b"))
            self.assertEqual(d.backend, backend)
            r = testlib.cli(server.address, "info")
            self.assertIn(b"engine: " + name.encode(), r.stdout)
            channel.close()
        finally:
            self.assertEqual(server.stop(), 0)

    def test_memlock_limit_runs_with_unregistered_buffers(self):
        # As in a container: no CAP_IPC_LOCK and a 1 MiB RLIMIT_MEMLOCK, too
        # small for the 64 MiB pool. io_uring still serves, unregistered.
        testlib.require_engine(self, "io_uring")
        for tool in ("/usr/bin/setpriv", "/usr/bin/prlimit"):
            if not os.access(tool, os.X_OK):
                self.skipTest("%s is missing (util-linux)" % tool)
        prefix = ["/usr/bin/setpriv", "--inh-caps=-ipc_lock", "--ambient-caps=-ipc_lock",
                  "--bounding-set=-ipc_lock", "/usr/bin/prlimit", "--memlock=1048576"]
        server = testlib.Server(prefix=prefix, args=["--engine=io_uring"])
        try:
            self.assertEqual(server.engine, "io_uring")
            channel = grpc.insecure_channel(server.address)
            stub = pbg.FileStoreStub(channel)
            info = stub.GetServerInfo(pb.GetServerInfoRequest())
            self.assertFalse(info.buffers_registered)
            self.assertTrue(any(f.startswith("registered_buffers=off") for f in info.io_uring_features),
                            list(info.io_uring_features))
            data = testlib.random_bytes(3 * (1 << 20) + 5, seed=9)

            def gen():
                yield pb.UploadRequest(spec=pb.UploadSpec(path="m/big"))
                for off in range(0, len(data), 1 << 20):
                    yield pb.UploadRequest(offset=off, data=data[off:off + (1 << 20)])
                yield pb.UploadRequest(offset=len(data), finish=True)
            resp = stub.Upload(gen())
            self.assertEqual(resp.backend, pb.BACKEND_IO_URING)
            msgs = list(stub.Download(pb.DownloadRequest(path="m/big")))
            self.assertEqual(msgs[0].backend, pb.BACKEND_IO_URING)
            self.assertEqual(b"".join(m.data for m in msgs), data)
            channel.close()
        finally:
            self.assertEqual(server.stop(), 0)


if __name__ == "__main__":
    testlib.main()
