"""Renders every kustomization of deploy/k8s with `kubectl kustomize`,
validates each rendered object against the Kubernetes OpenAPI schemas
(deploy/k8s/schema/validate.js over npm kubernetes-models) and checks the
pod contract that deploy/ and the image test rely on: one workload
`ringstore` (base's StatefulSet, or the shared overlay's Deployment with
base's pod template over a ReadWriteMany claim) with one container, server flags as args, native gRPC probes on
the health listener, a grace period above --drain_timeout, non-root 65532,
a read-only root, no capabilities, no service-account token, a PDB and a
NetworkPolicy selecting the pod, scrape annotations on the metrics port,
memory sized from the buffer pool, seccomp per overlay, and tls-auth's
Secrets mounted whole where its flags point.

One class per kustomization (base, io-uring, tls-auth, shared), one JUnit case per
method. The tools come from the machine (deploy/install-deps.sh): `kubectl`
on PATH, `node`, and the npm packages in $RINGSTORE_NPM_DIR (default
/usr/local/lib/ringstore-npm); a case whose tool is missing is skipped with
the reason, never passed. Runs under /usr/bin/python3 (python3-yaml) via
tests/run_py_test.sh, with tests/testlib.py's JUnit runner.
"""

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "tests"))
import testlib  # noqa: E402
from k8s_render import K8S, copy_tree, quantity_bytes, render, render_overlay  # noqa: E402

try:
    import yaml
except ImportError:  # python3-yaml
    yaml = None

# Beside this file: in the runfiles under Bazel, in the source tree when run by hand.
NPM_DIR = os.environ.get("RINGSTORE_NPM_DIR", "/usr/local/lib/ringstore-npm")
MiB = 1 << 20

# What the pod must look like: the image test (deploy/) runs the image with
# exactly this pod spec, so these are a contract, not style.
IMAGE = "ringstore:0.1.0"
USER = 65532
PORTS = {"grpc": 50051, "health": 50052, "metrics": 9090}
REQUIRED_ARGS = {
    "--listen": "0.0.0.0:50051",
    "--root": "/data",
    "--health_listen": "0.0.0.0:50052",
    "--metrics_listen": "0.0.0.0:9090",
    "--access_log": "-",
}
HEALTH_SERVICES = ("", "ringstore.v1.FileStore")  # what the server answers SERVING for
WORKLOAD_KINDS = {"Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet",
                  "ReplicationController", "Job", "CronJob"}
# Memory beyond the pool the limit must leave at least: the idle process
# measured 24 MiB over the pool (statefulset.yaml), and uploads add ~15 MiB each.
MIN_MEMORY_MARGIN = 64 * MiB


