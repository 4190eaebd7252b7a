"""bench/compare.py's cases: the client runs each peer is measured with
(download and upload of the big file, 64 streams over the 4 KiB and the
64 KiB files), and run_cell, which measures one case on one fresh server.

CASES is a registry, in run order: a new case is one function
`case_x(run, server, rnd)` returning the cell's figures (mib_s or rps,
bytes or requests, errors, client_cpu_s ...) registered with @case("x");
it then runs with --cases=x (compare_report.py renders the cases it knows
and lists the others' medians). A peer a case cannot measure is named in
@case("x", skip={peer: reason}): its cells are recorded as skipped (no
server started; the report shows "n/a"), not as failures. Clients run
through client_run, which pins them to the client CPU. Only the standard
library.
"""

import json
import os
import re
import shutil
import signal
import time

from compare_peers import (CASE_ONLY_PEERS, CLK_TCK, KiB, MiB, Fail, client_run, cpu_jiffies,
                           make_server, proc_cpu_s, proc_field_kib)

# name -> function(run, server, rnd) -> dict of the cell's figures.
CASES = {}
# name -> {peer: why that peer cannot run the case}.
SKIPS = {}
# name -> the compare_peers.CASE_ONLY_PEERS that run this case.
EXTRA_PEERS = {}
SMALL_SIZES = {"small_4k": 4 * KiB, "small_64k": 64 * KiB}
# BatchDownload: files per call and calls in flight (load_gen --mode=batch).
BATCH_SIZE = 100
BATCH_CONCURRENCY = 4


def case(name, skip=None, extra_peers=()):
    """Registers a case function under `name` (run order = definition order);
    skip: {peer: reason} for the peers that cannot run it; extra_peers: the
    CASE_ONLY_PEERS it runs as well."""
    def register(fn):
        CASES[name] = fn
        SKIPS[name] = dict(skip or {})
        EXTRA_PEERS[name] = tuple(extra_peers)
        return fn
    return register


def runs(name, peer):
    """Whether the case is measured (or listed as n/a) for that peer at all."""
    return peer not in CASE_ONLY_PEERS or peer in EXTRA_PEERS[name]


def parse_load_gen(out):
    j = json.loads(out.strip().splitlines()[-1])
    errors = j["errors"]["count"]
    detail = "; ".join("%s x%d: %s" % (e["code"], e["count"], e["message"][:120])
                       for e in j["errors"]["first"])
    return j, errors, detail


def load_gen(run, server, args, timeout):
    cmd = [run.bins["load_gen"], "--server=" + server.address] + args
    out, _, cpu = client_run(cmd, timeout)
    j, errors, detail = parse_load_gen(out)
    return j, errors, detail, cpu


def curl(run, args, timeout):
    out, _, cpu = client_run([run.bins["curl"], "-sS"] + args, timeout)
    return out.split(), cpu


@case("download_big")
def case_download_big(run, server, rnd):
    size = run.big_bytes
    if server.peer == "nginx":
        (code, nbytes, secs), cpu = curl(
            run, ["-o", "/dev/null", "-w", "%{http_code} %{size_download} %{time_total}",
                  server.url(run.big_path)], timeout=900)
        errors = 0 if code == "200" and int(nbytes) == size else 1
        return {"mib_s": int(nbytes) / float(secs) / MiB, "seconds": float(secs),
                "bytes": int(nbytes), "errors": errors,
                "error_detail": "" if not errors else "HTTP %s, %s bytes" % (code, nbytes),
                "client_cpu_s": cpu}
    j, errors, detail, cpu = load_gen(run, server, [
        "--mode=download", "--concurrency=1", "--count=1", "--duration=0s",
        "--path=" + run.big_path, "--rpc_timeout=900s"], timeout=960)
    if j["bytes"] != size and not errors:
        errors, detail = 1, "%d bytes instead of %d" % (j["bytes"], size)
    return {"mib_s": j["throughput_mib_s"], "seconds": j["seconds"], "bytes": j["bytes"],
            "errors": errors, "error_detail": detail, "backend": j.get("backend"),
            "client_cpu_s": cpu}


@case("cli_get_big", skip={"baseline": "the CLI's own server only (load_gen measures it)",
                           "nginx": "curl is download_big's nginx client"})
def case_cli_get_big(run, server, rnd):
    """download_big through the CLI: `ringstore get big/0 -`, its stdout on
    /dev/null (as load_gen and curl -o /dev/null discard theirs). The CLI
    checks every message's crc32c and exits 1 on any failure, which
    client_run turns into a failed cell."""
    cmd = ["/bin/sh", "-c", 'exec "$0" "$@" > /dev/null', run.bins["cli"],
           "--server=" + server.address, "get", run.big_path, "-"]
    t0 = time.monotonic()
    _, _, cpu = client_run(cmd, timeout=960)
    secs = time.monotonic() - t0
    return {"mib_s": run.big_bytes / secs / MiB, "seconds": secs, "bytes": run.big_bytes,
            "errors": 0, "error_detail": "", "client_cpu_s": cpu}


