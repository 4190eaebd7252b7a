"""BatchDownload (DESIGN.md §3) from a stock Python gRPC client against the
real server: many files of mixed sizes byte-exact with each message's
CRC32C, per-file errors with their exact codes while the others arrive,
the limits on the request, every index answered exactly once, the
ringstore-backend trailer, and a cancelled batch that leaves the server
healthy (every pool buffer back). The server runs with 64 KiB buffers so
that "one buffer" and "more than one buffer" are small files."""

import json
import os
import random
import re
import threading
import unittest
import urllib.request

import grpc

import testlib
from ringstore.v1 import ringstore_pb2 as pb
from ringstore.v1 import ringstore_pb2_grpc as pbg

BUFFER = 64 << 10
OK = grpc.StatusCode.OK.value[0]
NOT_FOUND = grpc.StatusCode.NOT_FOUND.value[0]
INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT.value[0]


def upload(stub, path, data):
    def requests():
        yield pb.UploadRequest(spec=pb.UploadSpec(path=path, size=len(data)))
        for off in range(0, len(data), 1 << 20):
            yield pb.UploadRequest(offset=off, data=data[off:off + (1 << 20)])
        yield pb.UploadRequest(offset=len(data), finish=True)
    return stub.Upload(requests(), timeout=60)


def make_files(stub, prefix, count, seed):
    """`count` files under `prefix` of sizes 0, 4 KiB, exactly one buffer
    and more than one buffer (three messages): {path: bytes}."""
    rng = random.Random(seed)
    files = {}
    for i in range(count):
        size = rng.choice([0, 4096, 4096, 4096, BUFFER, 2 * BUFFER + 1000])
        path = "%s/d%d/f%03d.bin" % (prefix, i % 7, i)
        files[path] = rng.randbytes(size)
        upload(stub, path, files[path])
    return files


class Answers:
    """The messages of one BatchDownload, checked against the contract as
    they are grouped by index."""

    def __init__(self, test, paths, stream):
        self.by_index = {}
        for m in stream:
            test.assertGreaterEqual(m.index, 0)
            test.assertLess(m.index, len(paths))
            got = self.by_index.setdefault(m.index, [])
            if got:
                test.assertFalse(got[-1].last, "a message after the last of %d" % m.index)
                test.assertEqual(got[-1].error_code, 0, "a message after an error")
            got.append(m)
        self.trailers = tuple(stream.trailing_metadata())
        test.assertEqual(stream.code(), grpc.StatusCode.OK)
        # Every index answered exactly once: one last message or one error.
        test.assertEqual(sorted(self.by_index), list(range(len(paths))))

    def data(self, test, index, expected_path, backend):
        """The file at `index`, checked message by message; its bytes."""
        msgs = self.by_index[index]
        test.assertEqual(msgs[0].error_code, 0, msgs[0].error_message)
        test.assertTrue(msgs[0].HasField("info"))
        test.assertEqual(msgs[0].info.path, expected_path)
        test.assertEqual(msgs[0].backend, backend)
        test.assertTrue(msgs[-1].last)
        offset = 0
        for i, m in enumerate(msgs):
            if i > 0:
                test.assertFalse(m.HasField("info"))
                test.assertEqual(m.backend, pb.BACKEND_UNSPECIFIED)
            test.assertEqual(m.last, i == len(msgs) - 1)
            test.assertEqual(m.offset, offset)
            test.assertEqual(m.crc32c, testlib.crc32c(m.data))
            offset += len(m.data)
        data = b"".join(m.data for m in msgs)
        test.assertEqual(msgs[0].info.size, len(data))
        test.assertEqual(msgs[0].info.crc32c, testlib.crc32c(data))
        return data

    def error(self, test, index):
        """(error_code, error_message) of a failed file's one message."""
        msgs = self.by_index[index]
        test.assertEqual(len(msgs), 1)
        m = msgs[0]
        test.assertFalse(m.HasField("info"))
        test.assertEqual((m.data, m.offset, m.crc32c, m.last, m.backend),
                         (b"", 0, 0, False, pb.BACKEND_UNSPECIFIED))
        return m.error_code, m.error_message


