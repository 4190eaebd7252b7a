"""bench/compare.py's cold cases: downloads of files that are not in the
page cache.

cold_64k, cold_1m: 64 concurrent downloads that fetch every file of a
cold-only set exactly once, in a random order (40,000 files of 64 KiB,
2.5 GiB / 4,000 files of 1 MiB, 4 GiB; 200 and 100 with --quick; made when
their case first runs and never read by the warm cases), the page cache
dropped (sync; echo 3 > /proc/sys/vm/drop_caches: data, directory entries
and inodes; needs root) on the fresh server just before the client starts.
So every request misses the page cache and the cell lasts until the last
file is in: load_gen --each_once, wrk -t1 -c64 with compare_wrk.lua's
COMPARE_ONCE (each shuffles with the round number as seed; a 60 s request
timeout). The peers are compare's plus nginx-aio (nginx with `aio
threads;`).

Extra figures per cell: the most io-wq workers (iou-wrk threads of the
server) seen at once and how many were busy on average (sampled every
50 ms; busy = their kernel stack is not io_wq_worker's wait for work), and
the disk's reads/s, average queue depth and mean read size from
/proc/diskstats. Only the standard library.
"""

import os
import subprocess
import threading
import time

from compare_cases import case, case_small
from compare_peers import KiB, MiB, Fail

# The cold-only data sets: name -> (files, files with --quick, size).
COLD_SETS = {"cold_64k": (40000, 200, 64 * KiB), "cold_1m": (4000, 100, MiB)}
CASE_NAMES = ("cold_64k", "cold_1m")


def disk_of(path):
    """The whole-disk name in /proc/diskstats that holds `path` (vda...)."""
    dev = os.stat(path).st_dev
    real = os.path.realpath("/sys/dev/block/%d:%d" % (os.major(dev), os.minor(dev)))
    if os.path.exists(os.path.join(real, "partition")):
        real = os.path.dirname(real)
    return os.path.basename(real)


def diskstats(disk):
    """(reads, sectors read, weighted ms in queue) of `disk`."""
    with open("/proc/diskstats") as f:
        for line in f:
            v = line.split()
            if v[2] == disk:
                return int(v[3]), int(v[5]), int(v[13])
    raise Fail("no %s in /proc/diskstats" % disk)


def drop_caches():
    subprocess.run(["sync"], check=True)
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError as e:
        raise Fail("cannot drop the page cache (run as root): %s" % e)


class IoWqSampler(threading.Thread):
    """Every 50 ms: how many io-wq workers (iou-wrk threads) the pids have,
    and how many of them are busy (their kernel stack, which root can read,
    is anywhere but io_wq_worker's wait for work)."""

    def __init__(self, pids):
        super().__init__(daemon=True)
        self.pids, self.most, self.samples, self.total, self.busy = pids, 0, 0, 0, 0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.wait(0.05):
            n = busy = 0
            for pid in self.pids:
                try:
                    tids = os.listdir("/proc/%d/task" % pid)
                except OSError:
                    continue
                for tid in tids:
                    base = "/proc/%d/task/%s/" % (pid, tid)
                    try:
                        with open(base + "comm") as f:
                            if not f.read().startswith("iou-wrk"):
                                continue
                        with open(base + "stack") as f:
                            top = f.readline()
                    except OSError:
                        continue
                    n += 1
                    busy += 0 if " io_wq_worker+" in top else 1
            self.most = max(self.most, n)
            self.samples += 1
            self.total += n
            self.busy += busy


def cold_cell(run, server, rnd, name, paths):
    disk = disk_of(paths)
    drop_caches()
    time.sleep(0.5)
    d0, t0 = diskstats(disk), time.monotonic()
    sampler = IoWqSampler(server.cpu_pids())
    sampler.start()
    try:
        rec = case_small(run, server, rnd, name, paths=paths, wrk_timeout_s=60, once_seed=rnd + 1)
    finally:
        sampler.stop.set()
        sampler.join()
    d1, ms = diskstats(disk), (time.monotonic() - t0) * 1000
    reads = d1[0] - d0[0]
    rec.update(iowq_max=sampler.most, iowq_busy_mean=sampler.busy / max(sampler.samples, 1),
               disk_reads_s=reads / (ms / 1000), disk_qd=(d1[2] - d0[2]) / ms,
               disk_read_kib=(d1[1] - d0[1]) * 512 / 1024 / max(reads, 1))
    return rec


@case("cold_64k", extra_peers=("nginx-aio",))
def case_cold_64k(run, server, rnd):
    return cold_cell(run, server, rnd, "cold_64k", run.paths["cold_64k"])


@case("cold_1m", extra_peers=("nginx-aio",))
def case_cold_1m(run, server, rnd):
    return cold_cell(run, server, rnd, "cold_1m", run.paths["cold_1m"])
