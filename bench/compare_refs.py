"""bench/compare.py's physical references: iperf3 over loopback and fio
(io_uring) on the big file, buffered and direct, once a round. Only the
standard library.
"""

import json
import os
import time

from compare_peers import KiB, MiB, Fail, client_run, free_port, pinned


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
        # Pinned like the peers: the receiving server on the server CPU,
        # the sending client (client_run) on the client CPU.
        srv = run.children.spawn(pinned([run.bins["iperf3"], "-s", "-1", "--forceflush",
                                         "-B", "127.0.0.1", "-p", str(port)], "server"), log)
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
