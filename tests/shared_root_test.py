"""Several servers on one root (DESIGN.md §3, issue 13 point 5): two real
server processes on the same --root, raced through the stock Python gRPC
client from many threads. Preconditions and commits are serialised by OFD
locks that the two processes share, generations increase per path across
them, neither serves metadata the other has made stale, a resumable
session started on one continues on the other (one stream at a time across
both), and a server killed with SIGKILL leaves temp data that its restart
removes without touching the other's uploads in flight."""

import os
import threading
import time
import unittest

import grpc

import testlib
from ringstore.v1 import ringstore_pb2 as pb
from ringstore.v1 import ringstore_pb2_grpc as pbg

KiB = 1 << 10
ROUNDS = 8
PATHS = 3
PER_SERVER = 3  # contenders per path per server in a round


def messages(path, data, generation=None, chunk=16 * KiB):
    spec = pb.UploadSpec(path=path, size=len(data))
    if generation is not None:
        spec.if_generation_match = generation
    yield pb.UploadRequest(spec=spec)
    for off in range(0, len(data), chunk):
        yield pb.UploadRequest(offset=off, data=data[off:off + chunk])
    yield pb.UploadRequest(offset=len(data), finish=True)


def upload(stub, path, data, generation=None):
    """(FileInfo, None) or (None, grpc.StatusCode)."""
    try:
        return stub.Upload(messages(path, data, generation), timeout=60).file, None
    except grpc.RpcError as e:
        return None, e.code()


def download(stub, path):
    """(FileInfo, bytes) of one whole-file download."""
    msgs = list(stub.Download(pb.DownloadRequest(path=path), timeout=60))
    return msgs[0].info, b"".join(m.data for m in msgs)


def server_dirs(root):
    """Names of the server directories under .ringstore/tmp."""
    tmp = os.path.join(root, ".ringstore", "tmp")
    return sorted(n for n in os.listdir(tmp) if os.path.isdir(os.path.join(tmp, n)))


class Node:
    """One server and a client of it."""

    def __init__(self, root):
        self.server = testlib.Server(root=root)
        self.channel = grpc.insecure_channel(self.server.address)
        self.stub = pbg.FileStoreStub(self.channel)

    def close(self, kill=False):
        self.channel.close()
        if kill:
            self.server.kill()
        else:
            assert self.server.stop() == 0, self.server.stderr_text()


