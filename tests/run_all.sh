#!/usr/bin/env bash
# The whole test suite: installs what is missing, runs every Bazel test, and
# ends with one line "N passed, N failed" counting test cases (not targets)
# across all test targets, read from each target's test.xml.
set -uo pipefail
cd "$(dirname "$0")/.."

bash deploy/install-deps.sh || exit 1

bazel test --jobs=2 --keep_going //... "$@"
bazel_rc=$?

targets=$(bazel query 'tests(//...)' 2>/dev/null)
testlogs=$(bazel info bazel-testlogs 2>/dev/null)

/usr/bin/python3 - "$testlogs" $targets <<'PY'
import os
import sys
import xml.etree.ElementTree as ET

testlogs, labels = sys.argv[1], sys.argv[2:]
passed = failed = 0
for label in labels:
    pkg, name = label.lstrip("/").split(":")
    path = os.path.join(testlogs, pkg, name, "test.xml")
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        print(f"no test results for {label}", file=sys.stderr)
        failed += 1
        continue
    cases = root.iter("testcase")
    n = 0
    for case in cases:
        n += 1
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
        else:
            passed += 1
    if n == 0:
        print(f"no test cases in {label}", file=sys.stderr)
        failed += 1
with open(os.environ.get("RUN_ALL_SUMMARY", "/dev/null"), "w") as f:
    f.write(f"{passed} {failed}\n")
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY
count_rc=$?

if [ $bazel_rc -ne 0 ] || [ $count_rc -ne 0 ]; then
  exit 1
fi
exit 0
