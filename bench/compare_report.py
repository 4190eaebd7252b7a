#!/usr/bin/python3
"""Markdown tables from the JSON lines bench/compare.py writes.

Medians per cell over the rounds that succeeded; ratios are the peer's
median divided by ringstore-io_uring's median of the same column. The
tables go between the BEGIN/END markers of the output file, so text outside
them (a hand-written analysis) survives a re-run.

  /usr/bin/python3 bench/compare_report.py RAW.jsonl [--out bench/RESULTS.md]

re-renders a finished run without measuring again. Standard library only.
"""

import argparse
import json
import os
import statistics
import sys

BEGIN = ("<!-- BEGIN bench/compare.sh output: regenerated on every run; "
         "edit outside these markers -->")
END = "<!-- END bench/compare.sh output -->"
REF_PEER = "ringstore-io_uring"
# The cases with a section of their own; any other case compare.py ran
# gets a generic table (requests per second if its cells have rps, else MiB/s).
KNOWN_CASES = ("download_big", "cli_get_big", "upload_big", "small_4k", "small_64k", "batch_4k",
               "cold_64k", "cold_1m")
MiB = 1 << 20

# The peers besides ringstore's engines ("ringstore-ENGINE", one per engine
# the server has: see peer_note and upload_guarantee).
PEER_NOTES = {
    "baseline": "bench/baseline_server (sync gRPC, ifstream/ofstream)",
    "nginx": "nginx, sendfile on (curl / wrk)",
    "nginx-aio": "nginx, sendfile on, aio threads (wrk)",
}

UPLOAD_GUARANTEE = {
    REF_PEER: "durable: file fsynced, renamed into place, directory fsynced",
    "baseline": "durable: temp file fsynced, renamed, directory fsynced",
    "nginx": "body written to a temp file (page cache only, no fsync, no rename)",
    "nginx+fsync": "as nginx, then the script fsyncs that file and its directory",
}


def peer_note(peer):
    """How a peer ran, for the tables' first column."""
    if peer.startswith("ringstore-"):
        return "ringstore-server --engine=" + peer[len("ringstore-"):]
    return PEER_NOTES.get(peer, "nginx, then fsync by the script")


def upload_guarantee(peer):
    """What holds when the peer answers an upload."""
    if peer.startswith("ringstore-") and peer not in UPLOAD_GUARANTEE:
        return "durable (same commit)"
    return UPLOAD_GUARANTEE[peer]

REFS = [
    ("iperf3", "loopback TCP, one stream (`iperf3 -c 127.0.0.1 -t {iperf_s}`)", "mib_s"),
    ("fio_seqread_buffered", "fio io_uring: sequential read of the {big}, 1 MiB blocks, "
     "iodepth 4, buffered (page cache)", "mib_s"),
    ("fio_seqread_direct", "the same with --direct=1 (the disk)", "mib_s"),
    ("fio_randread4k_buffered", "fio io_uring: 4 KiB random reads over the {big}, iodepth 32, "
     "buffered, {fio_rand_s} s", "iops"),
    ("fio_randread4k_direct", "the same with --direct=1", "iops"),
    ("fio_randread64k_buffered", "fio io_uring: 64 KiB random reads, iodepth 32, buffered",
     "iops"),
    ("fio_randread64k_direct", "the same with --direct=1", "iops"),
    ("fio_write_fsync", "fio io_uring: write {big} in 1 MiB blocks, iodepth 4, "
     "fsync at the end (included)", "mib_s"),
]


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def brief(rec):
    """One line for the progress log."""
    if rec.get("skipped"):
        return "n/a: %s" % rec["skipped"]
    if not rec.get("ok"):
        return "FAILED: %s" % rec.get("error", "?")
    parts = []
    if "files_per_second" in rec:
        parts.append("%.0f files/s p50 %.2f ms p99 %.2f ms" % (
            rec["files_per_second"], rec["p50_ms"], rec["p99_ms"]))
    elif "rps" in rec:
        parts.append("%.0f req/s p50 %.2f ms p99 %.2f ms" % (rec["rps"], rec["p50_ms"],
                                                            rec["p99_ms"]))
    elif "iops" in rec and rec.get("name", "").startswith("fio_rand"):
        parts.append("%.0f IOPS (%.0f MiB/s)" % (rec["iops"], rec["mib_s"]))
    elif "mib_s" in rec:
        parts.append("%.0f MiB/s" % rec["mib_s"])
    if "mib_s_fsync" in rec:
        parts.append("(%.0f MiB/s with fsync %.2f s)" % (rec["mib_s_fsync"], rec["fsync_s"]))
    if "server_rss_kib" in rec:
        parts.append("server %.1f s CPU, peak RSS %.0f MiB"
                     % (rec["server_cpu_s"], rec["server_rss_kib"] / 1024.0))
    if rec.get("errors"):
        parts.append("ERRORS %s: %s" % (rec["errors"], rec.get("error_detail", "")))
    return ", ".join(parts)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, digits=0):
    if v is None:
        return "—"
    if digits == 0:
        return "{:,.0f}".format(v)
    return "{:,.{d}f}".format(v, d=digits)


