#!/usr/bin/env bash
# cli_vs_curl.sh: what a new user feels first. `ringstore put` and
# `ringstore get` of one big file (default 1 GiB) against a real
# ringstore-server (io_uring engine), beside curl PUT / GET against nginx,
# both on loopback, in one run, interleaved over --rounds rounds (the order
# of the two tools alternates each round).
#
#   ringstore put  `ringstore --server=... put SRC big`: answered once the
#                  file is committed, i.e. fsynced and renamed (durable).
#   curl PUT       `curl -T SRC http://.../big` to nginx's dav module
#                  (`dav_methods PUT`): answered once nginx has renamed its
#                  temp file into place, NOT fsynced. The script then runs
#                  `sync FILE` (an fsync) and reports PUT+fsync separately:
#                  that column is the durable one to compare with.
#   ringstore get  `ringstore get big OUT`; curl GET `curl -o OUT`. Both
#                  stored files are read once before each GET (cat >
#                  /dev/null), so both servers serve from the page cache;
#                  both clients write OUT to the page cache of --dir's file
#                  system (removed before each run).
# Each server is started once for the whole run: ringstore-server with
# --engine=io_uring, nginx with one worker, sendfile on, no access log. CPU
# is user+sys: the client's from bash's `time`, the server's as the change
# of utime+stime in /proc/PID/stat over the transfer (every thread, io-wq
# workers included; nginx: its worker).
#
# Usage: bench/cli_vs_curl.sh [--rounds=N] [--size_mib=N] [--dir=DIR]
#   --rounds=N    rounds (default 3)
#   --size_mib=N  file size (default 1024)
#   --dir=DIR     data (default /var/tmp/ringstore-cli-vs-curl; never a
#                 tmpfs); needs about 4x the file size free
# Binaries: bazel-out/k8-opt/bin of this checkout, built with
#   bazel build -c opt --jobs=2 //server:ringstore-server //client:ringstore
# or RINGSTORE_SERVER and RINGSTORE_CLI from the environment.
# Tools: nginx-light and curl, installed with apt-get if missing. Run as
# root (apt-get, nginx's `user root`, reading both servers' /proc).
set -euo pipefail

rounds=3
size_mib=1024
dir=/var/tmp/ringstore-cli-vs-curl
for arg in "$@"; do
  case "$arg" in
    --rounds=*) rounds="${arg#*=}" ;;
    --size_mib=*) size_mib="${arg#*=}" ;;
    --dir=*) dir="${arg#*=}" ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "cli_vs_curl.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done

repo="$(cd "$(dirname "$0")/.." && pwd)"
server_bin="${RINGSTORE_SERVER:-$repo/bazel-out/k8-opt/bin/server/ringstore-server}"
cli_bin="${RINGSTORE_CLI:-$repo/bazel-out/k8-opt/bin/client/ringstore}"
for b in "$server_bin" "$cli_bin"; do
  [[ -x "$b" ]] || { echo "cli_vs_curl.sh: $b missing: bazel build -c opt --jobs=2 //server:ringstore-server //client:ringstore" >&2; exit 1; }
done
[[ "$(id -u)" == 0 ]] || { echo "cli_vs_curl.sh: run as root" >&2; exit 1; }
if ! command -v nginx >/dev/null || ! command -v curl >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx-light curl >/dev/null
fi
# Debian's package starts a system nginx; this script uses its own.
nginx -V 2>&1 | grep -q -- --with-http_dav_module || { echo "cli_vs_curl.sh: nginx lacks the dav module" >&2; exit 1; }

mkdir -p "$dir"
src="$dir/src.bin"
out="$dir/out.bin"
rs_root="$dir/ringstore-root"
ng="$dir/nginx"
rm -rf "$rs_root" "$ng" "$out"
mkdir -p "$rs_root" "$ng/root" "$ng/tmp" "$ng/logs"
size=$((size_mib * 1024 * 1024))
if [[ ! -f "$src" || "$(stat -c %s "$src")" != "$size" ]]; then
  echo "making $src ($size_mib MiB of random data)" >&2
  head -c "$size" /dev/urandom > "$src.tmp" && mv "$src.tmp" "$src"
fi
cat "$src" > /dev/null  # both uploads read it from the page cache

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -f "$out"
}
trap cleanup EXIT

# ringstore-server on a port it picks; its first line names it.
"$server_bin" --listen=127.0.0.1:0 --root="$rs_root" --engine=io_uring \
  > "$dir/server.out" 2> "$dir/server.err" &
rs_pid=$!
pids+=("$rs_pid")
for _ in $(seq 100); do
  grep -q 'listening on' "$dir/server.out" 2>/dev/null && break
  sleep 0.1
done
rs_addr="$(sed -n 's/.*listening on \([^ ]*\) engine=\(.*\)/\1/p' "$dir/server.out")"
rs_engine="$(sed -n 's/.*engine=\([^ ]*\).*/\1/p' "$dir/server.out")"
[[ -n "$rs_addr" && "$rs_engine" == io_uring ]] ||
  { echo "cli_vs_curl.sh: server did not start on io_uring:" >&2; cat "$dir/server.out" "$dir/server.err" >&2; exit 1; }

