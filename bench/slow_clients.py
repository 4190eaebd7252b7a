#!/usr/bin/python3
"""1000 slow clients (issue 14, point 7): the server's memory and everybody
else's service while --streams downloads of a 1 GiB file are read slowly.

For each round and each server binary (A, and B if --b_server is given,
interleaved A B A B ...), two phases, each on a fresh ringstore-server
pinned to CPU 0 (`taskset -c 0`), every client pinned to CPU 1:
  alone  the fast client alone: load_gen downloads of random 4 KiB files
         (--concurrency=8 for --fast_seconds), then one 1 GiB download;
  slow   bench/slow_clients opens --streams Downloads of the 1 GiB file
         (one message every --read_interval each), waits --ramp_seconds, and
         the fast client runs the same two loads meanwhile; the slow streams
         run for --slow_seconds in all.
The server's VmRSS and VmHWM are sampled from /proc every 0.5 s. Prints a
table (peak RSS, RSS over time, the fast client's req/s and p99 and the
1 GiB download's MiB/s with and without the slow load, slow streams alive
at the end, errors, server CPU) and writes every figure as JSON lines to
DIR/slow_clients.jsonl.

The server runs with its default flags (64 buffers of 1 MiB,
--idle_timeout=60s) plus --server_args. Slow readers read, so the idle
timeout does not end them: "alive at end" says whether it did.

Usage: bench/slow_clients.py [--rounds=3] [--b_server=PATH] [--streams=1000]
  (build first: bazel build -c opt //server:ringstore-server //bench:load_gen
  //bench:slow_clients)
Reuses bench/compare_peers.py's process and /proc helpers. Only the
standard library.
"""

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_peers as peers  # noqa: E402

KiB, MiB, GiB = peers.KiB, peers.MiB, peers.GiB
SMALL_FILES = 1000
BIG = "big/1g"


class Run:
    """What compare_peers.GrpcServer expects of a run."""

    def __init__(self, args):
        self.dir = args.dir
        self.logdir = os.path.join(args.dir, "logs")
        os.makedirs(self.logdir, exist_ok=True)
        self.children = peers.Children(None)
        self.bins = {}


class Sampler:
    """VmRSS and VmHWM of `pid` every 0.5 s, on a thread, until stop()."""

    def __init__(self, pid):
        self.pid, self.samples, self.t0 = pid, [], time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self):
        while not self._stop.is_set():
            try:
                rss = peers.proc_field_kib(self.pid, "VmRSS") / 1024.0
                hwm = peers.proc_field_kib(self.pid, "VmHWM") / 1024.0
            except OSError:
                return
            self.samples.append((time.monotonic() - self.t0, rss, hwm))
            self._stop.wait(0.5)

    def stop(self):
        self._stop.set()
        self._thread.join()
        return self.samples


def make_data(root):
    """SMALL_FILES random 4 KiB files and one 1 GiB file (random MiB blocks
    repeated), made once; returns the small files' paths file."""
    paths_file = os.path.join(os.path.dirname(root), "small_paths.txt")
    big = os.path.join(root, BIG)
    if os.path.exists(paths_file) and os.path.getsize(big) == GiB:
        return paths_file
    rng = random.Random(14)
    os.makedirs(os.path.join(root, "small"), exist_ok=True)
    names = []
    for i in range(SMALL_FILES):
        name = "small/%04d" % i
        with open(os.path.join(root, name), "wb") as f:
            f.write(rng.randbytes(4 * KiB))
        names.append(name)
    os.makedirs(os.path.dirname(big), exist_ok=True)
    blocks = [rng.randbytes(MiB) for _ in range(16)]
    with open(big + ".tmp", "wb") as f:
        for i in range(1024):
            f.write(blocks[i % 16])
    os.rename(big + ".tmp", big)
    with open(paths_file, "w") as f:
        f.write("\n".join(names) + "\n")
    return paths_file


