#!/usr/bin/python3
"""List benchmark: page through every file of a large tree.

Makes N empty files directly on disk under a root (DIRS directories of
N/DIRS files each, "d0000/f0000"; kept between runs, so a second run skips
this), starts ringstore-server on it, lists everything in pages of
--page_size through the Python gRPC client (the tokens as the server gives
them), checks that every file came exactly once and in order, and prints one
JSON line per run: total time, pages/s, files/s, the slowest page, the
median of the first and of the last ten pages, and the server's peak RSS
(VmHWM from /proc/PID/status) against its RSS before the listing.

--old_server (a build from before the page token resumed the walk) runs the
same listing on a smaller tree (--old_files), with the new server on that
tree too, for a before/after pair at one N.

  bazel build -c opt --jobs=2 //server:ringstore-server //proto:ringstore_py
  /usr/bin/python3 bench/list_bench.py --files=1000000 \
      [--old_server=/path/to/old/ringstore-server --old_files=100000]

Timing claims live here, never in a test (DESIGN.md section 7).
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "bazel-bin", "proto"))

import grpc  # noqa: E402
from ringstore.v1 import ringstore_pb2 as pb  # noqa: E402
from ringstore.v1 import ringstore_pb2_grpc as pb_grpc  # noqa: E402


def make_tree(root, files, dirs):
    """DIRS directories of FILES/DIRS empty files; reused if complete."""
    marker = os.path.join(root, ".ringstore-bench-%d-%d" % (files, dirs))
    # The marker lives outside the root the server sees.
    if os.path.exists(marker + ".done"):
        return 0.0
    start = time.monotonic()
    per_dir = files // dirs
    data = os.path.join(root, "data")
    os.makedirs(data, exist_ok=True)
    flags = os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC
    for d in range(dirs):
        dpath = os.path.join(data, "d%04d" % d)
        os.makedirs(dpath, exist_ok=True)
        dfd = os.open(dpath, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for f in range(per_dir):
                os.close(os.open("f%04d" % f, flags, 0o644, dir_fd=dfd))
        finally:
            os.close(dfd)
    with open(marker + ".done", "w"):
        pass
    return time.monotonic() - start


def proc_status(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0  # MiB
    return None


def start_server(binary, root, engine):
    proc = subprocess.Popen([binary, "--listen=127.0.0.1:0", "--root=" + root,
                             "--engine=" + engine],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    line = proc.stdout.readline().decode().strip()
    m = re.match(r"ringstore-server listening on (\S+):(\d+) engine=(\w+)$", line)
    if not m:
        proc.kill()
        raise SystemExit("unexpected start-up line: %r" % line)
    return proc, "127.0.0.1:%s" % m.group(2), m.group(3)


def list_all(binary, label, root, files, page_size, engine):
    proc, address, engine_name = start_server(binary, os.path.join(root, "data"), engine)
    try:
        channel = grpc.insecure_channel(address)
        stub = pb_grpc.FileStoreStub(channel)
        rss_before = proc_status(proc.pid, "VmRSS")
        token, count, last, page_times = "", 0, "", []
        start = time.monotonic()
        while True:
            t0 = time.monotonic()
            r = stub.List(pb.ListRequest(page_size=page_size, page_token=token), timeout=600)
            page_times.append(time.monotonic() - t0)
            for f in r.files:
                if f.path <= last:
                    raise SystemExit("out of order or repeated: %r after %r" % (f.path, last))
                last = f.path
            count += len(r.files)
            token = r.next_page_token
            if not token:
                break
        total = time.monotonic() - start
        peak = proc_status(proc.pid, "VmHWM")
        channel.close()
    finally:
        proc.terminate()
        proc.wait()
    if count != files:
        raise SystemExit("%s listed %d files, want %d" % (label, count, files))
    return {
        "server": label, "engine": engine_name, "files": files, "page_size": page_size,
        "pages": len(page_times), "seconds": round(total, 2),
        "pages_per_s": round(len(page_times) / total, 1),
        "files_per_s": round(files / total),
        "first10_page_ms": round(statistics.median(page_times[:10]) * 1e3, 1),
        "last10_page_ms": round(statistics.median(page_times[-10:]) * 1e3, 1),
        "slowest_page_ms": round(max(page_times) * 1e3, 1),
        "rss_before_mib": round(rss_before, 1), "peak_rss_mib": round(peak, 1),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--server", default=os.path.join(REPO, "bazel-bin/server/ringstore-server"))
    ap.add_argument("--old_server", default="")
    ap.add_argument("--files", type=int, default=1000000)
    ap.add_argument("--old_files", type=int, default=100000)
    ap.add_argument("--files_per_dir", type=int, default=1000)
    ap.add_argument("--page_size", type=int, default=1000)
    ap.add_argument("--engine", default="auto")
    ap.add_argument("--dir", default="/var/tmp/ringstore-list-bench")
    args = ap.parse_args()

    runs = []
    if args.old_server:
        small = os.path.join(args.dir, "n%d" % args.old_files)
        os.makedirs(small, exist_ok=True)
        made = make_tree(small, args.old_files, args.old_files // args.files_per_dir)
        print(json.dumps({"tree": small, "files": args.old_files, "made_s": round(made, 1)}),
              flush=True)
        for label, binary in (("old", args.old_server), ("new", args.server)):
            runs.append(list_all(binary, label, small, args.old_files, args.page_size,
                                 args.engine))
            print(json.dumps(runs[-1]), flush=True)
    big = os.path.join(args.dir, "n%d" % args.files)
    os.makedirs(big, exist_ok=True)
    made = make_tree(big, args.files, args.files // args.files_per_dir)
    print(json.dumps({"tree": big, "files": args.files, "made_s": round(made, 1)}), flush=True)
    runs.append(list_all(args.server, "new", big, args.files, args.page_size, args.engine))
    print(json.dumps(runs[-1]), flush=True)


if __name__ == "__main__":
    main()