def ratio(v, ref):
    if v is None or not ref:
        return "—"
    return "%.2f×" % (v / ref)


class Cells:
    """Cell records grouped by (case, peer), in round order."""

    def __init__(self, records):
        self.by = {}
        for r in records:
            if r.get("type") == "cell":
                self.by.setdefault((r["case"], r["peer"]), []).append(r)
        for v in self.by.values():
            v.sort(key=lambda r: r["round"])

    def ok(self, case, peer):
        return [r for r in self.by.get((case, peer), []) if r.get("ok") and not r.get("errors")]

    def med(self, case, peer, key, fn=None):
        rows = self.ok(case, peer)
        return median([fn(r) if fn else r.get(key) for r in rows])

    def rounds(self, case, peer, key, digits=0, fn=None):
        out = []
        for r in self.by.get((case, peer), []):
            if r.get("skipped"):
                out.append("n/a")
            elif r.get("ok") and not r.get("errors"):
                out.append(fmt(fn(r) if fn else r.get(key), digits))
            else:
                out.append("fail")
        return " / ".join(out) if out else "—"

    def skipped(self, case, peer):
        """The reason a peer cannot run a case, if every cell of it was skipped."""
        rows = self.by.get((case, peer), [])
        if rows and all(r.get("skipped") for r in rows):
            return rows[0]["skipped"]
        return None


def per_gib(key):
    return lambda r: r[key] / (r["bytes"] / float(1 << 30)) if r.get("bytes") else None


def rss_mib(r):
    return r["server_rss_kib"] / 1024.0


def size_name(n):
    if n >= 1 << 30 and n % (1 << 30) == 0:
        return "%d GiB" % (n >> 30)
    return "%d MiB" % (n >> 20)


def big_table(cells, peers, case, upload):
    lines = []
    head = "| peer | "
    if upload:
        head += "guarantee when answered | "
    # Throughput and the server's own CPU per GiB are the headline figures.
    head += ("MiB/s | server CPU s/GiB | × io_uring | server CPU × io_uring | per round "
             "| per round (server CPU s/GiB) | ")
    if not upload:  # load_gen's CPU for an upload is mostly making its random data
        head += "client CPU s/GiB | "
    head += "server peak RSS MiB |"
    lines.append(head)
    lines.append("|" + "---|" * (head.count("|") - 1))
    ref = cells.med(case, REF_PEER, "mib_s")
    ref_cpu = cells.med(case, REF_PEER, None, per_gib("server_cpu_s"))
    rows = list(peers)
    if upload and "nginx" in peers:
        rows.append("nginx+fsync")
    for peer in rows:
        src = "nginx" if peer == "nginx+fsync" else peer
        key = "mib_s_fsync" if peer == "nginx+fsync" else "mib_s"
        v = cells.med(case, src, key)
        name = peer_note(peer)
        row = "| %s | " % name
        if upload:
            row += "%s | " % upload_guarantee(peer)
        cpu = cells.med(case, src, None, per_gib("server_cpu_s"))
        row += "%s | %s | %s | %s | %s | %s | " % (
            fmt(v), fmt(cpu, 2), ratio(v, ref), ratio(cpu, ref_cpu),
            cells.rounds(case, src, key),
            cells.rounds(case, src, None, 2, per_gib("server_cpu_s")))
        if not upload:
            row += "%s | " % fmt(cells.med(case, src, None, per_gib("client_cpu_s")), 2)
        row += "%s |" % fmt(cells.med(case, src, None, rss_mib))
        lines.append(row)
    return lines


