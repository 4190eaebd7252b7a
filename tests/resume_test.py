"""Resumed transfers (DESIGN.md §5, CLI additions): the real CLI against the
real server through a TCP proxy that breaks the connection mid-stream, as a
flaky link or a restarting server would."""

import os
import socket
import threading
import unittest

import testlib

MiB = 1 << 20


class CuttingProxy:
    """Forwards 127.0.0.1:<port> to `target`. The first `cuts` connections
    are broken (both sockets closed) once `cut_after` bytes have gone from
    the server to the client; `on_cut()` runs just before, while the client
    still waits. Counts the bytes sent to clients."""

    def __init__(self, target, cut_after, cuts=1, on_cut=None):
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.cut_after = cut_after
        self.cuts_left = cuts
        self.on_cut = on_cut
        self.to_client = 0
        self.cuts = 0
        self.lock = threading.Lock()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.address = "127.0.0.1:%d" % self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        self.listener.close()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            with self.lock:
                cut = self.cuts_left > 0
                self.cuts_left -= 1 if cut else 0
            done = threading.Event()
            threading.Thread(target=self._pump, args=(client, server, None, done, False),
                             daemon=True).start()
            threading.Thread(target=self._pump,
                             args=(server, client, self.cut_after if cut else None, done, True),
                             daemon=True).start()

    def _pump(self, src, dst, cut_after, done, to_client):
        sent = 0
        try:
            while not done.is_set():
                data = src.recv(256 << 10)
                if not data:
                    break
                if cut_after is not None and sent + len(data) >= cut_after:
                    data = data[:cut_after - sent]
                    dst.sendall(data)
                    with self.lock:
                        self.to_client += len(data)
                        self.cuts += 1
                    if self.on_cut:
                        self.on_cut()
                    break
                dst.sendall(data)
                sent += len(data)
                if to_client:
                    with self.lock:
                        self.to_client += len(data)
        except OSError:
            pass
        done.set()
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


class ResumedDownloadTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = testlib.Server()
        cls.data = testlib.random_bytes(48 * MiB, seed=21)
        cls.work = testlib.tmpdir("resume")
        src = testlib.write_file(cls.work, "src.bin", cls.data)
        r = testlib.cli(cls.server.address, "put", src, "big.bin")
        assert r.returncode == 0, r.stderr.decode()

    @classmethod
    def tearDownClass(cls):
        assert cls.server.stop() == 0, cls.server.stderr_text()

    def test_get_resumes_a_broken_download(self):
        # Broken twice: after 5 MiB, then after 5 MiB more.
        proxy = CuttingProxy(self.server.address, cut_after=5 * MiB, cuts=2)
        try:
            out = os.path.join(self.work, "out.bin")
            r = testlib.cli(proxy.address, "get", "big.bin", out)
            self.assertEqual(r.returncode, 0, r.stderr.decode())
            self.assertEqual(proxy.cuts, 2)
            self.assertEqual(testlib.read_file(out), self.data)
            # Resumed, not restarted: little more than the file crossed.
            self.assertLess(proxy.to_client, len(self.data) + 4 * MiB, proxy.to_client)
        finally:
            proxy.close()

    def test_get_to_stdout_resumes_too(self):
        proxy = CuttingProxy(self.server.address, cut_after=3 * MiB)
        try:
            r = testlib.cli(proxy.address, "get", "big.bin", "-")
            self.assertEqual(r.returncode, 0, r.stderr.decode())
            self.assertEqual(proxy.cuts, 1)
            self.assertEqual(r.stdout, self.data)
        finally:
            proxy.close()

    def test_ranged_get_resumes_within_its_range(self):
        proxy = CuttingProxy(self.server.address, cut_after=2 * MiB)
        try:
            out = os.path.join(self.work, "range.bin")
            r = testlib.cli(proxy.address, "get", "big.bin", out, "--offset=1000",
                            "--length=%d" % (8 * MiB))
            self.assertEqual(r.returncode, 0, r.stderr.decode())
            self.assertEqual(proxy.cuts, 1)
            self.assertEqual(testlib.read_file(out), self.data[1000:1000 + 8 * MiB])
        finally:
            proxy.close()

    def test_without_retries_a_break_fails_and_leaves_nothing(self):
        proxy = CuttingProxy(self.server.address, cut_after=3 * MiB)
        try:
            out = os.path.join(self.work, "none.bin")
            r = testlib.cli(proxy.address, "get", "big.bin", out, "--retries=0")
            self.assertEqual(r.returncode, 1)
            self.assertIn("UNAVAILABLE", r.stderr.decode())
            self.assertFalse(os.path.exists(out))
            self.assertEqual([f for f in os.listdir(self.work) if f.startswith("none.bin")], [])
        finally:
            proxy.close()

    def test_a_file_replaced_between_attempts_is_not_mixed(self):
        """The resumed stream is pinned to the generation the download
        started with: a replacement in between ends it with
        FAILED_PRECONDITION instead of splicing two files."""
        server = testlib.Server()
        try:
            old = testlib.random_bytes(16 * MiB, seed=22)
            new = testlib.random_bytes(16 * MiB, seed=23)
            r = testlib.cli(server.address, "put", "-", "f", stdin=old)
            self.assertEqual(r.returncode, 0, r.stderr.decode())

            def replace():
                r = testlib.cli(server.address, "put", "-", "f", stdin=new)
                assert r.returncode == 0, r.stderr.decode()

            proxy = CuttingProxy(server.address, cut_after=3 * MiB, on_cut=replace)
            try:
                out = os.path.join(self.work, "mixed.bin")
                r = testlib.cli(proxy.address, "get", "f", out)
                self.assertEqual(r.returncode, 1)
                self.assertIn("FAILED_PRECONDITION", r.stderr.decode())
                self.assertIn("replaced while it was downloaded", r.stderr.decode())
                self.assertFalse(os.path.exists(out))
            finally:
                proxy.close()
        finally:
            self.assertEqual(server.stop(), 0)


if __name__ == "__main__":
    testlib.main()
