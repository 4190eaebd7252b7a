#!/usr/bin/env bash
# Runs a Python test under Debian's interpreter (the first python3 on PATH
# may be another one); the same wrapper as tests/run_py_test.sh.
set -euo pipefail
exec /usr/bin/python3 "$@"
