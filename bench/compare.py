#!/usr/bin/python3
"""The runner behind bench/compare.sh (read its header first): ringstore with
each engine against bench/baseline_server and nginx, plus iperf3 and fio as
physical references, interleaved on loopback, on one machine.

One run = setup, then --rounds rounds; each round runs every case for every
peer, the peers in an order rotated by one each round, then the references.
Every (case, peer) cell starts a fresh server, runs one client, reads the
server's peak RSS (VmHWM; for nginx the sum over its workers) and CPU time
from /proc, and stops the server, so each figure belongs to that case only.

Setup (reused by later runs with the same sizes): one ringstore server
populates <dir>/data-<size>-<count>/root through load_gen (the big file and
the two sets of small files, durable uploads with their metadata); each peer
then gets its own root under <dir>/roots/ holding hard links to those files,
so all peers read the same inodes. Everything is read once before round 1,
so every peer reads from the page cache (the fio --direct=1 rows show the
disk itself), except in the cold cases (compare_cold.py), which drop the
cache before each cell; the data set is then read again before the next
round.

Records: one JSON object a line in <dir>/results/compare-<stamp>.jsonl (a
"meta" record, a "round" record per round, a "cell" record per case and
peer, a "ref" record per reference and round); bench/compare_report.py turns
them into the markdown tables.

The work is split along its seams: compare_peers.py (processes and the
servers measured), compare_cases.py (the client runs and one cell),
compare_cold.py (the cold cases), compare_refs.py (iperf3 and fio); this
file holds the run itself: setup, rounds, records and the command line.

Only the standard library; run with /usr/bin/python3.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_cold  # noqa: E402  (registers the cold cases)
import compare_peers  # noqa: E402
import compare_report  # noqa: E402
from compare_cases import (BATCH_CONCURRENCY, BATCH_SIZE, CASES, SMALL_SIZES,  # noqa: E402
                           run_cell, runs)
from compare_peers import (GiB, MiB, Children, Fail, GrpcServer, all_peers,  # noqa: E402
                           client_run)
from compare_refs import references  # noqa: E402


# -------------------------------------------------------------------- setup

class Run:
    def __init__(self, args, children):
        self.args = args
        self.children = children
        self.dir = os.path.abspath(args.dir)
        self.quick = args.quick
        self.big_bytes = 64 * MiB if args.quick else GiB
        self.small_count = 1000 if args.quick else 10000
        self.duration_s = args.duration or (3 if args.quick else 10)
        self.iperf_s = 2 if args.quick else 5
        self.fio_rand_s = 2 if args.quick else 5
        self.bins = {"ringstore": args.ringstore, "baseline": args.baseline,
                     "load_gen": args.load_gen, "cli": args.cli,
                     "nginx": shutil.which("nginx") or "/usr/sbin/nginx",
                     "curl": shutil.which("curl"), "wrk": shutil.which("wrk"),
                     "fio": shutil.which("fio"), "iperf3": shutil.which("iperf3")}
        self.wrk_script = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                       "compare_wrk.lua")
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.logdir = os.path.join(self.dir, "logs", stamp)
        os.makedirs(self.logdir, exist_ok=True)
        os.makedirs(os.path.join(self.dir, "results"), exist_ok=True)
        self.raw_path = os.path.join(self.dir, "results", "compare-%s.jsonl" % stamp)
        self.raw = open(self.raw_path, "w")
        self.master = os.path.join(self.dir, "data-%d-%d" % (self.big_bytes, self.small_count))
        self.master_root = os.path.join(self.master, "root")
        self.paths = {c: os.path.join(self.master, "%s.paths" % c)
                      for c in list(SMALL_SIZES) + list(compare_cold.COLD_SETS)}
        # The cold-only sets: name -> (count, size), made only when their case runs.
        self.cold_sets = {c: (q if args.quick else n, size)
                          for c, (n, q, size) in compare_cold.COLD_SETS.items()
                          if c in args.cases.split(",")}
        self.big_path = "big/0"
        self.big_source = os.path.join(self.master_root, self.big_path)

    def emit(self, rec):
        self.raw.write(json.dumps(rec, sort_keys=True) + "\n")
        self.raw.flush()

    def log(self, msg):
        print("[compare %s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def count_lines(path):
    with open(path) as f:
        return sum(1 for line in f if line.strip())


def populate(run):
    """Creates the data set once through ringstore (reused when complete);
    the cold-only sets are added to it when their case first runs."""
    done = os.path.join(run.master, "complete")
    sets = []
    big_paths = os.path.join(run.master, "big.paths")
    if os.path.exists(done):
        run.log("data set %s exists, reusing it" % run.master)
    else:
        shutil.rmtree(run.master, ignore_errors=True)
        os.makedirs(run.master_root)
        run.log("populating %s through ringstore (a %d MiB file, 2 x %d small files)"
                % (run.master, run.big_bytes // MiB, run.small_count))
        sets.append(("big", run.big_bytes, 1, big_paths, 1))
        for case, size in SMALL_SIZES.items():
            sets.append((case.split("_")[1], size, run.small_count, run.paths[case], 64))
    for case, (count, size) in run.cold_sets.items():
        if not (os.path.exists(run.paths[case] + ".complete")
                and count_lines(run.paths[case]) == count):
            run.log("populating %s: %d files of %d bytes" % (case, count, size))
            sets.append((case, size, count, run.paths[case], 16))
    if not sets:
        return
    server = GrpcServer(run, "ringstore-populate", run.master_root, engine="auto")
    server.start()
    try:
        for prefix, size, count, paths, conc in sets:
            t0 = time.monotonic()
            client_run([run.bins["load_gen"], "--server=" + server.address, "--mode=populate",
                        "--count=%d" % count, "--upload_size=%d" % size,
                        "--upload_prefix=" + prefix, "--paths_file=" + paths,
                        "--concurrency=%d" % conc, "--rpc_timeout=900s"], timeout=3600)
            if count_lines(paths) != count:
                raise Fail("populate wrote %d of %d paths to %s"
                           % (count_lines(paths), count, paths))
            run.log("  %s: %d files of %d bytes in %.1f s"
                    % (prefix, count, size, time.monotonic() - t0))
            if prefix in run.cold_sets:
                open(paths + ".complete", "w").close()
        with open(big_paths) as f:
            if f.read().strip() != run.big_path:
                raise Fail("the big file is not at %s" % run.big_path)
    finally:
        server.stop()
    if not os.path.exists(done):
        with open(done, "w") as f:
            f.write("big=%d small=%d\n" % (run.big_bytes, run.small_count))


def link_roots(run, peers):
    """A fresh root per peer with hard links to the data set's files."""
    tops = [d for d in sorted(os.listdir(run.master_root)) if not d.startswith(".")]
    for peer in peers:
        root = os.path.join(run.dir, "roots", peer)
        shutil.rmtree(root, ignore_errors=True)
        for top in tops:
            src_top = os.path.join(run.master_root, top)
            for dirpath, _, files in os.walk(src_top):
                dst = os.path.join(root, os.path.relpath(dirpath, run.master_root))
                os.makedirs(dst, exist_ok=True)
                for name in files:
                    os.link(os.path.join(dirpath, name), os.path.join(dst, name))
        os.chmod(root, 0o755)
        os.chmod(os.path.join(run.dir, "roots"), 0o755)


