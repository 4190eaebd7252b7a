"""The test harness itself: tests/junit_count.py (the counter behind
run_all.sh's last line) on synthetic build event streams and test.xml files,
and testlib.main()'s JUnit XML (one <testcase> per test method)."""

import json
import os
import textwrap
import xml.etree.ElementTree as ET
import subprocess
import sys
import unittest

import testlib

HERE = os.path.dirname(os.path.abspath(__file__))
COUNTER = os.path.join(HERE, "junit_count.py")


def xml(*cases):
    """A test.xml with one <testcase> per entry: None, "failure", "error" or
    "skipped"."""
    body = "".join(
        '<testcase classname="C" name="t%d">%s</testcase>'
        % (i, "<%s message='m'>text</%s>" % (k, k) if k else "") for i, k in enumerate(cases))
    return '<?xml version="1.0"?><testsuites><testsuite name="s">%s</testsuite></testsuites>' % body


# What GoogleTest 1.12 writes (googletest/src/gtest.cc, XmlUnitTestResultPrinter):
# a passed case, one skipped with GTEST_SKIP() (result="skipped" and a
# <skipped> element), one that failed before it skipped, and a DISABLED_ one.
GTEST_XML = """<?xml version="1.0" encoding="UTF-8"?>
<testsuites tests="4" failures="1" disabled="1" errors="0" name="AllTests">
  <testsuite name="AllEngines/EngineTest" tests="4" failures="1" disabled="1" skipped="1">
    <testcase name="Reads/io_uring" value_param="&quot;io_uring&quot;" file="e.cc" line="1"
        status="run" result="completed" time="0.1" classname="AllEngines/EngineTest" />
    <testcase name="Reads/posix_aio" value_param="&quot;posix_aio&quot;" file="e.cc" line="1"
        status="run" result="skipped" time="0" classname="AllEngines/EngineTest">
      <skipped message="e.cc:2&#x0A;posix_aio cannot run here"><![CDATA[e.cc:2
posix_aio cannot run here]]></skipped>
    </testcase>
    <testcase name="Reads/thread_pool" value_param="&quot;thread_pool&quot;" file="e.cc" line="1"
        status="run" result="skipped" time="0" classname="AllEngines/EngineTest">
      <failure message="e.cc:3&#x0A;boom" type=""><![CDATA[e.cc:3
boom]]></failure>
      <skipped message="e.cc:4&#x0A;later"><![CDATA[e.cc:4
later]]></skipped>
    </testcase>
    <testcase name="DISABLED_Slow" file="e.cc" line="9" status="notrun" result="suppressed"
        time="0" classname="AllEngines/EngineTest" />
  </testsuite>
</testsuites>
"""


