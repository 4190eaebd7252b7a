"""Crash safety, measured (issue 13, point 4): the real server binary, killed
with SIGKILL at random points while dozens of uploads are in flight, many
times, and restarted on the same --root each time.

Every upload the test ever tries is a version of its path whose content is
derived from (seed, path, version), so it can be regenerated. After each
restart, with nothing in flight, the test checks:
  - every visible file (the root minus .ringstore) is byte-identical to ONE
    complete version of its path (a prefix, a mix of two, or anything else
    fails), and Stat reports that version's size and CRC32C (computed here
    in Python, testlib.crc32c);
  - nothing acknowledged was lost: a path some upload was answered OK for
    exists, with at least the generation that answer gave; generations
    never go back; an if_generation_match=0 path is won at most once;
  - no temp data is left that nobody owns: under .ringstore/tmp no
    regular file holds data (this holds both for the layout where start-up
    wipes it and for per-server directories with <server>.lock files).
Plain uploads overwrite a few shared paths (racing each other), create many
distinct ones, and race on must-not-exist paths (if_generation_match=0).
The server runs with --testonly_commit_delay, a sleep inside each commit
(under the path's lock, just before the rename), so that kills land inside
commits; the test counts the kills that did (an upload had sent its last
message and waited for its answer).

Resumable sessions (StartUpload / QueryUpload / Upload by upload_id,
DESIGN.md §3) are killed the same way and resumed after each restart from
QueryUpload's persisted_size until they complete byte-exact; one session
per round is cancelled. While the server answers StartUpload with
UNIMPLEMENTED that test skips itself with the reason.

The seed is printed; CRASH_TEST_SEED replays a run, CRASH_TEST_KILLS and
CRASH_TEST_RESUMABLE_KILLS change the number of kills, CRASH_TEST_ENGINE the
server's --engine (default auto).
"""

import atexit
import os
import random
import threading
import time
import unittest

import grpc

import testlib
from crash_check import Versions, session_data, session_files, tmp_problems, verify_tree
from ringstore.v1 import ringstore_pb2 as pb
from ringstore.v1 import ringstore_pb2_grpc as pbg

KiB = 1 << 10
MiB = 1 << 20
SEED = int(os.environ.get("CRASH_TEST_SEED", "1313"))
KILLS = int(os.environ.get("CRASH_TEST_KILLS", "30"))
RESUMABLE_KILLS = int(os.environ.get("CRASH_TEST_RESUMABLE_KILLS", "14"))
ENGINE = os.environ.get("CRASH_TEST_ENGINE", "auto")
COMMIT_DELAY = "10ms"
CHUNK = 256 * KiB
SHARED = ["shared/a", "shared/b", "shared/deep/c/d.bin"]
ONCE = ["once/%d" % i for i in range(8)]
# Codes an upload cut by the kill may end with (the connection dies under it).
CUT_CODES = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED,
             grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}


# --- Uploads -----------------------------------------------------------------

class Attempt:
    """One upload of one version; its state as the client sees it."""

    def __init__(self, version, if_generation_match=None, declare_size=True):
        self.version = version
        self.if_generation_match = if_generation_match
        self.declare_size = declare_size
        self.state = "sending"  # -> "ok" / "error" (set by the calling thread only)
        # Set by gRPC's thread that consumes the requests once the last one
        # (finish) is handed on: the upload then waits for its commit.
        self.sent_all = False
        self.code = None
        self.details = ""
        self.info = None
        self.ended = None


def plain_upload(stub, attempt):
    data = attempt.version.data()

    def requests():
        spec = pb.UploadSpec(path=attempt.version.path,
                             size=len(data) if attempt.declare_size else 0)
        if attempt.if_generation_match is not None:
            spec.if_generation_match = attempt.if_generation_match
        offsets = list(range(0, len(data), CHUNK)) or [0]
        for i, off in enumerate(offsets):
            m = pb.UploadRequest(offset=off, data=data[off:off + CHUNK],
                                 finish=i == len(offsets) - 1)
            if i == 0:
                m.spec.CopyFrom(spec)
            yield m
        # gRPC asks for a next message only once the last one is handed on.
        attempt.sent_all = True

    try:
        resp = stub.Upload(requests(), timeout=60)
        attempt.info = resp.file
        attempt.state = "ok"
    except grpc.RpcError as e:
        attempt.code, attempt.details = e.code(), e.details()
        attempt.state = "error"
    attempt.ended = time.monotonic()


