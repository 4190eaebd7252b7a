#!/usr/bin/env bash
# Runs a Python test under Debian's interpreter, which has python3-grpcio
# (the first python3 on PATH may be another one).
set -euo pipefail
exec /usr/bin/python3 "$@"
