#!/usr/bin/env bash
# compare.sh: ringstore end to end against its peers, in one interleaved run
# on loopback, with the physical limits of the machine beside them.
#
# Peers: ringstore-server with each engine (io_uring, posix_aio, thread_pool),
# bench/baseline_server (the plain synchronous gRPC server), and nginx
# (defaults plus `sendfile on`, worker_processes 1, no access log); for the
# cold cases also nginx-aio (the same plus `aio threads;`).
# The fair method (issue 14): every server runs on CPU 0 (`taskset -c 0`;
# nginx's master and its one worker), every client (load_gen, curl, wrk,
# fio, iperf3's sender) on CPU 1 (`taskset -c 1`; iperf3's receiver on CPU
# 0), so each side's CPU time is its own and a heavy client does not slow
# the server down; the report puts server CPU per GiB and per request
# beside throughput.
# Cases, each cell on a freshly started server listening on 127.0.0.1:0
# (nginx: a free port picked by Python):
#   (a) download_big  single-stream download of a 1 GiB file: load_gen
#                     --mode=download --concurrency=1 / curl -o /dev/null
#   (a2) cli_get_big  the same download through the CLI: `ringstore get big/0 -`
#                     with stdout on /dev/null (ringstore peers only: the
#                     CLI against load_gen, issue 14's "within 10 %")
#   (b) upload_big    single-stream upload of 1 GiB: load_gen --mode=upload
#                     --concurrency=1 (answered once durable) / curl -T to an
#                     nginx location with client_body_in_file_only on (answered
#                     once the body is in a temp file, not fsynced; the script
#                     then fsyncs it and reports that time separately)
#   (c) small_4k, small_64k
#                     64 concurrent downloads of random files out of 10,000
#                     for 10 s: load_gen --concurrency=64 / wrk -t2 -c64
#                     --latency -s bench/compare_wrk.lua
#   (c2) batch_4k     the small_4k files through BatchDownload: load_gen
#                     --mode=batch --batch_size=100 --concurrency=4 (files/s,
#                     server CPU per file); nginx: small_4k's wrk run (one
#                     file per request); baseline: n/a (no BatchDownload)
#   (e) cold_64k, cold_1m
#                     cold data: the page cache dropped (echo 3 >
#                     /proc/sys/vm/drop_caches) on the fresh server, then
#                     64 streams fetch each file of a cold-only set once, in
#                     a random order, so every request misses the cache:
#                     40,000 files of 64 KiB / 4,000 of 1 MiB (made on their
#                     first run; 200 / 100 with --quick); load_gen
#                     --each_once, wrk -t1 -c64 --timeout 60s with
#                     COMPARE_ONCE; extra peer nginx-aio (nginx + `aio
#                     threads;`); extra columns: io-wq workers (most, busy)
#                     and the disk's reads/s, queue depth, read size
#   (d) references    iperf3 over loopback, fio --ioengine=io_uring: 1 GiB
#                     sequential read in 1 MiB blocks, 4 KiB and 64 KiB random
#                     reads at iodepth 32 (buffered and --direct=1), a 1 GiB
#                     write with fsync at the end
#   (e) every cell records the server's peak RSS (VmHWM; nginx: the sum over
#       its workers) and CPU time, and the client's CPU time.
# The whole matrix runs --rounds times, the peer order rotated by one each
# round; the report gives per-cell medians and each peer's ratio to
# ringstore-io_uring. bench/compare.py does the work, bench/compare_report.py
# writes the tables.
# A/B of server variants (a build, a flag, an env such as LD_PRELOAD, over
# the same kind of load): bench/compare_ab.py, not this script.
#
# Data: --dir (default /var/tmp/ringstore-compare; never a tmpfs). The data
# set is uploaded once through ringstore (kept for the next run with the same
# sizes) and hard-linked into one root per peer. Needs about 2x the big file
# plus 1 GiB of free space there (and 2.5 GiB with cold_64k, 4 GiB with
# cold_1m).
#
# Usage: bench/compare.sh [--rounds=N] [--dir=DIR] [--quick] [--out=FILE]
#          [--duration=SECONDS] [--peers=a,b] [--cases=a,b] [--no_refs]
#          [--profile=CASE/PEER [--profile_with=record|stat]]
#          [--pin=SERVER_CPU,CLIENT_CPU|none] [--tcmalloc | --preload=LIB]
#   --rounds=N    rounds (default 3)
#   --quick       smoke test: a 64 MiB file, 1,000 small files, 3 s runs;
#                 writes DIR/RESULTS-quick.md unless --out is given
#   --out=FILE    markdown output (default bench/RESULTS.md); the tables go
#                 between its BEGIN/END markers, text outside them is kept
#   --peers, --cases, --no_refs
#                 a partial matrix, for debugging (peers: ringstore-ENGINE for
#                 each engine the server has, e.g. ringstore-io_uring, then
#                 baseline, nginx, nginx-aio; cases: download_big, cli_get_big, upload_big, small_4k,
#                 small_64k, batch_4k, cold_64k, cold_1m; nginx-aio runs
#                 the cold cases only)
#   --pin=0,1     the CPUs of the servers and of the clients (default 0,1);
#                 none: unpinned (the method before issue 14)
#   --tcmalloc    LD_PRELOAD gperftools' full tcmalloc (libtcmalloc.so.4,
#                 apt-get install -y libgoogle-perftools4) into ringstore-
#                 server (which already links tcmalloc_minimal: see
#                 third_party/system/system.BUILD); --preload=LIB any other
#   --profile=CASE/PEER
#                 run that one cell under `perf record -e cpu-clock -g
#                 --call-graph dwarf -p SERVER_PID` and keep the perf data in
#                 DIR; writes no tables
#   --profile_with=stat
#                 with --profile: `perf stat -e task-clock,context-switches,
#                 cpu-migrations,page-faults -p SERVER_PID` instead
# Binaries: bazel-out/k8-opt/bin of this checkout, built with
#   bazel build -c opt --jobs=2 //server:ringstore-server //bench:load_gen //bench:baseline_server //client:ringstore
# or RINGSTORE_SERVER, BASELINE_SERVER, LOAD_GEN, RINGSTORE_CLI from the environment.
# Tools: apt-get install -y nginx-light fio iperf3 wrk curl (linux-perf for
# --profile). Run as root (nginx, fsync of nginx's files, /proc of servers,
# drop_caches and io-wq workers' kernel stacks for the cold cases).
# Every process it starts is stopped on exit, also on Ctrl-C or SIGTERM.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
rounds=3
dir=/var/tmp/ringstore-compare
quick=0
out=""
extra=()
profile=""
tcmalloc=0

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "compare.sh: $*" >&2; exit 2; }