class Session:
    """A resumable upload: its id, its version and what the server said."""

    def __init__(self, version, upload_id):
        self.version = version
        self.upload_id = upload_id
        self.persisted = 0  # the last persisted_size QueryUpload reported
        self.sent = 0  # bytes handed to the server in all streams
        self.state = "idle"  # "sending", "ok", "error", as Attempt's
        self.sent_all = False
        self.code = None
        self.details = ""
        self.info = None
        self.streams = 0
        self.done = False


def attach(fn, timeout=10.0):
    """fn(), tried again while it fails ABORTED because the stream before it
    still holds the session: the server lets a session go in the background
    just after that stream's answer (as testlib.attach on the rpc branch).
    Counts the retries in Totals."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except grpc.RpcError as e:
            busy = e.code() == grpc.StatusCode.ABORTED and "another stream" in (e.details() or "")
            if not busy or time.monotonic() > deadline:
                raise
            Totals.attach_retries += 1
            time.sleep(0.02)


def resume_upload(stub, session, pause):
    """One stream of `session` from its persisted size to the end (a pause
    between messages, so that kills find it mid-stream)."""
    data = session.version.data()
    session.state = "sending"
    session.sent_all = False
    session.streams += 1
    start = session.persisted

    def requests():
        offsets = list(range(start, len(data), CHUNK)) or [start]
        for i, off in enumerate(offsets):
            chunk = data[off:off + CHUNK]
            m = pb.UploadRequest(offset=off, data=chunk, finish=i == len(offsets) - 1)
            if i == 0:
                m.upload_id = session.upload_id
            session.sent = max(session.sent, off + len(chunk))
            yield m
            if i < len(offsets) - 1:
                time.sleep(pause)
        session.sent_all = True

    try:
        resp = attach(lambda: stub.Upload(requests(), timeout=60))
        session.info = resp.file
        session.state = "ok"
    except grpc.RpcError as e:
        session.code, session.details = e.code(), e.details()
        session.state = "error"


# --- The test ----------------------------------------------------------------

class Totals:
    kills = 0
    kills_in_commit = 0
    cut_in_commit = 0  # uploads that waited for their commit's answer at a kill
    cut_in_commit_committed = 0  # ... of which the restart showed the new file
    uploads_ok = 0
    resumable_ok = 0
    verified = set()
    lost = 0
    resumed_mid_file = 0  # sessions resumed after a kill from 0 < persisted_size < size
    attach_retries = 0  # calls refused ABORTED just after the stream before had ended


def print_totals():
    t = Totals
    print("crash test: seed %d: %d kills (%d inside commits), %d uploads (%d resumable) "
          "completed, %d files verified, %d lost; %d uploads were cut waiting for their "
          "commit, %d of them committed"
          % (SEED, t.kills, t.kills_in_commit, t.uploads_ok, t.resumable_ok,
             len(t.verified), t.lost, t.cut_in_commit, t.cut_in_commit_committed),
          flush=True)


class CrashTest(unittest.TestCase):
    def setUp(self):
        self.base = testlib.tmpdir("crash")
        self.root = os.path.join(self.base, "data")
        self.versions = Versions(SEED)
        self.cache = {}
        self.server = None
        self.channel = None
        self.acked = {}  # path -> highest generation an OK answer gave
        self.last_generation = {}  # path -> generation Stat showed last time
        self.once_won = {}  # if_generation_match=0 path -> the Attempt answered OK
        self.visible = set()  # paths the last check found

    def tearDown(self):
        if self.server is not None:
            self.server.kill()
        if self.channel is not None:
            self.channel.close()

    # Server lifecycle.

    def start(self):
        self.server = testlib.Server(root=self.root, engine=ENGINE,
                                     args=["--testonly_commit_delay=" + COMMIT_DELAY])
        self.channel = grpc.insecure_channel(self.server.address)
        self.stub = pbg.FileStoreStub(self.channel)

    def kill(self):
        """SIGKILL; the channel stays open until the uploads have ended."""
        self.server.kill()
        self.server = None
        Totals.kills += 1

    def stop(self):
        self.assertEqual(self.server.stop(), 0, self.server.stderr_text())
        self.channel.close()
        self.server = self.channel = None

    def server_engine(self):
        if self.server is not None:
            return self.server.engine
        self.start()
        engine = self.server.engine
        self.stop()
        return engine

    def stat(self, path):
        try:
            return self.stub.Stat(pb.StatRequest(path=path), timeout=30)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise

    # Checks after a restart, with nothing in flight.

    def check_store(self):
        self.assertEqual(tmp_problems(self.root), [], "temp data nobody owns")
        found, problems = verify_tree(self.root, self.versions, self.stat, self.cache)
        self.assertEqual(problems, [])
        for path, (version, info) in found.items():
            Totals.verified.add((path, version.number))
            self.assertGreaterEqual(info.generation, self.last_generation.get(path, 0),
                                    "%s: generation went back" % path)
            self.last_generation[path] = info.generation
            won = self.once_won.get(path)
            if won is not None:
                self.assertIs(version, won.version,
                              "%s: not the one if_generation_match=0 upload answered OK" % path)
        lost = ["%s (acked generation %d, now %s)"
                % (p, g, found[p][1].generation if p in found else "absent")
                for p, g in sorted(self.acked.items())
                if p not in found or found[p][1].generation < g]
        Totals.lost += len(lost)
        self.assertEqual(lost, [], "acknowledged uploads lost")
        self.visible = set(found)
        return found

    def record_ok(self, version, info):
        self.assertEqual(info.path, version.path)
        self.assertEqual(info.size, version.size, version.path)
        self.acked[version.path] = max(self.acked.get(version.path, 0), info.generation)

    # One round of plain uploads.

    def plan_round(self, rng, r, count):
        attempts = []
        for _ in range(count // 3):  # overwrites racing on a few paths
            path = rng.choice(SHARED)
            attempts.append(Attempt(self.versions.new(path, self.small(rng)),
                                    declare_size=rng.random() < 0.7))
        once = rng.choice(ONCE)  # two racers on a must-not-exist path
        for _ in range(2):
            attempts.append(Attempt(self.versions.new(once, self.small(rng)),
                                    if_generation_match=0))
        while len(attempts) < count:  # distinct paths
            i = len(attempts)
            path = ("d/%d/%d/f.bin" % (r, i)) if i % 2 else ("r%d-%d" % (r, i))
            size = rng.randint(4 * MiB, 8 * MiB) if rng.random() < 0.03 else self.small(rng)
            attempts.append(Attempt(self.versions.new(path, size),
                                    declare_size=rng.random() < 0.8))
        rng.shuffle(attempts)
        return attempts

    @staticmethod
    def small(rng):
        x = rng.random()
        if x < 0.6:
            return rng.randint(4 * KiB, 64 * KiB)
        if x < 0.93:
            return rng.randint(64 * KiB, 512 * KiB)
        return rng.randint(512 * KiB, 2 * MiB)

    def run_round(self, rng, attempts, sessions, kill_after, pause):
        """Runs `attempts` (plain) and one stream of each of `sessions`
        concurrently; kills the server after `kill_after` seconds (None: lets
        all finish; "commit": soon after an upload has sent its last
        message). Returns the plain attempts that waited for their commit
        when the kill came."""
        threads = [threading.Thread(target=plain_upload, args=(self.stub, a)) for a in attempts]
        threads += [threading.Thread(target=resume_upload, args=(self.stub, s, pause))
                    for s in sessions]
        for t in threads:
            t.start()
        cut_in_commit = []
        if kill_after == "commit":
            # Aim: the moment some upload has sent its last message (its
            # commit is then under way or about to be), plus a few ms.
            deadline = time.monotonic() + 10
            while (time.monotonic() < deadline and any(t.is_alive() for t in threads)
                   and not any(x.sent_all for x in attempts + sessions)):
                time.sleep(0.001)
            time.sleep(rng.uniform(0, 0.012))
        elif kill_after is not None:
            time.sleep(kill_after)
        if kill_after is not None:
            killed_at = time.monotonic()
            in_commit = [a for a in attempts if a.sent_all and a.state == "sending"]
            in_commit_sessions = [s for s in sessions if s.sent_all and s.state == "sending"]
            self.kill()
            if in_commit or in_commit_sessions:
                Totals.kills_in_commit += 1
            cut_in_commit = in_commit
        for t in threads:
            t.join(120)
            self.assertFalse(t.is_alive(), "an upload hangs after the kill")
        if self.server is None:
            self.channel.close()
            self.channel = None
        for a in attempts:
            if a.state == "ok":
                Totals.uploads_ok += 1
                self.record_ok(a.version, a.info)
                if a.if_generation_match == 0:
                    self.assertNotIn(a.version.path, self.once_won,
                                     "two if_generation_match=0 uploads of one path succeeded")
                    self.assertNotIn(a.version.path, self.visible,
                                     "if_generation_match=0 succeeded over an existing file")
                    self.once_won[a.version.path] = a
                continue
            self.assertEqual(a.state, "error")
            if a.code == grpc.StatusCode.ALREADY_EXISTS and a.if_generation_match == 0:
                continue
            cut = kill_after is not None and a.ended >= killed_at
            self.assertTrue(cut and a.code in CUT_CODES,
                            "%s: %s %s (%s the kill)" % (a.version.path, a.code, a.details,
                                                         "after" if cut else "before"))
        return cut_in_commit

    def count_committed(self, cut, found):
        """How many of the uploads `cut` inside their commits did commit."""
        Totals.cut_in_commit += len(cut)
        for a in cut:
            got = found.get(a.version.path)
            if got is not None and got[0] is a.version:
                Totals.cut_in_commit_committed += 1

    # The tests.

    def test_plain_uploads_survive_kills(self):
        rng = random.Random(SEED)
        print("crash test: seed %d (CRASH_TEST_SEED replays), %d kills, commit delay %s, "
              "engine %s" % (SEED, KILLS, COMMIT_DELAY, self.server_engine()), flush=True)
        cut = []
        for r in range(KILLS):
            self.start()
            found = self.check_store()
            self.count_committed(cut, found)
            attempts = self.plan_round(rng, r, 20)
            kill_after = "commit" if rng.random() < 0.6 else rng.uniform(0.01, 0.4)
            cut = self.run_round(rng, attempts, [], kill_after, 0)
        # A last round that runs to its end, a clean stop, a last check.
        self.start()
        self.count_committed(cut, self.check_store())
        self.run_round(rng, self.plan_round(rng, KILLS, 20), [], None, 0)
        self.stop()
        self.start()
        found = self.check_store()
        self.assertGreater(len(found), KILLS)
        self.assertEqual(session_data(self.root), [])
        self.stop()

    def test_resumable_uploads_survive_kills(self):
        rng = random.Random(SEED + 1)
        self.start()
        probe = self.versions.new("sessions/probe", 4 * KiB)
        try:
            resp = self.stub.StartUpload(pb.StartUploadRequest(spec=pb.UploadSpec(
                path=probe.path, size=probe.size, crc32c=probe.crc32c())), timeout=30)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.UNIMPLEMENTED:
                self.skipTest("resumable uploads are not implemented by this server yet "
                              "(StartUpload answers UNIMPLEMENTED: %s)" % e.details())
            raise
        sessions = [Session(probe, resp.upload_id)]

        def start_session(path, size, declare=True, crc=True):
            v = self.versions.new(path, size)
            spec = pb.UploadSpec(path=path, size=size if declare else 0)
            if crc:  # the server checks it across every resume
                spec.crc32c = v.crc32c()
            resp = self.stub.StartUpload(pb.StartUploadRequest(spec=spec), timeout=30)
            self.assertRegex(resp.upload_id, "^[0-9a-f]{32}$")
            return Session(v, resp.upload_id)

        print("crash test (resumable): seed %d, %d kills" % (SEED + 1, RESUMABLE_KILLS),
              flush=True)
        cut = []
        cancelled = 0
        for r in range(RESUMABLE_KILLS + 1):
            last = r == RESUMABLE_KILLS
            if r > 0:
                self.start()
            found = self.check_store()
            self.count_committed(cut, found)
            # Each live session: where to resume (only grows, never past what
            # was sent).
            for s in sessions:
                if s.done:
                    continue
                q = self.stub.QueryUpload(pb.QueryUploadRequest(upload_id=s.upload_id),
                                          timeout=30)
                self.assertGreaterEqual(q.persisted_size, s.persisted, s.version.path)
                self.assertLessEqual(q.persisted_size, max(s.sent, s.persisted), s.version.path)
                if 0 < q.persisted_size < s.version.size:
                    Totals.resumed_mid_file += 1
                s.persisted = q.persisted_size
                if q.complete:
                    self.assertEqual(s.persisted, s.version.size)
                    self.finish_session(s)
            # New sessions in the first rounds (started before any kill of
            # this round, so none is lost unknown), one of them cancelled.
            if r < 4:
                for i in range(4):
                    path = rng.choice(SHARED) if i == 0 else "sessions/%d/%d" % (r, i)
                    size = rng.randint(1 * MiB, 4 * MiB) if i < 3 else rng.randint(6, 10) * MiB
                    sessions.append(start_session(path, size, declare=i != 2))
            if r < RESUMABLE_KILLS - 2:
                c = start_session("sessions/cancelled/%d" % r, 3 * MiB, crc=False)
                self.partial_stream(c, 1 * MiB + 17)
                attach(lambda: self.stub.CancelUpload(
                    pb.CancelUploadRequest(upload_id=c.upload_id), timeout=30))
                with self.assertRaises(grpc.RpcError) as cm:
                    self.stub.QueryUpload(pb.QueryUploadRequest(upload_id=c.upload_id), timeout=30)
                self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)
                self.assertEqual(session_files(self.root, c.upload_id), [])
                cancelled += 1
            live = [s for s in sessions if not s.done]
            # Some of them persist a little more first (a half-closed
            # stream), so the kill below finds persisted bytes to keep.
            for s in live:
                if not last and rng.random() < 0.5:
                    self.partial_stream(s, rng.randint(64 * KiB, 1 * MiB))
            attempts = self.plan_round(rng, 100 + r, 8)
            kill_after = (None if last else "commit" if rng.random() < 0.4
                          else rng.uniform(0.05, 0.8))
            cut = self.run_round(rng, attempts, live, kill_after, 0.01)
            for s in live:
                if s.state == "ok":
                    self.assertTrue(s.info.path, "a finished stream answered without its file")
                    self.finish_session(s, s.info)
                else:
                    self.assertEqual(s.state, "error")
                    self.assertTrue(kill_after is not None and s.code in CUT_CODES,
                                    "%s: %s %s" % (s.version.path, s.code, s.details))
        # Everything finished in the last round; the probe session too.
        self.assertEqual([s.version.path for s in sessions if not s.done], [])
        self.assertGreater(Totals.resumable_ok, 0)
        self.stop()
        self.start()
        self.check_store()
        self.assertEqual(session_data(self.root), [], "session data left behind")
        uploads = os.path.join(self.root, ".ringstore", "uploads")
        left = len(os.listdir(uploads)) if os.path.isdir(uploads) else 0
        self.stop()
        print("crash test (resumable): %d sessions completed, %d cancelled, up to %d streams "
              "per session, %d resumed after a kill from a persisted offset inside the "
              "file; .ringstore/uploads holds %d entries, none with data; %d calls "
              "retried after ABORTED (the stream before had not let go of the session yet)"
              % (len(sessions), cancelled, max(s.streams for s in sessions),
                 Totals.resumed_mid_file, left,
                 Totals.attach_retries), flush=True)

    def partial_stream(self, s, size):
        """Sends the next `size` bytes of `s` (never its last byte) and
        half-closes without finish: answered OK without a file, and all of
        it is persisted."""
        start = s.persisted
        end = min(start + size, s.version.size - 1)
        if end <= start:
            return
        data = s.version.data()

        def requests():
            for off in range(start, end, CHUNK):
                m = pb.UploadRequest(offset=off, data=data[off:min(off + CHUNK, end)])
                if off == start:
                    m.upload_id = s.upload_id
                yield m

        s.sent = max(s.sent, end)
        resp = attach(lambda: self.stub.Upload(requests(), timeout=30))
        self.assertEqual(resp.file.path, "")
        q = self.stub.QueryUpload(pb.QueryUploadRequest(upload_id=s.upload_id), timeout=30)
        self.assertEqual((q.persisted_size, q.complete), (end, False))
        s.persisted = end

    def finish_session(self, s, info=None):
        """`s` is complete: resuming it answers OK with its FileInfo."""
        if info is None:
            info = self.stub.Upload(iter([pb.UploadRequest(upload_id=s.upload_id,
                                                           offset=s.version.size,
                                                           finish=True)]), timeout=30).file
        self.assertEqual((info.path, info.size, info.crc32c),
                         (s.version.path, s.version.size, s.version.crc32c()))
        self.record_ok(s.version, info)
        s.done = True
        Totals.uploads_ok += 1
        Totals.resumable_ok += 1


class VerifierSelfTest(unittest.TestCase):
    """The verifier catches what it must (a scratch dir, never a store)."""

    def test_verifier_catches_planted_bad_files(self):
        root = testlib.tmpdir("verifier")
        versions = Versions(7)
        good = versions.new("good", 100 * KiB)
        a1, a2 = versions.new("mixed", 64 * KiB), versions.new("mixed", 64 * KiB)
        flipped = versions.new("flipped", 10 * KiB)
        short = versions.new("short", 10 * KiB)
        liar = versions.new("liar", 10 * KiB)
        os.makedirs(os.path.join(root, ".ringstore", "tmp"))
        testlib.write_file(root, "good", good.data())
        testlib.write_file(root, "mixed", a1.data()[:32 * KiB] + a2.data()[32 * KiB:])
        bad = bytearray(flipped.data())
        bad[5000] ^= 1
        testlib.write_file(root, "flipped", bytes(bad))
        testlib.write_file(root, "short", short.data()[:-1])
        testlib.write_file(root, "liar", liar.data())
        testlib.write_file(root, "stray", b"nobody uploaded this")
        # Ignored: the store's own directory.
        testlib.write_file(os.path.join(root, ".ringstore"), "x", b"not checked here")

        def stat(path):
            v = {"good": good, "mixed": a2, "flipped": flipped, "short": short,
                 "liar": liar}.get(path)
            if v is None:
                return None
            crc = v.crc32c() ^ (1 if path == "liar" else 0)
            return pb.FileInfo(path=path, size=v.size, crc32c=crc)

        found, problems = verify_tree(root, versions, stat)
        self.assertEqual(sorted(found), ["good"])
        self.assertIs(found["good"][0], good)
        self.assertEqual(sorted(p.split(":")[0] for p in problems),
                         ["flipped", "liar", "mixed", "short", "stray"])
        self.assertIn("match no complete upload", [p for p in problems if p.startswith("mixed")][0])
        self.assertIn("Stat says", [p for p in problems if p.startswith("liar")][0])

        # Temp data: an empty lock file is fine, data or an upload's file not.
        tmp = os.path.join(root, ".ringstore", "tmp")
        testlib.write_file(tmp, "srv1.lock", b"")
        os.makedirs(os.path.join(tmp, "srv1"))
        self.assertEqual(tmp_problems(root), [])
        testlib.write_file(os.path.join(tmp, "srv1"), "upload", b"")
        testlib.write_file(tmp, "old", b"data")
        os.makedirs(os.path.join(tmp, "srv0"))
        self.assertEqual(tmp_problems(root),
                         [".ringstore/tmp holds 2 server directories: srv0 srv1",
                          ".ringstore/tmp/old (4 bytes)",
                          ".ringstore/tmp/srv1/upload (0 bytes)"])

        # The CRC32C itself: the standard check value.
        self.assertEqual(testlib.crc32c(b"123456789"), 0xE3069283)


if __name__ == "__main__":
    atexit.register(print_totals)  # testlib.main() ends with sys.exit
    testlib.main()