class BatchBase(testlib.RpcAssertions, unittest.TestCase):
    SERVER_ARGS = ["--buffer_size=%d" % BUFFER]
    engine = "auto"

    @classmethod
    def setUpClass(cls):
        cls.server = testlib.Server(engine=cls.engine, args=cls.SERVER_ARGS)
        cls.channel = grpc.insecure_channel(cls.server.address)
        cls.stub = pbg.FileStoreStub(cls.channel)
        cls.backend = testlib.backend_enum(cls.server.engine)
        cls.files = make_files(cls.stub, "b", 300, seed=14)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        assert cls.server.stop() == 0, cls.server.stderr_text()

    def batch(self, paths, timeout=120):
        return Answers(self, paths, self.stub.BatchDownload(
            pb.BatchDownloadRequest(paths=paths), timeout=timeout))

    def check_all_files(self, seed):
        paths = list(self.files)
        random.Random(seed).shuffle(paths)
        a = self.batch(paths)
        for i, path in enumerate(paths):
            self.assertEqual(a.data(self, i, path, self.backend), self.files[path], path)
        self.assertIn(("ringstore-backend", self.server.engine), a.trailers)
        return a

    def cancel_midway(self, messages):
        """A batch of every file, cancelled after `messages` messages."""
        call = self.stub.BatchDownload(pb.BatchDownloadRequest(paths=list(self.files)),
                                       timeout=60)
        for n, _ in enumerate(call):
            if n + 1 == messages:
                break
        call.cancel()
        self.assertCode(grpc.StatusCode.CANCELLED, list, call)


@testlib.per_engine
class BatchDownloadTest(BatchBase):
    def test_many_files_of_mixed_sizes_byte_exact(self):
        a = self.check_all_files(seed=1)
        sizes = {len(d) for d in self.files.values()}
        self.assertEqual(sizes, {0, 4096, BUFFER, 2 * BUFFER + 1000})
        # More than one buffer: several messages; one buffer or less: one.
        for i, msgs in a.by_index.items():
            self.assertEqual(len(msgs) > 1, msgs[0].info.size > BUFFER, msgs[0].info.path)

    def test_failed_files_get_their_code_and_the_others_arrive(self):
        good = sorted(self.files)[:3]
        paths = [good[0], "b/missing", "../escape", good[1], "", "a//b", ".ringstore/x",
                 "b/d0", good[2], good[0]]
        a = self.batch(paths)
        expected = [OK, NOT_FOUND, INVALID_ARGUMENT, OK, INVALID_ARGUMENT, INVALID_ARGUMENT,
                    INVALID_ARGUMENT, NOT_FOUND, OK, OK]
        for i, (path, code) in enumerate(zip(paths, expected)):
            with self.subTest(path=path):
                if code == OK:
                    self.assertEqual(a.data(self, i, path, self.backend), self.files[path])
                else:
                    got, message = a.error(self, i)
                    self.assertEqual(got, code, message)
                    self.assertTrue(message)

    def test_a_thousand_paths_each_answered_once(self):
        paths = ["b/nope/%d" % i for i in range(999)] + [sorted(self.files)[0]]
        a = self.batch(paths)
        for i in range(999):
            self.assertEqual(a.error(self, i)[0], NOT_FOUND)
        a.data(self, 999, paths[999], self.backend)

    def test_more_than_a_thousand_or_none_is_invalid(self):
        e = self.assertCode(grpc.StatusCode.INVALID_ARGUMENT, self.stub.BatchDownload,
                            pb.BatchDownloadRequest(paths=["b/x"] * 1001), timeout=30)
        self.assertIn("1000", e.details())
        self.assertCode(grpc.StatusCode.INVALID_ARGUMENT, self.stub.BatchDownload,
                        pb.BatchDownloadRequest(), timeout=30)

    def test_small_batches_are_never_held_back(self):
        # Many tiny files answered at once queue their messages behind one
        # another, so the call's first message may have others behind it. A
        # buffer hint on that first write (which carries the initial
        # metadata) made gRPC hold it back and report it done only once
        # something else flushed the connection, while the batch writes its
        # next message only after that report: it stalled until
        # --idle_timeout. Each batch here must end in seconds.
        # A client that sends nothing meanwhile (no BDP pings, whose
        # answers would flush the connection), as the CLI is.
        tiny = [p for p, d in sorted(self.files.items()) if len(d) == 4096][:3]
        self.assertEqual(len(tiny), 3)
        with grpc.insecure_channel(self.server.address,
                                   options=[("grpc.http2.bdp_probe", 0)]) as channel:
            stub = pbg.FileStoreStub(channel)
            for n in range(20):
                paths = [tiny[(n + i) % 3] for i in range(100)]
                a = Answers(self, paths, stub.BatchDownload(
                    pb.BatchDownloadRequest(paths=paths), timeout=10))
                for i, path in enumerate(paths):
                    self.assertEqual(a.data(self, i, path, self.backend), self.files[path],
                                     path)

    def test_cancel_midway_leaves_the_server_healthy(self):
        for messages in (1, 5, 40):
            with self.subTest(messages=messages):
                self.cancel_midway(messages)
        self.check_all_files(seed=2)