def warm_cache(run):
    """Reads the data set into the page cache (the cold-only sets excepted)."""
    buf = bytearray(MiB)
    for dirpath, _, files in os.walk(run.master_root):
        top = os.path.relpath(dirpath, run.master_root).split(os.sep)[0]
        if "/.ringstore" in dirpath or top in compare_cold.COLD_SETS:
            continue
        for name in files:
            with open(os.path.join(dirpath, name), "rb", buffering=0) as f:
                while f.readinto(buf):
                    pass


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def sh(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30,
                              shell=isinstance(cmd, str)).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def meta(run, peers, cases, load_before):
    fs = sh(["df", "--output=source,fstype", run.dir]).splitlines()[-1].split()
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return {
        "type": "meta", "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "kernel": platform.release(), "nproc": os.cpu_count(), "cpu": cpu,
        "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GiB, 1),
        "dir": run.dir, "fs_source": fs[0], "fs_type": fs[1],
        "load_before": load_before, "rounds": run.args.rounds, "quick": run.quick,
        "big_bytes": run.big_bytes, "small_count": run.small_count,
        "duration_s": run.duration_s, "iperf_s": run.iperf_s, "fio_rand_s": run.fio_rand_s,
        "peers": list(peers), "cases": list(cases),
        "batch_size": BATCH_SIZE, "batch_concurrency": BATCH_CONCURRENCY,
        "cold_sets": {c: list(v) for c, v in run.cold_sets.items()},
        "pin": dict(compare_peers.PIN) if any(compare_peers.PIN.values()) else None,
        "preload": run.args.preload,
        "command": run.args.command or " ".join(sys.argv),
        "git": sh(["git", "-C", repo, "log", "-1", "--format=%h %s"]),
        "git_dirty": bool(sh(["git", "-C", repo, "status", "--porcelain", "--untracked-files=no"])),
        "versions": {
            "nginx": sh("nginx -v 2>&1"), "curl": sh("curl --version | head -1"),
            "wrk": sh("wrk -v 2>&1 | head -1"), "fio": sh("fio --version"),
            "iperf3": sh("iperf3 --version | head -1"),
        },
    }


# --------------------------------------------------------------------- main

