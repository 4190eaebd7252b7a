#!/usr/bin/env python3
"""Writes deploy/seccomp/ringstore.json: the container runtime's default
seccomp profile plus one rule that allows io_uring_setup, io_uring_enter and
io_uring_register, and nothing else.

The default comes from containers-common (/usr/share/containers/seccomp.json:
the RuntimeDefault of podman and CRI-O; containerd's and Docker's differ from
it only in details and, like it, no longer allow io_uring). Run it again when
the runtime's default changes:

    python3 deploy/seccomp/make_profile.py [DEFAULT_PROFILE] > deploy/seccomp/ringstore.json

The suite's seccomp test checks that the committed profile is exactly this.
"""

import json
import sys

DEFAULT = "/usr/share/containers/seccomp.json"

IO_URING_RULE = {
    "names": ["io_uring_enter", "io_uring_register", "io_uring_setup"],
    "action": "SCMP_ACT_ALLOW",
    "args": [],
    "comment": "ringstore: its io_uring engine (deploy/seccomp/make_profile.py)",
    "includes": {},
    "excludes": {},
}


def with_io_uring(default):
    """The default profile with IO_URING_RULE appended to its syscall rules."""
    profile = dict(default)
    profile["syscalls"] = list(default["syscalls"]) + [IO_URING_RULE]
    return profile


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else DEFAULT
    with open(path) as f:
        default = json.load(f)
    json.dump(with_io_uring(default), sys.stdout, indent="\t")
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
