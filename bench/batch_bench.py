#!/usr/bin/python3
"""BatchDownload against nginx on many small files: ringstore-server serving
`load_gen --mode=batch` (files/s) and nginx (worker_processes 1) serving wrk
with bench/compare_wrk.lua (requests/s, one file each), over the same files,
the server pinned to CPU 0 and the client to CPU 1, rounds interleaved.
Prints one JSON line per cell (with the server's CPU seconds from
/proc/PID/stat, children included for nginx) and a summary of medians.

  bench/batch_bench.py --bin=bazel-out/k8-opt/bin --dir=/var/tmp/rs-batch \\
      --count=10000 --size=4096 --rounds=3 --seconds=10 --batch_size=100

Populates --dir once through ringstore (load_gen --mode=populate)."""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# The server's and the client's command prefixes (main() adds --nice).
PIN = [["taskset", "-c", "0"], ["taskset", "-c", "1"]]

NGINX_CONF = """daemon off;
master_process on;
worker_processes 1;
pid {run}/nginx.pid;
error_log {run}/error.log warn;
events {{ }}
http {{
    default_type application/octet-stream;
    sendfile on;
    access_log off;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{ }}
    }}
}}
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cpu_seconds(pids):
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except OSError:
            pass
    return total / tick


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def start_ringstore(args, root, extra, binary=None):
    proc = subprocess.Popen(
        PIN[0] + [binary or os.path.join(args.bin, "server/ringstore-server"),
         "--listen=127.0.0.1:0", "--root=" + root, "--engine=" + args.engine] + extra,
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    line = proc.stdout.readline().decode()
    m = re.search(r"listening on (\S+) engine=(\w+)", line)
    if not m:
        proc.kill()
        raise SystemExit("server did not start: %r" % line)
    return proc, m.group(1), m.group(2)


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def populate(args, root, paths):
    if os.path.exists(paths + ".complete"):
        return
    shutil.rmtree(args.dir, ignore_errors=True)
    os.makedirs(root)
    proc, address, _ = start_ringstore(args, root, [])
    try:
        subprocess.run([os.path.join(args.bin, "bench/load_gen"), "--server=" + address,
                        "--mode=populate", "--count=%d" % args.count,
                        "--upload_size=%d" % args.size, "--upload_prefix=small",
                        "--paths_file=" + paths, "--concurrency=64"],
                       check=True, stdout=subprocess.DEVNULL)
    finally:
        stop(proc)
    open(paths + ".complete", "w").close()


def cell_ringstore(args, root, paths, binary=None):
    proc, address, engine = start_ringstore(args, root, args.server_flag or [], binary)
    try:
        cpu0 = cpu_seconds([proc.pid])
        out = subprocess.run(
            PIN[1] + [os.path.join(args.bin, "bench/load_gen"),
             "--server=" + address, "--mode=batch", "--batch_size=%d" % args.batch_size,
             "--concurrency=%d" % args.concurrency, "--duration=%ds" % args.seconds,
             "--paths_file=" + paths], check=True, capture_output=True).stdout
        cpu = cpu_seconds([proc.pid]) - cpu0
    finally:
        stop(proc)
    j = json.loads(out)
    errors = j["errors"]["count"]
    return {"peer": "ringstore-" + engine, "files_per_second": j["files_per_second"],
            "calls_per_second": j["requests_per_second"], "errors": errors,
            "call_p50_ms": j["latency_ms"]["p50"], "call_p99_ms": j["latency_ms"]["p99"],
            "server_cpu_us_per_file": 1e6 * cpu / max(1, j["files"])}


def cell_nginx(args, root, paths):
    run = os.path.join(args.dir, "nginx")
    shutil.rmtree(run, ignore_errors=True)
    os.makedirs(run)
    port = free_port()
    conf = os.path.join(run, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF.format(run=run, port=port, root=root))
    proc = subprocess.Popen(PIN[0] + ["nginx", "-p", run + "/", "-c", conf,
                             "-e", os.path.join(run, "error.log")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        pids = [proc.pid] + children(proc.pid)
        cpu0 = cpu_seconds(pids)
        env = dict(os.environ, COMPARE_PATHS=paths)
        out = subprocess.run(
            PIN[1] + ["wrk", "-t2", "-c%d" % args.connections,
             "-d%ds" % args.seconds, "-s", os.path.join(HERE, "compare_wrk.lua"),
             "http://127.0.0.1:%d/" % port], check=True, capture_output=True, env=env).stdout
        cpu = cpu_seconds(pids) - cpu0
    finally:
        stop(proc)
    w = json.loads(re.search(rb"^WRKJSON (\{.*\})$", out, re.M).group(1))
    rps = w["requests"] / (w["duration_us"] / 1e6)
    return {"peer": "nginx", "requests_per_second": rps,
            "errors": sum(w["errors"].values()),
            "p50_ms": w["latency_us"]["p50"] / 1e3,
            "server_cpu_us_per_file": 1e6 * cpu / max(1, w["requests"])}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", default="bazel-out/k8-opt/bin")
    p.add_argument("--dir", default="/var/tmp/rs-batch")
    p.add_argument("--engine", default="io_uring")
    p.add_argument("--count", type=int, default=10000)
    p.add_argument("--size", type=int, default=4096)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--batch_size", type=int, default=100)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--server_flag", action="append", help="extra ringstore-server flag")
    p.add_argument("--nice", type=int, default=0,
                   help="run every server and client under nice -n N (the same for all peers)")
    p.add_argument("--peers", default="ringstore,nginx",
                   help="ringstore, nginx, or LABEL=PATH: ringstore-server at PATH (A/B)")
    args = p.parse_args()
    if args.nice:
        for prefix in PIN:
            prefix[:0] = ["nice", "-n", str(args.nice)]
    root = os.path.join(args.dir, "root")
    paths = os.path.join(args.dir, "paths")
    populate(args, root, paths)
    cells = {"ringstore": cell_ringstore, "nginx": cell_nginx}
    results = {}
    for rnd in range(args.rounds):
        for peer in args.peers.split(","):
            if "=" in peer:
                peer, binary = peer.split("=", 1)
                r = cell_ringstore(args, root, paths, binary)
                r["peer"] = peer
            else:
                r = cells[peer](args, root, paths)
            r["round"] = rnd
            print(json.dumps(r), flush=True)
            results.setdefault(peer, []).append(
                r.get("files_per_second", r.get("requests_per_second")))
    med = {peer: statistics.median(v) for peer, v in results.items()}
    summary = {"median_files_per_second": med, "rounds": results}
    if "ringstore" in med and "nginx" in med:
        summary["ratio_ringstore_to_nginx"] = med["ringstore"] / med["nginx"]
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