def cli_table(cells, peers):
    """The CLI's `get` against load_gen on the same big download, per
    ringstore peer: throughput, the ratio, and each client's own CPU."""
    head = ("| peer | CLI get MiB/s | load_gen MiB/s | CLI ÷ load_gen | per round (CLI) "
            "| CLI client CPU s/GiB | load_gen client CPU s/GiB | server CPU s/GiB (CLI) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for peer in peers:
        cells_of_peer = cells.by.get(("cli_get_big", peer), [])
        if all(r.get("skipped") for r in cells_of_peer):  # a peer without a CLI
            continue
        cli = cells.med("cli_get_big", peer, "mib_s")
        lg = cells.med("download_big", peer, "mib_s")
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            peer_note(peer), fmt(cli), fmt(lg), ratio(cli, lg),
            cells.rounds("cli_get_big", peer, "mib_s"),
            fmt(cells.med("cli_get_big", peer, None, per_gib("client_cpu_s")), 2),
            fmt(cells.med("download_big", peer, None, per_gib("client_cpu_s")), 2),
            fmt(cells.med("cli_get_big", peer, None, per_gib("server_cpu_s")), 2)))
    return lines


def small_table(cells, peers, case, batch=False):
    """Requests per second and the server's own CPU per request first; with
    batch: files per second (nginx: requests, one file each) and CPU per
    file, latency per call (a BatchDownload of many files, or one request)
    and no p99 ratio (a call and a request are not the same unit)."""
    unit, key, count = ("file", "files_per_second", "files") if batch else ("req", "rps",
                                                                           "requests")
    lat = " per call" if batch else ""
    cols = ["%s/s" % ("files" if batch else "req"), "server CPU µs/%s" % unit, "× io_uring",
            "server CPU × io_uring", "p50 ms" + lat, "p99 ms" + lat]
    cols += [] if batch else ["p99 × io_uring"]
    cols += ["per round (%s)" % cols[0], "per round (server CPU µs/%s)" % unit,
             "client CPU µs/%s" % unit, "server peak RSS MiB"]
    head = "| peer | " + " | ".join(cols) + " |"
    lines = [head, "|" + "---|" * (len(cols) + 1)]

    def per_us(k):
        return lambda r: r[k] / r[count] * 1e6 if r.get(count) else None
    ref = cells.med(case, REF_PEER, key)
    ref_p99 = cells.med(case, REF_PEER, "p99_ms")
    cpu_us = per_us("server_cpu_s")
    ref_cpu = cells.med(case, REF_PEER, None, cpu_us)
    for peer in peers:
        why = cells.skipped(case, peer)
        if why:
            lines.append("| %s (n/a: %s) |" % (peer_note(peer), why) + " n/a |" * len(cols))
            continue
        v = cells.med(case, peer, key)
        p99 = cells.med(case, peer, "p99_ms")
        cpu = cells.med(case, peer, None, cpu_us)
        vals = [fmt(v), fmt(cpu, 1), ratio(v, ref), ratio(cpu, ref_cpu),
                fmt(cells.med(case, peer, "p50_ms"), 2), fmt(p99, 2)]
        vals += [] if batch else [ratio(p99, ref_p99)]
        vals += [cells.rounds(case, peer, key), cells.rounds(case, peer, None, 1, cpu_us),
                 fmt(cells.med(case, peer, None, per_us("client_cpu_s")), 1),
                 fmt(cells.med(case, peer, None, rss_mib))]
        lines.append("| %s | " % peer_note(peer) + " | ".join(vals) + " |")
    return lines