def fsync_path(path):
    """fsync of a file and of its directory; returns the seconds it took."""
    t0 = time.monotonic()
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    dfd = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    return time.monotonic() - t0


@case("upload_big")
def case_upload_big(run, server, rnd):
    size = run.big_bytes
    if server.peer == "nginx":
        answer = os.path.join(server.rundir, "answer.txt")
        (code, nbytes, secs), cpu = curl(
            run, ["-T", run.big_source, "-o", answer,
                  "-w", "%{http_code} %{size_upload} %{time_total}",
                  server.url("upload/r%d" % rnd)], timeout=900)
        with open(answer) as f:
            body_file = f.read().strip()
        if code != "201" or int(nbytes) != size or not os.path.isfile(body_file):
            raise Fail("nginx upload: HTTP %s, %s bytes sent, body file %r"
                       % (code, nbytes, body_file))
        stored = os.path.getsize(body_file)
        fsync_s = fsync_path(body_file)
        os.unlink(body_file)
        errors = 0 if stored == size else 1
        return {"mib_s": size / float(secs) / MiB, "seconds": float(secs), "bytes": stored,
                "fsync_s": fsync_s, "mib_s_fsync": size / (float(secs) + fsync_s) / MiB,
                "errors": errors,
                "error_detail": "" if not errors else "stored %d bytes" % stored,
                "client_cpu_s": cpu}
    try:
        j, errors, detail, cpu = load_gen(run, server, [
            "--mode=upload", "--concurrency=1", "--count=1", "--duration=0s",
            "--upload_size=%d" % size, "--upload_prefix=up/r%d" % rnd,
            "--rpc_timeout=900s"], timeout=1200)
    finally:
        shutil.rmtree(os.path.join(server.root, "up"), ignore_errors=True)
    return {"mib_s": j["throughput_mib_s"], "seconds": j["seconds"], "bytes": j["bytes"],
            "errors": errors, "error_detail": detail, "backend": j.get("backend"),
            "client_cpu_s": cpu}


def wrk_cell(run, server, paths, timeout_s=None, once_seed=None):
    """wrk -t2 -c64 over random paths of `paths` (one file per request);
    timeout_s: wrk's per-request timeout (its default is 2 s); once_seed:
    every path once instead, in the order compare_wrk.lua shuffles with this
    seed (wrk -t1, the run lasting until the last response; at most 600 s)."""
    secs = run.duration_s
    env = dict(os.environ, COMPARE_PATHS=paths)
    threads, bound = "-t2", secs
    if once_seed is not None:
        env.update(COMPARE_ONCE=str(once_seed), COMPARE_CONNECTIONS="64")
        threads, bound = "-t1", 600
    out, _, cpu = client_run(
        [run.bins["wrk"], threads, "-c64", "-d%ds" % bound, "--latency"]
        + (["--timeout", "%ds" % timeout_s] if timeout_s else [])
        + ["-s", run.wrk_script, "http://%s/" % server.address],
        timeout=bound + 60, env=env)
    m = re.search(r"^WRKJSON (\{.*\})$", out, re.M)
    if not m:
        raise Fail("no WRKJSON line in wrk's output: %r" % out[-400:])
    w = json.loads(m.group(1))
    e = w["errors"]
    errors = sum(e.values())
    duration = w["duration_us"] / 1e6
    return {"rps": w["requests"] / duration, "requests": w["requests"],
            "seconds": duration, "bytes": w["bytes"],
            "p50_ms": w["latency_us"]["p50"] / 1e3, "p99_ms": w["latency_us"]["p99"] / 1e3,
            "p999_ms": w["latency_us"]["p999"] / 1e3, "max_ms": w["latency_us"]["max"] / 1e3,
            "errors": errors, "error_detail": "" if not errors else json.dumps(e),
            "client_cpu_s": cpu}


def case_small(run, server, rnd, case, paths=None, wrk_timeout_s=None, once_seed=None):
    """64 concurrent downloads of random files of run.paths[case] (or
    `paths`) for run.duration_s: load_gen, or wrk for nginx. once_seed:
    every file once instead, in an order shuffled by this seed (load_gen
    --each_once; wrk_cell's once_seed)."""
    paths = paths or run.paths[case]
    secs = run.duration_s
    if server.peer.startswith("nginx"):
        return wrk_cell(run, server, paths, wrk_timeout_s, once_seed)
    picks = (["--duration=%ds" % secs] if once_seed is None
             else ["--each_once", "--seed=%d" % once_seed])
    j, errors, detail, cpu = load_gen(run, server, [
        "--mode=download", "--concurrency=64"] + picks + [
        "--paths_file=" + paths], timeout=(secs if once_seed is None else 600) + 120)
    lat = j["latency_ms"]
    return {"rps": j["requests_per_second"], "requests": j["requests"], "seconds": j["seconds"],
            "bytes": j["bytes"], "p50_ms": lat["p50"], "p99_ms": lat["p99"],
            "p999_ms": lat["p999"], "max_ms": lat["max"], "errors": errors,
            "error_detail": detail, "backend": j.get("backend"), "client_cpu_s": cpu}


