"""The image, run under podman exactly as each Kubernetes overlay's rendered
pod would run it.

There is no cluster here, so this is the next best thing: deploy/image/build.sh
builds the image once from the binaries under test and the test loads it back
from its OCI archive; then, for each overlay, `kubectl kustomize` renders
the manifests and PodRun (pod_run.py) turns the workload's pod spec into `podman run`
flags: the container's args, env, user and groups, its volume mounts (the
claim a temp dir, Secrets in the kubelet's ..data layout, with the files the
test makes), the read-only root, dropped capabilities, no privilege
escalation, the seccomp profile (RuntimeDefault is the runtime's own,
Localhost one under deploy/seccomp/), memory and CPU limits, and the grace
period. A field PodRun does not know fails the test rather than being
ignored. Then it asks the probes as the kubelet would (gRPC health on the
probe's port and service, within its thresholds), round-trips files with the
real CLI through the published port, checks the engine each profile gives,
and stops the container as the kubelet does (SIGTERM, then the grace period)
while a download is in flight.

Podman runs here with --runtime=runc --cgroup-manager=cgroupfs, the vfs
storage driver and `default_ulimits = []` (the only way it works on these
machines), in a storage of its own under a temp dir.
"""

import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

import grpc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "tests"))
import testlib  # noqa: E402
from pki import Pki  # noqa: E402
from k8s_render import render_overlay  # noqa: E402

sys.path.insert(0, testlib.runfile("tests"))
from health.v1 import health_pb2  # noqa: E402
from ringstore.v1 import ringstore_pb2 as pb  # noqa: E402
from ringstore.v1 import ringstore_pb2_grpc as pbg  # noqa: E402
from pod_run import Container, PodRun, Podman, health  # noqa: E402

BUILD_SH = testlib.runfile("deploy/image/build.sh")
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def skip_reason():
    """Why the containers cannot run here, or None."""
    if os.environ.get("RINGSTORE_SANITIZER"):
        return "a sanitizer build (%s) is not what the image ships" % \
            os.environ["RINGSTORE_SANITIZER"]
    for tool in ("podman", "buildah", "runc", "skopeo", "kubectl", "openssl"):
        if not shutil.which(tool):
            return "%s is not installed (bash deploy/install-deps.sh)" % tool
    try:
        import yaml  # noqa: F401 (k8s_render needs it)
    except ImportError:
        return "python3-yaml is not installed (bash deploy/install-deps.sh)"
    if os.geteuid() != 0:
        return "podman with runc and cgroupfs needs root here"
    return None


# Made once for the module (setUpModule).
PODMAN = None
IMAGE = None          # the image's name, loaded back from its archive
ARCHIVE = None
PKI = None
TOKEN = "k8s-test-token-" + hashlib.sha256(os.urandom(16)).hexdigest()[:24]


def setUpModule():
    global PODMAN, IMAGE, ARCHIVE, PKI
    if skip_reason():
        return
    # A short directory: podman's runtime sockets must fit in sun_path.
    work = tempfile.mkdtemp(prefix="rs-pod-", dir="/tmp")
    PODMAN = Podman(work)
    ARCHIVE = os.path.join(work, "ringstore.oci.tar")
    r = subprocess.run(["bash", BUILD_SH, "--server=" + testlib.SERVER, "--cli=" + testlib.CLI,
                        "--out=" + ARCHIVE], env=PODMAN.env, capture_output=True, timeout=600)
    if r.returncode != 0:
        raise AssertionError("build.sh failed: %s" % r.stderr.decode(errors="replace")[-3000:])
    built = re.search(r"^image (\S+)$", r.stdout.decode(), re.M).group(1)
    # What a user loads is the archive: drop the built image and load that.
    PODMAN.run("rmi", "--force", built)
    loaded = PODMAN.run("load", "--input", ARCHIVE).stdout.decode()
    IMAGE = re.search(r"Loaded image(?:\(s\))?: (\S+)", loaded).group(1)

    PKI = Pki(testlib.tmpdir("pki"))
    # cert-manager's layout: ca.crt is the issuer's CA, which also signs the
    # clients the server accepts.
    PKI.ca("ca", "ringstore k8s test CA")
    PKI.leaf("server", "ringstore", "ca", "serverAuth",
             san="DNS:ringstore,DNS:localhost,IP:127.0.0.1")
    PKI.leaf("client", "client", "ca", "clientAuth")