def cold_table(cells, peers, case):
    """The cold cases' own figures: io-wq workers and the disk."""
    cols = [("io-wq workers, most", "iowq_max", 0), ("io-wq busy, mean", "iowq_busy_mean", 1),
            ("disk reads/s", "disk_reads_s", 0), ("disk queue depth", "disk_qd", 1),
            ("mean read KiB", "disk_read_kib", 0)]
    lines = ["| peer | " + " | ".join(c[0] for c in cols) + " |",
             "|" + "---|" * (len(cols) + 1)]
    for peer in peers:
        lines.append("| %s | " % peer_note(peer) + " | ".join(
            fmt(cells.med(case, peer, key), d) for _, key, d in cols) + " |")
    return lines


def ref_table(records, m):
    by = {}
    for r in records:
        if r.get("type") == "ref":
            by.setdefault(r["name"], []).append(r)
    if not by:
        return []
    lines = ["| reference | median | per round |", "|---|---|---|"]
    for name, label, key in REFS:
        rows = sorted(by.get(name, []), key=lambda r: r["round"])
        if not rows:
            continue
        label = label.format(big=size_name(m["big_bytes"]) + " file", iperf_s=m["iperf_s"],
                             fio_rand_s=m["fio_rand_s"])
        unit = " IOPS" if key == "iops" else " MiB/s"
        ok = [r for r in rows if r.get("ok")]
        v = median([r[key] for r in ok])
        extra = ""
        if key == "iops" and ok:
            extra = " (%s MiB/s, p99 %s ms)" % (fmt(median([r["mib_s"] for r in ok])),
                                                fmt(median([r["p99_ms"] for r in ok]), 2))
        per = " / ".join(fmt(r[key]) if r.get("ok") else "n/a" for r in rows)
        lines.append("| %s | %s%s%s | %s |" % (label, fmt(v), unit if v is not None else "",
                                                extra, per))
    return lines


def failures(records):
    out = []
    for r in records:
        if r.get("skipped"):
            continue
        if r.get("type") in ("cell", "ref") and (not r.get("ok") or r.get("errors")):
            what = "%s / %s" % (r["case"], r["peer"]) if r["type"] == "cell" else r["name"]
            why = r.get("error") or "%s errors: %s" % (r.get("errors"), r.get("error_detail"))
            out.append("- round %d, %s: %s" % (r["round"], what, why))
    return out


