#!/usr/bin/python3
"""An interleaved A/B of server variants, pinned the way bench/compare.sh
pins (server on CPU 0, client on CPU 1), for one lever at a time.

  /usr/bin/python3 bench/compare_ab.py ROUNDS VARIANTS.json

VARIANTS.json is a list of {"name": ..., "server": [argv] or "nginx" (with
"root": DIR), "env": {...} (optional, for the server), "client": [argv,
"{addr}" replaced by the server's HOST:PORT], and "bytes": N (a download of
N bytes: load_gen's JSON or curl's -w "%{http_code} %{size_download}
%{time_total}" is checked; any other client is timed by wall clock) or
"requests": 1 (a load_gen run of many requests)}. Each round starts every
variant's server afresh (order reversed every other round), runs the client
once, and records MiB/s or req/s, server CPU (user+sys from /proc/PID/stat
over the client's run) per GiB or per request, and client CPU (rusage).
Prints every round, then medians with ratios to the first variant of the
same kind and the per-round values; writes VARIANTS.json.out. The server
log goes to /tmp/compare-ab-server.log. Standard library only.
"""
import json
import os
import re
import resource
import socket
import statistics
import subprocess
import sys
import time

TCK = os.sysconf("SC_CLK_TCK")


def cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        x = f.read().rsplit(")", 1)[1].split()
    return (int(x[11]) + int(x[12])) / TCK


def children(ppid):
    out = []
    for n in os.listdir("/proc"):
        if n.isdigit():
            try:
                with open("/proc/%s/stat" % n) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == ppid:
                        out.append(int(n))
            except OSError:
                pass
    return out


def start(v, log):
    env = dict(os.environ, **v.get("env", {}))
    if v["server"] == "nginx":
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        rundir = "/var/tmp/compare-ab-nginx"
        os.makedirs(rundir, exist_ok=True)
        conf = rundir + "/nginx.conf"
        with open(conf, "w") as f:
            f.write("daemon off; master_process on; worker_processes 1; pid %s/pid; "
                    "error_log %s/error.log warn; events {} http { sendfile on; access_log off; "
                    "default_type application/octet-stream; server { listen 127.0.0.1:%d; "
                    "root %s; location / {} } }\n" % (rundir, rundir, port, v["root"]))
        p = subprocess.Popen(["taskset", "-c", "0", "nginx", "-p", rundir + "/", "-c", conf,
                              "-e", rundir + "/error.log"], stdout=log, stderr=log)
        for _ in range(200):
            if children(p.pid):
                break
            time.sleep(0.05)
        time.sleep(0.3)
        return p, "127.0.0.1:%d" % port, lambda: [p.pid] + children(p.pid)
    p = subprocess.Popen(["taskset", "-c", "0"] + v["server"], stdout=log, stderr=log, env=env)
    for _ in range(600):
        with open(log.name) as f:
            m = re.search(r"listening on (\S+):(\d+)", f.read())
        if m:
            return p, "%s:%s" % (m.group(1), m.group(2)), lambda: [p.pid]
        time.sleep(0.05)
    raise SystemExit("server did not start: " + open(log.name).read()[-500:])


def one(v):
    log = open("/tmp/compare-ab-server.log", "w")
    p, addr, pids = start(v, log)
    try:
        c0 = sum(cpu(x) for x in pids())
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.monotonic()
        cmd = [a.replace("{addr}", addr) for a in v["client"]]
        out = subprocess.run(["taskset", "-c", "1"] + cmd, capture_output=True, text=True,
                             timeout=900)
        wall = time.monotonic() - t0
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        c1 = sum(cpu(x) for x in pids())
        if out.returncode != 0:
            raise SystemExit("client failed: %s %s" % (out.stdout[-500:], out.stderr[-500:]))
    finally:
        p.terminate()
        p.wait()
    ccpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    rec = {"wall": wall, "server_cpu": c1 - c0, "client_cpu": ccpu}
    if "requests" in v:
        j = json.loads(out.stdout.strip().splitlines()[-1])
        rec["rps"] = j["requests_per_second"]
        rec["errors"] = j["errors"]["count"]
        rec["req"] = j["requests"]
        rec["us_per_req"] = rec["server_cpu"] / j["requests"] * 1e6
        rec["client_us_per_req"] = ccpu / j["requests"] * 1e6
    else:
        secs = wall
        if v["client"][0].endswith("load_gen"):
            j = json.loads(out.stdout.strip().splitlines()[-1])
            secs = j["seconds"]
            assert j["errors"]["count"] == 0, j
            assert j["bytes"] == v["bytes"], j
        if "curl" in v["client"][0]:
            code, n, t = out.stdout.split()
            assert code == "200" and int(n) == v["bytes"], out.stdout
            secs = float(t)
        rec["mib_s"] = v["bytes"] / secs / 2**20
        rec["s_per_gib"] = rec["server_cpu"] / (v["bytes"] / 2**30)
        rec["client_s_per_gib"] = ccpu / (v["bytes"] / 2**30)
    return rec


def main():
    rounds = int(sys.argv[1])
    variants = json.load(open(sys.argv[2]))
    res = {v["name"]: [] for v in variants}
    for r in range(rounds):
        order = variants if r % 2 == 0 else list(reversed(variants))
        for v in order:
            rec = one(v)
            res[v["name"]].append(rec)
            print("r%d %-28s %s" % (r + 1, v["name"], " ".join(
                "%s=%.2f" % (k, x) for k, x in rec.items())), flush=True)
    print("\nmedians over %d rounds (load %s):" % (rounds, open("/proc/loadavg").read().split()[:3]))
    json.dump(res, open(sys.argv[2] + ".out", "w"))
    bases = {}
    for v in variants:
        rs = res[v["name"]]
        keys = [k for k in rs[0] if k not in ("errors", "req")]
        med = {k: statistics.median(x[k] for x in rs) for k in keys}
        base = bases.setdefault(tuple(keys), med)
        print("%-28s %s" % (v["name"], " ".join(
            "%s=%.2f (%.2fx) [%s]" % (k, med[k], med[k] / base[k] if base[k] else 0,
                                      "/".join("%.2f" % x[k] for x in rs)) for k in keys)))

if __name__ == "__main__":
    main()
