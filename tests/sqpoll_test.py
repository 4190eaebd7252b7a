"""--io_uring_sqpoll[=IDLE_MS] end to end: the real server asked for SQPOLL
reports it in GetServerInfo (the CLI's `info`) and in the metrics, says so
on stderr, and serves a round trip byte for byte; where the kernel refuses
SQPOLL it still starts, says why, and reports it off."""

import json
import os
import re
import unittest
import urllib.request

import testlib


def metric(url, name):
    """The value of the label-less sample `name`, or None."""
    with urllib.request.urlopen(url, timeout=10) as r:
        text = r.read().decode()
    m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
    return float(m.group(1)) if m else None


def metrics_url(server):
    found = []

    def look():
        m = re.search(r"ringstore-server: metrics on (\S+)", server.stderr_text())
        if m:
            found.append(m.group(1))
        return bool(found)

    if not testlib.wait_until(look, timeout=10):
        raise AssertionError("no metrics address: " + server.stderr_text())
    return found[0]


def info(server):
    r = testlib.cli(server.address, "info", json=True)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


class SqpollTest(unittest.TestCase):
    def start(self, *flags):
        server = testlib.Server(engine="io_uring",
                                args=["--metrics_listen=127.0.0.1:0"] + list(flags))
        self.addCleanup(lambda: self.assertEqual(server.stop(), 0, server.stderr_text()))
        return server

    def check_round_trip(self, server):
        data = testlib.random_bytes(3 * 1024 * 1024 + 11, seed=14)
        d = testlib.tmpdir("sqpoll")
        local = testlib.write_file(d, "f", data)
        for args in (["put", local, "s/f"], ["get", "s/f", local + ".back"]):
            r = testlib.cli(server.address, *args)
            self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(testlib.read_file(local + ".back"), data)

    def test_bare_flag_turns_sqpoll_on_or_says_why_not(self):
        server = self.start("--io_uring_sqpoll")
        features = info(server)["io_uring_features"]
        url = metrics_url(server)
        refused = [f for f in features if f.startswith("sqpoll=refused")]
        if refused:
            self.assertNotIn("sqpoll", features)
            self.assertIn("the kernel refused SQPOLL", server.stderr_text())
            self.assertEqual(metric(url, "ringstore_io_uring_sqpoll"), 0)
            self.check_round_trip(server)
            self.skipTest("the kernel refuses SQPOLL here: " + refused[0])
        self.assertIn("sqpoll", features)
        self.assertNotIn("defer_taskrun", features)  # it cannot go with SQPOLL
        self.assertIn("io_uring SQPOLL on, idle 1000 ms", server.stderr_text())
        self.assertEqual(metric(url, "ringstore_io_uring_sqpoll"), 1)
        # The kernel's SQ thread belongs to the server process.
        comms = []
        for tid in os.listdir("/proc/%d/task" % server.proc.pid):
            with open("/proc/%d/task/%s/comm" % (server.proc.pid, tid)) as f:
                comms.append(f.read().strip())
        self.assertEqual(sum(1 for c in comms if c.startswith("iou-sqp")), 1, comms)
        self.check_round_trip(server)
        r = testlib.cli(server.address, "info")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"sqpoll", r.stdout)

    def test_an_idle_time_is_taken_and_zero_is_off(self):
        server = self.start("--io_uring_sqpoll=20")
        if "sqpoll" in info(server)["io_uring_features"]:
            self.assertIn("io_uring SQPOLL on, idle 20 ms", server.stderr_text())
        self.check_round_trip(server)
        off = self.start("--io_uring_sqpoll=0")
        features = info(off)["io_uring_features"]
        self.assertEqual([f for f in features if f.startswith("sqpoll")], [])
        self.assertEqual(metric(metrics_url(off), "ringstore_io_uring_sqpoll"), 0)
        self.assertNotIn("SQPOLL", off.stderr_text())


if __name__ == "__main__":
    testlib.main()
