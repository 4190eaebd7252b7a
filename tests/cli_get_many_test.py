"""`ringstore get REMOTE... DIR/` and `ringstore get --prefix=P DIR/` (many
files over BatchDownload): the real server and the real CLI, nested paths,
byte-exact files, a missing one (exit 1, the others written), --json, more
than one call's worth of paths, and nothing ever written outside DIR."""

import json
import os
import unittest

import testlib


class GetManyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.base = testlib.tmpdir("many")
        # Small buffers: a 200 KiB file comes in several messages.
        cls.server = testlib.Server(args=["--buffer_size=65536"])
        cls.files = {}
        for i, (name, size) in enumerate([("p/a.bin", 0), ("p/b.bin", 4096),
                                          ("p/sub/c.bin", 200000), ("p/sub/deep/d.bin", 65536),
                                          ("q/e.bin", 10)]):
            cls.put(name, testlib.random_bytes(size, seed=i))

    @classmethod
    def put(cls, remote, data):
        src = testlib.write_file(cls.base, "src", data)
        r = testlib.cli(cls.server.address, "put", src, remote)
        assert r.returncode == 0, r.stderr
        cls.files[remote] = data

    @classmethod
    def tearDownClass(cls):
        assert cls.server.stop() == 0, cls.server.stderr_text()

    def cli(self, *args, **kw):
        return testlib.cli(self.server.address, *args, **kw)

    def out_dir(self, name):
        return os.path.join(self.base, name)

    def assertTree(self, directory, remotes):
        """`directory` holds exactly `remotes`, byte-exact, no temp files."""
        self.assertEqual(testlib.visible_files(directory), sorted(remotes))
        for r in remotes:
            self.assertEqual(testlib.read_file(os.path.join(directory, r)), self.files[r], r)

    def test_named_paths_nested(self):
        d = self.out_dir("named")
        names = ["p/a.bin", "p/sub/c.bin", "q/e.bin", "p/sub/deep/d.bin"]
        r = self.cli("get", *names, d + "/")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTree(d, names)
        for n in names:
            self.assertIn(("downloaded %s to %s/%s served by %s" %
                           (n, d, n, self.server.engine)).encode(), r.stdout)

    def test_prefix_json(self):
        d = self.out_dir("prefix")
        r = self.cli("get", "--prefix=p/", d, json=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        expected = sorted(n for n in self.files if n.startswith("p/"))
        self.assertTree(d, expected)
        objs = [json.loads(line) for line in r.stdout.decode().splitlines()]
        self.assertEqual(sorted(o["path"] for o in objs), expected)
        for o in objs:
            self.assertEqual(o["backend"], self.server.engine)
            self.assertEqual(o["size"], len(self.files[o["path"]]))
            self.assertEqual(o["crc32c"], testlib.crc32c(self.files[o["path"]]))

    def test_missing_file_exits_1_and_the_others_are_written(self):
        d = self.out_dir("missing")
        r = self.cli("get", "p/b.bin", "p/nope.bin", "q/e.bin", d + "/")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn(b"ringstore: NOT_FOUND: p/nope.bin", r.stderr)
        self.assertTree(d, ["p/b.bin", "q/e.bin"])
        r = self.cli("get", "p/b.bin", "p/nope.bin", d + "/", json=True)
        self.assertEqual(r.returncode, 1)
        objs = {o["path"]: o for o in map(json.loads, r.stdout.decode().splitlines())}
        self.assertEqual(objs["p/nope.bin"]["error"], "NOT_FOUND")
        self.assertEqual(objs["p/b.bin"]["backend"], self.server.engine)

    def test_nothing_is_written_outside_the_directory(self):
        base = self.out_dir("outside")
        d = os.path.join(base, "d")
        os.makedirs(d)
        # A symbolic link inside DIR pointing out of it is not followed.
        os.makedirs(os.path.join(base, "elsewhere"))
        os.symlink(os.path.join(base, "elsewhere"), os.path.join(d, "p"))
        r = self.cli("get", "../escape", "/etc/x", "p/b.bin", "q/e.bin", d + "/")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"ringstore: INVALID_ARGUMENT: ../escape", r.stderr)
        self.assertIn(b"ringstore: INVALID_ARGUMENT: /etc/x", r.stderr)
        self.assertIn(b"p/b.bin", r.stderr)  # under a symlink: refused
        self.assertEqual(os.listdir(os.path.join(base, "elsewhere")), [])
        self.assertEqual(sorted(os.listdir(base)), ["d", "elsewhere"])
        self.assertEqual(testlib.read_file(os.path.join(d, "q/e.bin")), self.files["q/e.bin"])

    def test_more_paths_than_one_call_takes(self):
        # Two calls (1000 + 3 paths): one file, named 1003 times.
        self.put("many/x", b"x")
        d = self.out_dir("many")
        r = self.cli("get", *(["many/x"] * 1003), d + "/")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTree(d, ["many/x"])
        self.assertEqual(r.stdout.count(b"downloaded many/x"), 1003)

    def test_one_file_get_is_unchanged(self):
        dst = os.path.join(self.base, "one.out")
        r = self.cli("get", "p/sub/c.bin", dst)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(testlib.read_file(dst), self.files["p/sub/c.bin"])


if __name__ == "__main__":
    testlib.main()
