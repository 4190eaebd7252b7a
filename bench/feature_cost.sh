#!/usr/bin/env bash
# What the optional parts of the server cost a download: the same
# ringstore-server over one root, started in each MODE in turn, driven by
# load_gen in download mode, in interleaved rounds so drift on a shared
# machine hits every mode alike. Modes:
#   plaintext  the defaults: no TLS, no auth, no metrics, no access log
#   tls        --tls_cert/--tls_key (a P-256 certificate made here with openssl)
#   auth       --auth_tokens (one admin token, sent by load_gen --token)
#   observe    --metrics_listen and --access_log (to a file)
#   old        $OLD_SERVER (another build of ringstore-server) with the
#              defaults: what a change cost, on the same data
# Prints each run's load_gen JSON and then, per file size, the median MiB/s,
# requests/s and server CPU of each mode and its ratio to plaintext.
#
#   bazel build -c opt //server:ringstore-server //bench:load_gen
#   bench/feature_cost.sh   # ROUNDS=3 DURATION=5s CONCURRENCY=16 SIZES="1048576 4096"
#                           # MODES="plaintext tls auth observe" [OLD_SERVER=path MODES+=old]
#
# Run by hand; nothing here is a test.
set -euo pipefail

BIN=${BIN:-bazel-out/k8-opt/bin}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
CONCURRENCY=${CONCURRENCY:-16}
SIZES=${SIZES:-"1048576 4096"}
SERVER_ARGS=${SERVER_ARGS:-}
MODES=${MODES:-"plaintext tls auth observe"}
OLD_SERVER=${OLD_SERVER:-}

work=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# A CA and a server certificate for 127.0.0.1.
(
  cd "$work"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
    -out ca.crt -days 1 -subj "/CN=bench CA" -addext basicConstraints=critical,CA:TRUE 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key \
    -out server.csr -subj /CN=localhost 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >server.ext
  openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -set_serial 1 -days 1 \
    -extfile server.ext -out server.crt 2>/dev/null
)

# A bearer token and its tokens-file line.
token=bench-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
echo "$(printf %s "$token" | sha256sum | cut -d' ' -f1) admin" >"$work/tokens"

# start_server ARGS...: sets $server_pid and $port ($server: which binary).
server="$BIN/server/ringstore-server"
start_server() {
  # shellcheck disable=SC2086
  "$server" --listen=127.0.0.1:0 --root="$work/data" $SERVER_ARGS "$@" \
    >"$work/server.out" 2>>"$work/server.err" &
  server_pid=$!
  for _ in $(seq 100); do
    if grep -q "listening on" "$work/server.out"; then break; fi
    sleep 0.1
  done
  port=$(sed -nE 's/.*listening on [^ ]*:([0-9]+) .*/\1/p' "$work/server.out")
  [ -n "$port" ] || { cat "$work/server.err" >&2; exit 1; }
}

# User + system CPU time of the server so far, in clock ticks.
server_cpu_ticks() {
  awk '{print $14 + $15}' "/proc/$server_pid/stat"
}

stop_server() {
  kill "$server_pid"
  wait "$server_pid" || true
  server_pid=""
}

start_server
for size in $SIZES; do
  # One file, bench/f$size/0.
  "$BIN/bench/load_gen" --server="127.0.0.1:$port" --mode=populate --count=1 \
    --upload_size="$size" --upload_prefix="bench/f$size" --paths_file="$work/paths$size" >/dev/null
done
stop_server

: >"$work/results.jsonl"
for round in $(seq "$ROUNDS"); do
  for mode in $MODES; do
    server="$BIN/server/ringstore-server"
    client_args=()
    case "$mode" in
      plaintext) start_server ;;
      tls) start_server --tls_cert="$work/server.crt" --tls_key="$work/server.key"
           client_args=(--tls_ca="$work/ca.crt") ;;
      auth) start_server --auth_tokens="$work/tokens"
            client_args=(--token="$token") ;;
      observe) start_server --metrics_listen=127.0.0.1:0 --access_log="$work/access.log" ;;
      old) [ -n "$OLD_SERVER" ] || { echo "mode old needs OLD_SERVER" >&2; exit 2; }
           server=$OLD_SERVER; start_server ;;
      *) echo "unknown mode $mode" >&2; exit 2 ;;
    esac
    for size in $SIZES; do
      cpu0=$(server_cpu_ticks)
      json=$("$BIN/bench/load_gen" --server="127.0.0.1:$port" --mode=download \
        --path="bench/f$size/0" --concurrency="$CONCURRENCY" --duration="$DURATION" \
        "${client_args[@]}")
      cpu=$(( $(server_cpu_ticks) - cpu0 ))
      echo "{\"round\":$round,\"mode\":\"$mode\",\"size\":$size,\"server_cpu_s\":$(
        awk -v t="$cpu" -v hz="$(getconf CLK_TCK)" 'BEGIN{printf "%.2f", t / hz}'),\"load_gen\":$json}" |
        tee -a "$work/results.jsonl"
    done
    stop_server
  done
done

/usr/bin/python3 - "$work/results.jsonl" <<'EOF'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
modes = list(dict.fromkeys(r["mode"] for r in runs))
# Server CPU per GiB served and per 1000 requests: less sensitive than
# throughput to what else the machine runs.
print("%-9s %-10s %10s %12s %14s %14s %7s" % ("size", "mode", "MiB/s", "requests/s",
                                               "srv cpu s/GiB", "srv cpu ms/kreq", "errors"))
for size in sorted({r["size"] for r in runs}, reverse=True):
    med = {}
    for mode in modes:
        rs = [r for r in runs if r["size"] == size and r["mode"] == mode]
        g = [r["load_gen"] for r in rs]
        med[mode] = (statistics.median(x["throughput_mib_s"] for x in g),
                     statistics.median(x["requests_per_second"] for x in g),
                     statistics.median(r["server_cpu_s"] / (r["load_gen"]["bytes"] / 2**30)
                                       for r in rs),
                     statistics.median(r["server_cpu_s"] * 1e6 / r["load_gen"]["requests"]
                                       for r in rs))
        errors = sum(x["errors"]["count"] for x in g)
        print("%-9d %-10s %10.1f %12.1f %14.2f %14.1f %7d" % ((size, mode) + med[mode] + (errors,)))
    for mode in modes:
        if mode != "plaintext" and "plaintext" in med:
            print("%-9d %-10s %10.3f %12.3f %14.3f %14.3f" % ((size, mode + "/plain") + tuple(
                t / p for t, p in zip(med[mode], med["plaintext"]))))
EOF
