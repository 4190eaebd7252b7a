#!/usr/bin/env bash
# The whole test suite: installs what is missing, runs every Bazel test, then
# the storage and end-to-end tests again under AddressSanitizer (which also
# finds leaks), and ends with one line "N passed, N failed" counting test
# cases (not targets) of the plain run, read from each target's test.xml;
# any failure under the sanitizer is added to the failed count.
set -uo pipefail
cd "$(dirname "$0")/.."

bash deploy/install-deps.sh || exit 1

# Prints "PASSED FAILED" for the test cases of the targets given, from the
# test.xml files of the last run.
count_cases() {
  /usr/bin/python3 - "$(bazel info bazel-testlogs 2>/dev/null)" "$@" <<'PY'
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
    n = 0
    for case in root.iter("testcase"):
        n += 1
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
            print(f"FAILED: {label} {case.get('classname')}.{case.get('name')}", file=sys.stderr)
        else:
            passed += 1
    if n == 0:
        print(f"no test cases in {label}", file=sys.stderr)
        failed += 1
print(passed, failed)
PY
}

asan_targets=$(bazel query 'tests(//storage/... + //tests/...)' 2>/dev/null)
bazel test --config=asan --jobs=2 --keep_going $asan_targets "$@"
asan_rc=$?
read -r asan_passed asan_failed < <(count_cases $asan_targets)
echo "under AddressSanitizer: ${asan_passed} passed, ${asan_failed} failed" | sed 's/, / ; /'

targets=$(bazel query 'tests(//...)' 2>/dev/null)
bazel test --jobs=2 --keep_going //... "$@"
bazel_rc=$?
read -r passed failed < <(count_cases $targets)

failed=$((failed + asan_failed))
if [ $asan_rc -ne 0 ] && [ "$asan_failed" -eq 0 ]; then failed=$((failed + 1)); fi
if [ $bazel_rc -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
echo "${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ]
