"""A write that the system refuses part-way (here: RLIMIT_FSIZE, EFBIG, the
same path as a full disk) fails the upload with RESOURCE_EXHAUSTED, keeps
the old file intact and removes the temp data. No fault injection: the
kernel really refuses the write."""

import resource
import signal
import unittest

import grpc

import testlib
from ringstore.v1 import ringstore_pb2 as pb
from ringstore.v1 import ringstore_pb2_grpc as pbg

MiB = 1 << 20
LIMIT = 8 * MiB


def limit_file_size():
    # Ignored signals stay ignored across exec: the write fails with EFBIG
    # instead of SIGXFSZ killing the server.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))


def upload(stub, path, data):
    def gen():
        yield pb.UploadRequest(spec=pb.UploadSpec(path=path))
        for off in range(0, len(data), MiB):
            yield pb.UploadRequest(offset=off, data=data[off:off + MiB])
        yield pb.UploadRequest(offset=len(data), finish=True)
    return stub.Upload(gen())


@testlib.per_engine
class DiskFullTest(unittest.TestCase):
    def test_refused_write_keeps_old_file_and_removes_temp(self):
        server = testlib.Server(preexec_fn=limit_file_size, engine=self.engine)
        try:
            channel = grpc.insecure_channel(server.address)
            stub = pbg.FileStoreStub(channel)
            old = testlib.random_bytes(4 * MiB, seed=1)
            first = upload(stub, "full/file", old)
            with self.assertRaises(grpc.RpcError) as cm:
                upload(stub, "full/file", testlib.random_bytes(3 * LIMIT // 2, seed=2))
            self.assertEqual(cm.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED,
                             cm.exception.details())
            info = stub.Stat(pb.StatRequest(path="full/file"))
            self.assertEqual(info.generation, first.file.generation)
            got = b"".join(m.data for m in stub.Download(pb.DownloadRequest(path="full/file")))
            self.assertEqual(got, old)
            self.assertTrue(testlib.wait_until(lambda: not testlib.temp_files(server.root)),
                            testlib.temp_files(server.root))
            # The server keeps serving.
            self.assertEqual(upload(stub, "full/after", b"ok").file.size, 2)
            channel.close()
        finally:
            self.assertEqual(server.stop(), 0, server.stderr_text())


if __name__ == "__main__":
    testlib.main()
