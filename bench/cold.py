"""Cold data: downloads of files that are not in the page cache.

64 concurrent downloads of random files out of a set (10,000 of 64 KiB,
2,000 of 1 MiB), each cell --seconds long, the page cache dropped (sync;
echo 3 > /proc/sys/vm/drop_caches: data, directory entries and inodes)
just before it; the server on --server_cpu, the client on --client_cpu
(taskset). Peers: ringstore-ENGINE (load_gen), nginx as bench/compare.py
ships it but with one worker (sendfile), and nginx-aio (the same with
`aio threads;`), both with wrk; more ringstore variants with
--variant LABEL=SERVER_BINARY[,FLAG...]. Rounds interleave every peer.

Read the disk columns first: with these sets an 8 s cell at thousands of
requests/s touches every file, so the disk reads each file once (disk
reads per cell = about the file count for every peer) and the rest of the
cell is served warm; the peers then differ by their per-request cost. A
set much larger than a cell can touch measures the disk itself.

Per cell: requests/s, MiB/s, p99, the server's CPU per request (user+sys
of every thread: io-wq workers and the SQ thread are threads of the
server), the most io-wq workers (iou-wrk threads) seen at once and how
many were busy on average (not waiting for work), and the
disk's figures from /proc/diskstats: reads/s, the average queue depth
(Δ weighted ms in queue / Δ ms) and the mean read size.

  sudo bench/cold.sh --rounds=3            # builds, then runs this
  python3 bench/cold.py --bins=DIR --dir=/var/tmp/ringstore-cold ...

The data set is uploaded once under --dir/root through ringstore (load_gen
populate), so its files carry ringstore's metadata attribute; nginx serves
the same files. Only the standard library, and bench/compare_peers
(read-only reuse of its process helpers and nginx configuration).
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_peers as cp  # noqa: E402

SETS = {"64k": (10000, 64 << 10), "1m": (2000, 1 << 20), "4k": (10000, 4 << 10)}


def disk_of(path):
    """The whole-disk name in /proc/diskstats that holds `path` (vda...)."""
    dev = os.stat(path).st_dev
    major, minor = os.major(dev), os.minor(dev)
    base = "/sys/dev/block/%d:%d" % (major, minor)
    real = os.path.realpath(base)
    if os.path.exists(os.path.join(real, "partition")):
        real = os.path.dirname(real)
    return os.path.basename(real)


def diskstats(disk):
    """(reads, sectors read, weighted ms in queue) of `disk`."""
    with open("/proc/diskstats") as f:
        for line in f:
            v = line.split()
            if v[2] == disk:
                return int(v[3]), int(v[5]), int(v[13])
    raise cp.Fail("no %s in /proc/diskstats" % disk)


def make_set(run, args, root, name, count, size):
    """Uploads `count` files of `size` bytes as NAME/... through a ringstore
    server (so they carry its metadata attribute, as real ones do), once;
    returns the file listing their paths."""
    paths = os.path.join(args.dir, "paths-%s.txt" % name)
    if os.path.exists(paths):
        return paths
    server = RingstorePeer(run, "populate", root, run.bins["ringstore"], [], args.server_cpu)
    server.start()
    try:
        cp.client_run([run.bins["load_gen"], "--server=" + server.address, "--mode=populate",
                       "--count=%d" % count, "--upload_size=%d" % size, "--upload_prefix=" + name,
                       "--concurrency=16", "--paths_file=" + paths + ".tmp"], 3600)
    finally:
        server.stop()
    os.rename(paths + ".tmp", paths)
    return paths


def threads_cpu_s(pid, prefix):
    """user+sys seconds of the threads of `pid` whose name starts with
    `prefix` (iou-sqp: the SQ thread)."""
    total = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                if not f.read().startswith(prefix):
                    continue
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                v = f.read().rsplit(")", 1)[1].split()
            total += (int(v[11]) + int(v[12])) / cp.CLK_TCK
        except OSError:
            pass
    return total


def drop_caches():
    subprocess.run(["sync"], check=True)
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def thread_names(pid):
    out = []
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                out.append(f.read().strip())
        except OSError:
            pass
    return out


class Sampler(threading.Thread):
    """Every 50 ms: how many io-wq workers (iou-wrk threads) the server pids
    have, and how many of them are busy (their kernel stack, which root can
    read, is anywhere but io_wq_worker's wait for work)."""

    def __init__(self, pids):
        super().__init__(daemon=True)
        self.pids, self.most, self.samples, self.total, self.busy = pids, 0, 0, 0, 0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.wait(0.05):
            n = busy = 0
            for pid in self.pids:
                try:
                    tids = os.listdir("/proc/%d/task" % pid)
                except OSError:
                    continue
                for tid in tids:
                    base = "/proc/%d/task/%s/" % (pid, tid)
                    try:
                        with open(base + "comm") as f:
                            if not f.read().startswith("iou-wrk"):
                                continue
                        with open(base + "stack") as f:
                            top = f.readline()
                    except OSError:
                        continue
                    n += 1
                    busy += 0 if " io_wq_worker+" in top else 1
            self.most = max(self.most, n)
            self.samples += 1
            self.total += n
            self.busy += busy


class Run:
    """What compare_peers' servers need of a run."""

    def __init__(self, args, children):
        self.dir = args.dir
        self.children = children
        self.logdir = os.path.join(args.dir, "logs")
        os.makedirs(self.logdir, exist_ok=True)
        self.bins = {"ringstore": os.path.join(args.bins, "ringstore-server"),
                     "load_gen": os.path.join(args.bins, "load_gen"), "nginx": "nginx"}


def pinned(cpu, cmd):
    return ["taskset", "-c", str(cpu)] + cmd


class RingstorePeer(cp.GrpcServer):
    def __init__(self, run, label, root, binary, flags, server_cpu):
        super().__init__(run, label, root, engine="auto")
        self.engine = None
        self.cmd = pinned(server_cpu, [binary, "--listen=127.0.0.1:0", "--root=" + root] + flags)

    def pid(self):
        # taskset execs the server: the same process.
        return self.proc.pid


class NginxPeer(cp.NginxServer):
    def __init__(self, run, label, root, aio, server_cpu):
        super().__init__(run, label, root)
        self.rundir = os.path.join(run.dir, "run", label)
        self.aio, self.server_cpu = aio, server_cpu

    def start(self):
        conf = re.sub(r"worker_processes \w+;", "worker_processes 1;", cp.NGINX_CONF)
        if self.aio:
            conf = conf.replace("sendfile on;", "sendfile on;\n    aio threads;")
        saved = cp.NGINX_CONF
        cp.NGINX_CONF = conf
        try:
            super().start()
        finally:
            cp.NGINX_CONF = saved
        for pid in self.cpu_pids():
            subprocess.run(["taskset", "-a", "-p", "-c", str(self.server_cpu), str(pid)],
                           check=True, capture_output=True)


def make_peers(run, args, root):
    peers = []
    for name in args.peers.split(","):
        if name.startswith("ringstore-"):
            peers.append(RingstorePeer(run, name, root, run.bins["ringstore"],
                                       ["--engine=" + name.split("-", 1)[1]] + args.server_flags,
                                       args.server_cpu))
        elif name in ("nginx", "nginx-aio"):
            peers.append(NginxPeer(run, name, root, name == "nginx-aio", args.server_cpu))
        else:
            raise SystemExit("unknown peer " + name)
    for v in args.variant:
        label, spec = v.split("=", 1)
        parts = spec.split(",")
        peers.append(RingstorePeer(run, label, root, parts[0], parts[1:] + args.server_flags,
                                   args.server_cpu))
    return peers


def client(args, peer, paths, seconds=None):
    seconds = seconds or args.seconds
    if isinstance(peer, NginxPeer):
        env = dict(os.environ, COMPARE_PATHS=paths)
        lua = os.path.join(os.path.dirname(os.path.abspath(__file__)), "compare_wrk.lua")
        cmd = pinned(args.client_cpu, ["wrk", "-t1", "-c%d" % args.concurrency,
                                       "--timeout", "60s", "-d%ds" % seconds, "-s", lua,
                                       peer.url("")])
        out, _, _ = cp.client_run(cmd, seconds + 60, env=env)
        m = re.search(r"WRKJSON (\{.*\})", out)
        j = json.loads(m.group(1))
        bad = sum(j["errors"].values())
        if bad:
            raise cp.Fail("wrk errors: %r" % j["errors"])
        secs = j["duration_us"] / 1e6
        return j["requests"], j["bytes"], secs, j["latency_us"]["p99"] / 1000
    cmd = pinned(args.client_cpu, [run_bins(args)["load_gen"], "--server=" + peer.address,
                                   "--mode=download", "--paths_file=" + paths,
                                   "--concurrency=%d" % args.concurrency,
                                   "--duration=%ds" % seconds])
    out, _, _ = cp.client_run(cmd, seconds + 60)
    j = json.loads(out.strip().splitlines()[-1])
    if j["errors"]["count"]:
        raise cp.Fail("load_gen errors: %r" % j["errors"])
    return j["requests"], j["bytes"], j["seconds"], j["latency_ms"]["p99"]


def run_bins(args):
    return {"load_gen": os.path.join(args.bins, "load_gen")}


def cell(args, peer, paths, disk):
    pids = peer.cpu_pids()
    if args.warm:
        client(args, peer, paths, seconds=2)  # every file read once or more
    else:
        drop_caches()
    time.sleep(0.5)
    cpu0 = sum(cp.proc_cpu_s(p) for p in pids)
    sq0 = threads_cpu_s(pids[0], "iou-sqp")
    d0, t0 = diskstats(disk), time.monotonic()
    sampler = Sampler(pids)
    sampler.start()
    requests, nbytes, secs, p99 = client(args, peer, paths)
    sampler.stop.set()
    sampler.join()
    d1, t1 = diskstats(disk), time.monotonic()
    cpu = sum(cp.proc_cpu_s(p) for p in pids) - cpu0
    sq = threads_cpu_s(pids[0], "iou-sqp") - sq0
    ms = (t1 - t0) * 1000
    reads = d1[0] - d0[0]
    return {"rps": requests / secs, "mib_s": nbytes / secs / (1 << 20), "p99_ms": p99,
            "cpu_us_per_req": cpu * 1e6 / max(requests, 1),
            "sq_thread_us_per_req": sq * 1e6 / max(requests, 1),
            "iowq_max": sampler.most, "iowq_mean": sampler.total / max(sampler.samples, 1),
            "iowq_busy_mean": sampler.busy / max(sampler.samples, 1),
            "disk_reads_s": reads / (ms / 1000), "disk_qd": (d1[2] - d0[2]) / ms,
            "disk_read_kib": (d1[1] - d0[1]) * 512 / 1024 / max(reads, 1)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bins", required=True, help="dir with ringstore-server and load_gen")
    ap.add_argument("--dir", default="/var/tmp/ringstore-cold")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--sets", default="64k,1m")
    ap.add_argument("--peers", default="ringstore-io_uring,ringstore-posix_aio,"
                    "ringstore-thread_pool,nginx,nginx-aio")
    ap.add_argument("--variant", action="append", default=[],
                    help="LABEL=SERVER_BINARY[,FLAG...]: one more ringstore peer")
    ap.add_argument("--server_flag", dest="server_flags", action="append", default=[])
    ap.add_argument("--warm", action="store_true",
                    help="no cache drop: each cell after a 2 s warm-up of the same load")
    ap.add_argument("--server_cpu", type=int, default=0)
    ap.add_argument("--client_cpu", type=int, default=1)
    ap.add_argument("--out", default=None, help="JSON lines, one per cell")
    args = ap.parse_args()
    root = os.path.join(args.dir, "root")
    os.makedirs(root, exist_ok=True)
    disk = disk_of(root)
    children = cp.Children(None)
    run = Run(args, children)
    out = open(args.out or os.path.join(args.dir, "cold.jsonl"), "a")
    results = {}
    try:
        for set_name in args.sets.split(","):
            count, size = SETS[set_name]
            paths = make_set(run, args, root, set_name, count, size)
            peers = make_peers(run, args, root)
            for rnd in range(1, args.rounds + 1):
                for peer in peers:
                    try:
                        peer.start()
                        r = cell(args, peer, paths, disk)
                    except cp.Fail as e:
                        r = {"error": str(e)}
                    finally:
                        peer.stop()
                    r.update({"set": set_name, "peer": peer.peer, "round": rnd})
                    out.write(json.dumps(r) + "\n")
                    out.flush()
                    print(json.dumps(r), flush=True)
                    results.setdefault((set_name, peer.peer), []).append(r)
    finally:
        children.stop_all()
    report(results)


def report(results):
    print("\n%-5s %-26s %9s %8s %8s %9s %6s %9s %8s %6s %s" % (
        "set", "peer", "req/s", "MiB/s", "p99 ms", "cpu us/rq", "sq us", "iowq busy", "disk r/s",
        "qd",
        "per round req/s; cpu us/rq"))
    for (s, peer), rows in results.items():
        ok = [r for r in rows if "error" not in r]
        if not ok:
            print("%-5s %-26s %s" % (s, peer, rows[0]["error"]))
            continue

        def med(k):
            vals = [r[k] for r in ok if r.get(k) is not None]
            return statistics.median(vals) if vals else float("nan")
        print("%-5s %-26s %9.0f %8.1f %8.1f %9.1f %6.1f %4.1f/%-4.0f %8.0f %6.1f %s; %s" % (
            s, peer, med("rps"), med("mib_s"), med("p99_ms"), med("cpu_us_per_req"),
            med("sq_thread_us_per_req"), med("iowq_busy_mean"), med("iowq_max"),
            med("disk_reads_s"), med("disk_qd"),
            " ".join("%.0f" % r["rps"] for r in ok),
            " ".join("%.1f" % r["cpu_us_per_req"] for r in ok)))


if __name__ == "__main__":
    main()
