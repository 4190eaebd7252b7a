"""--max_store_bytes end to end: the real server and the real CLI.

A put that cannot fit fails with RESOURCE_EXHAUSTED (exit 1) and leaves no
temp data and no file, whether it declares its size (a regular file: refused
before the body is sent) or not (stdin: refused at the append that would
pass the quota); a put that fits works, `rm` frees; the count survives a
SIGTERM restart (read back from the attribute a clean stop leaves) and a
kill -9 (the next start walks the tree). The engines share this code (the
store tests run it on each), so the server runs with --engine=auto.
"""

import os
import unittest

import testlib

KiB = 1 << 10
QUOTA = 1024 * KiB
ATTR = "user.ringstore.bytes"


class QuotaTest(unittest.TestCase):
    def setUp(self):
        self.base = testlib.tmpdir("quota")
        self.root = os.path.join(self.base, "data")
        self.work = os.path.join(self.base, "work")
        os.makedirs(self.work)
        self.server = None
        self.start()

    def tearDown(self):
        if self.server is not None:
            self.assertEqual(self.server.stop(), 0, self.server.stderr_text())

    def start(self):
        self.server = testlib.Server(root=self.root, args=["--max_store_bytes=%d" % QUOTA])

    def stop(self):
        self.assertEqual(self.server.stop(), 0, self.server.stderr_text())
        self.server = None

    def kill9(self):
        self.server.kill()
        self.server = None

    def cli(self, *args, **kw):
        return testlib.cli(self.server.address, *args, **kw)

    def local(self, name, size):
        p = os.path.join(self.work, name)
        with open(p, "wb") as f:
            f.write(testlib.random_bytes(size, seed=size))
        return p

    def put_ok(self, remote, size):
        r = self.cli("put", self.local("f%d" % size, size), remote)
        self.assertEqual(r.returncode, 0, r.stderr.decode())

    def put_refused(self, remote, size, stdin=False, old_size=None):
        """A put of `size` bytes to `remote` (holding `old_size` bytes, or
        absent if None) fails with RESOURCE_EXHAUSTED and changes nothing."""
        if stdin:  # no declared size: refused at an append
            r = self.cli("put", "-", remote, stdin=testlib.random_bytes(size, seed=1))
        else:
            r = self.cli("put", self.local("f%d" % size, size), remote)
        self.assertEqual(r.returncode, 1, (r.stdout, r.stderr))
        self.assertIn(b"RESOURCE_EXHAUSTED", r.stderr)
        self.assertIn(b"of %d bytes used" % QUOTA, r.stderr)
        # Nothing left in temp space, nothing visible.
        self.assertTrue(testlib.wait_until(lambda: not testlib.temp_files(self.root)),
                        testlib.temp_files(self.root))
        if old_size is None:
            self.assertNotIn(remote, testlib.visible_files(self.root))
            s = self.cli("stat", remote)
            self.assertEqual(s.returncode, 1)
            self.assertIn(b"NOT_FOUND", s.stderr)
        else:
            self.assertEqual(os.path.getsize(os.path.join(self.root, remote)), old_size)
        return r

    def count_attr(self):
        return os.getxattr(os.path.join(self.root, ".ringstore"), ATTR).decode()

    def disk_bytes(self):
        return sum(os.path.getsize(os.path.join(self.root, p))
                   for p in testlib.visible_files(self.root))

    def test_refuses_what_cannot_fit_and_keeps_the_count_across_restarts(self):
        self.put_ok("a", 600 * KiB)
        # Declared size (a regular file): refused at the start.
        r = self.put_refused("b", 600 * KiB)
        self.assertIn(b"%d of %d bytes used" % (600 * KiB, QUOTA), r.stderr)
        # Unknown size (stdin): refused at the append that would pass it.
        self.put_refused("b", 600 * KiB, stdin=True)
        # What fits works, up to the last byte.
        self.put_ok("c", 400 * KiB)
        self.put_refused("d", 24 * KiB + 1)
        # rm frees.
        self.assertEqual(self.cli("rm", "a").returncode, 0)
        self.put_ok("b", 600 * KiB)
        self.assertEqual(self.disk_bytes(), 1000 * KiB)

        # SIGTERM: the count is left clean in the attribute and read back.
        self.stop()
        self.assertEqual(self.count_attr(), "v1 clean %d" % (1000 * KiB))
        self.start()
        self.assertEqual(self.count_attr(), "v1 dirty")
        self.put_refused("d", 24 * KiB + 1)
        self.put_ok("d", 24 * KiB)  # exactly full
        self.put_refused("e", 1, stdin=True)

        # kill -9 leaves the store dirty; a file removed by hand meanwhile
        # is seen by the walk at the next start.
        self.kill9()
        self.assertEqual(self.count_attr(), "v1 dirty")
        os.remove(os.path.join(self.root, "c"))
        self.start()
        self.put_refused("e", 400 * KiB + 1)
        self.put_ok("e", 400 * KiB)
        self.assertEqual(self.disk_bytes(), QUOTA)
        self.put_refused("f", 1, stdin=True)

    def test_overwrite_needs_room_for_both_while_it_runs(self):
        self.put_ok("a", 600 * KiB)
        # The new file would be smaller, but both are on disk until the
        # commit.
        self.put_refused("a", 500 * KiB, old_size=600 * KiB)
        self.put_refused("a", 500 * KiB, stdin=True, old_size=600 * KiB)
        self.put_ok("a", 400 * KiB)
        self.put_ok("b", 600 * KiB)  # the old 600 KiB were released
        self.assertEqual(self.disk_bytes(), 1000 * KiB)


if __name__ == "__main__":
    testlib.main()
