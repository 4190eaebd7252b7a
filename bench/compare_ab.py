#!/usr/bin/python3
"""THE A/B of server variants (a lever at a time: a ringstore build, flags,
environment, bench/grpc_api_proto, nginx), pinned the way bench/compare.sh
pins (server on CPU 0, client on CPU 1), interleaved. The fixed peer
comparison (ringstore's engines, baseline, nginx over fixed cases) is
bench/compare.sh; this is for "does this change help".

  /usr/bin/python3 bench/compare_ab.py ROUNDS VARIANTS.json \\
      [--data=DIR --count=N --size=BYTES --load_gen=PATH] [--preload=LIB]

VARIANTS.json is a list of {"name": ..., "server": [argv] or "nginx" (with
"root": DIR; default "{root}"), "env": {...} (optional, for the server),
"client": [argv, "{addr}" replaced by the server's HOST:PORT], and "bytes":
N (a download of N bytes: load_gen's JSON or curl's -w "%{http_code}
%{size_download} %{time_total}" is checked; any other client is timed by
wall clock) or "requests": 1 (a load_gen run of many requests)}.

--data=DIR: a set of --count random files of --size bytes, uploaded once
through the first non-nginx variant's server (load_gen --mode=populate, so
they carry ringstore's metadata, as bench/compare.py's do) and reused by
later runs; "{root}" and "{paths}" in any server or client argument (and an
nginx variant's root) become DIR/root and the file listing their paths.
--preload=LIB: LD_PRELOAD into every non-nginx server (e.g. gperftools'
/usr/lib/x86_64-linux-gnu/libtcmalloc.so.4). Small downloads of a server
built with and without a change, with nginx beside them:

  [{"name": "A", "server": ["/tmp/before/ringstore-server", "--listen=127.0.0.1:0",
    "--root={root}"], "requests": 1, "client": ["bazel-out/k8-opt/bin/bench/load_gen",
    "--server={addr}", "--mode=download", "--concurrency=64", "--duration=8s",
    "--paths_file={paths}"]},
   {"name": "B", "server": [".../ringstore-server", "--listen=127.0.0.1:0",
    "--root={root}", "--some_flag"], "env": {"X": "1"}, "requests": 1, "client": [...]},
   {"name": "nginx", "server": "nginx", "requests": 1, "client": ["wrk", ...]}]

(wrk with bench/compare_wrk.lua needs COMPARE_PATHS={paths} in the
variant's "client_env"; its WRKJSON line is read like load_gen's JSON.)

Each round starts every variant's server afresh (order reversed every other
round), runs the client once, and records MiB/s or req/s, server CPU
(user+sys from /proc/PID/stat over the client's run; nginx: master and
worker) per GiB or per request, and client CPU (rusage). Prints every
round, then medians with ratios to the first variant of the same kind and
the per-round values; writes VARIANTS.json.out. Server logs go to
--workdir/logs (default /var/tmp/compare-ab). Processes and /proc readings come from
bench/compare_peers.py. Standard library only.
"""
import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_peers as cp  # noqa: E402

class Run:
    """What compare_peers' servers expect of a run."""

    def __init__(self, workdir):
        self.dir = workdir
        self.logdir = os.path.join(workdir, "logs")
        os.makedirs(self.logdir, exist_ok=True)
        self.children = cp.Children(None)
        self.bins = {"nginx": "nginx", "ringstore": "", "baseline": ""}


def subst(arg, fill):
    for k, v in fill.items():
        arg = arg.replace("{%s}" % k, v)
    return arg


def make_server(run, v, fill, preload):
    if v["server"] == "nginx":
        return cp.NginxServer(run, "nginx", subst(v.get("root", "{root}"), fill))
    s = cp.GrpcServer(run, "ab-" + re.sub(r"\W", "_", v["name"]), "", engine="auto")
    s.cmd, s.engine = [subst(a, fill) for a in v["server"]], None
    cp.RINGSTORE_ENV.clear()
    cp.RINGSTORE_ENV.update(v.get("env", {}))
    if preload:
        cp.RINGSTORE_ENV["LD_PRELOAD"] = preload
    return s