for _name in SMALL_SIZES:
    case(_name)(lambda run, server, rnd, _name=_name: case_small(run, server, rnd, _name))


@case("batch_4k", skip={"baseline": "no BatchDownload RPC"})
def case_batch_4k(run, server, rnd):
    """The small_4k files fetched BATCH_SIZE per BatchDownload call
    (BATCH_CONCURRENCY calls in flight); nginx: small_4k's wrk run, one file
    per request. Figures per file: files, files_per_second."""
    paths = run.paths["small_4k"]
    if server.peer.startswith("nginx"):
        rec = wrk_cell(run, server, paths)
        rec.update(files=rec["requests"], files_per_second=rec["rps"])
        return rec
    secs = run.duration_s
    j, errors, detail, cpu = load_gen(run, server, [
        "--mode=batch", "--batch_size=%d" % BATCH_SIZE,
        "--concurrency=%d" % BATCH_CONCURRENCY, "--duration=%ds" % secs,
        "--paths_file=" + paths], timeout=secs + 120)
    lat = j["latency_ms"]
    return {"files_per_second": j["files_per_second"], "files": j["files"],
            "calls_per_second": j["requests_per_second"], "requests": j["requests"],
            "seconds": j["seconds"], "bytes": j["bytes"], "p50_ms": lat["p50"],
            "p99_ms": lat["p99"], "p999_ms": lat["p999"], "max_ms": lat["max"],
            "errors": errors, "error_detail": detail, "backend": j.get("backend"),
            "client_cpu_s": cpu}


def run_case(run, name, server, rnd):
    return CASES[name](run, server, rnd)


def run_cell(run, rnd, case, peer, profile=None):
    rec = {"type": "cell", "round": rnd, "case": case, "peer": peer, "ok": False}
    if peer in SKIPS.get(case, {}):
        rec.update(skipped=SKIPS[case][peer], wall_s=0.0)
        return rec
    server = make_server(run, peer)
    t0 = time.time()
    try:
        server.start()
        perf = None
        if profile:
            # cpu-clock: this VM has no hardware counters. dwarf call graphs:
            # neither ringstore (-c opt) nor Debian's gRPC keep frame pointers.
            kind, out = profile
            if kind == "record":
                cmd = ["perf", "record", "-e", "cpu-clock", "-F", "999", "--call-graph",
                       "dwarf,16384", "-o", out, "-p", str(server.proc.pid)]
            else:
                cmd = ["perf", "stat", "-e", "task-clock,context-switches,cpu-migrations,"
                       "page-faults", "-o", out, "-p", str(server.proc.pid)]
            perf = run.children.spawn(cmd, os.path.join(run.logdir, "perf.log"))
            time.sleep(1)
        # The server's CPU is counted over the case alone: start-up (the
        # engine probes, the pool's mapping and registration: about 0.06 s
        # for ringstore) is recorded apart, not charged to the transfer.
        startup_cpu_s = sum(proc_cpu_s(p) for p in server.cpu_pids())
        busy0, steal0 = cpu_jiffies()
        t_case = time.monotonic()
        try:
            rec.update(run_case(run, case, server, rnd))
            busy1, steal1 = cpu_jiffies()
            span = (time.monotonic() - t_case) * os.cpu_count()
            # Over the client's run: how busy the whole machine was, and how
            # much of its time the hypervisor gave to other guests.
            rec["machine_busy_pct"] = 100.0 * (busy1 - busy0) / CLK_TCK / span
            rec["steal_pct"] = 100.0 * (steal1 - steal0) / CLK_TCK / span
        finally:
            if perf:
                run.children.stop(perf, sig=signal.SIGINT, timeout=300)
        rec["server_rss_kib"] = sum(proc_field_kib(p, "VmHWM") for p in server.rss_pids())
        rec["server_cpu_s"] = sum(proc_cpu_s(p) for p in server.cpu_pids()) - startup_cpu_s
        rec["server_startup_cpu_s"] = startup_cpu_s
        rec["server_processes"] = len(server.rss_pids())
        rec["ok"] = True
    except Fail as e:
        rec["error"] = str(e)
    finally:
        if server.proc is not None:
            try:
                rc = server.stop()
                if rc not in (0, None) and not peer.startswith("nginx"):
                    rec.setdefault("error", "server exited %s" % rc)
            except Fail as e:
                rec.setdefault("error", str(e))
    rec["wall_s"] = time.time() - t0
    return rec
