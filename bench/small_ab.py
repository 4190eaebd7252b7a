#!/usr/bin/env python3
"""Pinned A/B of small downloads: ringstore-server builds (and nginx) on
CPU 0, their client on CPU 1, interleaved rounds, server CPU per request.

  bench/small_ab.py --peer A=/tmp/before/ringstore-server \
      --peer B=bazel-out/k8-opt/bin/server/ringstore-server --nginx \
      --load_gen=bazel-out/k8-opt/bin/bench/load_gen --rounds=3 --duration=8

Each cell starts the server fresh (`taskset -c 0`), runs `load_gen
--mode=download --concurrency=64` (or, for nginx with one worker, `wrk -t1
-c64` with bench/compare_wrk.lua) on CPU 1 (after --warmup seconds unmeasured) over random paths of --count
files of --size bytes (populated once, through the first peer, with
load_gen --mode=populate, as bench/compare.py does), and records req/s, p50
and p99, the server's user+sys CPU from /proc/PID/stat over the cell (nginx:
master and worker) and, with perf, its context switches. --tcmalloc
preloads libtcmalloc_minimal into every ringstore server. A peer may carry
extra server flags after a comma: B=/path/server,--flag=value.
Prints one JSON line per cell and a table of medians. Standard library only.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"
CLK_TCK = os.sysconf("SC_CLK_TCK")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import compare_peers  # noqa: E402

# bench/compare.py's nginx, with one worker.
NGINX_CONF = compare_peers.NGINX_CONF.replace("worker_processes auto;", "worker_processes 1;")
assert "worker_processes 1;" in NGINX_CONF


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pids):
    total = 0
    for pid in pids:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLK_TCK


def thread_cpu(pids):
    """CPU seconds by thread name (digits dropped) of every thread of pids."""
    by = {}
    for pid in pids:
        for tid in os.listdir("/proc/%d/task" % pid):
            try:
                with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                    text = f.read()
            except OSError:
                continue
            name = re.sub(r"[0-9]+", "", text[text.index("(") + 1:text.rindex(")")])
            fields = text.rsplit(")", 1)[1].split()
            by[name] = by.get(name, 0) + (int(fields[11]) + int(fields[12])) / CLK_TCK
    return by


def children(pid):
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def start_ringstore(binary, flags, root, log, tcmalloc):
    env = dict(os.environ)
    if tcmalloc:
        env["LD_PRELOAD"] = TCMALLOC
    logf = open(log, "w")
    proc = subprocess.Popen(["taskset", "-c", "0", binary, "--listen=127.0.0.1:0",
                             "--root=" + root] + flags,
                            stdout=logf, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with open(log) as f:
            m = re.search(r"listening on (\S+):(\d+)", f.read())
        if m:
            return proc, "%s:%s" % (m.group(1), m.group(2)), [proc.pid]
        if proc.poll() is not None:
            sys.exit("server exited: " + open(log).read()[-400:])
        time.sleep(0.05)
    sys.exit("server did not start")


def start_nginx(workdir, root):
    run = os.path.join(workdir, "nginx")
    shutil.rmtree(run, ignore_errors=True)
    os.makedirs(run)
    port = free_port()
    conf = os.path.join(run, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF.format(run=run, port=port, root=root))
    proc = subprocess.Popen(["taskset", "-c", "0", "nginx", "-p", run + "/", "-c", conf,
                             "-e", os.path.join(run, "error.log")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    time.sleep(0.2)
    return proc, "127.0.0.1:%d" % port, [proc.pid] + children(proc.pid)


def populate(args, workdir):
    root = os.path.join(workdir, "root")
    paths = os.path.join(workdir, "paths")
    if os.path.exists(os.path.join(workdir, "complete")):
        return root, paths
    shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(root)
    binary, flags = args.peers[0][1]
    proc, address, _ = start_ringstore(binary, flags, root, os.path.join(workdir, "pop.log"),
                                       False)
    subprocess.run([args.load_gen, "--server=" + address, "--mode=populate",
                    "--count=%d" % args.count, "--upload_size=%d" % args.size,
                    "--upload_prefix=s", "--paths_file=" + paths, "--concurrency=64",
                    "--rpc_timeout=900s"], check=True, capture_output=True)
    proc.send_signal(signal.SIGTERM)
    proc.wait()
    open(os.path.join(workdir, "complete"), "w").close()
    return root, paths


def perf_stat(pids, out):
    return subprocess.Popen(["taskset", "-c", "1", "perf", "stat", "-x,", "-e",
                             "task-clock,context-switches", "-o", out, "-p",
                             ",".join(str(p) for p in pids)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def read_perf(out):
    switches = None
    with open(out) as f:
        for line in f:
            parts = line.strip().split(",")
            if len(parts) > 2 and parts[2] == "context-switches":
                switches = float(parts[0])
    return switches


def cell(args, name, root, paths, workdir):
    if name == "nginx":
        proc, address, pids = start_nginx(workdir, root)
    else:
        binary, flags = dict(args.peers)[name]
        proc, address, pids = start_ringstore(binary, flags, root,
                                              os.path.join(workdir, name + ".log"), args.tcmalloc)
    time.sleep(0.3)
    if args.warmup and name != "nginx":
        # Unmeasured: the server learns every file's metadata once.
        subprocess.run(["taskset", "-c", "1", args.load_gen, "--server=" + address,
                        "--mode=download", "--concurrency=64",
                        "--duration=%ds" % args.warmup, "--paths_file=" + paths],
                       capture_output=True, check=True)
    perf = perf_stat(pids, os.path.join(workdir, "perf.out")) if args.perf else None
    if perf:
        time.sleep(0.5)
    cpu0 = cpu_seconds(pids)
    threads0 = thread_cpu(pids)
    if name == "nginx":
        env = dict(os.environ, COMPARE_PATHS=paths)
        out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", "-c64",
                              "-d%ds" % args.duration, "--latency", "-s",
                              os.path.join(HERE, "compare_wrk.lua"), "http://%s/" % address],
                             capture_output=True, text=True, env=env, check=True).stdout
        w = json.loads(re.search(r"^WRKJSON (\{.*\})$", out, re.M).group(1))
        requests = w["requests"]
        rps = requests / (w["duration_us"] / 1e6)
        p50, p99 = w["latency_us"]["p50"] / 1e3, w["latency_us"]["p99"] / 1e3
        errors = sum(w["errors"].values())
    else:
        out = subprocess.run(["taskset", "-c", "1", args.load_gen, "--server=" + address,
                              "--mode=download", "--concurrency=64",
                              "--duration=%ds" % args.duration, "--paths_file=" + paths],
                             capture_output=True, text=True, check=True).stdout
        j = json.loads(out.strip().splitlines()[-1])
        requests, rps = j["requests"], j["requests_per_second"]
        p50, p99 = j["latency_ms"]["p50"], j["latency_ms"]["p99"]
        errors = j["errors"]["count"]
    cpu = cpu_seconds(pids) - cpu0
    threads = {k: round((v - threads0.get(k, 0)) / requests * 1e6, 2)
               for k, v in thread_cpu(pids).items() if v - threads0.get(k, 0) > 0}
    switches = None
    if perf:
        perf.send_signal(signal.SIGINT)
        perf.wait()
        switches = read_perf(os.path.join(workdir, "perf.out"))
    proc.send_signal(signal.SIGTERM if name != "nginx" else signal.SIGQUIT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return {"peer": name, "rps": round(rps), "p50_ms": p50, "p99_ms": p99,
            "cpu_us_per_req": round(cpu / requests * 1e6, 2),
            "cs_per_req": round(switches / requests, 3) if switches is not None else None,
            "requests": requests, "errors": errors, "thread_us_per_req": threads}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peer", action="append", default=[], help="NAME=BINARY[,FLAG...]")
    ap.add_argument("--nginx", action="store_true")
    ap.add_argument("--load_gen", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--tcmalloc", action="store_true")
    ap.add_argument("--warmup", type=int, default=0,
                    help="seconds of unmeasured downloads before each ringstore cell")
    ap.add_argument("--perf", action="store_true")
    ap.add_argument("--workdir", default="/tmp/small_ab")
    args = ap.parse_args()
    args.peers = []
    for p in args.peer:
        name, spec = p.split("=", 1)
        parts = spec.split(",")
        args.peers.append((name, (os.path.abspath(parts[0]), parts[1:])))
    data = os.path.join(args.workdir, "data-%d-%d" % (args.count, args.size))
    root, paths = populate(args, data)
    names = [n for n, _ in args.peers] + (["nginx"] if args.nginx else [])
    results = {n: [] for n in names}
    for rnd in range(args.rounds):
        for name in names:
            r = cell(args, name, root, paths, args.workdir)
            r["round"] = rnd
            print(json.dumps(r), flush=True)
            results[name].append(r)
    keys = ("rps", "p50_ms", "p99_ms", "cpu_us_per_req", "cs_per_req")
    print("medians over %d rounds%s:" % (args.rounds, " (tcmalloc)" if args.tcmalloc else ""))
    for name in names:
        med = {}
        for k in keys:
            vals = [r[k] for r in results[name] if r[k] is not None]
            med[k] = statistics.median(vals) if vals else None
        print("  %-8s %s   per round cpu µs/req: %s" % (
            name, "  ".join("%s=%s" % (k, med[k]) for k in keys),
            [r["cpu_us_per_req"] for r in results[name]]))


if __name__ == "__main__":
    main()