class SmallPoolTest(BatchBase):
    """Two pool buffers: one file in flight per call, at most one buffer
    lent, so most chunks are copied; several calls at once."""
    SERVER_ARGS = BatchBase.SERVER_ARGS + ["--buffer_count=2"]

    def test_concurrent_batches_on_a_tiny_pool(self):
        errors = []

        def run(seed):
            try:
                self.check_all_files(seed)
            except Exception as e:  # reported below, on the test's thread
                errors.append(e)
        threads = [threading.Thread(target=run, args=(s,)) for s in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])

    def test_cancelled_batches_give_every_buffer_back(self):
        for messages in (1, 2, 3, 10, 30):
            with self.subTest(messages=messages):
                self.cancel_midway(messages)
        # With a buffer lost, this would wait forever: it has 60 s.
        self.check_all_files(seed=3)
        r = self.stub.Download(pb.DownloadRequest(path=sorted(self.files)[0]), timeout=60)
        self.assertEqual(b"".join(m.data for m in r), self.files[sorted(self.files)[0]])


class ObservedTest(unittest.TestCase):
    """The call observer labels BatchDownload and counts its bytes; the
    access log names its first path."""

    def test_metrics_and_access_log(self):
        log = os.path.join(testlib.tmpdir("alog"), "access.log")
        server = testlib.Server(args=["--metrics_listen=127.0.0.1:0", "--access_log=" + log])
        try:
            stub = pbg.FileStoreStub(grpc.insecure_channel(server.address))
            data = testlib.random_bytes(5000, seed=5)
            upload(stub, "m/a", data)
            upload(stub, "m/b", data)
            msgs = list(stub.BatchDownload(pb.BatchDownloadRequest(paths=["m/a", "m/b"]),
                                           timeout=30))
            self.assertEqual(sorted(m.index for m in msgs), [0, 1])
            pattern = re.compile(r"ringstore-server: metrics on (\S+)")
            self.assertTrue(testlib.wait_until(lambda: pattern.search(server.stderr_text())))
            url = pattern.search(server.stderr_text()).group(1)
            with urllib.request.urlopen(url, timeout=10) as r:
                text = r.read().decode()
        finally:
            self.assertEqual(server.stop(), 0, server.stderr_text())
        e = server.engine
        self.assertIn('ringstore_requests_total{method="BatchDownload",code="OK",backend="%s"} 1'
                      % e, text)
        out = [line for line in text.splitlines()
               if line.startswith('ringstore_bytes_total{direction="out",backend="%s"}' % e)]
        self.assertEqual(len(out), 1, text)
        self.assertGreaterEqual(float(out[0].split()[-1]), 2 * len(data))
        with open(log) as f:
            records = [json.loads(line) for line in f]
        batch = [r for r in records if r["method"] == "BatchDownload"]
        self.assertEqual(len(batch), 1, records)
        self.assertEqual((batch[0]["path"], batch[0]["code"], batch[0]["backend"]),
                         ("m/a", "OK", e))
        self.assertGreaterEqual(batch[0]["bytes_out"], 2 * len(data))


if __name__ == "__main__":
    testlib.main()
