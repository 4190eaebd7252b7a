"""deploy/seccomp/ringstore.json is the container runtime's default seccomp
profile plus io_uring_setup, io_uring_enter and io_uring_register, and
nothing else (deploy/container_test.py shows what each profile does to the
engine). The default is containers-common's, the RuntimeDefault of podman and
CRI-O; where it is not installed the comparisons are skipped."""

import copy
import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "tests"))
import testlib  # noqa: E402

PROFILE = testlib.runfile("deploy/seccomp/ringstore.json")
MAKE_PROFILE = testlib.runfile("deploy/seccomp/make_profile.py")
DEFAULT = "/usr/share/containers/seccomp.json"
IO_URING = {"io_uring_setup", "io_uring_enter", "io_uring_register"}


def load(path):
    with open(path) as f:
        return json.load(f)


def allows(rule, name):
    return name in rule.get("names", []) and rule.get("action") == "SCMP_ACT_ALLOW"


class SeccompProfileTest(unittest.TestCase):

    def setUp(self):
        if not os.path.exists(DEFAULT):
            self.skipTest("no runtime default profile at %s (containers-common)" % DEFAULT)
        self.default = load(DEFAULT)
        self.profile = load(PROFILE)

    def test_default_forbids_io_uring(self):
        # Else RuntimeDefault would not make the pod serve on posix_aio.
        for rule in self.default["syscalls"]:
            for name in IO_URING:
                self.assertFalse(allows(rule, name), "the default profile allows %s" % name)
        self.assertNotEqual(self.default["defaultAction"], "SCMP_ACT_ALLOW")

    def test_difference_is_exactly_the_three_io_uring_calls(self):
        rules = self.profile["syscalls"]
        added = [r for r in rules if IO_URING & set(r.get("names", []))]
        self.assertEqual(len(added), 1, "io_uring appears in %d rules" % len(added))
        rule = added[0]
        self.assertEqual(set(rule["names"]), IO_URING)
        self.assertEqual(len(rule["names"]), 3)
        self.assertEqual(rule["action"], "SCMP_ACT_ALLOW")
        # Unconditional: no argument filter, for every architecture and
        # kernel, no capability condition.
        self.assertFalse(rule.get("args"))
        self.assertFalse(rule.get("includes"))
        self.assertFalse(rule.get("excludes"))
        # Everything else, the order of the rules included, is the default.
        rest = copy.deepcopy(self.profile)
        rest["syscalls"] = [r for r in rules if r is not rule]
        self.assertEqual(rest, self.default)

    def test_committed_profile_is_what_make_profile_writes(self):
        r = subprocess.run([sys.executable, MAKE_PROFILE, DEFAULT], capture_output=True,
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        with open(PROFILE, "rb") as f:
            self.assertEqual(r.stdout, f.read(),
                             "regenerate: python3 deploy/seccomp/make_profile.py "
                             "> deploy/seccomp/ringstore.json")


if __name__ == "__main__":
    testlib.main()