def tearDownModule():
    if PODMAN:
        PODMAN.reset()
        shutil.rmtree(PODMAN.work, ignore_errors=True)


def secret_contents():
    """What the test puts in each Secret the manifests name, by name and key."""
    token_hash = hashlib.sha256(TOKEN.encode()).hexdigest()
    return {
        "ringstore-tls": {
            "tls.crt": PKI.read("server.crt"),
            "tls.key": PKI.read("server.key"),
            "ca.crt": PKI.read("ca.crt"),
        },
        "ringstore-tokens": {
            "tokens": ("# written by deploy/container_test.py\n%s admin\n" % token_hash).encode(),
        },
    }


class OverlayCase(testlib.RpcAssertions):
    """The checks every overlay gets. Subclasses set OVERLAY and ENGINE."""

    OVERLAY = None
    ENGINE = None

    @classmethod
    def setUpClass(cls):
        reason = skip_reason()
        if reason:
            raise unittest.SkipTest(reason)
        objects = render_overlay(cls.OVERLAY)
        sets = [o for o in objects if o["kind"] in ("StatefulSet", "Deployment")]
        assert len(sets) == 1, "%s renders %d workloads" % (cls.OVERLAY, len(sets))
        cls.sts = sets[0]

    def setUp(self):
        self.work = testlib.tmpdir("pod")
        os.chmod(self.work, 0o755)
        self.pod = PodRun(self.sts, secret_contents(), self.work)
        self.container = None

    def tearDown(self):
        if self.container:
            # In test.log, for when a check above failed.
            sys.stderr.write("container logs:\n%s\n" % self.container.logs())
            self.container.remove()

    def start(self, extra_flags=()):
        self.container = Container(PODMAN, IMAGE, self.pod, extra_flags)
        self.wait_started()
        return self.container

    # What the kubelet does.

    def probe(self, name):
        return self.pod.container[name]["grpc"]

    def wait_started(self, container=None):
        """The startup probe, as the kubelet runs it: after initialDelaySeconds,
        every periodSeconds, failureThreshold failures kill the container.
        Polled more often here (every 0.1 s) with the same deadline."""
        container = container or self.container
        spec = self.pod.container["startupProbe"]
        deadline = time.monotonic() + spec.get("initialDelaySeconds", 0) + \
            spec.get("periodSeconds", 10) * spec.get("failureThreshold", 3)
        address = container.address(spec["grpc"]["port"])
        last = None
        while time.monotonic() < deadline:
            try:
                if health(address, spec["grpc"].get("service", ""),
                          spec.get("timeoutSeconds", 1)) == SERVING:
                    return
            except grpc.RpcError as e:
                last = e.code()
            time.sleep(0.1)
        self.fail("startup probe never answered SERVING (last %s); logs:\n%s" %
                  (last, container.logs()))

    def ask(self, name):
        spec = self.pod.container[name]
        return health(self.container.address(spec["grpc"]["port"]),
                      spec["grpc"].get("service", ""), spec.get("timeoutSeconds", 1))

    def not_ready(self):
        """Readiness fails: NOT_SERVING, or nobody listens any more (a drain
        whose last download the client's socket buffers took in whole can
        end before the first question)."""
        try:
            return self.ask("readinessProbe") == NOT_SERVING
        except grpc.RpcError as e:
            return e.code() == grpc.StatusCode.UNAVAILABLE

    # Clients.

    def cli_flags(self):
        return []

    def cli(self, *args):
        return testlib.cli(self.container.grpc_address(), *self.cli_flags(), *args, timeout=120)

    def channel(self):
        return grpc.insecure_channel(self.container.grpc_address())

    def metadata(self):
        return ()

    def info(self):
        r = self.cli("info")
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        return r.stdout.decode()

    # The checks.

    def test_probes_answer_as_the_kubelet_asks(self):
        self.start()
        for name in ("startupProbe", "readinessProbe", "livenessProbe"):
            self.assertIn("grpc", self.pod.container[name], name)
            self.assertEqual(self.ask(name), SERVING, name)

    def test_cli_round_trip_through_the_published_port(self):
        self.start()
        data = testlib.random_bytes(5 << 20, seed=12)
        local = testlib.write_file(self.work, "up.bin", data)
        r = self.cli("put", local, "dir/file.bin")
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertIn("served by " + self.ENGINE, r.stdout.decode())
        back = os.path.join(self.work, "down.bin")
        r = self.cli("get", "dir/file.bin", back)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertEqual(testlib.read_file(back), data)
        # On the claim, as the pod's user.
        on_disk = os.path.join(self.pod.claim, "dir", "file.bin")
        self.assertEqual(testlib.read_file(on_disk), data)
        self.assertEqual(os.stat(on_disk).st_uid, 65532)

    def test_engine(self):
        c = self.start()
        self.assertIn("engine=" + self.ENGINE, c.logs())
        info = self.info()
        self.assertIn("engine: " + self.ENGINE, info)
        if self.pod.seccomp == "RuntimeDefault":
            # The runtime's default profile forbids io_uring outright.
            self.assertNotIn("io_uring", info.split("engines available:")[1].splitlines()[0])

    def test_stop_drains_within_the_grace_period(self):
        """The kubelet's stop: SIGTERM, then SIGKILL after the grace period.
        A download in flight finishes, readiness turns NOT_SERVING at once,
        and the server exits 0 well inside the grace period."""
        c = self.start()
        data = testlib.random_bytes(24 << 20, seed=13)
        r = self.cli("put", testlib.write_file(self.work, "big.bin", data), "big.bin")
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        with self.channel() as ch:
            stream = pbg.FileStoreStub(ch).Download(pb.DownloadRequest(path="big.bin"),
                                                   metadata=self.metadata(), timeout=60)
            first = next(stream)
            started = time.monotonic()
            stop = subprocess.Popen(["podman", "--runtime=runc", "--cgroup-manager=cgroupfs",
                                     "stop", "--time", str(self.pod.grace), c.id],
                                    env=PODMAN.env, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE)
            try:
                testlib.wait_until(self.not_ready, timeout=10)
                got = first.data + b"".join(m.data for m in stream)
                self.assertEqual(hashlib.sha256(got).digest(), hashlib.sha256(data).digest())
            finally:
                out, err = stop.communicate(timeout=self.pod.grace + 30)
            elapsed = time.monotonic() - started
        self.assertEqual(stop.returncode, 0, err.decode())
        self.assertEqual(c.state(), ("exited", 0), c.logs())
        self.assertLess(elapsed, self.pod.grace, "the stop took the whole grace period")
        self.assertIn("draining", c.logs())


