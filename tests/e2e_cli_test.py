"""The real ringstore-server on port 0 driven by the real ringstore CLI."""

import concurrent.futures
import json
import os
import unittest

import testlib

MiB = 1 << 20


@testlib.per_engine
class CliTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.base = testlib.tmpdir("e2e")
        cls.root = os.path.join(cls.base, "root", "data")
        cls.server = testlib.Server(root=cls.root, engine=cls.engine)
        cls.work = os.path.join(cls.base, "work")
        os.makedirs(cls.work)

    @classmethod
    def tearDownClass(cls):
        assert cls.server.stop() == 0, cls.server.stderr_text()

    def run_cli(self, *args, **kw):
        return testlib.cli(self.server.address, *args, **kw)

    def ok(self, *args, **kw):
        r = self.run_cli(*args, **kw)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        return r

    def fails(self, code_name, *args, **kw):
        r = self.run_cli(*args, **kw)
        self.assertEqual(r.returncode, 1, (r.stdout, r.stderr))
        self.assertIn(("ringstore: %s:" % code_name).encode(), r.stderr)
        return r

    def local(self, name, data):
        return testlib.write_file(self.work, name, data)

    def read(self, path):
        return testlib.read_file(path)

    def stat_json(self, remote):
        return json.loads(self.ok("stat", remote, json=True).stdout)

    def test_round_trips(self):
        for size in [0, 1, MiB - 1, MiB, MiB + 1, 64 * MiB]:
            with self.subTest(size=size):
                data = testlib.random_bytes(size, seed=size)
                src = self.local("rt-%d" % size, data)
                remote = "rt/size-%d.bin" % size
                r = self.ok("put", src, remote)
                self.assertIn(b"served by " + self.server.engine.encode(), r.stdout)
                dst = os.path.join(self.work, "rt-%d.out" % size)
                self.ok("get", remote, dst)
                self.assertEqual(self.read(dst), data)
                info = self.stat_json(remote)
                self.assertEqual(info["size"], size)
                self.assertEqual(info["path"], remote)
                self.assertEqual(info["backend"], self.server.engine)
                self.assertEqual(info["crc32c"], testlib.crc32c(data))
                # The committed file on disk is byte-exact too.
                self.assertEqual(self.read(os.path.join(self.root, remote)), data)

    def test_put_from_stdin_and_get_to_stdout(self):
        data = testlib.random_bytes(3 * MiB + 3, seed=7)
        self.ok("put", "-", "stdin/file", stdin=data)
        self.assertEqual(self.ok("get", "stdin/file", "-").stdout, data)

    def test_range_reads(self):
        data = testlib.random_bytes(2 * MiB + 100, seed=11)
        self.ok("put", self.local("range", data), "range/file")
        for off, length in [(0, 10), (1, 1), (MiB - 5, 10), (MiB, MiB), (2 * MiB, 0), (17, 0)]:
            with self.subTest(off=off, length=length):
                args = ["get", "range/file", "-", "--offset=%d" % off]
                if length:
                    args.append("--length=%d" % length)
                got = self.ok(*args).stdout
                self.assertEqual(got, data[off:off + length] if length else data[off:])
        dst = os.path.join(self.work, "range.out")
        self.ok("get", "range/file", dst, "--offset", "5", "--length", "7")
        self.assertEqual(self.read(dst), data[5:12])
        self.assertEqual(self.ok("get", "range/file", "-", "--offset=%d" % len(data)).stdout, b"")
        self.fails("OUT_OF_RANGE", "get", "range/file", "-", "--offset=%d" % (len(data) + 1))

    def test_failed_get_leaves_no_local_file(self):
        dst = os.path.join(self.work, "never")
        self.fails("NOT_FOUND", "get", "no/such/file", dst)
        self.assertFalse(os.path.exists(dst))
        self.assertEqual([f for f in os.listdir(self.work) if f.startswith("never")], [])

    def test_overwrite_bumps_generation(self):
        self.ok("put", self.local("g1", b"one"), "gen/file")
        g1 = self.stat_json("gen/file")["generation"]
        self.ok("put", self.local("g2", b"two!"), "gen/file")
        info = self.stat_json("gen/file")
        self.assertGreater(info["generation"], g1)
        self.assertEqual(info["size"], 4)
        self.assertEqual(self.ok("get", "gen/file", "-").stdout, b"two!")

    def test_if_absent(self):
        self.ok("put", self.local("a1", b"first"), "absent/file", "--if_absent")
        self.fails("ALREADY_EXISTS", "put", self.local("a2", b"second"), "absent/file", "--if_absent")
        self.assertEqual(self.ok("get", "absent/file", "-").stdout, b"first")

    def test_rm_then_stat(self):
        self.ok("put", self.local("rm", b"x"), "rm/file")
        r = self.ok("rm", "rm/file")
        self.assertIn(b"served by " + self.server.engine.encode(), r.stdout)
        self.fails("NOT_FOUND", "stat", "rm/file")
        self.fails("NOT_FOUND", "rm", "rm/file")
        self.assertFalse(os.path.exists(os.path.join(self.root, "rm/file")))

    def test_rm_prunes_emptied_directories_so_the_name_is_free(self):
        self.ok("put", self.local("pr1", b"deep"), "prune/a/b/c")
        self.ok("put", self.local("pr2", b"keep"), "prune/keep")
        self.ok("rm", "prune/a/b/c")
        self.assertFalse(os.path.exists(os.path.join(self.root, "prune/a")))
        self.assertTrue(os.path.exists(os.path.join(self.root, "prune/keep")))
        # A file may now have the name a removed directory had.
        self.ok("put", self.local("pr3", b"now a file"), "prune/a")
        self.assertEqual(self.ok("get", "prune/a", "-").stdout, b"now a file")
        self.ok("rm", "prune/a")
        self.ok("rm", "prune/keep")
        self.assertFalse(os.path.exists(os.path.join(self.root, "prune")))
        self.assertTrue(os.path.isdir(os.path.join(self.root, ".ringstore")))
        self.ok("put", self.local("pr4", b"top"), "prune")
        self.assertEqual(self.ok("get", "prune", "-").stdout, b"top")

    def test_ls_pages_through_many_files(self):
        # 2,500 files placed by hand (listed like any other): the CLI asks for
        # pages of 1000 and follows the server's tokens.
        want = []
        for d in range(5):
            os.makedirs(os.path.join(self.root, "lspages", "d%d" % d))
            for f in range(500):
                name = "lspages/d%d/f%03d" % (d, f)
                open(os.path.join(self.root, name), "wb").close()
                want.append(name)
        self.assertEqual(self.ok("ls", "lspages/").stdout.decode().split(), sorted(want))
        self.assertEqual(self.ok("ls", "lspages/d3/f4").stdout.decode().split(),
                         ["lspages/d3/f%03d" % f for f in range(400, 500)])

    def test_ls(self):
        names = ["ls/b", "ls/a", "ls/c/d", "ls/c/e", "lsx"]
        for n in names:
            self.ok("put", self.local("ls", n.encode()), n)
        self.assertEqual(self.ok("ls", "ls/").stdout.decode().split(), sorted(names[:4]))
        self.assertEqual(self.ok("ls", "ls").stdout.decode().split(), sorted(names))
        long_lines = self.ok("ls", "ls/", "--long").stdout.decode().splitlines()
        self.assertEqual(len(long_lines), 4)
        self.assertTrue(long_lines[0].split()[-1] == "ls/a" and long_lines[0].split()[0] == "4")
        js = [json.loads(l) for l in self.ok("ls", "ls/", json=True).stdout.splitlines()]
        self.assertEqual([j["path"] for j in js], sorted(names[:4]))
        self.assertTrue(all(j["backend"] == self.server.engine for j in js))
        self.assertIn(b"served by " + self.server.engine.encode(), self.ok("ls", "ls/").stderr)

    def test_info(self):
        info = json.loads(self.ok("info", json=True).stdout)
        self.assertEqual(info["engine"], self.server.engine)
        self.assertEqual(info["backend"], self.server.engine)
        self.assertEqual(info["engines_available"][-1], "thread_pool")
        self.assertIn(self.server.engine, info["engines_available"])
        self.assertEqual(info["buffers_registered"], self.server.engine == "io_uring")
        self.assertIn(b"engine: " + self.server.engine.encode(), self.ok("info").stdout)

    def test_bad_paths_rejected_nothing_outside(self):
        parent = os.path.dirname(self.root)
        before = sorted(os.listdir(parent))
        src = self.local("bad", b"evil")
        for remote in ["../x", "/abs", "a//b", ".ringstore/x", "a/./b", "a/../../x", "x/..", ""]:
            with self.subTest(remote=remote):
                self.fails("INVALID_ARGUMENT", "put", src, remote)
                self.fails("INVALID_ARGUMENT", "get", remote, "-")
        self.assertEqual(sorted(os.listdir(parent)), before)
        self.assertFalse(os.path.exists(os.path.join(self.base, "x")))

    def test_symlink_in_root_does_not_escape(self):
        outside = os.path.join(self.base, "outside")
        os.makedirs(outside)
        with open(os.path.join(outside, "secret"), "wb") as f:
            f.write(b"top secret")
        os.symlink(outside, os.path.join(self.root, "evil"))
        os.symlink(os.path.join(outside, "secret"), os.path.join(self.root, "evil-file"))
        try:
            r = self.run_cli("get", "evil/secret", "-")
            self.assertEqual(r.returncode, 1)
            self.assertNotIn(b"top secret", r.stdout)
            r = self.run_cli("get", "evil-file", "-")
            self.assertEqual(r.returncode, 1)
            self.assertNotIn(b"top secret", r.stdout)
            self.assertEqual(self.run_cli("put", self.local("s", b"new"), "evil/new").returncode, 1)
            self.assertEqual(self.run_cli("rm", "evil/secret").returncode, 1)
            self.assertEqual(self.run_cli("stat", "evil/secret").returncode, 1)
            self.assertEqual(sorted(os.listdir(outside)), ["secret"])
            self.assertEqual(self.read(os.path.join(outside, "secret")), b"top secret")
            self.assertNotIn(b"evil", self.ok("ls").stdout)
        finally:
            os.unlink(os.path.join(self.root, "evil"))
            os.unlink(os.path.join(self.root, "evil-file"))

    def test_usage_errors_exit_2(self):
        for args in [[], ["frobnicate"], ["put", "one"], ["get", "r"], ["stat"], ["ls", "a", "b"],
                     ["stat", "x", "--nope"], ["get", "r", "-", "--offset=-3"]]:
            with self.subTest(args=args):
                r = self.run_cli(*args)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(b"usage:", r.stderr)

    def test_unreachable_server(self):
        r = testlib.cli("127.0.0.1:1", "stat", "x")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"UNAVAILABLE", r.stderr)

    def test_concurrent_uploads_of_many_files(self):
        blobs = {"many/f%02d" % i: testlib.random_bytes(200 * 1024 + i, seed=100 + i) for i in range(32)}
        srcs = {k: self.local("many-%s" % k.split("/")[1], v) for k, v in blobs.items()}
        with concurrent.futures.ThreadPoolExecutor(max_workers=32) as ex:
            results = list(ex.map(lambda k: self.run_cli("put", srcs[k], k), blobs))
        for r in results:
            self.assertEqual(r.returncode, 0, r.stderr)
        for k, v in blobs.items():
            self.assertEqual(self.read(os.path.join(self.root, k)), v)
        self.assertEqual(self.ok("ls", "many/").stdout.decode().split(), sorted(blobs))

    def test_concurrent_uploads_of_one_path(self):
        blobs = [testlib.random_bytes(3 * MiB + i, seed=200 + i) for i in range(8)]
        srcs = [self.local("same-%d" % i, b) for i, b in enumerate(blobs)]
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as ex:
            results = list(ex.map(lambda s: self.run_cli("put", s, "same/path", json=True), srcs))
        gens = set()
        for r in results:
            self.assertEqual(r.returncode, 0, r.stderr)
            gens.add(json.loads(r.stdout)["generation"])
        self.assertEqual(len(gens), 8)
        survivor = self.read(os.path.join(self.root, "same/path"))
        self.assertIn(survivor, blobs)
        # The last commit (highest generation) is the one that is visible.
        self.assertEqual(self.stat_json("same/path")["generation"], max(gens))
        self.assertTrue(testlib.wait_until(lambda: not testlib.temp_files(self.root)))


if __name__ == "__main__":
    testlib.main()
