#!/usr/bin/python3
"""Where a server's CPU time goes, from a `perf record -g` profile: the
share of samples per thread name and per cost category, each sample counted
once, in the first category (top to bottom) whose test it passes.

  perf script -i profile.data -F comm,tid,ip,sym,dso > profile.txt
  /usr/bin/python3 bench/perf_breakdown.py profile.txt

(bench/compare.sh --profile=CASE/PEER records such a profile.) The
categories are the ones the analysis in bench/RESULTS.md uses; they
overlap, so the order decides: e.g. a memcpy inside the kernel's TCP send
counts as TCP, a memcpy in user space as a copy. Standard library only.
"""

import collections
import re
import sys


def parse(path):
    """perf script output -> [(comm, [(symbol, dso), ...] leaf first)]."""
    samples, comm, frames = [], None, []
    with open(path, errors="replace") as f:
        for line in f:
            if not line.strip():
                if comm is not None:
                    samples.append((comm, frames))
                comm, frames = None, []
            elif not line[0].isspace():
                comm, frames = " ".join(line.split()[:-1]), []
            else:
                m = re.match(r"\s*[0-9a-f]+\s+(.*?)\s+\((.*)\)\s*$", line)
                if m:
                    frames.append((m.group(1), m.group(2).rsplit("/", 1)[-1]))
    if comm is not None:
        samples.append((comm, frames))
    return samples


def _any(frames, rx):
    return any(re.search(rx, sym) for sym, _ in frames)


def _leaf(frames, rx, part=0):
    return bool(frames) and re.search(rx, frames[0][part]) is not None


CATEGORIES = [
    ("io-wq workers (iou-wrk threads: work io_uring punted)",
     lambda comm, fr: comm.startswith("iou-wrk")),
    ("absl Mutex deadlock detection (GraphCycles)",
     lambda comm, fr: _any(fr, r"GraphCycles|DeadlockCheck")),
    ("scheduler: threads blocking and waking",
     lambda comm, fr: _any(fr, r"^(__schedule|schedule|finish_task_switch.*|try_to_wake_up)$")),
    ("crc32c", lambda comm, fr: _any(fr, r"ExtendSse42|Crc32c")),
    ("user-space copies (memcpy/memmove)",
     lambda comm, fr: _leaf(fr, r"^__mem(cpy|move)") and not _leaf(fr, r"kernel", part=1)),
    ("kernel TCP send/receive, loopback delivery included",
     lambda comm, fr: _any(fr, r"tcp_sendmsg|tcp_recvmsg|sock_recvmsg|sock_sendmsg|"
                               r"epoll_wait|__sys_recvmsg|__sys_sendmsg")),
    ("kernel io_uring work run inline (open, read, close, submit)",
     lambda comm, fr: _any(fr, r"io_submit_sqes|io_issue_sqe|io_uring_enter|__io_")),
    ("malloc/free and page faults",
     lambda comm, fr: _leaf(fr, r"malloc|_int_free|cfree|^free$|consolidate|unlink_chunk|"
                                r"operator new|operator delete") or _any(fr, r"exc_page_fault")),
    ("gRPC, HTTP/2 and protobuf (user space)",
     lambda comm, fr: _leaf(fr, r"libgrpc|libgpr|libprotobuf", part=1)),
    ("ringstore's own code", lambda comm, fr: _leaf(fr, r"ringstore-server", part=1)),
    ("other (libc, absl, other kernel)", lambda comm, fr: True),
]


def breakdown(samples):
    cats = collections.Counter()
    for comm, frames in samples:
        for name, test in CATEGORIES:
            if test(comm, frames):
                cats[name] += 1
                break
    threads = collections.Counter(re.sub(r"-\d+$", "", c) for c, _ in samples)
    return cats, threads


def main(argv):
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    samples = parse(argv[0])
    if not samples:
        print("no samples in %s" % argv[0], file=sys.stderr)
        return 1
    cats, threads = breakdown(samples)
    n = float(len(samples))
    print("%d samples" % len(samples))
    print("threads: " + ", ".join("%s %.1f %%" % (t, 100 * c / n)
                                  for t, c in threads.most_common(8)))
    for name, _ in CATEGORIES:
        print("%5.1f %%  %s" % (100 * cats[name] / n, name))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
