"""A stock Python gRPC client (generated from the proto by Debian's
protoc + grpc_python_plugin) against the real server: the API contract of
DESIGN.md §3, exact status codes included."""

import os
import threading
import time
import unittest

import grpc

import testlib
from ringstore.v1 import ringstore_pb2 as pb
from ringstore.v1 import ringstore_pb2_grpc as pbg

MiB = 1 << 20


def chunks(path, data, chunk=MiB, spec_extra=None, per_message_crc=True):
    spec = pb.UploadSpec(path=path, size=len(data), **(spec_extra or {}))
    yield pb.UploadRequest(spec=spec)
    for off in range(0, len(data), chunk):
        piece = data[off:off + chunk]
        req = pb.UploadRequest(offset=off, data=piece)
        if per_message_crc:
            req.crc32c = testlib.crc32c(piece)
        yield req
    yield pb.UploadRequest(offset=len(data), finish=True)


@testlib.per_engine
class InteropTest(testlib.RpcAssertions, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = testlib.Server(engine=cls.engine)
        cls.channel = grpc.insecure_channel(cls.server.address)
        cls.stub = pbg.FileStoreStub(cls.channel)
        cls.backend = testlib.backend_enum(cls.server.engine)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        assert cls.server.stop() == 0, cls.server.stderr_text()

    def upload(self, path, data, **kw):
        return self.stub.Upload.with_call(chunks(path, data, **kw))

    def download(self, path, offset=0, limit=0):
        return list(self.stub.Download(pb.DownloadRequest(path=path, offset=offset, limit=limit)))

    def test_upload_download_round_trip(self):
        data = testlib.random_bytes(3 * MiB + 12345, seed=1)
        resp, call = self.upload("interop/a.bin", data,
                                 spec_extra={"crc32c": testlib.crc32c(data)})
        self.assertEqual(resp.backend, self.backend)
        self.assertEqual(resp.file.path, "interop/a.bin")
        self.assertEqual(resp.file.size, len(data))
        self.assertEqual(resp.file.crc32c, testlib.crc32c(data))
        self.assertGreater(resp.file.generation, 0)
        self.assertIn(("ringstore-backend", self.server.engine), tuple(call.trailing_metadata()))

        msgs = self.download("interop/a.bin")
        self.assertTrue(msgs[0].HasField("info"))
        self.assertEqual(msgs[0].info, resp.file)
        self.assertEqual(msgs[0].backend, self.backend)
        for m in msgs[1:]:
            self.assertFalse(m.HasField("info"))
        offset = 0
        for m in msgs:
            self.assertEqual(m.offset, offset)
            self.assertEqual(m.crc32c, testlib.crc32c(m.data))
            offset += len(m.data)
        self.assertEqual(b"".join(m.data for m in msgs), data)

    def test_download_trailer_names_backend(self):
        self.upload("interop/t.bin", b"hello")
        it = self.stub.Download(pb.DownloadRequest(path="interop/t.bin"))
        self.assertEqual(b"".join(m.data for m in it), b"hello")
        self.assertIn(("ringstore-backend", self.server.engine), tuple(it.trailing_metadata()))

    def test_ranges(self):
        data = testlib.random_bytes(2 * MiB + 7, seed=2)
        self.upload("interop/r.bin", data)
        for off, lim in [(0, 1), (5, 10), (MiB - 3, 6), (MiB, MiB), (2 * MiB, 0), (100, 0),
                         (len(data) - 1, 100)]:
            got = b"".join(m.data for m in self.download("interop/r.bin", off, lim))
            want = data[off:off + lim] if lim else data[off:]
            self.assertEqual(got, want, (off, lim))
        msgs = self.download("interop/r.bin", len(data), 0)
        self.assertEqual(len(msgs), 1)
        self.assertEqual(msgs[0].data, b"")
        self.assertEqual(msgs[0].info.size, len(data))
        self.assertCode(grpc.StatusCode.OUT_OF_RANGE, self.download, "interop/r.bin", len(data) + 1)
        self.assertCode(grpc.StatusCode.INVALID_ARGUMENT, self.download, "interop/r.bin", -1)

    def test_stat_and_missing(self):
        resp, _ = self.upload("interop/s.bin", b"abc")
        info = self.stub.Stat(pb.StatRequest(path="interop/s.bin"))
        self.assertEqual(info, resp.file)
        self.assertCode(grpc.StatusCode.NOT_FOUND, self.stub.Stat, pb.StatRequest(path="interop/none"))
        self.assertCode(grpc.StatusCode.NOT_FOUND, self.download, "interop/none")
        self.assertCode(grpc.StatusCode.INVALID_ARGUMENT, self.stub.Stat, pb.StatRequest(path="../x"))

    def test_list_pages_of_two_over_five_files(self):
        names = ["pages/%s" % c for c in "dbeac"]
        for n in names:
            self.upload(n, n.encode())
        pages, token = [], ""
        for _ in range(10):
            r, call = self.stub.List.with_call(pb.ListRequest(prefix="pages/", page_size=2,
                                                              page_token=token))
            self.assertIn(("ringstore-backend", self.server.engine), tuple(call.trailing_metadata()))
            pages.append([f.path for f in r.files])
            token = r.next_page_token
            if not token:
                break
        self.assertEqual(pages, [["pages/a", "pages/b"], ["pages/c", "pages/d"], ["pages/e"]])
        for f in self.stub.List(pb.ListRequest(prefix="pages/")).files:
            self.assertEqual(f.size, len(f.path))
            self.assertEqual(f.crc32c, testlib.crc32c(f.path.encode()))
            self.assertGreater(f.generation, 0)

    def test_list_paging_and_delimiter(self):
        names = ["list/e", "list/a", "list/c", "list/b", "list/d", "list/sub/x", "list/sub/y",
                 "list/sub2/z"]
        for n in names:
            self.upload(n, n.encode())
        seen, token, pages = [], "", 0
        while True:
            r = self.stub.List(pb.ListRequest(prefix="list/", page_size=2, page_token=token))
            self.assertLessEqual(len(r.files), 2)
            seen += [f.path for f in r.files]
            pages += 1
            token = r.next_page_token
            if not token:
                break
        self.assertEqual(seen, sorted(names))
        self.assertEqual(pages, 4)
        r = self.stub.List(pb.ListRequest(prefix="list/", delimiter="/"))
        self.assertEqual([f.path for f in r.files], ["list/a", "list/b", "list/c", "list/d", "list/e"])
        self.assertEqual(list(r.prefixes), ["list/sub/", "list/sub2/"])
        self.assertEqual(r.next_page_token, "")
        # Paging over files and prefixes together.
        got, token = [], ""
        while True:
            r = self.stub.List(pb.ListRequest(prefix="list/", delimiter="/", page_size=3,
                                              page_token=token))
            got += [f.path for f in r.files] + list(r.prefixes)
            token = r.next_page_token
            if not token:
                break
        self.assertEqual(sorted(got), ["list/a", "list/b", "list/c", "list/d", "list/e",
                                       "list/sub/", "list/sub2/"])
        r = self.stub.List(pb.ListRequest(prefix="list/sub"))
        self.assertEqual([f.path for f in r.files], ["list/sub/x", "list/sub/y", "list/sub2/z"])
        self.assertCode(grpc.StatusCode.INVALID_ARGUMENT, self.stub.List,
                        pb.ListRequest(prefix="list/", delimiter=","))

    def test_list_page_tokens_are_checked(self):
        for n in ["tok/a", "tok/b", "tok/c", "tok2/a", "tok2/b"]:
            self.upload(n, b"x")
        r = self.stub.List(pb.ListRequest(prefix="tok/", page_size=1))
        token = r.next_page_token
        self.assertTrue(token)
        r2 = self.stub.List(pb.ListRequest(prefix="tok/", page_size=1, page_token=token))
        self.assertEqual([f.path for f in r2.files], ["tok/b"])
        other = self.stub.List(pb.ListRequest(prefix="tok2/", page_size=1)).next_page_token
        for bad_prefix, bad_token, delimiter in [
                ("tok/", "garbage!", ""),
                ("tok/", "tok/a", ""),             # a path is not a token
                ("tok/", token[:-3], ""),          # cut short
                ("tok/", token[:5] + ("A" if token[5] != "A" else "B") + token[6:], ""),
                ("tok/", other, ""),               # another prefix's token
                ("tok2/", token, ""),
                ("tok/", token, "/")]:             # another delimiter's
            self.assertCode(grpc.StatusCode.INVALID_ARGUMENT, self.stub.List,
                            pb.ListRequest(prefix=bad_prefix, delimiter=delimiter, page_size=1,
                                           page_token=bad_token))
        # Between pages the token's file goes and another arrives after it.
        self.stub.Delete(pb.DeleteRequest(path="tok/b"))
        self.upload("tok/bb", b"x")
        r3 = self.stub.List(pb.ListRequest(prefix="tok/", page_size=5,
                                           page_token=r2.next_page_token))
        self.assertEqual([f.path for f in r3.files], ["tok/bb", "tok/c"])
        self.assertEqual(r3.next_page_token, "")

    def test_delete_with_generation(self):
        resp, _ = self.upload("interop/d.bin", b"x")
        gen = resp.file.generation
        self.assertCode(grpc.StatusCode.FAILED_PRECONDITION, self.stub.Delete,
                        pb.DeleteRequest(path="interop/d.bin", if_generation_match=gen + 1))
        r, call = self.stub.Delete.with_call(pb.DeleteRequest(path="interop/d.bin",
                                                              if_generation_match=gen))
        self.assertEqual(r.backend, self.backend)
        self.assertIn(("ringstore-backend", self.server.engine), tuple(call.trailing_metadata()))
        self.assertCode(grpc.StatusCode.NOT_FOUND, self.stub.Stat, pb.StatRequest(path="interop/d.bin"))
        self.assertCode(grpc.StatusCode.NOT_FOUND, self.stub.Delete, pb.DeleteRequest(path="interop/d.bin"))

    def test_generation_preconditions(self):
        r1, _ = self.upload("interop/g.bin", b"one")
        r2, _ = self.upload("interop/g.bin", b"two")
        self.assertGreater(r2.file.generation, r1.file.generation)
        self.assertCode(grpc.StatusCode.ALREADY_EXISTS, self.upload, "interop/g.bin", b"three",
                        spec_extra={"if_generation_match": 0})
        self.assertCode(grpc.StatusCode.FAILED_PRECONDITION, self.upload, "interop/g.bin", b"four",
                        spec_extra={"if_generation_match": r1.file.generation})
        r3, _ = self.upload("interop/g.bin", b"five", spec_extra={"if_generation_match": r2.file.generation})
        self.assertGreater(r3.file.generation, r2.file.generation)
        self.assertEqual(b"".join(m.data for m in self.download("interop/g.bin")), b"five")

    def test_doomed_precondition_fails_before_the_body_is_sent(self):
        r1, _ = self.upload("interop/early.bin", b"one")
        sent_body = threading.Event()
        never = threading.Event()

        def stream(extra):
            yield pb.UploadRequest(spec=pb.UploadSpec(path="interop/early.bin", size=MiB, **extra))
            # The answer must come while the client still holds its body.
            never.wait(30)
            sent_body.set()
            yield pb.UploadRequest(offset=0, data=b"x" * MiB, finish=True)

        for extra, code in (({"if_generation_match": 0}, grpc.StatusCode.ALREADY_EXISTS),
                            ({"if_generation_match": r1.file.generation + 1},
                             grpc.StatusCode.FAILED_PRECONDITION)):
            future = self.stub.Upload.future(stream(extra), timeout=60)
            started = time.monotonic()
            self.assertEqual(future.exception(timeout=20).code(), code)
            self.assertLess(time.monotonic() - started, 20)
            self.assertFalse(sent_body.is_set())
        never.set()
        self.assertEqual(b"".join(m.data for m in self.download("interop/early.bin")), b"one")

    def test_download_if_generation_match(self):
        small = b"small file"
        big = testlib.random_bytes(3 * MiB + 5, seed=7)
        for path, data in (("interop/pin-small", small), ("interop/pin-big", big)):
            resp, _ = self.upload(path, data)
            gen = resp.file.generation
            for offset in (0, 3):
                got = b"".join(m.data for m in self.stub.Download(pb.DownloadRequest(
                    path=path, offset=offset, if_generation_match=gen)))
                self.assertEqual(got, data[offset:], (path, offset))
                for wrong in (gen + 1, 0):
                    self.assertCode(grpc.StatusCode.FAILED_PRECONDITION, lambda: list(
                        self.stub.Download(pb.DownloadRequest(
                            path=path, offset=offset, if_generation_match=wrong))))
            # A newer generation is not what a pinned reader asked for.
            self.upload(path, data)
            self.assertCode(grpc.StatusCode.FAILED_PRECONDITION, lambda: list(
                self.stub.Download(pb.DownloadRequest(path=path, if_generation_match=gen))))
        self.assertCode(grpc.StatusCode.NOT_FOUND, lambda: list(self.stub.Download(
            pb.DownloadRequest(path="interop/pin-none", if_generation_match=1))))

    def test_server_info(self):
        info = self.stub.GetServerInfo(pb.GetServerInfoRequest())
        self.assertEqual(info.engine, self.server.engine)
        self.assertEqual(info.backend, self.backend)
        self.assertIn(self.server.engine, list(info.engines_available))
        self.assertIn("thread_pool", list(info.engines_available))
        self.assertGreater(info.registered_buffer_count, 0)
        self.assertGreater(info.registered_buffer_size, 0)
        self.assertEqual(info.max_chunk_bytes, 2 * MiB)
        self.assertTrue(info.version)

    def assertNothingCommitted(self, path):
        self.assertCode(grpc.StatusCode.NOT_FOUND, self.stub.Stat, pb.StatRequest(path=path))
        self.assertNotIn(path, testlib.visible_files(self.server.root))
        self.assertTrue(testlib.wait_until(lambda: not testlib.temp_files(self.server.root)),
                        testlib.temp_files(self.server.root))

    def test_first_message_without_spec(self):
        def gen():
            yield pb.UploadRequest(offset=0, data=b"abc", finish=True)
        self.assertCode(grpc.StatusCode.INVALID_ARGUMENT, self.stub.Upload, gen())

    def test_spec_in_later_message(self):
        def gen():
            yield pb.UploadRequest(spec=pb.UploadSpec(path="interop/later"))
            yield pb.UploadRequest(spec=pb.UploadSpec(path="interop/later2"), finish=True)
        self.assertCode(grpc.StatusCode.INVALID_ARGUMENT, self.stub.Upload, gen())
        self.assertNothingCommitted("interop/later")

    def test_oversized_message(self):
        def gen():
            yield pb.UploadRequest(spec=pb.UploadSpec(path="interop/big"))
            yield pb.UploadRequest(offset=0, data=b"x" * (3 * MiB), finish=True)
        self.assertCode(grpc.StatusCode.RESOURCE_EXHAUSTED, self.stub.Upload, gen())
        self.assertNothingCommitted("interop/big")

    def test_slightly_oversized_message(self):
        def gen():
            yield pb.UploadRequest(spec=pb.UploadSpec(path="interop/big2"))
            yield pb.UploadRequest(offset=0, data=b"x" * (2 * MiB + 1), finish=True)
        self.assertCode(grpc.StatusCode.RESOURCE_EXHAUSTED, self.stub.Upload, gen())
        self.assertNothingCommitted("interop/big2")

    def test_offset_gap(self):
        def gen():
            yield pb.UploadRequest(spec=pb.UploadSpec(path="interop/gap"), offset=0, data=b"abc")
            yield pb.UploadRequest(offset=10, data=b"def", finish=True)
        self.assertCode(grpc.StatusCode.ABORTED, self.stub.Upload, gen())
        self.assertNothingCommitted("interop/gap")

    def test_resent_bytes_are_skipped(self):
        def gen():
            yield pb.UploadRequest(spec=pb.UploadSpec(path="interop/resend"), offset=0, data=b"abcdef")
            yield pb.UploadRequest(offset=3, data=b"defghi", finish=True)
        resp = self.stub.Upload(gen())
        self.assertEqual(resp.file.size, 9)
        self.assertEqual(b"".join(m.data for m in self.download("interop/resend")), b"abcdefghi")

    def test_message_crc_mismatch(self):
        def gen():
            yield pb.UploadRequest(spec=pb.UploadSpec(path="interop/crc1"))
            yield pb.UploadRequest(offset=0, data=b"abc", crc32c=testlib.crc32c(b"abd"), finish=True)
        self.assertCode(grpc.StatusCode.DATA_LOSS, self.stub.Upload, gen())
        self.assertNothingCommitted("interop/crc1")

    def test_file_crc_mismatch(self):
        data = testlib.random_bytes(MiB + 5, seed=3)
        self.assertCode(grpc.StatusCode.DATA_LOSS, self.upload, "interop/crc2", data,
                        spec_extra={"crc32c": testlib.crc32c(data) ^ 1})
        self.assertNothingCommitted("interop/crc2")

    def test_declared_size_mismatch(self):
        def short():
            yield pb.UploadRequest(spec=pb.UploadSpec(path="interop/size", size=10), data=b"abc",
                                   finish=True)
        self.assertCode(grpc.StatusCode.INVALID_ARGUMENT, self.stub.Upload, short())

        def long():
            yield pb.UploadRequest(spec=pb.UploadSpec(path="interop/size", size=2), data=b"abc",
                                   finish=True)
        self.assertCode(grpc.StatusCode.INVALID_ARGUMENT, self.stub.Upload, long())
        self.assertNothingCommitted("interop/size")

    def test_stream_without_finish_commits_nothing(self):
        def gen():
            yield pb.UploadRequest(spec=pb.UploadSpec(path="interop/nofinish"), data=b"abc")
        self.assertCode(grpc.StatusCode.INVALID_ARGUMENT, self.stub.Upload, gen())
        self.assertNothingCommitted("interop/nofinish")

    def test_cancel_mid_upload_leaves_nothing(self):
        before = testlib.visible_files(self.server.root)
        sent = []

        def gen():
            yield pb.UploadRequest(spec=pb.UploadSpec(path="interop/cancelled"))
            for i in range(4):
                sent.append(i)
                yield pb.UploadRequest(offset=i * MiB, data=b"z" * MiB)
            time.sleep(0.5)  # let the server write them
            future.cancel()
            yield pb.UploadRequest(offset=4 * MiB, data=b"z")

        future = self.stub.Upload.future(gen())
        with self.assertRaises(grpc.FutureCancelledError):
            future.result(timeout=30)
        self.assertEqual(len(sent), 4)
        self.assertNothingCommitted("interop/cancelled")
        self.assertEqual(testlib.visible_files(self.server.root), before)
        listed = [f.path for f in self.stub.List(pb.ListRequest(prefix="interop/cancelled")).files]
        self.assertEqual(listed, [])

    def test_bad_paths_rejected(self):
        for path in ["", "/abs", "../x", "a/../b", "a//b", "a/./b", ".ringstore/x", "a/", "a\0b"]:
            self.assertCode(grpc.StatusCode.INVALID_ARGUMENT, self.upload, path, b"x")
        self.assertEqual(testlib.temp_files(self.server.root), [])

    # --- resumable sessions (DESIGN.md §3, after GCS's resumable writes)

    def start(self, path, data=None, **spec):
        if data is not None:
            spec.setdefault("size", len(data))
        r, call = self.stub.StartUpload.with_call(
            pb.StartUploadRequest(spec=pb.UploadSpec(path=path, **spec)))
        self.assertRegex(r.upload_id, r"^[0-9a-f]{32}$")
        return r.upload_id

    def query(self, upload_id):
        return self.stub.QueryUpload(pb.QueryUploadRequest(upload_id=upload_id))

    def session_stream(self, upload_id, data, offset, end=None, finish=False, chunk=MiB,
                       wait_busy=True):
        """Upload by id: data[offset:end] from `offset`, in `chunk` pieces,
        half-closed after the last one (finish on it if asked). Unless
        `wait_busy` is False, tried again while the stream before still
        holds the session (testlib.attach)."""
        end = len(data) if end is None else end
        msgs = []
        for off in range(offset, end, chunk):
            piece = data[off:min(off + chunk, end)]
            msgs.append(pb.UploadRequest(offset=off, data=piece, crc32c=testlib.crc32c(piece)))
        if not msgs:
            msgs.append(pb.UploadRequest(offset=offset))
        msgs[0].upload_id = upload_id
        msgs[-1].finish = finish
        call = lambda: self.stub.Upload(iter(msgs), timeout=60)
        return testlib.attach(call) if wait_busy else call()

    def uploads_of(self, upload_id):
        d = os.path.join(self.server.root, ".ringstore", "uploads")
        return sorted(f for f in os.listdir(d) if f.startswith(upload_id)) if os.path.isdir(d) else []

    def assertSessionGone(self, upload_id):
        """QueryUpload answers NOT_FOUND (a failed commit removes the
        session just after it answers) and no data of it is left."""
        def gone():
            try:
                self.query(upload_id)
                return False
            except grpc.RpcError as e:
                self.assertEqual(e.code(), grpc.StatusCode.NOT_FOUND, e.details())
                return True
        self.assertTrue(testlib.wait_until(gone), upload_id)
        self.assertTrue(testlib.wait_until(lambda: not self.uploads_of(upload_id)),
                        self.uploads_of(upload_id))

    def content(self, path):
        return b"".join(m.data for m in self.download(path))

    def test_session_round_trip_byte_exact(self):
        data = testlib.random_bytes(3 * MiB + 777, seed=31)
        uid = self.start("sess/rt.bin", data)
        q = self.query(uid)
        self.assertEqual((q.persisted_size, q.complete), (0, False))
        resp, call = self.stub.Upload.with_call(self._all(uid, data), timeout=60)
        self.assertEqual(resp.backend, self.backend)
        self.assertEqual(resp.file.path, "sess/rt.bin")
        self.assertEqual(resp.file.size, len(data))
        self.assertEqual(resp.file.crc32c, testlib.crc32c(data))
        self.assertIn(("ringstore-backend", self.server.engine), tuple(call.trailing_metadata()))
        self.assertEqual(self.content("sess/rt.bin"), data)
        self.assertEqual(self.stub.Stat(pb.StatRequest(path="sess/rt.bin")), resp.file)
        q = self.query(uid)
        self.assertEqual((q.persisted_size, q.complete), (len(data), True))

    def _all(self, uid, data):
        """All of `data` on session `uid` in one stream, finished."""
        first = True
        for off in range(0, len(data), MiB):
            piece = data[off:off + MiB]
            req = pb.UploadRequest(offset=off, data=piece, crc32c=testlib.crc32c(piece),
                                   finish=off + MiB >= len(data))
            if first:
                req.upload_id = uid
                first = False
            yield req

    def test_session_half_close_persists_and_persisted_size_grows(self):
        data = testlib.random_bytes(4 * MiB + 3, seed=32)
        uid = self.start("sess/grow.bin", data)
        seen = [self.query(uid).persisted_size]
        for end in (MiB + 5, MiB + 5, 3 * MiB, len(data)):
            resp = self.session_stream(uid, data, seen[-1], end)
            # Answered OK with `file` unset, once everything delivered is durable.
            self.assertFalse(resp.HasField("file"))
            q = self.query(uid)
            self.assertEqual(q.persisted_size, end)
            self.assertFalse(q.complete)
            seen.append(q.persisted_size)
        self.assertEqual(seen, sorted(seen))
        self.assertCode(grpc.StatusCode.NOT_FOUND, self.stub.Stat, pb.StatRequest(path="sess/grow.bin"))
        resp = self.session_stream(uid, data, len(data), finish=True)
        self.assertEqual(resp.file.size, len(data))
        self.assertEqual(self.content("sess/grow.bin"), data)

    def test_session_offset_above_persisted_is_aborted_below_is_skipped(self):
        data = testlib.random_bytes(2 * MiB + 11, seed=33)
        uid = self.start("sess/off.bin", data)
        self.session_stream(uid, data, 0, MiB)
        e = self.assertCode(grpc.StatusCode.ABORTED, self.session_stream, uid, data, MiB + 1)
        self.assertIn("offset %d is past the persisted size %d" % (MiB + 1, MiB), e.details())
        self.assertEqual(self.query(uid).persisted_size, MiB)
        # From below: the first 1000 bytes of this stream are skipped.
        resp = self.session_stream(uid, data, MiB - 1000, finish=True, chunk=MiB // 2)
        self.assertEqual(resp.file.size, len(data))
        self.assertEqual(resp.file.crc32c, testlib.crc32c(data))
        self.assertEqual(self.content("sess/off.bin"), data)

    def test_session_second_concurrent_stream_is_aborted(self):
        data = testlib.random_bytes(2 * MiB, seed=34)
        uid = self.start("sess/two.bin", data)
        first_sent = threading.Event()
        release = threading.Event()

        def held():
            piece = data[:MiB]
            yield pb.UploadRequest(upload_id=uid, offset=0, data=piece,
                                   crc32c=testlib.crc32c(piece))
            first_sent.set()
            release.wait(30)
            piece = data[MiB:]
            yield pb.UploadRequest(offset=MiB, data=piece, crc32c=testlib.crc32c(piece),
                                   finish=True)

        future = self.stub.Upload.future(held(), timeout=60)
        try:
            self.assertTrue(first_sent.wait(10))
            # The server attaches the first stream and writes its MiB.
            self.assertTrue(testlib.wait_until(
                lambda: testlib.session_data_size(self.server.root, uid) == MiB))
            e = self.assertCode(grpc.StatusCode.ABORTED, self.session_stream, uid, data, 0, MiB,
                                wait_busy=False)
            self.assertIn("another stream", e.details())
            self.assertCode(grpc.StatusCode.ABORTED, self.session_stream, uid, data, 0,
                            finish=True, wait_busy=False)
            # Nor can it be cancelled under the stream.
            self.assertCode(grpc.StatusCode.ABORTED, self.stub.CancelUpload,
                            pb.CancelUploadRequest(upload_id=uid))
        finally:
            release.set()
        resp = future.result(timeout=30)
        self.assertEqual(resp.file.size, len(data))
        self.assertEqual(self.content("sess/two.bin"), data)

    def test_session_resuming_a_finished_upload_answers_its_file(self):
        data = testlib.random_bytes(MiB + 9, seed=35)
        uid = self.start("sess/done.bin", data)
        done = self.session_stream(uid, data, 0, finish=True)
        # Whatever the stream carries (here: other bytes at 0), it is ignored.
        again = self.session_stream(uid, b"junk" * 10, 0, finish=True)
        self.assertEqual(again.file, done.file)
        self.assertEqual(again.backend, self.backend)
        again = self.session_stream(uid, data, len(data))
        self.assertEqual(again.file, done.file)
        q = self.query(uid)
        self.assertEqual((q.persisted_size, q.complete), (len(data), True))
        self.assertEqual(self.content("sess/done.bin"), data)

    def test_session_cancel_removes_it_and_its_data(self):
        data = testlib.random_bytes(2 * MiB, seed=36)
        uid = self.start("sess/cancel.bin", data)
        self.session_stream(uid, data, 0, MiB)
        self.assertTrue(self.uploads_of(uid))
        r = testlib.attach(lambda: self.stub.CancelUpload(pb.CancelUploadRequest(upload_id=uid)))
        self.assertEqual(r, pb.CancelUploadResponse())
        self.assertCode(grpc.StatusCode.NOT_FOUND, self.query, uid)
        self.assertCode(grpc.StatusCode.NOT_FOUND, self.session_stream, uid, data, MiB)
        self.assertCode(grpc.StatusCode.NOT_FOUND, self.stub.CancelUpload,
                        pb.CancelUploadRequest(upload_id=uid))
        self.assertEqual(self.uploads_of(uid), [])
        self.assertNothingCommitted("sess/cancel.bin")

    def test_session_unknown_id(self):
        unknown = "0123456789abcdef0123456789abcdef"
        self.assertCode(grpc.StatusCode.NOT_FOUND, self.query, unknown)
        self.assertCode(grpc.StatusCode.NOT_FOUND, self.stub.CancelUpload,
                        pb.CancelUploadRequest(upload_id=unknown))
        self.assertCode(grpc.StatusCode.NOT_FOUND, self.session_stream, unknown, b"abc", 0,
                        finish=True)
        self.assertCode(grpc.StatusCode.INVALID_ARGUMENT, self.query, "not-an-id")
        # Ids are random: many starts, no repeats.
        ids = {self.start("sess/ids", b"") for _ in range(20)}
        self.assertEqual(len(ids), 20)
        for uid in ids:
            self.stub.CancelUpload(pb.CancelUploadRequest(upload_id=uid))

    def test_session_whole_file_crc_across_two_streams(self):
        data = testlib.random_bytes(3 * MiB + 1, seed=37)
        crc = testlib.crc32c(data)
        uid = self.start("sess/crc.bin", data, crc32c=crc)
        self.session_stream(uid, data, 0, 2 * MiB)
        resp = self.session_stream(uid, data, 2 * MiB, finish=True)
        self.assertEqual(resp.file.crc32c, crc)
        self.assertEqual(self.content("sess/crc.bin"), data)

        bad = self.start("sess/crc-bad.bin", data, crc32c=crc ^ 1)
        self.session_stream(bad, data, 0, 2 * MiB)
        self.assertCode(grpc.StatusCode.DATA_LOSS, self.session_stream, bad, data, 2 * MiB,
                        finish=True)
        self.assertSessionGone(bad)
        self.assertNothingCommitted("sess/crc-bad.bin")

        # A per-message checksum that does not match: DATA_LOSS, the session
        # keeps what it had.
        msg = self.start("sess/crc-msg.bin", data)
        self.session_stream(msg, data, 0, MiB)
        wrong = pb.UploadRequest(upload_id=msg, offset=MiB, data=data[MiB:2 * MiB],
                                 crc32c=testlib.crc32c(data[MiB:2 * MiB]) ^ 1)
        self.assertCode(grpc.StatusCode.DATA_LOSS, testlib.attach,
                        lambda: self.stub.Upload(iter([wrong])))
        self.assertTrue(testlib.wait_until(lambda: self.query(msg).persisted_size == MiB))
        self.session_stream(msg, data, MiB, finish=True)
        self.assertEqual(self.content("sess/crc-msg.bin"), data)

    def test_session_precondition_at_start_and_at_commit(self):
        r1, _ = self.upload("sess/pre.bin", b"one")
        gen = r1.file.generation
        self.assertCode(grpc.StatusCode.ALREADY_EXISTS, self.start, "sess/pre.bin",
                        b"x", if_generation_match=0)
        self.assertCode(grpc.StatusCode.FAILED_PRECONDITION, self.start, "sess/pre.bin",
                        b"x", if_generation_match=gen + 1)
        self.assertCode(grpc.StatusCode.INVALID_ARGUMENT, self.start, "../bad", b"x")
        # Good at the start, stale at the commit.
        uid = self.start("sess/pre-late.bin", b"late", if_generation_match=0)
        self.session_stream(uid, b"late", 0, 2)
        self.upload("sess/pre-late.bin", b"first")
        self.assertCode(grpc.StatusCode.ALREADY_EXISTS, self.session_stream, uid, b"late", 2,
                        finish=True)
        self.assertSessionGone(uid)
        self.assertEqual(self.content("sess/pre-late.bin"), b"first")
        uid = self.start("sess/pre.bin", b"two", if_generation_match=gen)
        resp = self.session_stream(uid, b"two", 0, finish=True)
        self.assertGreater(resp.file.generation, gen)
        self.assertEqual(self.content("sess/pre.bin"), b"two")


if __name__ == "__main__":
    testlib.main()