def populate(run, args, variants):
    """DIR/root with --count files of --size bytes (once); returns the fill."""
    fill = {"root": os.path.join(args.data, "root"), "paths": os.path.join(args.data, "paths")}
    done = os.path.join(args.data, "complete-%dx%d" % (args.count, args.size))
    if os.path.exists(done):
        return fill
    if not args.load_gen:
        raise SystemExit("--data needs --load_gen")
    v = next(x for x in variants if x["server"] != "nginx")
    os.makedirs(fill["root"], exist_ok=True)
    os.chmod(fill["root"], 0o755)  # nginx's worker reads it
    server = make_server(run, v, fill, "")
    server.start()
    try:
        cp.client_run([args.load_gen, "--server=" + server.address, "--mode=populate",
                       "--count=%d" % args.count, "--upload_size=%d" % args.size,
                       "--upload_prefix=ab%d" % args.size, "--paths_file=" + fill["paths"],
                       "--concurrency=64", "--rpc_timeout=900s"], timeout=3600)
    finally:
        server.stop()
    open(done, "w").close()
    return fill


def client_json(out):
    m = re.search(r"^WRKJSON (\{.*\})$", out, re.M)
    if m:  # wrk with compare_wrk.lua: the same figures under load_gen's names
        w = json.loads(m.group(1))
        secs = w["duration_us"] / 1e6
        return {"requests": w["requests"], "requests_per_second": w["requests"] / secs,
                "seconds": secs, "bytes": w["bytes"],
                "errors": {"count": sum(w["errors"].values())}}
    return json.loads(out.strip().splitlines()[-1])


def one(run, v, fill, preload):
    server = make_server(run, v, fill, preload)
    server.start()
    try:
        c0 = sum(cp.proc_cpu_s(x) for x in server.cpu_pids())
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.monotonic()
        cmd = [subst(a, dict(fill, addr=server.address)) for a in v["client"]]
        env = dict(os.environ, **{k: subst(x, fill) for k, x in v.get("client_env", {}).items()})
        out = subprocess.run(cp.pinned(cmd, "client"), capture_output=True, text=True,
                             timeout=900, env=env)
        wall = time.monotonic() - t0
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        c1 = sum(cp.proc_cpu_s(x) for x in server.cpu_pids())
        if out.returncode != 0:
            raise SystemExit("client failed: %s %s" % (out.stdout[-500:], out.stderr[-500:]))
    finally:
        server.stop()
    ccpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    rec = {"wall": wall, "server_cpu": c1 - c0, "client_cpu": ccpu}
    if "requests" in v:
        j = client_json(out.stdout)
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


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("rounds", type=int)
    p.add_argument("variants")
    p.add_argument("--data", default="", help="directory of the populated file set")
    p.add_argument("--count", type=int, default=10000)
    p.add_argument("--size", type=int, default=4096)
    p.add_argument("--load_gen", default="")
    p.add_argument("--preload", default="", help="LD_PRELOAD for every non-nginx server")
    p.add_argument("--workdir", default="/var/tmp/compare-ab", help="logs, nginx's files")
    args = p.parse_args(argv)
    with open(args.variants) as f:
        variants = json.load(f)
    run = Run(args.workdir)
    fill = populate(run, args, variants) if args.data else {}
    res = {v["name"]: [] for v in variants}
    try:
        for r in range(args.rounds):
            order = variants if r % 2 == 0 else list(reversed(variants))
            for v in order:
                rec = one(run, v, fill, args.preload)
                res[v["name"]].append(rec)
                print("r%d %-28s %s" % (r + 1, v["name"], " ".join(
                    "%s=%.2f" % (k, x) for k, x in rec.items())), flush=True)
    finally:
        run.children.stop_all()
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    print("\nmedians over %d rounds (load %s%s):" % (
        args.rounds, load, ", LD_PRELOAD=" + args.preload if args.preload else ""))
    with open(args.variants + ".out", "w") as f:
        json.dump(res, f)
    bases = {}
    for v in variants:
        rs = res[v["name"]]
        keys = [k for k in rs[0] if k not in ("errors", "req")]
        med = {k: statistics.median(x[k] for x in rs) for k in keys}
        base = bases.setdefault(tuple(keys), med)
        print("%-28s %s" % (v["name"], " ".join(
            "%s=%.2f (%.2fx) [%s]" % (k, med[k], med[k] / base[k] if base[k] else 0,
                                      "/".join("%.2f" % x[k] for x in rs)) for k in keys)))
    return res


if __name__ == "__main__":
    main()