def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--dir", default="/var/tmp/ringstore-compare")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--duration", type=int, default=0,
                   help="seconds of each small-file run (default 10, --quick 3)")
    p.add_argument("--peers", default="",
                   help="comma list (default: every engine of --ringstore, baseline, nginx)")
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--no_refs", action="store_true", help="skip iperf3 and fio")
    p.add_argument("--out", default="", help="markdown file to write the tables into")
    p.add_argument("--raw_out", default="", help="also copy the JSON lines here")
    p.add_argument("--profile", default="",
                   help="CASE/PEER: run only that cell once under perf")
    p.add_argument("--profile_with", choices=("record", "stat"), default="record",
                   help="--profile: perf record (call graphs) or perf stat (context "
                   "switches, migrations, page faults)")
    p.add_argument("--pin", default="0,1",
                   help="SERVER_CPU,CLIENT_CPU for taskset -c (default 0,1); 'none' "
                   "runs everything unpinned")
    p.add_argument("--preload", default="",
                   help="a library LD_PRELOADed into ringstore-server (e.g. tcmalloc)")
    p.add_argument("--pidfile", default="")
    p.add_argument("--command", default="", help="the command line to record")
    p.add_argument("--ringstore", required=True)
    p.add_argument("--baseline", required=True)
    p.add_argument("--load_gen", required=True)
    p.add_argument("--cli", required=True)
    args = p.parse_args(argv)
    try:
        args.all_peers = all_peers(args.ringstore)
    except (Fail, OSError, subprocess.TimeoutExpired) as e:
        p.error("cannot ask %s for its engines: %s" % (args.ringstore, e))
    args.peers = args.peers or ",".join(args.all_peers)
    for name in args.peers.split(","):
        if name not in args.all_peers:
            p.error("unknown peer %r (known: %s)" % (name, ", ".join(args.all_peers)))
    for name in args.cases.split(","):
        if name not in CASES:
            p.error("unknown case %r (known: %s)" % (name, ", ".join(CASES)))
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    if args.pin == "none":
        compare_peers.PIN.update(server="", client="")
    else:
        cpus = args.pin.split(",")
        if len(cpus) != 2 or not all(c.isdigit() for c in cpus) or cpus[0] == cpus[1]:
            p.error("--pin must be two different CPU numbers, SERVER,CLIENT, or none")
        compare_peers.PIN.update(server=cpus[0], client=cpus[1])
    if args.preload:
        if not os.path.isfile(args.preload):
            p.error("--preload: no such file %s" % args.preload)
        compare_peers.RINGSTORE_ENV["LD_PRELOAD"] = args.preload
    return args


def main(argv):
    args = parse_args(argv)
    peers = tuple(x for x in args.all_peers if x in args.peers.split(","))
    cases = tuple(x for x in CASES if x in args.cases.split(","))
    children = Children(args.pidfile)

    def on_signal(sig, frame):
        raise KeyboardInterrupt("signal %d" % sig)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    load_before = loadavg()
    os.makedirs(args.dir, exist_ok=True)
    run = Run(args, children)
    try:
        populate(run)
        if args.profile:
            case, peer = args.profile.split("/")
            link_roots(run, [peer])
            warm_cache(run)
            kind = args.profile_with
            out = os.path.join(run.dir, "profile-%s-%s.%s" % (
                case, peer, "data" if kind == "record" else "stat.txt"))
            rec = run_cell(run, 1, case, peer, profile=(kind, out))
            run.emit(rec)
            print(json.dumps(rec, sort_keys=True))
            if kind == "record":
                print("perf data: %s (perf report -i %s --no-children)" % (out, out))
            else:
                with open(out) as f:
                    print(f.read())
            return 0 if rec["ok"] else 1
        run.log("hard links into %d roots, reading the data set into the page cache"
                % len(peers))
        link_roots(run, peers)
        warm_cache(run)
        m = meta(run, peers, cases, load_before)
        run.emit(m)
        cold = any(c.startswith("cold_") for c in cases)
        for rnd in range(1, args.rounds + 1):
            if cold and rnd > 1 and cases[0] not in compare_cold.CASE_NAMES:
                run.log("reading the data set into the page cache again (the cold cases "
                        "dropped it)")
                warm_cache(run)
            order = peers[(rnd - 1) % len(peers):] + peers[:(rnd - 1) % len(peers)]
            run.emit({"type": "round", "round": rnd, "load": loadavg(), "order": list(order),
                      "start": time.strftime("%H:%M:%S")})
            run.log("round %d of %d, load average %s, order %s"
                    % (rnd, args.rounds, loadavg(), ", ".join(order)))
            for case in cases:
                for peer in order:
                    if not runs(case, peer):
                        continue
                    rec = run_cell(run, rnd, case, peer)
                    run.emit(rec)
                    run.log("  %-13s %-22s %s" % (case, peer, compare_report.brief(rec)))
            if not args.no_refs:
                for rec in references(run, rnd):
                    run.log("  %-13s %-22s %s" % ("reference", rec["name"],
                                                  compare_report.brief(rec)))
        run.emit({"type": "end", "load": loadavg(), "end": time.strftime("%H:%M:%S")})
    finally:
        children.stop_all()
        run.raw.close()
    run.log("raw results: %s" % run.raw_path)
    if args.raw_out:
        shutil.copyfile(run.raw_path, args.raw_out)
    records = compare_report.load(run.raw_path)
    text = compare_report.markdown(records)
    if args.out:
        compare_report.write_into(args.out, text)
        run.log("tables written to %s" % args.out)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt as e:
        print("compare: interrupted (%s)" % e, file=sys.stderr)
        sys.exit(130)