class JunitCountTest(unittest.TestCase):
    def setUp(self):
        self.dir = testlib.tmpdir("count")
        self.events = []
        self.n = 0

    def result(self, label, status, xml_text=None, attempt=1, shard=1, xml_path=None):
        """Adds a testResult event; xml_text is written to a fresh test.xml."""
        outputs = []
        if xml_text is not None:
            self.n += 1
            xml_path = os.path.join(self.dir, "test%d.xml" % self.n)
            with open(xml_path, "w") as f:
                f.write(xml_text)
        if xml_path is not None:
            outputs.append({"name": "test.xml", "uri": "file://" + xml_path})
        outputs.append({"name": "test.log", "uri": "file:///nonexistent/test.log"})
        self.events.append({
            "id": {"testResult": {"label": label, "run": 1, "shard": shard, "attempt": attempt,
                                  "configuration": {"id": "x"}}},
            "testResult": {"status": status, "testActionOutput": outputs},
        })

    def count(self, labels, query_rc=0, bazel_rc=0):
        bep = os.path.join(self.dir, "bep.json")
        with open(bep, "w") as f:
            # Other events in the stream are ignored.
            f.write(json.dumps({"id": {"started": {}}, "started": {"uuid": "u"}}) + "\n")
            for e in self.events:
                f.write(json.dumps(e) + "\n")
            f.write(json.dumps({"id": {"testSummary": {"label": "//a:t"}},
                                "testSummary": {"overallStatus": "PASSED"}}) + "\n")
        targets = os.path.join(self.dir, "targets")
        with open(targets, "w") as f:
            f.write("".join(l + "\n" for l in labels))
        r = subprocess.run([sys.executable, COUNTER, bep, targets, str(query_rc), str(bazel_rc)],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        passed, failed, skipped = map(int, r.stdout.split())
        self.skipped = skipped
        return passed, failed, r.stderr

    def test_counts_cases_not_targets(self):
        self.result("//a:t", "PASSED", xml(None, None, "skipped"))
        self.result("//b:t", "FAILED", xml(None, "failure", "error", None))
        passed, failed, err = self.count(["//a:t", "//b:t"])
        self.assertEqual((passed, failed, self.skipped), (4, 2, 1))
        self.assertIn("FAILED: //b:t C.t1", err)
        self.assertIn("FAILED: //b:t C.t2", err)
        self.assertIn("skipped: //a:t C.t2", err)
        self.assertIn("1 cases were skipped, none of them counted as passed", err)

    def test_skipped_cases_are_not_passed(self):
        # A target whose every case was skipped passes in Bazel's eyes; here
        # it counts nothing as passed.
        self.result("//a:t", "PASSED", xml("skipped", "skipped"))
        self.assertEqual(self.count(["//a:t"])[:2], (0, 0))
        self.assertEqual(self.skipped, 2)

    def test_googletest_xml(self):
        self.result("//e:t", "FAILED", GTEST_XML)
        passed, failed, err = self.count(["//e:t"])
        # Passed; skipped; failed (a failure wins over a later skip); not run.
        self.assertEqual((passed, failed, self.skipped), (1, 1, 2))
        self.assertIn("skipped: //e:t AllEngines/EngineTest.Reads/posix_aio", err)
        self.assertIn("FAILED: //e:t AllEngines/EngineTest.Reads/thread_pool", err)
        self.assertIn("skipped: //e:t AllEngines/EngineTest.DISABLED_Slow", err)

    def test_target_without_result_in_this_run_is_one_failure(self):
        # A stale test.xml of //b:t may exist on disk; it is not in the stream.
        self.result("//a:t", "PASSED", xml(None))
        passed, failed, err = self.count(["//a:t", "//b:t"], bazel_rc=1)
        self.assertEqual((passed, failed), (1, 1))
        self.assertIn("//b:t has no test result in this run", err)

    def test_missing_or_broken_xml_is_one_failure(self):
        self.result("//a:t", "FAILED", xml_path=os.path.join(self.dir, "absent.xml"))
        self.result("//b:t", "PASSED", "<testsuites><testsuite>")
        self.result("//c:t", "TIMEOUT")  # no test.xml at all
        self.result("//d:t", "PASSED", xml())  # no cases
        self.assertEqual(self.count(["//a:t", "//b:t", "//c:t", "//d:t"])[:2], (0, 4))

    def test_bazel_failure_with_clean_xml_adds_a_failure(self):
        # E.g. the process crashed or timed out after writing its XML.
        self.result("//a:t", "TIMEOUT", xml(None, None))
        passed, failed, err = self.count(["//a:t"], bazel_rc=3)
        self.assertEqual((passed, failed), (2, 1))
        self.assertIn("Bazel says TIMEOUT", err)

    def test_last_attempt_of_a_flaky_test_counts(self):
        self.result("//a:t", "FAILED", xml(None, "failure"), attempt=1)
        self.result("//a:t", "PASSED", xml(None, None), attempt=2)
        self.assertEqual(self.count(["//a:t"])[:2], (2, 0))

    def test_every_shard_counts(self):
        self.result("//a:t", "PASSED", xml(None, None), shard=1)
        self.result("//a:t", "FAILED", xml("failure"), shard=2)
        self.assertEqual(self.count(["//a:t"])[:2], (2, 1))

    def test_failed_query_or_no_targets_is_a_failure(self):
        self.result("//a:t", "PASSED", xml(None))
        self.assertEqual(self.count(["//a:t"], query_rc=7)[:2], (1, 1))
        self.assertEqual(self.count([])[:2], (0, 1))

    def test_unreadable_event_stream(self):
        bep = os.path.join(self.dir, "garbage.json")
        with open(bep, "w") as f:
            f.write("{not json\n")
        targets = os.path.join(self.dir, "t")
        with open(targets, "w") as f:
            f.write("//a:t\n")
        r = subprocess.run([sys.executable, COUNTER, bep, targets, "0", "1"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.stdout.split(), ["0", "1", "0"])


DEMO = """
import sys, unittest
sys.path.insert(0, %r)
import testlib

class A(unittest.TestCase):
    def test_pass(self):
        pass

    def test_fail(self):
        self.assertEqual(1, 2, "bad\\0byte")

    def test_error(self):
        raise RuntimeError("boom")

    def test_subtest_fails(self):
        for i in range(3):
            with self.subTest(i=i):
                self.assertNotEqual(i, 1)

    def test_subtests_pass(self):
        for i in range(3):
            with self.subTest(i=i):
                pass

    @unittest.skip("no io_uring here")
    def test_skip(self):
        pass

    @unittest.expectedFailure
    def test_unexpected_success(self):
        pass

class B(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        raise RuntimeError("server did not start")

    def test_never_runs(self):
        pass

if __name__ == "__main__":
    testlib.main()
"""


PER_ENGINE_DEMO = """
import sys, unittest
sys.path.insert(0, %r)
import testlib

# Two made-up engines, one of which cannot start: no server needed.
testlib.all_engines = lambda: ["fast", "slow"]
testlib.engine_unavailable = lambda name: (
    "engine slow cannot start here: no ring" if name == "slow" else None)

@testlib.per_engine
class E(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if cls.engine == "slow":
            raise RuntimeError("setUpClass ran for an engine that cannot start")

    def test_a(self):
        self.assertEqual(self.engine, "fast")

    def test_b(self):
        pass

class Plain(unittest.TestCase):
    def test_c(self):
        pass

if __name__ == "__main__":
    testlib.main()
"""


class RunnerTest(unittest.TestCase):
    def test_per_engine_classes_run_once_per_engine_and_skip_what_cannot_start(self):
        d = testlib.tmpdir("runner")
        demo, out = os.path.join(d, "engines.py"), os.path.join(d, "engines.xml")
        with open(demo, "w") as f:
            f.write(PER_ENGINE_DEMO % HERE)
        r = subprocess.run([sys.executable, demo], env=dict(os.environ, XML_OUTPUT_FILE=out),
                           capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        got = {}
        for case in ET.parse(out).getroot().iter("testcase"):
            kinds = [c for c in case]
            got[(case.get("classname"), case.get("name"))] = (
                (kinds[0].tag, kinds[0].get("message")) if kinds else "ok")
        skip = ("skipped", "engine slow cannot start here: no ring")
        self.assertEqual(got, {
            ("__main__.E_fast", "test_a"): "ok",
            ("__main__.E_fast", "test_b"): "ok",
            ("__main__.E_slow", "test_a"): skip,
            ("__main__.E_slow", "test_b"): skip,
            ("__main__.Plain", "test_c"): "ok",
        })

    def test_one_testcase_per_method_with_its_outcome(self):
        d = testlib.tmpdir("runner")
        demo, out = os.path.join(d, "demo.py"), os.path.join(d, "demo.xml")
        with open(demo, "w") as f:
            f.write(DEMO % HERE)
        env = dict(os.environ, XML_OUTPUT_FILE=out)
        r = subprocess.run([sys.executable, demo], env=env, capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 1, r.stderr)
        root = ET.parse(out).getroot()
        got = {}
        for case in root.iter("testcase"):
            kinds = [c.tag for c in case]
            got[case.get("name")] = kinds[0] if kinds else "ok"
        self.assertEqual(got, {
            "test_pass": "ok",
            "test_fail": "failure",
            "test_error": "error",
            "test_subtest_fails": "failure",  # unittest never calls addSuccess for it
            "test_subtests_pass": "ok",
            "test_skip": "skipped",
            "test_unexpected_success": "failure",
            "setUpClass (__main__.B)": "error",
        })
        fail = [c for c in root.iter("testcase") if c.get("name") == "test_fail"][0]
        self.assertIn("bad\\x00byte", fail.find("failure").get("message"))
        ts = root.find("testsuite")
        self.assertEqual((ts.get("tests"), ts.get("failures"), ts.get("errors"), ts.get("skipped")),
                         ("8", "3", "2", "1"))

    def test_all_passing_exits_zero(self):
        d = testlib.tmpdir("runner")
        demo, out = os.path.join(d, "ok.py"), os.path.join(d, "ok.xml")
        with open(demo, "w") as f:
            f.write(textwrap.dedent("""
                import sys, unittest
                sys.path.insert(0, %r)
                import testlib
                class A(unittest.TestCase):
                    def test_a(self):
                        pass
                testlib.main()
                """ % HERE))
        r = subprocess.run([sys.executable, demo], env=dict(os.environ, XML_OUTPUT_FILE=out),
                           capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([c.get("name") for c in ET.parse(out).getroot().iter("testcase")],
                         ["test_a"])


if __name__ == "__main__":
    testlib.main()