def markdown(records):
    m = next(r for r in records if r.get("type") == "meta")
    rounds = [r for r in records if r.get("type") == "round"]
    end = next((r for r in records if r.get("type") == "end"), None)
    cells = Cells(records)
    # A case's peers: those with cells in it (nginx-aio runs the cold cases only).
    peers = {c: [p for p in m["peers"] if (c, p) in cells.by] for c in m["cases"]}
    big = size_name(m["big_bytes"])
    n = "{:,}".format(m["small_count"])
    L = [BEGIN, ""]
    L.append("Run of %s%s: `%s`, ringstore commit %s%s." % (
        m["date"], " (**--quick smoke test: small sizes, not a result**)" if m["quick"] else "",
        m["command"], m["git"], " (with uncommitted changes)" if m.get("git_dirty") else ""))
    L.append("")
    L.append("- Machine: Linux %s, %d cores (%s), %.0f GiB RAM; data in %s on %s (%s)."
             % (m["kernel"], m["nproc"], m["cpu"], m["mem_gib"], m["dir"], m["fs_source"],
                m["fs_type"]))
    pin = m.get("pin")
    if pin:
        placement = ("Pinned (the fair method): every server on CPU %s (`taskset -c %s`; nginx "
                     "with `worker_processes 1`, master and worker), every client (load_gen, "
                     "curl, wrk, fio, iperf3's sender) on CPU %s (`taskset -c %s`; iperf3's "
                     "receiver on CPU %s), so each side's CPU time is its own."
                     % (pin["server"], pin["server"], pin["client"], pin["client"],
                        pin["server"]))
    else:
        placement = "Not pinned: clients and servers share the machine's %d cores." % m["nproc"]
    L.append("- Load average (1/5/15 min) before the run: %s; at the start of each round: %s; "
             "after: %s. %s"
             % (m["load_before"], "; ".join("r%d %s" % (r["round"], r["load"]) for r in rounds),
                end["load"] if end else "—", placement))
    if m.get("preload"):
        L.append("- ringstore-server ran with `LD_PRELOAD=%s`." % m["preload"])
    steal = []
    for r in rounds:
        v = median([c.get("steal_pct") for c in records
                    if c.get("type") == "cell" and c["round"] == r["round"]])
        busy = median([c.get("machine_busy_pct") for c in records
                       if c.get("type") == "cell" and c["round"] == r["round"]])
        if v is not None:
            steal.append("r%d %.1f %% steal, %.0f %% busy" % (r["round"], v, busy))
    if steal:
        L.append("- CPU time of the whole machine during the cells (median over the round's "
                 "cells; steal = time the hypervisor gave to other guests): %s."
                 % "; ".join(steal))
    L.append("- %d round%s; every round runs every case for every peer, the peer order rotated "
             "by one each round (round 1: %s), each cell on a freshly started server; medians "
             "over rounds; `× io_uring` = peer ÷ ringstore-io_uring (above 1: the peer is "
             "faster; for p99 and server CPU above 1: the peer is slower or costs more)."
             % (m["rounds"], "" if m["rounds"] == 1 else "s",
                ", ".join(rounds[0]["order"]) if rounds else "—"))
    L.append("- All files are read from the page cache (one shared set of hard-linked inodes, "
             "read once before round 1); uploads go to %s (%s). Server CPU = user + system "
             "time of the server process (nginx: master + workers) while the client runs, its "
             "start-up left out; client CPU "
             "likewise for load_gen, curl or wrk. Peak RSS = VmHWM of the server "
             "(nginx: sum over its workers)." % (m["fs_source"], m["fs_type"]))
    L.append("")
    if "download_big" in m["cases"]:
        L.append("### (a) Single-stream download of a %s file" % big)
        L.append("")
        L.append("gRPC peers: `load_gen --mode=download --concurrency=1 --count=1` "
                 "(1 MiB messages, each crc32c checked by load_gen); nginx: `curl -o /dev/null`"
                 " over HTTP/1.1 with sendfile.")
        L.append("")
        L += big_table(cells, peers["download_big"], "download_big", upload=False)
        L.append("")
    if "cli_get_big" in m["cases"]:
        L.append("### (a2) The same download through the CLI")
        L.append("")
        L.append("`ringstore get big/0 -` with its stdout on /dev/null (each message's "
                 "crc32c checked, as load_gen does), beside load_gen's figures from (a).")
        L.append("")
        L += cli_table(cells, peers["cli_get_big"])
        L.append("")
    if "upload_big" in m["cases"]:
        L.append("### (b) Single-stream upload of %s" % big)
        L.append("")
        L.append("gRPC peers: `load_gen --mode=upload --concurrency=1 --count=1 "
                 "--upload_size=%d` (1 MiB messages with crc32c; the time ends when the "
                 "UploadResponse arrives). nginx: `curl -T` (PUT) of a cached file to a "
                 "location with `client_body_in_file_only on` that answers 201 once the "
                 "whole body is in its temp file. The nginx+fsync row adds the time the "
                 "script then takes to fsync that file and its directory, one after the "
                 "other — what durability would cost nginx, not something nginx does."
                 % m["big_bytes"])
        L.append("")
        L += big_table(cells, peers["upload_big"], "upload_big", upload=True)
        L.append("")
    for case, label in (("small_4k", "4 KiB"), ("small_64k", "64 KiB")):
        if case not in m["cases"]:
            continue
        L.append("### (c) 64 concurrent downloads of random %s files out of %s, %d s"
                 % (label, n, m["duration_s"]))
        L.append("")
        L.append("gRPC peers: `load_gen --mode=download --concurrency=64 --duration=%ds` "
                 "(64 streams over 8 HTTP/2 connections); nginx: `wrk -t2 -c64 --latency` "
                 "with bench/compare_wrk.lua (64 HTTP/1.1 keep-alive connections). Latency "
                 "is per request, as each client measures it." % m["duration_s"])
        L.append("")
        L += small_table(cells, peers[case], case)
        L.append("")
    if "batch_4k" in m["cases"]:
        L.append("### (c2) BatchDownload of random 4 KiB files out of %s, %d s" % (
            n, m["duration_s"]))
        L.append("")
        L.append("The small_4k files. ringstore: `load_gen --mode=batch --batch_size=%d "
                 "--concurrency=%d --duration=%ds` (BatchDownload calls of %d random paths, %d "
                 "in flight); nginx: small_4k's `wrk -t2 -c64` run, one file per request, so "
                 "its files/s is its req/s. Server CPU and latency: per file and per call."
                 % (m.get("batch_size", 100), m.get("batch_concurrency", 4), m["duration_s"],
                    m.get("batch_size", 100), m.get("batch_concurrency", 4)))
        L.append("")
        L += small_table(cells, peers["batch_4k"], "batch_4k", batch=True)
        L.append("")
    for case, label in (("cold_64k", "64 KiB"), ("cold_1m", "1 MiB")):
        if case not in m["cases"]:
            continue
        count = m.get("cold_sets", {}).get(case, [0])[0]
        L.append("### (e) Cold data: 64 concurrent downloads fetch each of {:,} {} files "
                 "once, page cache dropped before each cell".format(count, label))
        L.append("")
        L.append("`sync; echo 3 > /proc/sys/vm/drop_caches` on the fresh server, then 64 "
                 "streams fetch every file of a set no other case reads exactly once, in a "
                 "random order (`load_gen --each_once`; `wrk -t1 -c64 --timeout 60s` with "
                 "`COMPARE_ONCE`), so every request misses the page cache; the cell ends "
                 "with the last file. nginx-aio: nginx with `aio threads;`. io-wq workers: "
                 "iou-wrk threads of the server, sampled every 50 ms (busy: not waiting for "
                 "work); disk figures from /proc/diskstats.")
        L.append("")
        L += small_table(cells, peers[case], case)
        L.append("")
        L += cold_table(cells, peers[case], case)
        L.append("")
    for case in m["cases"]:
        if case in KNOWN_CASES:
            continue
        rows = [r for r in records if r.get("type") == "cell" and r["case"] == case]
        L.append("### Case %s" % case)
        L.append("")
        if any("rps" in r for r in rows):
            L += small_table(cells, peers[case], case)
        else:
            L += big_table(cells, peers[case], case, upload=False)
        L.append("")
    refs = ref_table(records, m)
    if refs:
        L.append("### (d) Physical references")
        L.append("")
        L += refs
        L.append("")
    fails = failures(records)
    L.append("### Failures and errors")
    L.append("")
    L += fails or ["none: every cell and reference succeeded without errors."]
    L.append("")
    L.append(END)
    return "\n".join(L) + "\n"


HEADER = """# ringstore end-to-end comparison

Written by `bench/compare.sh` (the tables between the markers; see the
script's header for what each case does). Anything outside the markers is
written by hand and kept when the script runs again.

"""


def write_into(path, text):
    old = ""
    if os.path.exists(path):
        with open(path) as f:
            old = f.read()
    if BEGIN in old and END in old:
        new = old[:old.index(BEGIN)] + text.rstrip("\n") + old[old.index(END) + len(END):]
    elif old:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        new = HEADER + text
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(new)
    os.replace(tmp, path)


def main(argv):
    p = argparse.ArgumentParser(description="Markdown tables from compare.py's JSON lines.")
    p.add_argument("raw")
    p.add_argument("--out", default="")
    args = p.parse_args(argv)
    text = markdown(load(args.raw))
    if args.out:
        write_into(args.out, text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