def parse_duration(text):
    """Seconds in an Abseil/Go duration such as 30s, 1m30s, 500ms."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|us|ns|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError("not a duration: %r" % text)
    return sum(float(n) * units[u] for n, u in parts)


def selects(selector, labels):
    """Whether a LabelSelector (matchLabels only, as ours are) selects labels."""
    match = selector.get("matchLabels") or {}
    if selector.get("matchExpressions") or not match:
        return False
    return all(labels.get(k) == v for k, v in match.items())


def validate(objects):
    """(exit code, stdout, stderr) of validate.js over objects."""
    env = dict(os.environ, NODE_PATH=os.path.join(NPM_DIR, "node_modules"))
    p = subprocess.run(["node", os.path.join(K8S, "schema", "validate.js")],
                       input=json.dumps(objects), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True, env=env, timeout=120)
    return p.returncode, p.stdout, p.stderr


def require_kubectl(test):
    if yaml is None:
        test.skipTest("python3-yaml is not installed (deploy/install-deps.sh)")
    if not shutil.which("kubectl"):
        test.skipTest("kubectl is not on PATH (deploy/install-deps.sh installs Debian's)")


def require_node(test):
    if not shutil.which("node"):
        test.skipTest("node is not on PATH (deploy/install-deps.sh)")
    if not os.path.isdir(os.path.join(NPM_DIR, "node_modules", "kubernetes-models")):
        test.skipTest("npm kubernetes-models is not in %s/node_modules "
                      "(deploy/install-deps.sh, or set RINGSTORE_NPM_DIR)" % NPM_DIR)


class _Manifests:
    """Checks every kustomization must pass. Subclasses set DIR (relative to
    deploy/k8s) and SECCOMP (the pod's expected seccompProfile)."""

    DIR = None
    SECCOMP = None
    KIND = "StatefulSet"

    @classmethod
    def setUpClass(cls):
        cls._objects = cls._error = None
        if yaml is None or not shutil.which("kubectl"):
            return
        try:
            cls._objects, _ = render(os.path.join(copy_tree(), cls.DIR))
        except Exception as e:  # reported by every case that needs the objects
            cls._error = e

    # Accessors for the rendered objects.

    def objects(self):
        require_kubectl(self)
        if self._error:
            raise self._error
        return self._objects

    def of_kind(self, kind):
        return [o for o in self.objects() if o["kind"] == kind]

    def one(self, kind, name):
        found = [o for o in self.of_kind(kind) if o["metadata"]["name"] == name]
        self.assertEqual(len(found), 1, "exactly one %s %s" % (kind, name))
        return found[0]

    def workload(self):
        return self.one(self.KIND, "ringstore")

    def pod(self):
        return self.workload()["spec"]["template"]

    def container(self):
        return self.pod()["spec"]["containers"][0]

    def args(self):
        """The container's args as {flag: value}; every one is --flag=value."""
        out = {}
        for a in self.container()["args"]:
            m = re.fullmatch(r"(--[a-z_]+)=(.*)", a)
            self.assertIsNotNone(m, "arg %r is not --flag=value" % a)
            self.assertNotIn(m.group(1), out, "flag %s given twice" % m.group(1))
            out[m.group(1)] = m.group(2)
        return out

    def container_port(self, name):
        ports = {p["name"]: p for p in self.container()["ports"]}
        self.assertIn(name, ports)
        return ports[name]["containerPort"]

    # The cases.

    def test_renders_one_workload(self):
        objects = self.objects()
        workloads = [(o["kind"], o["metadata"]["name"]) for o in objects
                     if o["kind"] in WORKLOAD_KINDS]
        self.assertEqual(workloads, [(self.KIND, "ringstore")])
        for o in objects:
            self.assertNotIn("namespace", o["metadata"],
                             "%s %s: the user picks the namespace" % (o["kind"], o["metadata"]["name"]))
            self.assertNotEqual(o["kind"], "Secret", "no secret material in the manifests")

    def test_schema_validates_every_object(self):
        objects = self.objects()
        require_node(self)
        rc, out, err = validate(objects)
        self.assertEqual(rc, 0, out + err)
        lines = out.splitlines()
        self.assertEqual(len(lines), len(objects), out)
        for o, line in zip(objects, lines):
            self.assertEqual(line, "ok %s %s" % (o["kind"], o["metadata"]["name"]))

    def test_schema_rejects_broken_objects(self):
        objects = self.objects()
        require_node(self)
        broken = copy.deepcopy(objects)
        workload = next(o for o in broken if o["kind"] == self.KIND)
        workload["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "grpc"
        svc = next(o for o in broken if o["kind"] == "Service")
        del svc["spec"]["ports"][0]["port"]
        broken.append({"apiVersion": "example.com/v1", "kind": "Widget",
                       "metadata": {"name": "unknown-kind"}})
        rc, out, err = validate(broken)
        self.assertEqual(rc, 1, out + err)
        lines = out.splitlines()
        self.assertEqual(len(lines), len(broken), out)
        invalid = [line for line in lines if line.startswith("invalid ")]
        self.assertEqual(len(invalid), 3, out)
        self.assertIn("invalid %s ringstore: /spec/template/spec/containers/0/ports/0/"
                      "containerPort must be integer" % self.KIND, out)
        self.assertIn("invalid Service %s: /spec/ports/0 must have required property port"
                      % svc["metadata"]["name"], out)
        self.assertIn('invalid Widget unknown-kind: no schema for apiVersion "example.com/v1"', out)

    def test_workload_contract(self):
        spec = self.workload()["spec"]
        self.assertEqual([c["name"] for c in spec["template"]["spec"]["containers"]], ["ringstore"])
        self.assertNotIn("initContainers", spec["template"]["spec"])
        self.assertEqual(self.container()["image"], IMAGE)
        if self.KIND == "StatefulSet":
            # Each replica would get a volume, and a store, of its own.
            self.assertEqual(spec["replicas"], 1)
            claims = spec["volumeClaimTemplates"]
            self.assertEqual([c["metadata"]["name"] for c in claims], ["data"])
            self.assertEqual(claims[0]["spec"]["accessModes"], ["ReadWriteOnce"])
        else:
            # Several servers over one claim that every node can mount.
            self.assertGreaterEqual(spec["replicas"], 2)
            self.assertNotIn("volumeClaimTemplates", spec)
            volumes = {v["name"]: v for v in spec["template"]["spec"]["volumes"]}
            claim = self.one("PersistentVolumeClaim",
                             volumes["data"]["persistentVolumeClaim"]["claimName"])
            self.assertEqual(claim["spec"]["accessModes"], ["ReadWriteMany"])
        mounts = {m["name"]: m for m in self.container()["volumeMounts"]}
        self.assertEqual(mounts["data"]["mountPath"], self.args()["--root"])
        self.assertNotIn("subPath", mounts["data"])

    def test_args_and_ports(self):
        args = self.args()
        for flag, value in REQUIRED_ARGS.items():
            self.assertEqual(args.get(flag), value, flag)
        parse_duration(args["--drain_timeout"])
        self.assertGreater(int(args["--buffer_count"]), 0)
        self.assertEqual(int(args["--buffer_size"]) % 4096, 0)
        for name, number in PORTS.items():
            self.assertEqual(self.container_port(name), number, name)
        for flag, name in (("--listen", "grpc"), ("--health_listen", "health"),
                           ("--metrics_listen", "metrics")):
            self.assertEqual(int(args[flag].rsplit(":", 1)[1]), self.container_port(name), flag)

    def test_probes_are_grpc_on_the_health_port(self):
        c = self.container()
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            self.assertIn(probe, c)
            p = c[probe]
            handlers = {"grpc", "httpGet", "tcpSocket", "exec"} & set(p)
            self.assertEqual(handlers, {"grpc"}, probe)
            self.assertEqual(p["grpc"]["port"], self.container_port("health"), probe)
            self.assertIn(p["grpc"].get("service", ""), HEALTH_SERVICES, probe)

    def test_grace_period_above_drain_timeout(self):
        spec = self.pod()["spec"]
        drain = parse_duration(self.args()["--drain_timeout"])
        grace = spec["terminationGracePeriodSeconds"]
        self.assertGreater(grace, drain)
        # A drain answers NOT_SERVING: liveness must not kill it before the
        # grace period would.
        live = self.container()["livenessProbe"]
        self.assertGreaterEqual(live.get("periodSeconds", 10) * live.get("failureThreshold", 3), grace)

    def test_non_root_read_only_no_capabilities(self):
        spec = self.pod()["spec"]
        psc = spec["securityContext"]
        self.assertIs(psc["runAsNonRoot"], True)
        for key in ("runAsUser", "runAsGroup", "fsGroup"):
            self.assertEqual(psc[key], USER, key)
        sc = self.container()["securityContext"]
        self.assertIs(sc["allowPrivilegeEscalation"], False)
        self.assertIs(sc["readOnlyRootFilesystem"], True)
        self.assertEqual(sc["capabilities"].get("drop"), ["ALL"])
        self.assertNotIn("add", sc["capabilities"])
        self.assertFalse(sc.get("privileged", False))
        for key in ("runAsUser", "runAsGroup", "runAsNonRoot"):  # no override back to root
            self.assertEqual(sc.get(key, psc[key]), psc[key], key)
        self.assertFalse(spec.get("hostNetwork") or spec.get("hostPID") or spec.get("hostIPC"))
        for v in spec.get("volumes", []):
            # Nothing writable besides the store, nothing of the node's.
            self.assertFalse({"emptyDir", "hostPath"} & set(v), v["name"])
        for m in self.container()["volumeMounts"]:
            if m["name"] != "data":
                self.assertIs(m.get("readOnly"), True, m["name"])

    def test_seccomp_profile(self):
        spec = self.pod()["spec"]
        self.assertEqual(spec["securityContext"]["seccompProfile"], self.SECCOMP)
        self.assertNotIn("seccompProfile", self.container()["securityContext"])

    def test_no_service_account_token(self):
        spec = self.pod()["spec"]
        self.assertEqual(spec["serviceAccountName"], "ringstore")
        self.assertIs(spec["automountServiceAccountToken"], False)
        sa = self.one("ServiceAccount", "ringstore")
        self.assertIs(sa["automountServiceAccountToken"], False)

    def test_services_select_the_pod(self):
        labels = self.pod()["metadata"]["labels"]
        spec = self.workload()["spec"]
        self.assertTrue(selects(spec["selector"], labels), "%s selector" % self.KIND)
        if self.KIND == "StatefulSet":
            governing = self.one("Service", spec["serviceName"])
            self.assertEqual(governing["spec"].get("clusterIP"), "None",
                             "governing Service is headless")
        named = {p["name"]: p["containerPort"] for p in self.container()["ports"]}
        for svc in self.of_kind("Service"):
            sel = svc["spec"]["selector"]
            self.assertTrue(sel and all(labels.get(k) == v for k, v in sel.items()),
                            svc["metadata"]["name"])
            for p in svc["spec"]["ports"]:
                target = p.get("targetPort", p["port"])
                self.assertIn(named.get(target, target), named.values(), p)
                self.assertNotEqual(named.get(target, target), PORTS["health"],
                                    "the health port is for the kubelet only")
        main = self.one("Service", "ringstore")
        ports = {p["name"]: (p["port"], named.get(p["targetPort"], p["targetPort"]))
                 for p in main["spec"]["ports"]}
        self.assertEqual(ports, {"grpc": (50051, PORTS["grpc"]), "metrics": (9090, PORTS["metrics"])})

    def test_pod_disruption_budget(self):
        pdbs = self.of_kind("PodDisruptionBudget")
        self.assertEqual(len(pdbs), 1)
        spec = pdbs[0]["spec"]
        self.assertTrue(selects(spec["selector"], self.pod()["metadata"]["labels"]))
        # One replica: a budget that forbids its eviction would only block
        # node drains (poddisruptionbudget.yaml says why).
        replicas = self.workload()["spec"]["replicas"]
        if "maxUnavailable" in spec:
            self.assertGreaterEqual(spec["maxUnavailable"], 1)
        else:
            self.assertLess(spec["minAvailable"], replicas)

    def test_network_policy_admits_grpc_and_metrics_only(self):
        pols = self.of_kind("NetworkPolicy")
        self.assertEqual(len(pols), 1)
        spec = pols[0]["spec"]
        self.assertTrue(selects(spec["podSelector"], self.pod()["metadata"]["labels"]))
        self.assertIn("Ingress", spec["policyTypes"])
        named = {p["name"]: p["containerPort"] for p in self.container()["ports"]}
        admitted = set()
        for rule in spec.get("ingress", []):
            self.assertTrue(rule.get("ports"), "a rule without ports admits every port")
            for p in rule["ports"]:
                self.assertEqual(p.get("protocol", "TCP"), "TCP")
                self.assertNotIn("endPort", p)
                admitted.add(named.get(p["port"], p["port"]))
        self.assertEqual(admitted, {PORTS["grpc"], PORTS["metrics"]})
        # The server opens no connections: no egress at all.
        self.assertIn("Egress", spec["policyTypes"])
        self.assertEqual(spec.get("egress", []), [])

    def test_scrape_annotations_match_the_metrics_port(self):
        ann = self.pod()["metadata"].get("annotations", {})
        self.assertEqual(ann.get("prometheus.io/scrape"), "true")
        self.assertEqual(ann.get("prometheus.io/port"), str(self.container_port("metrics")))
        self.assertEqual(ann.get("prometheus.io/path"), "/metrics")

    def test_memory_sized_from_the_buffer_pool(self):
        args = self.args()
        pool = int(args["--buffer_count"]) * int(args["--buffer_size"])
        res = self.container()["resources"]
        limit = quantity_bytes(res["limits"]["memory"])
        request = quantity_bytes(res["requests"]["memory"])
        self.assertGreaterEqual(limit, pool + MIN_MEMORY_MARGIN,
                                "limit %d < pool %d + margin" % (limit, pool))
        self.assertGreater(request, pool)
        self.assertLessEqual(request, limit)
        self.assertIn("cpu", res["requests"])

    def test_plaintext_unless_tls_overlay(self):
        args = self.args()
        tls = {f for f in args if f.startswith("--tls_") or f == "--auth_tokens"}
        self.assertEqual(tls, self.TLS_FLAGS)


class BaseTest(_Manifests, unittest.TestCase):
    DIR = "base"
    SECCOMP = {"type": "RuntimeDefault"}
    TLS_FLAGS = set()


class IoUringTest(_Manifests, unittest.TestCase):
    DIR = "overlays/io-uring"
    # Relative to the kubelet's seccomp root; deploy/seccomp/ringstore.json.
    SECCOMP = {"type": "Localhost", "localhostProfile": "profiles/ringstore.json"}
    TLS_FLAGS = set()


class TlsAuthTest(_Manifests, unittest.TestCase):
    DIR = "overlays/tls-auth"
    SECCOMP = {"type": "RuntimeDefault"}
    TLS_FLAGS = {"--tls_cert", "--tls_key", "--tls_client_ca", "--auth_tokens"}

    def test_secrets_mounted_whole_where_the_flags_point(self):
        args = self.args()
        volumes = {v["name"]: v for v in self.pod()["spec"]["volumes"]}
        mounts = {m["name"]: m for m in self.container()["volumeMounts"]}
        # flag -> (Secret, key in it): cert-manager's layout and DESIGN §5's tokens file.
        want = {"--tls_cert": ("ringstore-tls", "tls.crt"),
                "--tls_key": ("ringstore-tls", "tls.key"),
                "--tls_client_ca": ("ringstore-tls", "ca.crt"),
                "--auth_tokens": ("ringstore-tokens", "tokens")}
        for flag, (secret, key) in want.items():
            path = args[flag]
            found = [(n, m) for n, m in mounts.items()
                     if path == os.path.join(m["mountPath"], key)]
            self.assertEqual(len(found), 1, "%s=%s is not KEY in one mount" % (flag, path))
            name, mount = found[0]
            self.assertIs(mount.get("readOnly"), True, name)
            self.assertNotIn("subPath", mount, "subPath mounts never see Secret updates")
            self.assertNotIn("subPathExpr", mount)
            vol = volumes[name]
            self.assertEqual(vol["secret"]["secretName"], secret, flag)
            self.assertNotIn("items", vol["secret"], "the Secret's keys are its file names")
            self.assertFalse(vol["secret"].get("optional", False))

    def test_service_does_not_claim_h2c(self):
        main = self.one("Service", "ringstore")
        grpc = next(p for p in main["spec"]["ports"] if p["name"] == "grpc")
        self.assertNotEqual(grpc.get("appProtocol"), "kubernetes.io/h2c")


class SharedTest(_Manifests, unittest.TestCase):
    DIR = "overlays/shared"
    KIND = "Deployment"
    SECCOMP = {"type": "RuntimeDefault"}
    TLS_FLAGS = set()

    def test_pod_template_is_base_s(self):
        """deployment.yaml copies base's pod template: only the volume (a
        claim instead of volumeClaimTemplates) and the spread over nodes may
        differ, so a change to base cannot be forgotten here."""
        require_kubectl(self)
        base = next(o for o in render_overlay("base") if o["kind"] == "StatefulSet")
        mine = copy.deepcopy(self.pod())
        spread = mine["spec"].pop("topologySpreadConstraints")
        self.assertEqual([c["topologyKey"] for c in spread], ["kubernetes.io/hostname"])
        self.assertTrue(selects(spread[0]["labelSelector"], mine["metadata"]["labels"]))
        self.assertEqual([v["name"] for v in mine["spec"].pop("volumes")], ["data"])
        self.assertEqual(mine, base["spec"]["template"])

    def test_rolling_update_keeps_every_replica_serving(self):
        strategy = self.workload()["spec"]["strategy"]
        self.assertEqual(strategy["type"], "RollingUpdate")
        self.assertEqual(strategy["rollingUpdate"]["maxUnavailable"], 0)
        self.assertGreaterEqual(strategy["rollingUpdate"]["maxSurge"], 1)

    def test_no_headless_service(self):
        # No stable pod names in a Deployment: every Service has a cluster IP.
        for svc in self.of_kind("Service"):
            self.assertNotEqual(svc["spec"].get("clusterIP"), "None", svc["metadata"]["name"])


class HelpersTest(unittest.TestCase):
    """The test's own parsers, so a wrong one cannot hide a bad manifest."""

    def test_parsers(self):
        self.assertEqual(parse_duration("30s"), 30)
        self.assertEqual(parse_duration("1m30s"), 90)
        self.assertAlmostEqual(parse_duration("500ms"), 0.5)
        self.assertRaises(ValueError, parse_duration, "30")
        self.assertEqual(quantity_bytes("512Mi"), 512 * MiB)
        self.assertEqual(quantity_bytes("1Gi"), 1024 * MiB)
        self.assertEqual(quantity_bytes("1G"), 10**9)
        self.assertRaises(ValueError, quantity_bytes, "1 Gi")
        self.assertTrue(selects({"matchLabels": {"a": "b"}}, {"a": "b", "c": "d"}))
        self.assertFalse(selects({"matchLabels": {"a": "b"}}, {"a": "c"}))
        self.assertFalse(selects({}, {"a": "b"}))


if __name__ == "__main__":
    testlib.main()
