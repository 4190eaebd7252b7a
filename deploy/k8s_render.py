"""Rendering the kustomize tree for deploy/'s tests (k8s_manifests_test,
container_test): `kubectl kustomize` of an overlay, and the Kubernetes
quantities the tests read back."""

import os
import re
import shutil
import subprocess
import tempfile

K8S = os.path.join(os.path.dirname(os.path.abspath(__file__)), "k8s")


def copy_tree():
    """deploy/k8s copied into a fresh temp directory with symlinks resolved
    (Bazel's runfiles are symlinks, which kustomize may refuse) and without
    node_modules. Returns the copy's path."""
    dst = os.path.join(tempfile.mkdtemp(prefix="k8s", dir=os.environ.get("TEST_TMPDIR")), "k8s")
    shutil.copytree(K8S, dst, symlinks=False, ignore=shutil.ignore_patterns("node_modules"))
    return dst


def render(directory):
    """(objects, stderr) of `kubectl kustomize directory`; raises on failure.
    Needs python3-yaml (imported here, so that a test can skip without it)."""
    import yaml
    p = subprocess.run(["kubectl", "kustomize", directory], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True, timeout=120)
    if p.returncode != 0:
        raise AssertionError("kubectl kustomize %s failed (%d): %s"
                             % (directory, p.returncode, p.stderr))
    return [d for d in yaml.safe_load_all(p.stdout) if d is not None], p.stderr


def render_overlay(overlay):
    """The objects of deploy/k8s/`overlay` (e.g. "base", "overlays/io-uring"),
    rendered from a fresh copy of the tree."""
    return render(os.path.join(copy_tree(), overlay))[0]


def quantity_bytes(q):
    """Bytes in a Kubernetes memory quantity (512Mi, 1Gi, 268435456, 1G)."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?", str(q))
    if not m:
        raise ValueError("not a memory quantity: %r" % q)
    mult = {None: 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40,
            "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}[m.group(2)]
    return int(float(m.group(1)) * mult)


def quantity_cpus(q):
    """CPUs in a Kubernetes CPU quantity (500m, 2, 1.5)."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(m)?", str(q))
    if not m:
        raise ValueError("not a CPU quantity: %r" % q)
    return float(m.group(1)) / (1000 if m.group(2) else 1)