class BaseOverlay(OverlayCase, unittest.TestCase):
    """deploy/k8s/base: RuntimeDefault seccomp, so posix_aio."""

    OVERLAY = "base"
    ENGINE = "posix_aio"

    def test_cli_in_the_image(self):
        # `kubectl exec ringstore-0 -- ringstore info`: the CLI is in PATH.
        c = self.start()
        r = PODMAN.run("exec", c.id, "ringstore", "info")
        self.assertIn("engine: posix_aio", r.stdout.decode())


class SharedOverlay(OverlayCase, unittest.TestCase):
    """deploy/k8s/overlays/shared: the Deployment's pods, RuntimeDefault
    seccomp, and two of them on one claim (a host directory both mount)."""

    OVERLAY = "overlays/shared"
    ENGINE = "posix_aio"

    def stat(self, container, remote):
        r = testlib.cli(container.grpc_address(), "stat", remote, timeout=60, json=True)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        return json.loads(r.stdout.decode())

    def test_two_replicas_serve_one_claim(self):
        a = self.start()
        b = Container(PODMAN, IMAGE, PodRun(self.sts, secret_contents(), self.work, replica=1))
        try:
            self.wait_started(b)
            first = testlib.random_bytes(3 << 20, seed=21)
            second = testlib.random_bytes(2 << 20, seed=22)
            up = testlib.write_file(self.work, "first.bin", first)
            r = testlib.cli(a.grpc_address(), "put", up, "shared/f.bin", timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr.decode())
            # Written through a, read through b.
            back = os.path.join(self.work, "back.bin")
            r = testlib.cli(b.grpc_address(), "get", "shared/f.bin", back, timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr.decode() + b.logs())
            self.assertEqual(testlib.read_file(back), first)
            before = self.stat(a, "shared/f.bin")
            # Replaced through b: a reports b's generation and serves b's bytes.
            up = testlib.write_file(self.work, "second.bin", second)
            r = testlib.cli(b.grpc_address(), "put", up, "shared/f.bin", timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr.decode())
            after = self.stat(a, "shared/f.bin")
            self.assertEqual(after["size"], len(second))
            self.assertGreater(int(after["generation"]), int(before["generation"]))
            self.assertEqual(self.stat(b, "shared/f.bin")["generation"], after["generation"])
            r = testlib.cli(a.grpc_address(), "get", "shared/f.bin", back, timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr.decode())
            self.assertEqual(testlib.read_file(back), second)
            # --if_absent through the other replica sees the file.
            r = testlib.cli(a.grpc_address(), "put", "--if_absent", up, "shared/f.bin",
                            timeout=120)
            self.assertEqual(r.returncode, 1, r.stdout.decode())
            self.assertIn("ALREADY_EXISTS", r.stderr.decode())
        finally:
            sys.stderr.write("replica 1 logs:\n%s\n" % b.logs())
            b.remove()


