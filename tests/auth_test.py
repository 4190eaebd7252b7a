"""Token auth end to end (DESIGN.md §3, --auth_tokens): the real server with
a tokens file made by the real CLI's `ringstore token new`, driven by the
real CLI and by a stock Python gRPC client. Exact status codes; health and
reflection answer without a token; SIGHUP reloads the file; no token ever
reaches the server's stderr; the CLI keeps tokens off plaintext links to
other hosts."""

import json
import os
import signal
import subprocess
import unittest

import grpc

import testlib
from ringstore.v1 import ringstore_pb2 as pb
from ringstore.v1 import ringstore_pb2_grpc as pbg

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED


def new_token(scopes=None, prefix=None):
    """(token, line) from `ringstore token new --json`."""
    args = [testlib.CLI, "--json", "token", "new"]
    if scopes:
        args.append("--scopes=" + scopes)
    if prefix:
        args.append("--prefix=" + prefix)
    r = subprocess.run(args, capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    return out["token"], out["line"]


def write_file(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def md(token):
    return (("authorization", "Bearer " + token),)


def list_code(stub, token):
    """The status code of a List made with `token`."""
    try:
        stub.List(pb.ListRequest(), metadata=md(token), timeout=30)
        return grpc.StatusCode.OK
    except grpc.RpcError as e:
        return e.code()


def upload_requests(path, data):
    yield pb.UploadRequest(spec=pb.UploadSpec(path=path, size=len(data)))
    yield pb.UploadRequest(offset=0, data=data, finish=True)


class Tokens:
    """Tokens for each role, their lines in one file, and token files for
    the CLI's --token_file."""

    ROLES = {
        "reader": ("read", None),
        "writer": ("write", None),
        "deleter": ("delete", None),
        "admin": ("admin", None),
        "team": ("read,write,delete", "team-a/"),
    }

    def __init__(self, directory):
        self.dir = directory
        self.token = {}
        self.file = {}
        lines = ["# made by `ringstore token new`", ""]
        for role, (scopes, prefix) in self.ROLES.items():
            token, line = new_token(scopes, prefix)
            self.token[role] = token
            lines.append("%s   # %s" % (line, role))
            self.file[role] = os.path.join(directory, role + ".token")
            write_file(self.file[role], token + "\n")
        self.path = os.path.join(directory, "tokens")
        write_file(self.path, "\n".join(lines) + "\n")


class AuthTest(testlib.RpcAssertions, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = testlib.tmpdir("auth")
        cls.tokens = Tokens(cls.dir)
        cls.server = testlib.Server(args=["--auth_tokens=" + cls.tokens.path])
        cls.channel = grpc.insecure_channel(cls.server.address)
        cls.stub = pbg.FileStoreStub(cls.channel)
        # Tokens the tests send that the server does not know.
        cls.strangers = []

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        code = cls.server.stop()
        stderr = cls.server.stderr_text()
        assert code == 0, stderr
        for token in list(cls.tokens.token.values()) + cls.strangers:
            assert token not in stderr, "a token in the server's stderr:\n" + stderr

    # --- helpers

    def cli(self, role, *args, stdin=b""):
        """The CLI with role's token from --token_file (role None: none)."""
        extra = ["--token_file=" + self.tokens.file[role]] if role else []
        return testlib.cli(self.server.address, *(extra + list(args)), stdin=stdin,
                           timeout=60)

    def assertCli(self, r, code_name=None):
        if code_name is None:
            self.assertEqual(r.returncode, 0, r.stderr)
        else:
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn(("ringstore: %s:" % code_name).encode(), r.stderr)

    def every_call(self, metadata, path="team-a/x"):
        """Each FileStore RPC once, as (name, callable)."""
        s = self.stub
        kw = {"metadata": metadata, "timeout": 30}
        return [
            ("Stat", lambda: s.Stat(pb.StatRequest(path=path), **kw)),
            ("List", lambda: s.List(pb.ListRequest(prefix=path), **kw)),
            ("Download", lambda: list(s.Download(pb.DownloadRequest(path=path), **kw))),
            ("BatchDownload", lambda: list(s.BatchDownload(
                pb.BatchDownloadRequest(paths=[path, path]), **kw))),
            ("Upload", lambda: s.Upload(upload_requests(path, b"x"), **kw)),
            ("Delete", lambda: s.Delete(pb.DeleteRequest(path=path), **kw)),
            ("StartUpload", lambda: s.StartUpload(
                pb.StartUploadRequest(spec=pb.UploadSpec(path=path)), **kw)),
            ("QueryUpload", lambda: s.QueryUpload(pb.QueryUploadRequest(upload_id="u"), **kw)),
            ("CancelUpload", lambda: s.CancelUpload(pb.CancelUploadRequest(upload_id="u"), **kw)),
            ("GetServerInfo", lambda: s.GetServerInfo(pb.GetServerInfoRequest(), **kw)),
        ]

    def put_as_admin(self, remote, data):
        src = os.path.join(self.dir, "src")
        with open(src, "wb") as f:
            f.write(data)
        self.assertCli(self.cli("admin", "put", src, remote))

    def get_as(self, role, remote):
        return self.cli(role, "get", remote, "-")

    # --- no token, a wrong token

    def test_no_token_is_unauthenticated(self):
        for name, call in self.every_call(metadata=()):
            with self.subTest(rpc=name):
                e = self.assertCode(UNAUTHENTICATED, call)
                self.assertIn("Bearer", e.details())
        for args in (["stat", "x"], ["ls"], ["info"], ["get", "x", "-"], ["rm", "x"]):
            self.assertCli(self.cli(None, *args), "UNAUTHENTICATED")

    def test_wrong_or_malformed_token_is_unauthenticated(self):
        wrong, _ = new_token("admin")
        self.strangers.append(wrong)
        for metadata in (md(wrong), (("authorization", "Basic " + wrong),),
                         (("authorization", "Bearer"),),
                         (("authorization", self.tokens.token["admin"]),)):
            for name, call in self.every_call(metadata):
                with self.subTest(rpc=name, metadata=metadata[0][1][:6]):
                    e = self.assertCode(UNAUTHENTICATED, call)
                    self.assertNotIn(wrong, e.details())
                    self.assertNotIn(self.tokens.token["admin"], e.details())
        path = os.path.join(self.dir, "wrong.token")
        write_file(path, wrong)
        r = testlib.cli(self.server.address, "--token_file=" + path, "ls")
        self.assertCli(r, "UNAUTHENTICATED")
        self.assertNotIn(wrong.encode(), r.stderr)

    # --- scopes

    def test_read_token_reads_but_cannot_write_or_delete(self):
        data = testlib.random_bytes(100000, seed=1)
        self.put_as_admin("ro/a", data)
        r = self.get_as("reader", "ro/a")
        self.assertCli(r)
        self.assertEqual(r.stdout, data)
        self.assertCli(self.cli("reader", "stat", "ro/a"))
        r = self.cli("reader", "ls", "ro/")
        self.assertCli(r)
        self.assertEqual(r.stdout, b"ro/a\n")
        r = self.cli("reader", "put", "-", "ro/b")
        self.assertCli(r, "PERMISSION_DENIED")
        self.assertIn(b'"write" scope', r.stderr)
        self.assertCli(self.cli("reader", "rm", "ro/a"), "PERMISSION_DENIED")
        # Nothing was written or removed.
        self.assertEqual(testlib.visible_files(self.server.root).count("ro/a"), 1)
        self.assertNotIn("ro/b", testlib.visible_files(self.server.root))
        # Python: an upload stream is refused at its first message.
        self.assertCode(PERMISSION_DENIED, self.stub.Upload,
                        upload_requests("ro/c", b"abc"), metadata=md(self.tokens.token["reader"]))

    def test_write_token_writes_only(self):
        r = testlib.cli(self.server.address, "--token_file=" + self.tokens.file["writer"],
                        "put", "-", "wo/a", stdin=b"hello")
        self.assertCli(r)
        self.assertCli(self.get_as("writer", "wo/a"), "PERMISSION_DENIED")
        self.assertCli(self.cli("writer", "ls"), "PERMISSION_DENIED")
        self.assertCli(self.cli("writer", "stat", "wo/a"), "PERMISSION_DENIED")
        self.assertCli(self.cli("writer", "rm", "wo/a"), "PERMISSION_DENIED")
        r = self.get_as("admin", "wo/a")
        self.assertCli(r)
        self.assertEqual(r.stdout, b"hello")

    def test_delete_token_deletes_only(self):
        self.put_as_admin("del/a", b"bye")
        self.assertCli(self.get_as("deleter", "del/a"), "PERMISSION_DENIED")
        self.assertCli(self.cli("deleter", "put", "-", "del/b"), "PERMISSION_DENIED")
        self.assertCli(self.cli("deleter", "rm", "del/a"))
        self.assertCli(self.cli("admin", "stat", "del/a"), "NOT_FOUND")

    def test_admin_token_does_everything(self):
        t = self.tokens.token["admin"]
        resp = self.stub.Upload(upload_requests("adm/a", b"data"), metadata=md(t), timeout=30)
        self.assertEqual(resp.file.size, 4)
        got = b"".join(m.data for m in self.stub.Download(pb.DownloadRequest(path="adm/a"),
                                                          metadata=md(t), timeout=30))
        self.assertEqual(got, b"data")
        self.assertEqual(self.stub.Stat(pb.StatRequest(path="adm/a"), metadata=md(t)).size, 4)
        ls = self.stub.List(pb.ListRequest(prefix="adm/"), metadata=md(t))
        self.assertEqual([f.path for f in ls.files], ["adm/a"])
        self.stub.Delete(pb.DeleteRequest(path="adm/a"), metadata=md(t))
        # The resumable RPCs get past auth (to the store's answer).
        for call in (lambda: self.stub.QueryUpload(pb.QueryUploadRequest(upload_id="u"),
                                                   metadata=md(t)),):
            with self.assertRaises(grpc.RpcError) as cm:
                call()
            self.assertNotIn(cm.exception.code(), (UNAUTHENTICATED, PERMISSION_DENIED))

    def test_every_rpc_needs_its_scope(self):
        needs = {"Stat": "read", "List": "read", "Download": "read", "BatchDownload": "read",
                 "Upload": "write",
                 "StartUpload": "write", "QueryUpload": "write", "CancelUpload": "write",
                 "Delete": "delete", "GetServerInfo": None}  # None: any valid token
        for role in ("reader", "writer", "deleter", "admin"):
            scope = Tokens.ROLES[role][0]
            for name, call in self.every_call(md(self.tokens.token[role]), path="map/x"):
                with self.subTest(role=role, rpc=name):
                    allowed = needs[name] in (None, scope) or scope == "admin"
                    try:
                        call()
                        code = grpc.StatusCode.OK
                    except grpc.RpcError as e:
                        code = e.code()
                    if allowed:
                        # Past auth: what the call itself gives (NOT_FOUND,
                        # INVALID_ARGUMENT for the id "u", OK).
                        self.assertNotIn(code, (UNAUTHENTICATED, PERMISSION_DENIED))
                    else:
                        self.assertEqual(code, PERMISSION_DENIED)

    def test_a_session_belongs_to_the_token_that_started_it(self):
        a, b = self.tokens.token["writer"], self.tokens.token["admin"]
        data = testlib.random_bytes(3 * 1024 * 1024 + 1, seed=51)
        half = len(data) // 2
        uid = self.stub.StartUpload(pb.StartUploadRequest(spec=pb.UploadSpec(
            path="own/s.bin", size=len(data), crc32c=testlib.crc32c(data))),
            metadata=md(a), timeout=30).upload_id

        def stream(offset, end, finish):
            first = pb.UploadRequest(upload_id=uid, offset=offset, data=data[offset:end],
                                     finish=finish)
            return iter([first])

        resp = self.stub.Upload(stream(0, half, False), metadata=md(a), timeout=30)
        self.assertFalse(resp.HasField("file"))
        # Another token, even an admin one, cannot see, feed or cancel it.
        self.assertCode(grpc.StatusCode.NOT_FOUND, self.stub.QueryUpload,
                        pb.QueryUploadRequest(upload_id=uid), metadata=md(b), timeout=30)
        self.assertCode(grpc.StatusCode.NOT_FOUND, testlib.attach, lambda: self.stub.Upload(
            stream(half, len(data), True), metadata=md(b), timeout=30))
        self.assertCode(grpc.StatusCode.NOT_FOUND, self.stub.CancelUpload,
                        pb.CancelUploadRequest(upload_id=uid), metadata=md(b), timeout=30)
        # No token at all is refused before the store is asked.
        self.assertCode(UNAUTHENTICATED, self.stub.QueryUpload,
                        pb.QueryUploadRequest(upload_id=uid), timeout=30)
        # Its own token resumes it.
        q = self.stub.QueryUpload(pb.QueryUploadRequest(upload_id=uid), metadata=md(a), timeout=30)
        self.assertEqual((q.persisted_size, q.complete), (half, False))
        resp = testlib.attach(lambda: self.stub.Upload(stream(half, len(data), True),
                                                       metadata=md(a), timeout=30))
        self.assertEqual(resp.file.size, len(data))
        got = b"".join(m.data for m in self.stub.Download(pb.DownloadRequest(path="own/s.bin"),
                                                          metadata=md(b), timeout=30))
        self.assertEqual(got, data)

    def test_a_prefix_token_starts_sessions_inside_its_prefix_only(self):
        t = self.tokens.token["team"]
        self.assertCode(PERMISSION_DENIED, self.stub.StartUpload,
                        pb.StartUploadRequest(spec=pb.UploadSpec(path="team-b/s")),
                        metadata=md(t), timeout=30)
        uid = self.stub.StartUpload(pb.StartUploadRequest(spec=pb.UploadSpec(
            path="team-a/session/s")), metadata=md(t), timeout=30).upload_id
        q = self.stub.QueryUpload(pb.QueryUploadRequest(upload_id=uid), metadata=md(t), timeout=30)
        self.assertEqual(q.persisted_size, 0)
        resp = self.stub.Upload(iter([pb.UploadRequest(upload_id=uid, data=b"ab", finish=True)]),
                                metadata=md(t), timeout=30)
        self.assertEqual(resp.file.path, "team-a/session/s")
        self.stub.Delete(pb.DeleteRequest(path="team-a/session/s"), metadata=md(t), timeout=30)

    # --- prefixes

    def test_prefix_token_inside_and_outside(self):
        self.put_as_admin("team-b/secret", b"b's")
        self.put_as_admin("team-a2/x", b"a2's")
        outside = [
            ["get", "team-b/secret", "-"],
            ["get", "team-a2/x", "-"],
            ["put", "-", "team-b/new"],
            ["put", "-", "team-a2/new"],
            ["put", "-", "x"],
            ["ls"],
            ["ls", "team-b/"],
            ["ls", "team-a"],  # would list team-a2/ too: refused, not filtered
            ["stat", "team-b/secret"],
            ["rm", "team-b/secret"],
        ]
        for args in outside:
            with self.subTest(args=args):
                r = self.cli("team", *args)
                self.assertCli(r, "PERMISSION_DENIED")
                self.assertIn(b'start with "team-a/"', r.stderr)
        self.assertIn("team-b/secret", testlib.visible_files(self.server.root))
        self.assertNotIn("team-b/new", testlib.visible_files(self.server.root))
        # Python, the streaming RPCs.
        t = self.tokens.token["team"]
        self.assertCode(PERMISSION_DENIED, self.stub.Download,
                        pb.DownloadRequest(path="team-b/secret"), metadata=md(t))
        self.assertCode(PERMISSION_DENIED, self.stub.Upload,
                        upload_requests("team-b/py", b"x"), metadata=md(t))
        # Inside.
        r = testlib.cli(self.server.address, "--token_file=" + self.tokens.file["team"],
                        "put", "-", "team-a/f", stdin=b"mine")
        self.assertCli(r)
        r = self.get_as("team", "team-a/f")
        self.assertCli(r)
        self.assertEqual(r.stdout, b"mine")
        r = self.cli("team", "ls", "team-a/")
        self.assertCli(r)
        self.assertEqual(r.stdout, b"team-a/f\n")
        self.assertCli(self.cli("team", "ls", "team-a/f"))
        self.assertCli(self.cli("team", "stat", "team-a/f"))
        self.assertCli(self.cli("team", "rm", "team-a/f"))
        got = b"".join(m.data for m in self.stub.Download(
            pb.DownloadRequest(path="team-b/secret"), metadata=md(self.tokens.token["admin"])))
        self.assertEqual(got, b"b's")
        # BatchDownload: one path outside the prefix refuses the whole call
        # (nothing of team-a/ is sent), refused, not filtered.
        self.put_as_admin("team-a/in", b"a's")
        e = self.assertCode(PERMISSION_DENIED, self.stub.BatchDownload,
                            pb.BatchDownloadRequest(paths=["team-a/in", "team-b/secret"]),
                            metadata=md(t))
        self.assertIn('start with "team-a/"', e.details())
        got = list(self.stub.BatchDownload(pb.BatchDownloadRequest(paths=["team-a/in"]),
                                           metadata=md(t), timeout=30))
        self.assertEqual([(m.index, m.data, m.last, m.error_code) for m in got],
                         [(0, b"a's", True, 0)])
        # A token without `read` cannot batch-download inside anything.
        self.assertCode(PERMISSION_DENIED, self.stub.BatchDownload,
                        pb.BatchDownloadRequest(paths=["team-a/in"]),
                        metadata=md(self.tokens.token["writer"]))
        self.assertCli(self.cli("admin", "rm", "team-a/in"))

    # --- GetServerInfo, health, reflection

    def test_server_info_details_for_admin_only(self):
        full = self.stub.GetServerInfo(pb.GetServerInfoRequest(),
                                       metadata=md(self.tokens.token["admin"]))
        self.assertTrue(full.engines_available)
        self.assertGreater(full.registered_buffer_count, 0)
        self.assertGreater(full.registered_buffer_size, 0)
        for role in ("reader", "writer", "deleter", "team"):
            with self.subTest(role=role):
                basic = self.stub.GetServerInfo(pb.GetServerInfoRequest(),
                                                metadata=md(self.tokens.token[role]))
                self.assertEqual(basic.engine, self.server.engine)
                self.assertEqual(basic.backend, full.backend)
                self.assertEqual(basic.version, full.version)
                self.assertEqual(basic.max_chunk_bytes, full.max_chunk_bytes)
                self.assertEqual(list(basic.engines_available), [])
                self.assertEqual(list(basic.io_uring_features), [])
                self.assertEqual(basic.registered_buffer_count, 0)
                self.assertEqual(basic.registered_buffer_size, 0)
        r = self.cli("reader", "info")
        self.assertCli(r)
        self.assertIn(b"need the admin scope", r.stdout)
        self.assertIn(("engine: " + self.server.engine).encode(), r.stdout)
        r = self.cli("admin", "info")
        self.assertCli(r)
        self.assertIn(b"engines available: ", r.stdout)

    def test_health_and_reflection_need_no_token(self):
        # grpc.health.v1.HealthCheckRequest{service=""} is empty on the
        # wire; the response is HealthCheckResponse{status=SERVING (1)}.
        check = self.channel.unary_unary("/grpc.health.v1.Health/Check")
        self.assertEqual(check(b"", timeout=30), b"\x08\x01")
        # ServerReflectionRequest{list_services=""} (field 7).
        info = self.channel.stream_stream(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")
        answers = list(info(iter([b"\x3a\x00"]), timeout=30))
        self.assertEqual(len(answers), 1)
        self.assertIn(b"ringstore.v1.FileStore", answers[0])

    # --- the CLI's side

    def test_cli_token_from_environment(self):
        env = dict(os.environ, RINGSTORE_TOKEN=self.tokens.token["reader"])
        r = subprocess.run([testlib.CLI, "--server=" + self.server.address, "ls", "nothing/"],
                           capture_output=True, timeout=60, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        # --token_file wins over the environment.
        r = subprocess.run([testlib.CLI, "--server=" + self.server.address,
                            "--token_file=" + self.tokens.file["writer"], "ls", "nothing/"],
                           capture_output=True, timeout=60, env=env)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn(b"PERMISSION_DENIED", r.stderr)

    def test_cli_refuses_a_token_in_plaintext_to_another_host(self):
        token = self.tokens.token["admin"]
        for extra, env in ((["--token_file=" + self.tokens.file["admin"]], None),
                           ([], dict(os.environ, RINGSTORE_TOKEN=token))):
            with self.subTest(source="env" if env else "file"):
                # 192.0.2.1 is TEST-NET-1: a connection attempt would hang.
                r = subprocess.run([testlib.CLI, "--server=192.0.2.1:1"] + extra + ["ls"],
                                   capture_output=True, timeout=20, env=env)
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertIn(b"refusing to send the token", r.stderr)
                self.assertIn(b"192.0.2.1:1", r.stderr)
                self.assertNotIn(token.encode(), r.stderr + r.stdout)


class AuthFileTest(unittest.TestCase):
    """The tokens file's life: a bad one at start, reloads on SIGHUP and on
    a change."""

    def test_bad_file_at_start_exits_nonzero_with_the_line(self):
        d = testlib.tmpdir("authbad")
        token, line = new_token("read")
        path = os.path.join(d, "tokens")
        # Line 3 holds the token itself instead of its hash.
        write_file(path, "# tokens\n%s\n%s read\n" % (line, token))
        r = subprocess.run([testlib.SERVER, "--listen=127.0.0.1:0", "--root=" + os.path.join(d, "r"),
                            "--auth_tokens=" + path], capture_output=True, timeout=60)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(("%s: line 3: " % path).encode(), r.stderr)
        self.assertNotIn(token.encode(), r.stderr + r.stdout)
        r = subprocess.run([testlib.SERVER, "--listen=127.0.0.1:0", "--root=" + os.path.join(d, "r"),
                            "--auth_tokens=" + os.path.join(d, "missing")],
                           capture_output=True, timeout=60)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"missing", r.stderr)

    def test_sighup_reloads(self):
        d = testlib.tmpdir("authhup")
        old, old_line = new_token("read")
        new, new_line = new_token("read,write")
        path = os.path.join(d, "tokens")
        write_file(path, old_line + "\n")
        server = testlib.Server(args=["--auth_tokens=" + path])
        try:
            with grpc.insecure_channel(server.address) as channel:
                stub = pbg.FileStoreStub(channel)

                def code(token):
                    return list_code(stub, token)

                self.assertEqual(code(old), grpc.StatusCode.OK)
                self.assertEqual(code(new), UNAUTHENTICATED)

                # `token new`'s line replaces the old one.
                write_file(path, "# rotated\n" + new_line + "\n")
                server.proc.send_signal(signal.SIGHUP)
                self.assertTrue(testlib.wait_until(lambda: code(new) == grpc.StatusCode.OK))
                self.assertEqual(code(old), UNAUTHENTICATED)
                # Its token works from the CLI too, with its scopes.
                tf = os.path.join(d, "new.token")
                write_file(tf, new + "\n")
                r = testlib.cli(server.address, "--token_file=" + tf, "put", "-", "n/a",
                                stdin=b"rotated")
                self.assertEqual(r.returncode, 0, r.stderr)
                r = testlib.cli(server.address, "--token_file=" + tf, "rm", "n/a")
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertIn(b"PERMISSION_DENIED", r.stderr)

                # A bad file: the server says why and keeps the tokens it has.
                write_file(path, new_line + "\n" + old + " read\n")
                server.proc.send_signal(signal.SIGHUP)
                self.assertTrue(testlib.wait_until(
                    lambda: "keeping the tokens in use" in server.stderr_text()),
                    server.stderr_text())
                self.assertIn(path + ": line 2: ", server.stderr_text())
                self.assertEqual(code(new), grpc.StatusCode.OK)
                self.assertEqual(code(old), UNAUTHENTICATED)

                # The file gone: the same.
                os.unlink(path)
                server.proc.send_signal(signal.SIGHUP)
                self.assertTrue(testlib.wait_until(
                    lambda: server.stderr_text().count("keeping the tokens in use") == 2),
                    server.stderr_text())
                self.assertEqual(code(new), grpc.StatusCode.OK)
        finally:
            rc = server.stop()
        stderr = server.stderr_text()
        self.assertEqual(rc, 0, stderr)
        self.assertNotIn(old, stderr)
        self.assertNotIn(new, stderr)

    def test_a_changed_tokens_file_is_reloaded_without_a_signal(self):
        """Laid out as a Kubernetes Secret volume (the file a link through
        ..data, swapped to a new directory on update): each swap is picked
        up within 5 s, a bad file keeps the tokens in use."""
        d = testlib.tmpdir("authwatch")
        tokens = [new_token("read") for _ in range(3)]

        def publish(n, text):
            stamp = os.path.join(d, "..%d" % n)
            os.mkdir(stamp)
            write_file(os.path.join(stamp, "tokens"), text)
            os.symlink(os.path.basename(stamp), os.path.join(d, "..data_tmp"))
            os.rename(os.path.join(d, "..data_tmp"), os.path.join(d, "..data"))

        publish(0, tokens[0][1] + "\n")
        os.symlink("..data/tokens", os.path.join(d, "tokens"))
        server = testlib.Server(args=["--auth_tokens=" + os.path.join(d, "tokens")])
        try:
            with grpc.insecure_channel(server.address) as channel:
                stub = pbg.FileStoreStub(channel)

                def code(token):
                    return list_code(stub, token)

                self.assertEqual(code(tokens[0][0]), grpc.StatusCode.OK)
                publish(1, tokens[1][1] + "\n")
                self.assertTrue(testlib.wait_until(
                    lambda: code(tokens[1][0]) == grpc.StatusCode.OK, timeout=15))
                self.assertEqual(code(tokens[0][0]), UNAUTHENTICATED)
                # A bad file: said on stderr, the tokens in use stay.
                publish(2, tokens[2][1] + "\nnot a line\n")
                self.assertTrue(testlib.wait_until(
                    lambda: "not reloaded, the old tokens stay" in server.stderr_text(),
                    timeout=15), server.stderr_text())
                self.assertEqual(code(tokens[1][0]), grpc.StatusCode.OK)
                self.assertEqual(code(tokens[2][0]), UNAUTHENTICATED)
        finally:
            rc = server.stop()
        self.assertEqual(rc, 0, server.stderr_text())
        for token, _ in tokens:
            self.assertNotIn(token, server.stderr_text())

    def test_sighup_without_auth_is_harmless(self):
        server = testlib.Server()
        try:
            server.proc.send_signal(signal.SIGHUP)
            self.assertTrue(testlib.wait_until(
                lambda: "no --auth_tokens to reload" in server.stderr_text()))
            r = testlib.cli(server.address, "ls")
            self.assertEqual(r.returncode, 0, r.stderr)
        finally:
            self.assertEqual(server.stop(), 0, server.stderr_text())


if __name__ == "__main__":
    testlib.main()