def load_gen(args, address, *extra):
    cmd = ["taskset", "-c", "1", args.load_gen, "--server=" + address, "--rpc_timeout=600s"]
    out, _, cpu = peers.client_run(cmd + list(extra), timeout=900)
    r = json.loads(out)
    r["client_cpu_s"] = cpu
    return r


def fast_client(args, address, paths_file):
    """The fast client's two loads: 4 KiB files, then one 1 GiB download."""
    small = load_gen(args, address, "--paths_file=" + paths_file, "--concurrency=8",
                     "--duration=%ds" % args.fast_seconds)
    big = load_gen(args, address, "--path=" + BIG, "--concurrency=1", "--count=1",
                   "--duration=0")
    return {"small_rps": small["requests_per_second"],
            "small_p99_ms": small["latency_ms"]["p99"],
            "small_p50_ms": small["latency_ms"]["p50"],
            "small_errors": small["errors"]["count"],
            "big_mib_s": big["throughput_mib_s"], "big_seconds": big["seconds"],
            "big_errors": big["errors"]["count"]}


def phase(args, run, variant, binary, phase_name, paths_file):
    """One server, one phase; returns its figures."""
    run.bins["ringstore"] = binary
    server = peers.GrpcServer(run, "ringstore-auto", os.path.join(args.dir, "root"), "auto")
    server.cmd = ["taskset", "-c", "0"] + server.cmd + args.server_args
    server.start()
    pid = server.proc.pid
    time.sleep(0.5)
    sampler = Sampler(pid)
    cpu0 = peers.proc_cpu_s(pid)
    slow, slow_proc = None, None
    try:
        if phase_name == "slow":
            slow_cmd = ["taskset", "-c", "1", args.slow_clients, "--server=" + server.address,
                        "--path=" + BIG, "--streams=%d" % args.streams,
                        "--channels=%d" % args.channels, "--read_interval=" + args.read_interval,
                        "--duration=%ds" % args.slow_seconds]
            slow_proc = subprocess.Popen(slow_cmd, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE)
            time.sleep(args.ramp_seconds)
            slow_cpu0 = peers.proc_cpu_s(slow_proc.pid)
        fast_t0 = time.monotonic()
        fast = fast_client(args, server.address, paths_file)
        fast["seconds"] = time.monotonic() - fast_t0
        if slow_proc is not None:
            # What slow_clients took of the fast client's core meanwhile.
            fast["slow_clients_cpu_s"] = peers.proc_cpu_s(slow_proc.pid) - slow_cpu0
        if slow_proc is not None:
            out, err = slow_proc.communicate(timeout=args.slow_seconds + 300)
            if slow_proc.returncode != 0:
                raise peers.Fail("slow_clients exited %d: %s" % (slow_proc.returncode,
                                                                 err.decode()[-400:]))
            slow = json.loads(out)
        cpu = peers.proc_cpu_s(pid) - cpu0
    finally:
        if slow_proc is not None and slow_proc.poll() is None:
            slow_proc.kill()
            slow_proc.wait()
        samples = sampler.stop()
        rc = server.stop()
    return {"variant": variant, "phase": phase_name, "server_rc": rc,
            "peak_rss_mib": max(s[1] for s in samples),
            "hwm_mib": max(s[2] for s in samples),
            "rss_over_time": [(round(t, 1), round(r, 1)) for t, r, _ in samples],
            "server_cpu_s": cpu, "fast": fast, "slow": slow}


def med(rows, key):
    vals = [key(r) for r in rows]
    return statistics.median(vals) if vals else float("nan"), vals


