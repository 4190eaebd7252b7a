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
disk itself).

Records: one JSON object a line in <dir>/results/compare-<stamp>.jsonl (a
"meta" record, a "round" record per round, a "cell" record per case and
peer, a "ref" record per reference and round); bench/compare_report.py turns
them into the markdown tables.

Only the standard library; run with /usr/bin/python3.
"""

import argparse
import datetime
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_report  # noqa: E402

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30

PEERS = ("ringstore-io_uring", "ringstore-posix_aio", "ringstore-thread_pool",
         "baseline", "nginx")
CASES = ("download_big", "upload_big", "small_4k", "small_64k")
SMALL_SIZES = {"small_4k": 4 * KiB, "small_64k": 64 * KiB}
CLK_TCK = os.sysconf("SC_CLK_TCK")


class Fail(Exception):
    """A cell or reference that could not be measured; the run goes on."""


# ---------------------------------------------------------------- processes

class Children:
    """Every long-lived process this run starts; their ids go to --pidfile
    so compare.sh's trap can stop them even if this process dies."""

    def __init__(self, pidfile):
        self.pidfile = pidfile
        self.procs = []

    def spawn(self, cmd, log_path, **kwargs):
        log = open(log_path, "ab")
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, **kwargs)
        log.close()
        self.procs.append(proc)
        if self.pidfile:
            with open(self.pidfile, "a") as f:
                f.write("%d\n" % proc.pid)
        return proc

    def stop(self, proc, sig=signal.SIGTERM, timeout=40):
        """Signals proc (if alive) and waits; kills it after timeout.
        Returns the exit code (None if it had to be killed)."""
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            rc = None
        if proc in self.procs:
            self.procs.remove(proc)
        return rc

    def stop_all(self):
        for proc in list(self.procs):
            self.stop(proc, timeout=10)


def proc_field_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def proc_cpu_s(pid):
    """utime + stime of the whole process (all its threads, io-wq workers
    included), in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def child_pids(ppid):
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == ppid:
            out.append(int(name))
    return sorted(out)


def cpu_jiffies():
    """(busy, steal) jiffies of the whole machine from /proc/stat; busy is
    everything but idle and iowait, steal included."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return sum(v) - v[3] - v[4], v[7]


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, proc, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise Fail("exited with %s before listening" % proc.returncode)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise Fail("not listening on port %d after %d s" % (port, timeout))


