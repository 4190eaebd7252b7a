#!/usr/bin/env bash
# The whole test suite (the README's test command; .ci/run calls it):
# installs what is missing, runs the storage, server and end-to-end tests under
# AddressSanitizer (which also finds leaks), then every Bazel test, and ends
# with exactly one line "N passed, N failed, N skipped". N counts test cases
# (not targets) of the plain run, read from each target's test.xml; any
# failure under the sanitizer is added to the failed count. A case that could
# not run here (GTEST_SKIP, a unittest skip: an engine that cannot start, a
# missing kernel feature or tool) is skipped, never passed; junit_count.py
# names each on stderr. Exits non-zero if any case failed or Bazel failed.
# Extra arguments go to both `bazel test` runs.
# The build with clang's thread-safety analysis counts as one more case, and
# so does each libFuzzer target's bounded run (the fuzz stage at the end).
#
# tests/junit_count.py reads only the test.xml files this invocation's build
# event stream names: both runs share bazel-testlogs, so a target that does
# not build in the plain run must not be counted from the sanitizer run's
# (or any older) test.xml. A target without a result counts as one failure.
set -uo pipefail
cd "$(dirname "$0")/.."

bash deploy/install-deps.sh || exit 1

work=$(mktemp -d "${TMPDIR:-/tmp}/ringstore-run-all.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT

# run_and_count NAME "PATTERN..." [BAZEL_TEST_ARGS...]: lists the test
# targets `bazel test PATTERN...` runs (wildcards skip "manual" ones), runs
# them, and leaves "PASSED FAILED SKIPPED" in $work/NAME.counts and bazel's status in
# $work/NAME.rc.
run_and_count() {
  local name=$1 patterns=$2 query_rc bazel_rc set
  shift 2
  set=$(echo $patterns | sed 's/ / + /g')
  bazel query --keep_going \
    "tests($set) except attr(tags, \"(^\\[|, )manual(,|\\]\$)\", $set)" \
    >"$work/$name.targets" 2>"$work/$name.query.err"
  query_rc=$?
  [ "$query_rc" -eq 0 ] || cat "$work/$name.query.err" >&2
  bazel test --jobs=2 --keep_going --build_event_json_file="$work/$name.json" "$@" \
    -- $patterns
  bazel_rc=$?
  echo "$bazel_rc" >"$work/$name.rc"
  /usr/bin/python3 tests/junit_count.py "$work/$name.json" "$work/$name.targets" \
    "$query_rc" "$bazel_rc" >"$work/$name.counts" || echo "0 1 0" >"$work/$name.counts"
}

run_and_count asan '//storage/... //server/... //tests/...' --config=asan "$@"
read -r asan_passed asan_failed asan_skipped <"$work/asan.counts"
asan_rc=$(cat "$work/asan.rc")
# Not the "N passed, N failed, N skipped" form: that is the last line's alone.
echo "under AddressSanitizer: ${asan_passed:-0} passed; ${asan_failed:-1} failed;" \
  "${asan_skipped:-0} skipped"

run_and_count plain '//...' "$@"
read -r passed failed skipped <"$work/plain.counts"
bazel_rc=$(cat "$work/plain.rc")

passed=${passed:-0}
skipped=${skipped:-0}
failed=$(( ${failed:-1} + ${asan_failed:-1} ))

# Clang's thread-safety analysis (.bazelrc's --config=clang: clang-14 with
# -Werror=thread-safety) over the whole build: one test case, passed if
# every target builds.
if bazel build --jobs=2 --keep_going --config=clang //...; then
  echo "clang thread-safety build: passed"
  passed=$(( passed + 1 ))
else
  echo "clang thread-safety build: failed"
  failed=$(( failed + 1 ))
fi

# Fuzzing (tests/fuzz.bzl; .bazelrc's --config=fuzz: clang-14, libFuzzer,
# ASan and UBSan): every libFuzzer binary (tag "fuzzer") runs for
# $RINGSTORE_FUZZ_SECONDS (default 60) on a copy of its seed corpus; the
# corpus in git is never touched. Each target is one case: passed if it ran
# its time without a crash, a leak, a timeout or a broken property; failed
# otherwise, naming the saved input and the command that reproduces it
# (inputs are kept in $RINGSTORE_FUZZ_ARTIFACTS, default
# ${TMPDIR:-/tmp}/ringstore-fuzz-artifacts); skipped, with the reason, if
# clang-14 or libFuzzer is missing. Their seed corpora are replayed by the
# plain run above whatever the compiler (the targets' cc_tests).
fuzz_seconds=${RINGSTORE_FUZZ_SECONDS:-60}
fuzz_artifacts=${RINGSTORE_FUZZ_ARTIFACTS:-${TMPDIR:-/tmp}/ringstore-fuzz-artifacts}
fuzz_targets=$(bazel query 'attr(tags, "(^\[|, )fuzzer(,|\]$)", kind(cc_binary, //...))' \
  2>"$work/fuzz.query.err")
if [ $? -ne 0 ] || [ -z "$fuzz_targets" ]; then
  cat "$work/fuzz.query.err" >&2
  echo "fuzz: FAILED: cannot list the fuzz targets"
  failed=$(( failed + 1 ))
  fuzz_targets=
fi
fuzz_missing=
if ! command -v clang-14 >/dev/null; then
  fuzz_missing="clang-14 is not installed"
elif [ ! -e "$(clang-14 -print-resource-dir)/lib/linux/libclang_rt.fuzzer-x86_64.a" ]; then
  fuzz_missing="libFuzzer (libclang-rt-14-dev) is not installed"
fi
for target in $fuzz_targets; do
  name=${target##*:}
  if [ -n "$fuzz_missing" ]; then
    echo "fuzz $name: skipped: $fuzz_missing"
    skipped=$(( skipped + 1 ))
    continue
  fi
  if ! bazel build --config=fuzz --jobs=2 "$target" >"$work/fuzz.build.log" 2>&1; then
    grep -v 'Cannot export local symbol' "$work/fuzz.build.log" | tail -30 >&2
    echo "fuzz $name: FAILED: does not build with --config=fuzz"
    failed=$(( failed + 1 ))
    continue
  fi
  binary="$(bazel info --config=fuzz bazel-bin 2>/dev/null)/$(echo "${target#//}" | tr : /)"
  run="$work/fuzz/$name"
  mkdir -p "$run/corpus" "$run/artifacts" "$run/tmp"
  # The seed corpus: the files of the target's <name>_corpus filegroup.
  for label in $(bazel query "labels(srcs, ${target%_fuzzer}_corpus)" 2>/dev/null); do
    cp "$(echo "${label#//}" | tr : /)" "$run/corpus/"
  done
  if (cd "$run" && TMPDIR="$run/tmp" "$binary" -max_total_time="$fuzz_seconds" -timeout=60 \
        -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$run/artifacts/" corpus \
        >"$run/log" 2>&1); then
    echo "fuzz $name: passed ($(grep -o 'stat::number_of_executed_units: *[0-9]*' "$run/log" |
      grep -o '[0-9]*$') inputs in ${fuzz_seconds}s, $(ls "$run/corpus" | wc -l) in the corpus)"
    passed=$(( passed + 1 ))
  else
    mkdir -p "$fuzz_artifacts/$name"
    cp "$run"/artifacts/* "$fuzz_artifacts/$name/" 2>/dev/null
    cp "$run/log" "$fuzz_artifacts/$name/log"
    grep -v '^#[0-9]' "$run/log" | tail -40 >&2
    echo "fuzz $name: FAILED; log $fuzz_artifacts/$name/log"
    for input in "$run"/artifacts/*; do
      [ -e "$input" ] || continue
      saved="$fuzz_artifacts/$name/$(basename "$input")"
      echo "  input: $saved"
      echo "  reproduce: bazel build --config=fuzz $target &&" \
        "bazel-bin/$(echo "${target#//}" | tr : /) $saved"
    done
    failed=$(( failed + 1 ))
  fi
done

# Bazel failed with every case passing (a target that is not a test did not
# build): still a failure.
if [ "$failed" -eq 0 ] && { [ "$asan_rc" -ne 0 ] || [ "$bazel_rc" -ne 0 ]; }; then
  failed=1
fi
echo "${passed} passed, ${failed} failed, ${skipped} skipped"
[ "$failed" -eq 0 ]