def report(results, variants):
    lines = []
    for variant in variants:
        alone = [r for r in results if r["variant"] == variant and r["phase"] == "alone"]
        slow = [r for r in results if r["variant"] == variant and r["phase"] == "slow"]
        lines.append("== %s: medians [per round]" % variant)
        for label, key in [
                ("server VmHWM MiB", lambda r: r["hwm_mib"]),
                ("4 KiB req/s", lambda r: r["fast"]["small_rps"]),
                ("4 KiB p99 ms", lambda r: r["fast"]["small_p99_ms"]),
                ("1 GiB download MiB/s", lambda r: r["fast"]["big_mib_s"]),
                ("fast client errors", lambda r: r["fast"]["small_errors"] +
                 r["fast"]["big_errors"]),
                ("server CPU s", lambda r: r["server_cpu_s"]),
                ("fast run s", lambda r: r["fast"]["seconds"]),
                ("slow_clients CPU s", lambda r: r["fast"].get("slow_clients_cpu_s", 0))]:
            ma, va = med(alone, key)
            ms, vs = med(slow, key)
            ratio = ms / ma if ma else float("nan")
            lines.append("  %-22s alone %10.2f %-28s slow %10.2f %-28s slow/alone %.2f" % (
                label, ma, fmt(va), ms, fmt(vs), ratio))
        for r in slow:
            s = r["slow"]
            lines.append("  slow streams: %d opened, %d started, %d alive at end, ended early "
                         "%s, %.1f MiB received (%.0f KiB median a stream), largest message "
                         "%d KiB, offset errors %d" % (
                             s["streams"], s["started"], s["alive_at_end"],
                             json.dumps(s["ended_early"]), s["bytes"] / MiB,
                             s["bytes_per_stream"]["p50"] / KiB,
                             s["max_message_bytes"] // KiB, s["offset_errors"]))
            every = max(1, len(r["rss_over_time"]) // 16)
            lines.append("  RSS over time (s, MiB): " + " ".join(
                "%g:%g" % p for p in r["rss_over_time"][::every]))
    return "\n".join(lines)


def fmt(vals):
    return "[" + " ".join("%.4g" % v for v in vals) + "]"


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    opt = os.path.join(os.path.dirname(here), "bazel-out", "k8-opt", "bin")
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--server", default=os.path.join(opt, "server", "ringstore-server"))
    p.add_argument("--b_server", default="", help="a second server binary, interleaved")
    p.add_argument("--load_gen", default=os.path.join(opt, "bench", "load_gen"))
    p.add_argument("--slow_clients", default=os.path.join(opt, "bench", "slow_clients"))
    p.add_argument("--dir", default="/tmp/slow_clients")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--streams", type=int, default=1000)
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--read_interval", default="500ms")
    p.add_argument("--slow_seconds", type=int, default=60)
    p.add_argument("--ramp_seconds", type=int, default=15)
    p.add_argument("--fast_seconds", type=int, default=10)
    p.add_argument("--server_args", default="", help="extra server flags, space-separated")
    p.add_argument("--phases", default="alone,slow")
    args = p.parse_args()
    args.server_args = args.server_args.split()
    os.makedirs(args.dir, exist_ok=True)
    paths_file = make_data(os.path.join(args.dir, "root"))
    shutil.rmtree(os.path.join(args.dir, "root", ".ringstore"), ignore_errors=True)
    variants = [("A", args.server)] + ([("B", args.b_server)] if args.b_server else [])
    run = Run(args)
    results = []
    out = open(os.path.join(args.dir, "slow_clients.jsonl"), "a")
    try:
        for rnd in range(args.rounds):
            for variant, binary in variants:
                for ph in args.phases.split(","):
                    r = phase(args, run, variant, binary, ph, paths_file)
                    r["round"] = rnd
                    results.append(r)
                    out.write(json.dumps(r) + "\n")
                    out.flush()
                    print("round %d %s %s: VmHWM %.1f MiB, 4 KiB %.0f req/s p99 %.2f ms, "
                          "1 GiB %.0f MiB/s%s" % (
                              rnd, variant, ph, r["hwm_mib"], r["fast"]["small_rps"],
                              r["fast"]["small_p99_ms"], r["fast"]["big_mib_s"],
                              "" if r["slow"] is None else ", %d slow alive" %
                              r["slow"]["alive_at_end"]), flush=True)
    finally:
        run.children.stop_all()
        out.close()
    print(report(results, [v for v, _ in variants]))


if __name__ == "__main__":
    main()