ng_port="$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
cat > "$ng/nginx.conf" <<EOF
user root;
worker_processes 1;
pid $ng/nginx.pid;
error_log $ng/logs/error.log;
events { worker_connections 64; }
http {
  access_log off;
  sendfile on;
  client_max_body_size 0;
  client_body_temp_path $ng/tmp;
  server {
    listen 127.0.0.1:$ng_port;
    root $ng/root;
    location / {
      dav_methods PUT;
      create_full_put_path on;
      dav_access user:rw;
    }
  }
}
EOF
nginx -p "$ng" -c "$ng/nginx.conf" -g 'daemon off;' &
ng_master=$!
pids+=("$ng_master")
ng_worker=""
for _ in $(seq 100); do
  ng_worker="$(pgrep -P "$ng_master" | head -1 || true)"
  [[ -n "$ng_worker" ]] && curl -s -o /dev/null "http://127.0.0.1:$ng_port/" && break
  sleep 0.1
done
[[ -n "$ng_worker" ]] || { echo "cli_vs_curl.sh: nginx did not start" >&2; cat "$ng/logs/error.log" >&2; exit 1; }

tck="$(getconf CLK_TCK)"
# utime+stime of a process in seconds.
proc_cpu() { awk -v t="$tck" '{ printf "%.3f", ($14 + $15) / t }' "/proc/$1/stat"; }

results="$dir/results.tsv"
: > "$results"
TIMEFORMAT='%R %U %S'
# run NAME SERVER_PID CMD...: times CMD and records wall, client and server CPU.
run() {
  local name="$1" spid="$2"; shift 2
  local before after t
  before="$(proc_cpu "$spid")"
  t="$( { time "$@" > /dev/null 2> "$dir/last.err"; } 2>&1 )" ||
    { echo "cli_vs_curl.sh: $name failed:" >&2; cat "$dir/last.err" >&2; exit 1; }
  after="$(proc_cpu "$spid")"
  read -r wall user sys <<< "$t"
  awk -v n="$name" -v w="$wall" -v u="$user" -v s="$sys" -v b="$before" -v a="$after" \
      -v m="$size_mib" -v r="$round" 'BEGIN {
        printf "%s\t%d\t%.3f\t%.1f\t%.2f\t%.2f\n", n, r, w, m / w, u + s, a - b }' >> "$results"
  tail -1 "$results" >&2
}

put_ringstore() { run ringstore_put "$rs_pid" "$cli_bin" --server="$rs_addr" put "$src" big; }
put_curl() {
  run curl_put "$ng_worker" curl -sS -f -T "$src" "http://127.0.0.1:$ng_port/big"
  # The fsync nginx does not do, timed on its own.
  local t
  t="$( { time sync "$ng/root/big"; } 2>&1 )"
  read -r wall _ _ <<< "$t"
  awk -v w="$wall" -v r="$round" 'BEGIN { printf "curl_put_fsync\t%d\t%.3f\t0\t0\t0\n", r, w }' >> "$results"
}
get_ringstore() {
  cat "$rs_root/big" > /dev/null
  rm -f "$out"
  run ringstore_get "$rs_pid" "$cli_bin" --server="$rs_addr" get big "$out"
}
get_curl() {
  cat "$ng/root/big" > /dev/null
  rm -f "$out"
  run curl_get "$ng_worker" curl -sS -f -o "$out" "http://127.0.0.1:$ng_port/big"
}

echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(uname -r), ringstore engine $rs_engine, $size_mib MiB, $rounds rounds" >&2
echo -e "# case\tround\tseconds\tMiB/s\tclient_cpu_s\tserver_cpu_s" >&2
for round in $(seq 1 "$rounds"); do
  if (( round % 2 )); then
    put_ringstore; put_curl; get_ringstore; get_curl
  else
    put_curl; put_ringstore; get_curl; get_ringstore
  fi
done

# Medians per case; curl_put_fsync's MiB/s is size / (PUT + fsync) of the
# same round.
/usr/bin/python3 - "$results" "$size_mib" "$rounds" <<'EOF'
import statistics, sys
path, size_mib, rounds = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
rows = {}
for line in open(path):
    name, rnd, secs, _, ccpu, scpu = line.split("\t")
    rows.setdefault(name, {})[int(rnd)] = (float(secs), float(ccpu), float(scpu))
durable = {r: size_mib / (rows["curl_put"][r][0] + rows["curl_put_fsync"][r][0])
           for r in rows["curl_put"]}
def med(name, i):
    return statistics.median(v[i] for v in rows[name].values())
def rate(name):
    return statistics.median(size_mib / v[0] for v in rows[name].values())
def spread(name):
    rs = sorted(size_mib / v[0] for v in rows[name].values())
    return "%.0f–%.0f" % (rs[0], rs[-1])
print("| case | MiB/s, median (range) | client CPU s | server CPU s |")
print("|---|---|---|---|")
for name, label in [("ringstore_put", "`ringstore put` (durable: fsync, rename)"),
                    ("curl_put", "curl PUT → nginx dav (page cache only)"),
                    ("ringstore_get", "`ringstore get`"),
                    ("curl_get", "curl GET ← nginx (sendfile)")]:
    print("| %s | %.0f (%s) | %.2f | %.2f |" % (label, rate(name), spread(name),
                                              med(name, 1), med(name, 2)))
    if name == "curl_put":
        ds = sorted(durable.values())
        print("| curl PUT + fsync of the file after it | %.0f (%.0f–%.0f) | | |"
              % (statistics.median(ds), ds[0], ds[-1]))
print()
put, get = rate("ringstore_put"), rate("ringstore_get")
print("ringstore put / curl PUT: %.2f× (/ curl PUT + fsync: %.2f×); "
      "ringstore get / curl GET: %.2f×"
      % (put / rate("curl_put"), put / statistics.median(durable.values()),
         get / rate("curl_get")))
EOF