class IoUringOverlay(OverlayCase, unittest.TestCase):
    """deploy/k8s/overlays/io-uring: the Localhost profile, so io_uring."""

    OVERLAY = "overlays/io-uring"
    ENGINE = "io_uring"

    def test_registered_buffers_follow_memlock(self):
        """Registered buffers count against RLIMIT_MEMLOCK, once per ring
        (every ring registers the whole pool), and a pod gets the container
        runtime's limit (here: what podman inherits, 8 MiB on these
        machines, whose hard limit even root cannot raise). Too small: io_uring
        serves with plain buffers and `info` says so; rings x pool within the
        limit (what raising it, as README tells an operator, amounts to):
        every ring registers it."""
        size = int(self.pod.arg("buffer_size"))
        count = int(self.pod.arg("buffer_count"))
        limit = resource.getrlimit(resource.RLIMIT_MEMLOCK)[0]
        self.start()
        info = self.info()
        self.assertIn("engine: io_uring", info)
        rings = int(re.search(r"rings=(\d+)", info).group(1))
        fits = limit == resource.RLIM_INFINITY or limit >= rings * count * size
        self.assertIn("registered with the kernel: %s" % ("yes" if fits else "no"), info)
        self.container.remove()
        self.container = None

        if not fits:
            count = (limit * 9 // 10) // (rings * size)
            if count < 1:
                self.skipTest("RLIMIT_MEMLOCK %d holds no %d-byte buffer per ring" % (limit, size))
            self.pod.args.append("--buffer_count=%d" % count)  # the last one counts
        self.start()
        info = self.info()
        self.assertIn("engine: io_uring", info)
        self.assertIn("registered with the kernel: yes", info)
        self.assertIn("registered_buffers=%dx%d" % (count, size), info)


class TlsAuthOverlay(OverlayCase, unittest.TestCase):
    """deploy/k8s/overlays/tls-auth: TLS, client certificates and tokens from
    the Secrets, laid out as cert-manager and `kubectl create secret` make
    them."""

    OVERLAY = "overlays/tls-auth"
    ENGINE = "posix_aio"

    def setUp(self):
        super().setUp()
        self.token_file = testlib.write_file(self.work, "token", TOKEN.encode())

    def cli_flags(self, token=True, client_cert=True):
        flags = ["--tls_ca=" + PKI.path("ca.crt")]
        if client_cert:
            flags += ["--tls_cert=" + PKI.path("client.crt"), "--tls_key=" + PKI.path("client.key")]
        if token:
            flags.append("--token_file=" + self.token_file)
        return flags

    def channel(self):
        creds = grpc.ssl_channel_credentials(PKI.read("ca.crt"), PKI.read("client.key"),
                                             PKI.read("client.crt"))
        return grpc.secure_channel(self.container.grpc_address(), creds)

    def metadata(self):
        return (("authorization", "Bearer " + TOKEN),)

    def test_flags_point_into_the_secret_mounts(self):
        for flag in ("tls_cert", "tls_key", "tls_client_ca", "auth_tokens"):
            value = self.pod.arg(flag)
            self.assertTrue(value, flag)
            self.assertTrue(any(value.startswith(m + "/") for m in self.pod.mounts),
                            "%s=%s is on no mount" % (flag, value))

    def test_a_changed_token_secret_needs_no_restart(self):
        """A token added to the ringstore-tokens Secret works once the
        kubelet has swapped the volume's files, without a restart."""
        c = self.start()
        token = "k8s-test-token-2-" + hashlib.sha256(os.urandom(16)).hexdigest()[:24]
        token_file = testlib.write_file(self.work, "token2", token.encode())
        flags = ["--tls_ca=" + PKI.path("ca.crt"), "--tls_cert=" + PKI.path("client.crt"),
                 "--tls_key=" + PKI.path("client.key"), "--token_file=" + token_file]
        r = testlib.cli(c.grpc_address(), *flags, "info")
        self.assertIn("UNAUTHENTICATED", r.stderr.decode())
        contents = secret_contents()["ringstore-tokens"]
        contents = {"tokens": contents["tokens"] +
                    ("%s admin\n" % hashlib.sha256(token.encode()).hexdigest()).encode()}
        self.pod.update_secret("ringstore-tokens", contents)
        self.assertTrue(testlib.wait_until(
            lambda: testlib.cli(c.grpc_address(), *flags, "info").returncode == 0, timeout=15),
            c.logs())
        self.assertEqual(c.state()[0], "running")

    def test_refuses_without_token_or_client_certificate(self):
        self.start()
        address = self.container.grpc_address()
        r = testlib.cli(address, *self.cli_flags(token=False), "stat", "x")
        self.assertEqual(r.returncode, 1)
        self.assertIn("UNAUTHENTICATED", r.stderr.decode())
        r = testlib.cli(address, *self.cli_flags(client_cert=False), "stat", "x")
        self.assertEqual(r.returncode, 1)
        self.assertIn("UNAVAILABLE", r.stderr.decode())
        r = testlib.cli(address, "stat", "x")  # plaintext to a TLS port
        self.assertEqual(r.returncode, 1)


class ImageTest(unittest.TestCase):
    """The image itself: from scratch, no shell, user 65532, entrypoint the
    server."""

    @classmethod
    def setUpClass(cls):
        reason = skip_reason()
        if reason:
            raise unittest.SkipTest(reason)
        cls.config = json.loads(PODMAN.run("image", "inspect", IMAGE).stdout)[0]

    def test_entrypoint_user_and_path(self):
        cfg = self.config["Config"]
        self.assertEqual(cfg["Entrypoint"], ["/usr/local/bin/ringstore-server"])
        self.assertEqual(cfg["User"], "65532:65532")
        self.assertIn("PATH=/usr/local/bin", cfg["Env"])
        self.assertRegex(IMAGE, r"ringstore:\d+\.\d+\.\d+$")

    def test_one_layer_of_binaries_libraries_and_certificates(self):
        # A file listing of the image: only what build.sh puts there.
        mount = PODMAN.run("image", "mount", IMAGE).stdout.decode().strip()
        try:
            found = set()
            for d, dirs, files in os.walk(mount):
                for f in files:
                    found.add(os.path.relpath(os.path.join(d, f), mount))
        finally:
            PODMAN.run("image", "unmount", IMAGE, check=False)
        self.assertEqual(len(self.config["RootFS"]["Layers"]), 1)
        for path in found:
            self.assertRegex(path, r"^(usr/local/bin/ringstore(-server)?|"
                             r"(usr/)?lib(64|/x86_64-linux-gnu)/[^/]+\.so[.\d]*|"
                             r"etc/(passwd|group|nsswitch\.conf|ssl/certs/ca-certificates\.crt))$")
        for shell in ("bin/sh", "bin/bash", "usr/bin/apt", "usr/bin/dpkg"):
            self.assertNotIn(shell, found)

    def test_no_shell(self):
        r = PODMAN.run("run", "--rm", "--entrypoint", "/bin/sh", IMAGE, "-c", "true",
                       check=False)
        self.assertNotEqual(r.returncode, 0)

    def test_archive_is_an_oci_layout(self):
        r = subprocess.run(["skopeo", "inspect", "oci-archive:" + ARCHIVE], capture_output=True,
                           timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertEqual(json.loads(r.stdout)["Labels"]["org.opencontainers.image.version"],
                         IMAGE.rsplit(":", 1)[1])


if __name__ == "__main__":
    testlib.main()