def client_run(cmd, timeout, env=None):
    """Runs a client to completion; returns (stdout, stderr, cpu seconds)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        r = subprocess.run(cmd, capture_output=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise Fail("%s timed out after %d s" % (os.path.basename(cmd[0]), timeout))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    out = r.stdout.decode(errors="replace")
    err = r.stderr.decode(errors="replace")
    if r.returncode != 0:
        raise Fail("%s exited %d: %s" % (os.path.basename(cmd[0]), r.returncode,
                                         (err or out).strip()[-400:]))
    return out, err, cpu


# ------------------------------------------------------------------ servers

class GrpcServer:
    """ringstore-server (one engine) or baseline_server on 127.0.0.1:0."""

    def __init__(self, run, peer, root, engine=None):
        self.run, self.peer, self.root = run, peer, root
        if peer == "baseline":
            self.engine = None
            self.cmd = [run.bins["baseline"], "--listen=127.0.0.1:0", "--root=" + root]
        else:
            self.engine = engine or peer.split("-", 1)[1]
            self.cmd = [run.bins["ringstore"], "--listen=127.0.0.1:0", "--root=" + root,
                        "--engine=" + self.engine]
        self.proc = None
        self.address = None

    def start(self):
        log = os.path.join(self.run.logdir, "%s.log" % self.peer)
        start = os.path.getsize(log) if os.path.exists(log) else 0
        self.proc = self.run.children.spawn(self.cmd, log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with open(log, "rb") as f:
                f.seek(start)
                text = f.read().decode(errors="replace")
            m = re.search(r"listening on (\S+):(\d+)", text)
            if m:
                self.address = "%s:%s" % (m.group(1), m.group(2))
                if self.engine not in (None, "auto") and ("engine=" + self.engine) not in text:
                    raise Fail("server started another engine: %r" % text.strip())
                return
            if self.proc.poll() is not None:
                raise Fail("%s exited %s at start: %s" % (self.peer, self.proc.returncode,
                                                          text.strip()[-400:]))
            time.sleep(0.05)
        raise Fail("%s did not print its address within 60 s" % self.peer)

    def rss_pids(self):
        return [self.proc.pid]

    def cpu_pids(self):
        return [self.proc.pid]

    def stop(self):
        return self.run.children.stop(self.proc)


NGINX_CONF = """\
# Written by bench/compare.py. nginx defaults except: sendfile on, no access
# log (the gRPC peers log nothing per request either), uploads of any size
# on /upload/ kept in a file, and every path under this run's directory.
daemon off;
master_process on;
worker_processes auto;
pid {run}/nginx.pid;
error_log {run}/error.log warn;
events {{ }}
http {{
    default_type application/octet-stream;
    sendfile on;
    access_log off;
    client_body_temp_path {run}/body;
    proxy_temp_path {run}/proxy;
    fastcgi_temp_path {run}/fastcgi;
    uwsgi_temp_path {run}/uwsgi;
    scgi_temp_path {run}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{ }}
        # The body is read completely into a file under client_body_temp_path
        # (write(2) into the page cache, no fsync) before the request is
        # passed on; the answer (201, the file's name) comes after that.
        location /upload/ {{
            client_max_body_size 0;
            client_body_in_file_only on;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Body-File $request_body_file;
            proxy_pass http://127.0.0.1:{port}/stored/;
        }}
        location /stored/ {{
            return 201 "$http_x_body_file\\n";
        }}
    }}
}}
"""


class NginxServer:
    """nginx (master + worker_processes auto) serving root on a free port."""

    def __init__(self, run, peer, root):
        self.run, self.peer, self.root = run, peer, root
        self.rundir = os.path.join(run.dir, "run", "nginx")
        self.proc = None
        self.port = None

    def start(self):
        shutil.rmtree(self.rundir, ignore_errors=True)
        os.makedirs(self.rundir)
        os.chmod(self.rundir, 0o755)
        self.port = free_port()
        conf = os.path.join(self.rundir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(run=self.rundir, port=self.port, root=self.root))
        log = os.path.join(self.run.logdir, "nginx.log")
        self.proc = self.run.children.spawn(
            [self.run.bins["nginx"], "-p", self.rundir + "/", "-c", conf,
             "-e", os.path.join(self.rundir, "error.log")], log)
        wait_for_port(self.port, self.proc)
        self.address = "127.0.0.1:%d" % self.port
        if not self.rss_pids():
            raise Fail("nginx has no worker processes")

    def url(self, path):
        return "http://%s/%s" % (self.address, path)

    def rss_pids(self):
        return child_pids(self.proc.pid)

    def cpu_pids(self):
        return [self.proc.pid] + child_pids(self.proc.pid)

    def stop(self):
        rc = self.run.children.stop(self.proc)
        try:
            with open(os.path.join(self.rundir, "error.log")) as f:
                errors = [l for l in f if "[emerg]" in l or "[alert]" in l or "[crit]" in l]
        except OSError:
            errors = []
        if errors:
            raise Fail("nginx error.log: " + errors[-1].strip())
        return rc


def make_server(run, peer):
    root = os.path.join(run.dir, "roots", peer)
    if peer == "nginx":
        return NginxServer(run, peer, root)
    return GrpcServer(run, peer, root)


# -------------------------------------------------------------------- cases

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


def case_small(run, server, rnd, case):
    paths = run.paths[case]
    secs = run.duration_s
    if server.peer == "nginx":
        env = dict(os.environ, COMPARE_PATHS=paths)
        out, _, cpu = client_run(
            [run.bins["wrk"], "-t2", "-c64", "-d%ds" % secs, "--latency",
             "-s", run.wrk_script, "http://%s/" % server.address],
            timeout=secs + 60, env=env)
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
    j, errors, detail, cpu = load_gen(run, server, [
        "--mode=download", "--concurrency=64", "--duration=%ds" % secs,
        "--paths_file=" + paths], timeout=secs + 120)
    lat = j["latency_ms"]
    return {"rps": j["requests_per_second"], "requests": j["requests"], "seconds": j["seconds"],
            "bytes": j["bytes"], "p50_ms": lat["p50"], "p99_ms": lat["p99"],
            "p999_ms": lat["p999"], "max_ms": lat["max"], "errors": errors,
            "error_detail": detail, "backend": j.get("backend"), "client_cpu_s": cpu}


def run_case(run, case, server, rnd):
    if case == "download_big":
        return case_download_big(run, server, rnd)
    if case == "upload_big":
        return case_upload_big(run, server, rnd)
    return case_small(run, server, rnd, case)


def run_cell(run, rnd, case, peer, profile=None):
    rec = {"type": "cell", "round": rnd, "case": case, "peer": peer, "ok": False}
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
        rec["server_cpu_s"] = sum(proc_cpu_s(p) for p in server.cpu_pids())
        rec["server_processes"] = len(server.rss_pids())
        rec["ok"] = True
    except Fail as e:
        rec["error"] = str(e)
    finally:
        if server.proc is not None:
            try:
                rc = server.stop()
                if rc not in (0, None) and peer != "nginx":
                    rec.setdefault("error", "server exited %s" % rc)
            except Fail as e:
                rec.setdefault("error", str(e))
    rec["wall_s"] = time.time() - t0
    return rec


# --------------------------------------------------------------- references

def fio(run, name, args, timeout=600):
    # --invalidate=0: fio would otherwise drop the file's pages from the page
    # cache first, so "buffered" would mean the disk, and the peers' next
    # reads of the same file would miss the cache.
    cmd = [run.bins["fio"], "--output-format=json", "--ioengine=io_uring",
           "--invalidate=0", "--name=" + name] + args
    out, _, _ = client_run(cmd, timeout)
    job = json.loads(out[out.index("{"):])["jobs"][0]
    if job.get("error"):
        raise Fail("fio %s: error %s" % (name, job["error"]))
    return job


def references(run, rnd):
    recs = []

    def ref(name, fn):
        rec = {"type": "ref", "round": rnd, "name": name, "ok": False}
        try:
            rec.update(fn())
            rec["ok"] = True
        except Fail as e:
            rec["error"] = str(e)
        recs.append(rec)
        run.emit(rec)

    def iperf():
        # A connect() probe would count as the one test of `-s -1`: wait for
        # the server's own "listening" line instead.
        port = free_port()
        log = os.path.join(run.logdir, "iperf3-r%d.log" % rnd)
        srv = run.children.spawn([run.bins["iperf3"], "-s", "-1", "--forceflush",
                                  "-B", "127.0.0.1", "-p", str(port)], log)
        try:
            deadline = time.monotonic() + 20
            while True:
                with open(log, "rb") as f:
                    if b"Server listening on" in f.read():
                        break
                if srv.poll() is not None or time.monotonic() > deadline:
                    raise Fail("iperf3 -s did not start (see %s)" % log)
                time.sleep(0.05)
            out, _, _ = client_run([run.bins["iperf3"], "-c", "127.0.0.1", "-p", str(port),
                                    "-t", str(run.iperf_s), "-J"], run.iperf_s + 60)
        finally:
            run.children.stop(srv, timeout=10)
        j = json.loads(out)
        if j.get("error"):
            raise Fail("iperf3: %s" % j["error"])
        return {"mib_s": j["end"]["sum_received"]["bits_per_second"] / 8 / MiB,
                "retransmits": j["end"]["sum_sent"].get("retransmits")}

    def seqread(direct):
        def fn():
            j = fio(run, "seqread", ["--filename=" + run.big_source, "--readonly",
                                     "--rw=read", "--bs=1M", "--size=%d" % run.big_bytes,
                                     "--iodepth=4", "--direct=%d" % direct])
            return {"mib_s": j["read"]["bw"] / KiB, "iops": j["read"]["iops"]}
        return fn

    def randread(bs, direct):
        def fn():
            j = fio(run, "randread", ["--filename=" + run.big_source, "--readonly",
                                      "--rw=randread", "--bs=%d" % bs,
                                      "--size=%d" % run.big_bytes, "--iodepth=32",
                                      "--direct=%d" % direct, "--time_based",
                                      "--runtime=%d" % run.fio_rand_s])
            return {"mib_s": j["read"]["bw"] / KiB, "iops": j["read"]["iops"],
                    "p50_ms": j["read"]["clat_ns"]["percentile"]["50.000000"] / 1e6,
                    "p99_ms": j["read"]["clat_ns"]["percentile"]["99.000000"] / 1e6}
        return fn

    def write_fsync():
        target = os.path.join(run.dir, "fio-write.bin")
        try:
            j = fio(run, "write", ["--filename=" + target, "--rw=write", "--bs=1M",
                                   "--size=%d" % run.big_bytes, "--iodepth=4",
                                   "--end_fsync=1"])
        finally:
            if os.path.exists(target):
                os.unlink(target)
        return {"mib_s": j["write"]["bw"] / KiB}

    ref("iperf3", iperf)
    ref("fio_seqread_buffered", seqread(0))
    ref("fio_seqread_direct", seqread(1))
    ref("fio_randread4k_buffered", randread(4 * KiB, 0))
    ref("fio_randread4k_direct", randread(4 * KiB, 1))
    ref("fio_randread64k_buffered", randread(64 * KiB, 0))
    ref("fio_randread64k_direct", randread(64 * KiB, 1))
    ref("fio_write_fsync", write_fsync)
    return recs


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
                     "load_gen": args.load_gen, "nginx": shutil.which("nginx") or "/usr/sbin/nginx",
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
        self.paths = {c: os.path.join(self.master, "%s.paths" % c) for c in SMALL_SIZES}
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
    """Creates the data set once through ringstore (reused when complete)."""
    done = os.path.join(run.master, "complete")
    if os.path.exists(done):
        run.log("data set %s exists, reusing it" % run.master)
        return
    shutil.rmtree(run.master, ignore_errors=True)
    os.makedirs(run.master_root)
    run.log("populating %s through ringstore (a %d MiB file, 2 x %d small files)"
            % (run.master, run.big_bytes // MiB, run.small_count))
    server = GrpcServer(run, "ringstore-populate", run.master_root, engine="auto")
    server.start()
    try:
        big_paths = os.path.join(run.master, "big.paths")
        sets = [("big", run.big_bytes, 1, big_paths, 1)]
        for case, size in SMALL_SIZES.items():
            sets.append((case.split("_")[1], size, run.small_count, run.paths[case], 64))
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
        with open(big_paths) as f:
            if f.read().strip() != run.big_path:
                raise Fail("the big file is not at %s" % run.big_path)
    finally:
        server.stop()
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
    buf = bytearray(MiB)
    for dirpath, _, files in os.walk(run.master_root):
        if "/.ringstore" in dirpath:
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
    p.add_argument("--peers", default=",".join(PEERS))
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--no_refs", action="store_true", help="skip iperf3 and fio")
    p.add_argument("--out", default="", help="markdown file to write the tables into")
    p.add_argument("--raw_out", default="", help="also copy the JSON lines here")
    p.add_argument("--profile", default="",
                   help="CASE/PEER: run only that cell once under perf")
    p.add_argument("--profile_with", choices=("record", "stat"), default="record",
                   help="--profile: perf record (call graphs) or perf stat (context "
                   "switches, migrations, page faults)")
    p.add_argument("--pidfile", default="")
    p.add_argument("--command", default="", help="the command line to record")
    p.add_argument("--ringstore", required=True)
    p.add_argument("--baseline", required=True)
    p.add_argument("--load_gen", required=True)
    args = p.parse_args(argv)
    for name in args.peers.split(","):
        if name not in PEERS:
            p.error("unknown peer %r (known: %s)" % (name, ", ".join(PEERS)))
    for name in args.cases.split(","):
        if name not in CASES:
            p.error("unknown case %r (known: %s)" % (name, ", ".join(CASES)))
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    return args


def main(argv):
    args = parse_args(argv)
    peers = tuple(x for x in PEERS if x in args.peers.split(","))
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
        for rnd in range(1, args.rounds + 1):
            order = peers[(rnd - 1) % len(peers):] + peers[:(rnd - 1) % len(peers)]
            run.emit({"type": "round", "round": rnd, "load": loadavg(), "order": list(order),
                      "start": time.strftime("%H:%M:%S")})
            run.log("round %d of %d, load average %s, order %s"
                    % (rnd, args.rounds, loadavg(), ", ".join(order)))
            for case in cases:
                for peer in order:
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
