"""Counts the test cases of one `bazel test` invocation for tests/run_all.sh.

Usage: junit_count.py BEP_JSON TARGETS_FILE QUERY_RC BAZEL_RC

BEP_JSON is the invocation's --build_event_json_file; TARGETS_FILE lists the
test labels it was meant to run (from `bazel query`), one a line. Prints
"PASSED FAILED SKIPPED" on stdout, the reason for every failed case and the
name of every skipped one on stderr.

Only results of this invocation count: the test.xml files are the ones its
build event stream names (bazel-testlogs may still hold a test.xml from an
earlier run, or from a run under another --config, of a target that did not
build this time). A case is a <testcase>; it failed if it holds <failure> or
<error>; otherwise it was skipped, and is not counted as passed, if it holds
<skipped> (GoogleTest's GTEST_SKIP and testlib's unittest skips write one;
GoogleTest also marks the case result="skipped") or did not run at all
(GoogleTest's status="notrun", a DISABLED_ test); else it passed. A label with no result in this invocation, or whose test.xml is
missing, unreadable or empty, counts as one failed case; so does a target
Bazel reports failed (a crash or timeout after the XML was written) whose
XML shows no failed case. A failed `bazel query` counts as one failed case.
"""

import json
import sys
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

PASSING = ("PASSED", "FLAKY")


def note(msg):
    print("run_all: " + msg, file=sys.stderr)


def read_results(bep_path):
    """label -> {(run, shard): (attempt, status, test.xml path or None)};
    only the last attempt of each run and shard is kept."""
    results = {}
    try:
        with open(bep_path) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                event = json.loads(line)
                tid = event.get("id", {}).get("testResult")
                if tid is None or "testResult" not in event:
                    continue
                tr = event["testResult"]
                xml = None
                for out in tr.get("testActionOutput", []):
                    uri = out.get("uri", "")
                    if out.get("name") == "test.xml" and uri.startswith("file://"):
                        xml = urllib.request.url2pathname(urllib.parse.urlparse(uri).path)
                key = (tid.get("run", 1), tid.get("shard", 1))
                attempt = tid.get("attempt", 1)
                per = results.setdefault(tid["label"], {})
                if key not in per or per[key][0] <= attempt:
                    per[key] = (attempt, tr.get("status", "NO_STATUS"), xml)
    except (OSError, ValueError) as e:
        note("cannot read the build event file %s: %s" % (bep_path, e))
    return results


def count(results, labels, query_rc):
    """(passed, failed, skipped) over the labels."""
    passed = failed = skipped = 0
    if query_rc != 0:
        note("bazel query failed: test targets may be missing from the count")
        failed += 1
    if not labels:
        note("no test targets")
        failed += 1
    for label in labels:
        runs = results.get(label)
        if not runs:
            note("FAILED: %s has no test result in this run (did it build?)" % label)
            failed += 1
            continue
        for (_run, _shard), (_attempt, status, xml) in sorted(runs.items()):
            try:
                root = ET.parse(xml).getroot()
            except (OSError, TypeError, ET.ParseError) as e:
                note("FAILED: %s has no readable test.xml (%s), status %s" % (label, e, status))
                failed += 1
                continue
            cases = bad = skips = 0
            for case in root.iter("testcase"):
                cases += 1
                name = "%s %s.%s" % (label, case.get("classname"), case.get("name"))
                if case.find("failure") is not None or case.find("error") is not None:
                    bad += 1
                    note("FAILED: " + name)
                elif (case.find("skipped") is not None or case.get("result") == "skipped"
                      or case.get("status") == "notrun"):
                    skips += 1
                    note("skipped: " + name)
            if cases == 0:
                note("FAILED: %s: test.xml has no test cases, status %s" % (label, status))
                failed += 1
                continue
            if bad == 0 and status not in PASSING:
                note("FAILED: %s: Bazel says %s but test.xml shows no failed case"
                     % (label, status))
                bad, cases = 1, cases + 1
            passed += cases - bad - skips
            failed += bad
            skipped += skips
    return passed, failed, skipped


def main(argv):
    bep_path, targets_path, query_rc, bazel_rc = argv[1], argv[2], int(argv[3]), int(argv[4])
    try:
        with open(targets_path) as f:
            labels = [l.strip() for l in f if l.strip()]
    except OSError as e:
        note("cannot read the target list: %s" % e)
        labels = []
    passed, failed, skipped = count(read_results(bep_path), labels, query_rc)
    if skipped:
        note("%d cases were skipped, none of them counted as passed (reasons in their "
             "test.log and test.xml)" % skipped)
    if bazel_rc != 0:
        note("bazel test exited with %d" % bazel_rc)
    print(passed, failed, skipped)


if __name__ == "__main__":
    main(sys.argv)
