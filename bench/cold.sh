#!/bin/bash
# Cold-data benchmark (bench/cold.py): builds the optimised server and
# load_gen, copies them aside, and runs cold.py with the arguments given,
# as root (it drops the page cache before each cell).
#
#   bench/cold.sh --rounds=3                      # 64 KiB and 1 MiB sets
#   bench/cold.sh --sets=4k --warm --peers=ringstore-io_uring \
#       --variant=sqpoll=BIN/ringstore-server,--engine=io_uring,--io_uring_sqpoll
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "cold.sh: needs root (echo 3 > /proc/sys/vm/drop_caches)" >&2
  exit 1
fi
bazel build -c opt --jobs=2 //server:ringstore-server //bench:load_gen >&2
bins=$(mktemp -d /tmp/ringstore-cold-bins.XXXXXX)
cp bazel-out/k8-opt/bin/server/ringstore-server bazel-out/k8-opt/bin/bench/load_gen "$bins"/
exec /usr/bin/python3 bench/cold.py --bins="$bins" "$@"