for arg in "$@"; do
  case "$arg" in
    --rounds=*) rounds="${arg#*=}" ;;
    --dir=*) dir="${arg#*=}" ;;
    --quick) quick=1 ;;
    --out=*) out="${arg#*=}" ;;
    --duration=*|--peers=*|--cases=*) extra+=("$arg") ;;
    --no_refs) extra+=("$arg") ;;
    --profile=*) profile="${arg#*=}"; extra+=("$arg") ;;
    --profile_with=*|--pin=*|--preload=*) extra+=("$arg") ;;
    --tcmalloc) tcmalloc=1 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument '$arg' (see --help)" ;;
  esac
done
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || die "--rounds must be a positive integer, not '$rounds'"
[[ -n "$dir" ]] || die "--dir must not be empty"
if [[ -z "$out" ]]; then
  if (( quick )); then out="$dir/RESULTS-quick.md"; else out="$here/RESULTS.md"; fi
fi

# ------------------------------------------------------------ prerequisites
missing=()
need_cmd() {  # need_cmd COMMAND PACKAGE
  if ! command -v "$1" >/dev/null 2>&1 && [[ ! -x "/usr/sbin/$1" ]]; then
    missing+=("the command '$1' (apt-get install -y $2)")
  fi
}
[[ -x /usr/bin/python3 ]] || missing+=("/usr/bin/python3 (apt-get install -y python3)")
need_cmd nginx nginx-light
need_cmd curl curl
need_cmd wrk wrk
need_cmd fio fio
need_cmd iperf3 iperf3
[[ -z "$profile" ]] || need_cmd perf linux-perf
pin="0,1"
for arg in "${extra[@]}"; do [[ "$arg" != --pin=* ]] || pin="${arg#*=}"; done
if [[ "$pin" != none ]]; then
  need_cmd taskset util-linux
  (( $(nproc) >= 2 )) || missing+=("two CPUs for --pin (this machine has $(nproc); use --pin=none)")
fi
if (( tcmalloc )); then
  lib=/usr/lib/x86_64-linux-gnu/libtcmalloc.so.4
  if [[ -f "$lib" ]]; then extra+=(--preload="$lib")
  else missing+=("$lib for --tcmalloc (apt-get install -y libgoogle-perftools4)"); fi
fi
export PATH="$PATH:/usr/sbin:/sbin"

