"""Running a rendered Kubernetes pod under podman, for deploy/container_test.py:
Podman (podman on a storage of its own), PodRun (a workload's pod spec as
`podman run` flags), Container (one started from it) and health (the
kubelet's gRPC probe)."""

import json
import os
import re
import subprocess

import grpc

from health.v1 import health_pb2, health_pb2_grpc  # tests/ must be on sys.path
from k8s_render import quantity_bytes, quantity_cpus

# deploy/seccomp beside this file: the kubelet's <seccomp root>/profiles.
SECCOMP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seccomp")


class Podman:
    """podman and buildah on a storage of their own under `work`."""

    def __init__(self, work):
        self.work = work
        conf = os.path.join(work, "containers.conf")
        with open(conf, "w") as f:
            # Podman's default ulimits are refused on these machines.
            f.write("[containers]\ndefault_ulimits = []\n")
        storage = os.path.join(work, "storage.conf")
        with open(storage, "w") as f:
            f.write('[storage]\ndriver = "vfs"\ngraphroot = "%s/graph"\nrunroot = "%s/run"\n'
                    % (work, work))
        self.env = dict(os.environ, CONTAINERS_CONF=conf, CONTAINERS_STORAGE_CONF=storage,
                        TMPDIR=work)

    def run(self, *args, timeout=120, check=True):
        r = subprocess.run(["podman", "--runtime=runc", "--cgroup-manager=cgroupfs"] +
                           list(args), env=self.env, capture_output=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError("podman %s: exit %d: %s" % (
                " ".join(args[:3]), r.returncode, r.stderr.decode(errors="replace")[-2000:]))
        return r

    def reset(self):
        self.run("rm", "--all", "--force", "--time=0", check=False)
        self.run("system", "reset", "--force", check=False)


class PodRun:
    """`podman run` flags for the one container of a rendered StatefulSet or
    Deployment; `replica` numbers its pods (their host names). Replicas made
    in one `work` directory share its claims, as a ReadWriteMany claim is
    shared."""

    # Fields of the pod and container specs PodRun carries over, and those
    # that cannot change how the container runs here. Anything else fails.
    POD_FIELDS = {"containers", "securityContext", "volumes", "serviceAccountName",
                  "automountServiceAccountToken", "terminationGracePeriodSeconds",
                  "enableServiceLinks", "affinity", "topologySpreadConstraints",
                  "priorityClassName", "tolerations", "nodeSelector"}
    CONTAINER_FIELDS = {"name", "image", "imagePullPolicy", "command", "args", "env", "ports",
                        "volumeMounts", "securityContext", "resources", "startupProbe",
                        "readinessProbe", "livenessProbe", "terminationMessagePolicy"}

    def __init__(self, sts, secrets, work, replica=0):
        self.sts = sts
        pod = sts["spec"]["template"]["spec"]
        unknown = set(pod) - self.POD_FIELDS
        if unknown:
            raise AssertionError("pod spec fields PodRun does not emulate: %s" % unknown)
        containers = pod["containers"]
        if len(containers) != 1 or pod.get("initContainers"):
            raise AssertionError("expected one container, got %d" % len(containers))
        c = self.container = containers[0]
        unknown = set(c) - self.CONTAINER_FIELDS
        if unknown:
            raise AssertionError("container fields PodRun does not emulate: %s" % unknown)
        self.grace = pod.get("terminationGracePeriodSeconds", 30)
        psc, csc = pod.get("securityContext", {}), c.get("securityContext", {})

        def sc(field, default=None):
            return csc.get(field, psc.get(field, default))

        flags = ["--hostname", "%s-%d" % (sts["metadata"]["name"], replica)]
        uid, gid = sc("runAsUser"), sc("runAsGroup", 0)
        if sc("runAsNonRoot") and not uid:
            raise AssertionError("runAsNonRoot without a non-zero runAsUser")
        if uid is not None:
            flags += ["--user", "%d:%d" % (uid, gid)]
        fs_group = psc.get("fsGroup")
        for g in ([fs_group] if fs_group is not None else []) + psc.get("supplementalGroups", []):
            flags += ["--group-add", str(g)]
        if csc.get("readOnlyRootFilesystem"):
            # Podman would add writable tmpfs on /tmp, /run, /var/tmp; a pod
            # has none of them.
            flags += ["--read-only", "--read-only-tmpfs=false"]
        caps = csc.get("capabilities", {})
        for cap in caps.get("drop", []):
            flags += ["--cap-drop", cap.lower()]
        for cap in caps.get("add", []):
            flags += ["--cap-add", cap.lower()]
        if csc.get("allowPrivilegeEscalation") is False:
            flags += ["--security-opt", "no-new-privileges"]
        seccomp = sc("seccompProfile")
        if not seccomp:
            raise AssertionError("no seccompProfile: the pod would run Unconfined")
        self.seccomp = seccomp["type"]
        if seccomp["type"] == "Localhost":
            # The kubelet's <seccomp root>/profiles/X.json is deploy/seccomp/X.json.
            flags += ["--security-opt", "seccomp=" + os.path.join(
                SECCOMP, os.path.basename(seccomp["localhostProfile"]))]
        elif seccomp["type"] == "Unconfined":
            flags += ["--security-opt", "seccomp=unconfined"]
        elif seccomp["type"] != "RuntimeDefault":
            raise AssertionError("seccomp type %s" % seccomp["type"])

        limits = c.get("resources", {}).get("limits", {})
        if "memory" in limits:
            flags += ["--memory", str(quantity_bytes(limits["memory"]))]
        if "cpu" in limits:
            flags += ["--cpus", str(quantity_cpus(limits["cpu"]))]

        for e in c.get("env", []):
            if "value" not in e:
                raise AssertionError("env %s: only plain values are emulated" % e["name"])
            flags += ["--env", "%s=%s" % (e["name"], e["value"])]
        self.ports = {}
        for p in c.get("ports", []):
            self.ports[p["containerPort"]] = p.get("name")
            flags += ["--publish", "127.0.0.1::%d" % p["containerPort"]]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            port = c.get(probe, {}).get("grpc", {}).get("port")
            if port is not None and port not in self.ports:
                flags += ["--publish", "127.0.0.1::%d" % port]
                self.ports[port] = None

        self.mounts = {}
        self.claim = None
        self.secrets = {}  # name: (its directory, its volume spec, fsGroup)
        self.secret_versions = 0
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        claims = {t["metadata"]["name"] for t in sts["spec"].get("volumeClaimTemplates", [])}
        for m in c.get("volumeMounts", []):
            name = m["name"]
            if name in claims or (name in volumes and "persistentVolumeClaim" in volumes[name]):
                claim = volumes[name]["persistentVolumeClaim"]["claimName"] \
                    if name in volumes else name
                host = os.path.join(work, "claim-" + claim)
                os.makedirs(host, exist_ok=True)
                if fs_group is not None:
                    # The kubelet gives a volume to fsGroup, setgid.
                    os.chown(host, 0, fs_group)
                    os.chmod(host, 0o2775)
                self.claim = host
                ro = False
            elif name in volumes and "secret" in volumes[name]:
                host = self._secret_dir(volumes[name]["secret"], secrets, work, fs_group)
                ro = True
            elif name in volumes and "emptyDir" in volumes[name]:
                host = os.path.join(work, "empty-" + name)
                os.makedirs(host, exist_ok=True)
                os.chmod(host, 0o1777)
                ro = False
            else:
                raise AssertionError("volume %s: kind not emulated" % name)
            if m.get("subPath"):
                host = os.path.join(host, m["subPath"])
            self.mounts[m["mountPath"]] = host
            flags += ["--volume", "%s:%s%s" % (host, m["mountPath"],
                                               ":ro" if ro or m.get("readOnly") else "")]
        if c.get("command"):
            flags += ["--entrypoint", json.dumps(c["command"])]
        self.flags = flags
        self.args = list(c.get("args", []))

    def _secret_dir(self, spec, secrets, work, fs_group):
        """A Secret volume as the kubelet writes it: the files in a
        timestamped directory, ..data pointing at it, and each key a link
        through ..data (what TLS rotation by symlink swap relies on)."""
        name = spec["secretName"]
        if name not in secrets:
            raise AssertionError("no test content for Secret %s" % name)
        root = os.path.join(work, "secret-" + name)
        os.makedirs(root)
        os.chmod(root, 0o755)
        self.secrets[name] = (root, spec, fs_group)
        self.update_secret(name, secrets[name])
        return root

    def update_secret(self, name, contents):
        """Publishes new contents of Secret `name` as the kubelet does: a new
        timestamped directory, then an atomic swap of ..data."""
        root, spec, fs_group = self.secrets[name]
        self.secret_versions += 1
        stamp = os.path.join(root, "..2026_12_02_00_00_00.%09d" % self.secret_versions)
        os.makedirs(stamp)
        os.chmod(stamp, 0o755)
        mode = spec.get("defaultMode", 0o644)
        items = spec.get("items") or [{"key": k, "path": k} for k in contents]
        for item in items:
            path = os.path.join(stamp, item["path"])
            with open(path, "wb") as f:
                f.write(contents[item["key"]])
            os.chown(path, 0, fs_group if fs_group is not None else 0)
            os.chmod(path, item.get("mode", mode))
            top = item["path"].split("/")[0]
            if not os.path.lexists(os.path.join(root, top)):
                os.symlink(os.path.join("..data", top), os.path.join(root, top))
        tmp = os.path.join(root, "..data_tmp")
        os.symlink(os.path.basename(stamp), tmp)
        os.rename(tmp, os.path.join(root, "..data"))

    def arg(self, flag):
        """The value of --flag in the container's args, or None."""
        for a in self.args:
            if a.startswith("--%s=" % flag):
                return a.split("=", 1)[1]
        return None


class Container:
    """One container started from a PodRun."""

    def __init__(self, podman, image, run, extra_flags=()):
        self.podman = podman
        self.run = run
        r = podman.run("run", "--detach", *run.flags, *extra_flags, image, *run.args)
        self.id = r.stdout.decode().strip()
        self.host_ports = {}
        for line in self.podman.run("port", self.id).stdout.decode().splitlines():
            m = re.match(r"(\d+)/tcp -> [\d.]+:(\d+)", line)
            if m:
                self.host_ports[int(m.group(1))] = int(m.group(2))

    def address(self, container_port):
        return "127.0.0.1:%d" % self.host_ports[container_port]

    def grpc_address(self):
        return self.address(next(p for p, n in self.run.ports.items() if n == "grpc"))

    def logs(self):
        r = self.podman.run("logs", self.id, check=False)
        return (r.stdout + r.stderr).decode(errors="replace")

    def state(self):
        out = self.podman.run("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}",
                         self.id).stdout.decode().split()
        return out[0], int(out[1])

    def remove(self):
        self.podman.run("rm", "--force", "--time=0", self.id, check=False)


def health(address, service, timeout):
    with grpc.insecure_channel(address) as ch:
        return health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=timeout).status