class SharedRootTest(testlib.RpcAssertions, unittest.TestCase):
    def setUp(self):
        self.root = os.path.join(testlib.tmpdir("shared"), "data")
        self.nodes = []

    def tearDown(self):
        for n in self.nodes:
            n.close(kill=n.server.proc.poll() is not None)

    def start(self):
        started = time.monotonic()
        n = Node(self.root)
        self.nodes.append(n)
        return n, time.monotonic() - started

    def two(self):
        a, _ = self.start()
        b, joined = self.start()
        # The second waits out the first one's metadata lease before it
        # answers anything (metadata_cache.h: kJoinWait, 2 s).
        self.assertGreaterEqual(joined, 2.0)
        return a, b

    def race(self, a, b, contenders):
        """Runs `contenders` (server, path, data, generation) all at once;
        returns their results in order."""
        results = [None] * len(contenders)
        barrier = threading.Barrier(len(contenders))

        def run(i, node, path, data, generation):
            barrier.wait()
            results[i] = upload(node.stub, path, data, generation)

        threads = [threading.Thread(target=run, args=(i,) + c) for i, c in enumerate(contenders)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return results

    def check_round(self, a, b, path, entries, results, losing_code):
        """Exactly one winner; the rest `losing_code`; both servers report
        the winner's generation and bytes."""
        winners = [(e, r[0]) for e, r in zip(entries, results) if r[0] is not None]
        losers = [r[1] for r in results if r[0] is None]
        self.assertEqual(len(winners), 1, (path, [r[1] for r in results]))
        self.assertEqual(losers, [losing_code] * (len(entries) - 1), path)
        (_, _, data, _), info = winners[0]
        self.assertEqual(info.size, len(data))
        self.assertEqual(info.crc32c, testlib.crc32c(data))
        for node in (a, b):
            got_info, got = download(node.stub, path)
            self.assertEqual(got, data, path)
            self.assertEqual(got_info.generation, info.generation, path)
            self.assertEqual(node.stub.Stat(pb.StatRequest(path=path)).generation,
                             info.generation)
        self.assertEqual(testlib.read_file(os.path.join(self.root, path)), data)
        return info

    def test_create_races_through_both_servers_have_one_winner(self):
        a, b = self.two()
        for rnd in range(ROUNDS):
            contenders = []
            for p in range(PATHS):
                path = "create/r%d/p%d" % (rnd, p)
                for k in range(2 * PER_SERVER):
                    data = b"%s #%d " % (path.encode(), k) + testlib.random_bytes(
                        1000 + 7919 * k % 50000, seed=rnd * 1000 + p * 10 + k)
                    contenders.append(((a, b)[k % 2], path, data, 0))
            results = self.race(a, b, contenders)
            for p in range(PATHS):
                path = "create/r%d/p%d" % (rnd, p)
                idx = [i for i, c in enumerate(contenders) if c[1] == path]
                self.check_round(a, b, path, [contenders[i] for i in idx],
                                 [results[i] for i in idx], grpc.StatusCode.ALREADY_EXISTS)

    def test_overwrites_pinned_to_the_generation_just_read_have_one_winner(self):
        a, b = self.two()
        paths = ["over/p%d" % p for p in range(PATHS)]
        history = {p: [] for p in paths}
        for p in paths:
            info, code = upload(a.stub, p, b"initial " + p.encode())
            self.assertIsNone(code)
            history[p].append(info.generation)
        for rnd in range(ROUNDS):
            contenders = []
            for p in paths:
                for k in range(2 * PER_SERVER):
                    node = (a, b)[k % 2]
                    # Each contender reads the generation through its own
                    # server; no commit of this round has happened yet.
                    generation = node.stub.Stat(pb.StatRequest(path=p)).generation
                    self.assertEqual(generation, history[p][-1])
                    data = b"%s r%d #%d " % (p.encode(), rnd, k) + testlib.random_bytes(
                        500 + 6007 * k % 40000, seed=rnd * 100 + k)
                    contenders.append((node, p, data, generation))
            results = self.race(a, b, contenders)
            for p in paths:
                idx = [i for i, c in enumerate(contenders) if c[1] == p]
                info = self.check_round(a, b, p, [contenders[i] for i in idx],
                                        [results[i] for i in idx],
                                        grpc.StatusCode.FAILED_PRECONDITION)
                history[p].append(info.generation)
        for p in paths:
            self.assertEqual(history[p], sorted(set(history[p])), p)  # strictly increasing

    def test_a_replacement_through_one_server_is_what_the_other_serves(self):
        # A alone first: it remembers the small file's metadata.
        a, _ = self.start()
        data = b"the same bytes twice"
        first, code = upload(a.stub, "cache/f", data)
        self.assertIsNone(code)
        for _ in range(3):
            info, got = download(a.stub, "cache/f")
            self.assertEqual((info.generation, got), (first.generation, data))
        # B joins (its start waits out A's lease) and replaces the file with
        # identical bytes: only the generation tells them apart.
        b, joined = self.start()
        self.assertGreaterEqual(joined, 2.0)
        second, code = upload(b.stub, "cache/f", data)
        self.assertIsNone(code)
        self.assertGreater(second.generation, first.generation)
        info, got = download(a.stub, "cache/f")
        self.assertEqual((info.generation, got), (second.generation, data))
        self.assertEqual(a.stub.Stat(pb.StatRequest(path="cache/f")).generation, second.generation)
        # A download pinned to the generation A knew is refused.
        self.assertCode(grpc.StatusCode.FAILED_PRECONDITION, lambda: list(a.stub.Download(
            pb.DownloadRequest(path="cache/f", if_generation_match=first.generation))))
        # Different bytes through B, read back through A; and the other way.
        third, _ = upload(b.stub, "cache/f", b"new")
        self.assertEqual(download(a.stub, "cache/f"), (third, b"new"))
        fourth, _ = upload(a.stub, "cache/f", b"new")
        self.assertEqual(download(b.stub, "cache/f")[0].generation, fourth.generation)
        # B leaves; A alone again still serves the latest.
        self.nodes.remove(b)
        b.close()
        time.sleep(0.5)
        self.assertEqual(download(a.stub, "cache/f"), (fourth, b"new"))

    def test_a_session_resumes_on_the_other_server_one_stream_at_a_time(self):
        a, b = self.two()
        data = testlib.random_bytes(3 << 20, seed=31)
        half = len(data) // 2
        spec = pb.UploadSpec(path="sessions/one.bin", size=len(data),
                             crc32c=testlib.crc32c(data))
        upload_id = a.stub.StartUpload(pb.StartUploadRequest(spec=spec), timeout=30).upload_id

        # A stream on a that stays open (its next message never comes)...
        gate, sent = threading.Event(), threading.Event()

        def held():
            yield pb.UploadRequest(upload_id=upload_id, offset=0, data=data[:half])
            sent.set()
            gate.wait(30)

        first = a.stub.Upload.future(held(), timeout=60)
        self.assertTrue(sent.wait(20))
        # a takes in the first message: the stream is attached.
        self.assertTrue(testlib.wait_until(
            lambda: testlib.session_data_size(self.root, upload_id) == half))
        # ...so a second one through b is ABORTED, and so is a cancel.
        with self.assertRaises(grpc.RpcError) as cm:
            b.stub.Upload(iter([pb.UploadRequest(upload_id=upload_id, offset=0, data=data[:10])]),
                          timeout=10)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.ABORTED)
        with self.assertRaises(grpc.RpcError) as cm:
            b.stub.CancelUpload(pb.CancelUploadRequest(upload_id=upload_id), timeout=10)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.ABORTED)
        # a's stream ends without finish: what it delivered is persisted.
        gate.set()
        self.assertFalse(first.result().HasField("file"))
        persisted = b.stub.QueryUpload(pb.QueryUploadRequest(upload_id=upload_id),
                                       timeout=10).persisted_size
        self.assertEqual(persisted, half)

        # b finishes it from there; a then knows it is complete.
        def rest():
            yield pb.UploadRequest(upload_id=upload_id, offset=persisted, data=data[persisted:])
            yield pb.UploadRequest(offset=len(data), finish=True)

        info = testlib.attach(lambda: b.stub.Upload(rest(), timeout=60)).file
        self.assertEqual(info.size, len(data))
        q = a.stub.QueryUpload(pb.QueryUploadRequest(upload_id=upload_id), timeout=10)
        self.assertTrue(q.complete)
        again = a.stub.Upload(iter([pb.UploadRequest(upload_id=upload_id)]), timeout=30)
        self.assertEqual(again.file.generation, info.generation)
        got_info, got = download(a.stub, "sessions/one.bin")
        self.assertEqual(got, data)
        self.assertEqual(got_info.generation, info.generation)

    def test_kill_9_of_one_server_spares_the_others_uploads(self):
        a, b = self.two()
        before = server_dirs(self.root)
        self.assertEqual(len(before), 2)
        release = {n: threading.Event() for n in ("a", "b")}
        sent = {n: threading.Event() for n in ("a", "b")}
        results = {}
        data = {"a": testlib.random_bytes(300 * KiB, seed=1),
                "b": testlib.random_bytes(500 * KiB, seed=2)}

        def slow(name):
            d = data[name]
            yield pb.UploadRequest(spec=pb.UploadSpec(path="kill/" + name, size=len(d)))
            half = len(d) // 2
            yield pb.UploadRequest(offset=0, data=d[:half])
            sent[name].set()
            release[name].wait(60)
            yield pb.UploadRequest(offset=half, data=d[half:], finish=True)

        def run(name, node):
            try:
                results[name] = (node.stub.Upload(slow(name), timeout=120).file, None)
            except grpc.RpcError as e:
                results[name] = (None, e.code())

        def temp_dir_of_new_upload(known):
            found = []

            def look():
                found[:] = [f.split("/")[0] for f in testlib.temp_files(self.root)
                            if f.split("/")[0] not in known]
                return bool(found)
            self.assertTrue(testlib.wait_until(look), testlib.temp_files(self.root))
            return found[0]

        tb = threading.Thread(target=run, args=("b", b))
        tb.start()
        self.assertTrue(sent["b"].wait(30))
        b_dir = temp_dir_of_new_upload(set())
        ta = threading.Thread(target=run, args=("a", a))
        ta.start()
        self.assertTrue(sent["a"].wait(30))
        a_dir = temp_dir_of_new_upload({b_dir})
        self.assertNotEqual(a_dir, b_dir)
        self.assertEqual(sorted([a_dir, b_dir]), before)
        tmp = os.path.join(self.root, ".ringstore", "tmp")
        b_files = sorted(os.listdir(os.path.join(tmp, b_dir)))
        # kill -9 of A in the middle of its upload.
        a.server.kill()
        release["a"].set()
        ta.join(60)
        self.assertEqual(results["a"][1], grpc.StatusCode.UNAVAILABLE)
        self.assertTrue(os.path.isdir(os.path.join(tmp, a_dir)))  # nobody cleaned yet
        self.nodes.remove(a)
        a.close(kill=True)
        # A again on the same root: its dead directory goes, B's stays.
        a2, joined = self.start()
        self.assertGreaterEqual(joined, 2.0)  # B is live
        self.assertFalse(os.path.exists(os.path.join(tmp, a_dir)))
        self.assertFalse(os.path.exists(os.path.join(tmp, a_dir + ".lock")))
        self.assertEqual(sorted(os.listdir(os.path.join(tmp, b_dir))), b_files)
        self.assertEqual(len(server_dirs(self.root)), 2)
        # B's upload finishes as if nothing happened, and the new A serves it.
        release["b"].set()
        tb.join(60)
        info, code = results["b"]
        self.assertIsNone(code)
        self.assertEqual(info.crc32c, testlib.crc32c(data["b"]))
        self.assertEqual(download(a2.stub, "kill/b"), (info, data["b"]))
        self.assertCode(grpc.StatusCode.NOT_FOUND, a2.stub.Stat, pb.StatRequest(path="kill/a"))
        self.assertTrue(testlib.wait_until(lambda: not testlib.temp_files(self.root)),
                        testlib.temp_files(self.root))


if __name__ == "__main__":
    testlib.main()