bin="$repo/bazel-out/k8-opt/bin"
ringstore="${RINGSTORE_SERVER:-$bin/server/ringstore-server}"
baseline="${BASELINE_SERVER:-$bin/bench/baseline_server}"
load_gen="${LOAD_GEN:-$bin/bench/load_gen}"
cli="${RINGSTORE_CLI:-$bin/client/ringstore}"
for b in "$ringstore" "$baseline" "$load_gen" "$cli"; do
  [[ -x "$b" ]] || missing+=("$b (build it: cd $repo && bazel build -c opt --jobs=2 //server:ringstore-server //bench:load_gen //bench:baseline_server //client:ringstore)")
done
[[ "$(id -u)" == 0 ]] || missing+=("root (nginx's workers, fsync of nginx's upload files)")
if [[ -r /proc/sys/kernel/io_uring_disabled ]] && [[ "$(cat /proc/sys/kernel/io_uring_disabled)" != 0 ]]; then
  missing+=("io_uring: kernel.io_uring_disabled=$(cat /proc/sys/kernel/io_uring_disabled) (ringstore-io_uring and fio's io_uring engine need 0)")
fi

if mkdir -p "$dir" 2>/dev/null; then
  fstype="$(stat -f -c %T "$dir")"
  if [[ "$fstype" == tmpfs || "$fstype" == ramfs ]]; then
    missing+=("--dir on a disk file system: $dir is on $fstype (uploads' fsync and --direct=1 would mean nothing)")
  fi
  if ! /usr/bin/python3 - "$dir" <<'EOF' 2>/dev/null
import os, sys
p = os.path.join(sys.argv[1], ".xattr-probe")
open(p, "w").close()
try:
    os.setxattr(p, "user.ringstore.probe", b"1")
finally:
    os.unlink(p)
EOF
  then
    missing+=("user extended attributes on $dir (ringstore keeps its metadata in one)")
  fi
  need_kib=$(( (quick ? 64 * 3 + 512 : 2048 + 1024 + 2560 + 4096) * 1024 ))
  avail_kib="$(df -P -k "$dir" | awk 'NR==2 {print $4}')"
  if (( avail_kib < need_kib )); then
    missing+=("free space: $((avail_kib / 1024)) MiB in $dir, needs about $((need_kib / 1024)) MiB")
  fi
else
  missing+=("a writable --dir: cannot create $dir")
fi

if (( ${#missing[@]} )); then
  echo "compare.sh: cannot run, missing:" >&2
  printf '  - %s\n' "${missing[@]}" >&2
  exit 2
fi

# ------------------------------------------------------------------ cleanup
pidfile="$dir/run/pids.$$"
mkdir -p "$dir/run"
: > "$pidfile"
py_pid=""

cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  if [[ -n "$py_pid" ]] && kill -0 "$py_pid" 2>/dev/null; then
    kill -TERM "$py_pid" 2>/dev/null || true
    wait "$py_pid" 2>/dev/null || true
  fi
  # Anything the runner started and did not stop (it died, or was killed).
  local pid left=()
  if [[ -f "$pidfile" ]]; then
    while read -r pid; do
      [[ -n "$pid" && -d "/proc/$pid" ]] || continue
      case "$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null)" in
        *ringstore-server*|*baseline_server*|*nginx*|*iperf3*|*perf\ record*) left+=("$pid") ;;
      esac
    done < "$pidfile"
    if (( ${#left[@]} )); then
      echo "compare.sh: stopping leftover processes ${left[*]}" >&2
      kill -TERM "${left[@]}" 2>/dev/null || true
      sleep 2
      for pid in "${left[@]}"; do
        [[ -d "/proc/$pid" ]] && kill -KILL "$pid" 2>/dev/null || true
      done
    fi
    rm -f "$pidfile"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# --------------------------------------------------------------------- run
cmdline="bench/compare.sh${*:+ $*}"
args=(--rounds="$rounds" --dir="$dir" --pidfile="$pidfile" --command="$cmdline"
      --ringstore="$ringstore" --baseline="$baseline" --load_gen="$load_gen" --cli="$cli"
      --raw_out="${out%.md}.raw.jsonl")
(( quick )) && args+=(--quick)
[[ -n "$profile" ]] || args+=(--out="$out")
/usr/bin/python3 "$here/compare.py" "${args[@]}" "${extra[@]}" &
py_pid=$!
wait "$py_pid"
py_pid=""

if [[ -z "$profile" ]]; then
  echo
  cat "$out"
fi
