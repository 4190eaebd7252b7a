"""What tests/crash_test.py checks a store against: the versions of each path
it tried to upload (content derived from (seed, path, number), so it can be
regenerated), the verifier of the files a store shows, and the temp and
session data it may keep."""

import hashlib
import os
import random
import threading

import testlib


# --- What was tried: versions of each path ----------------------------------

class Version:
    """One complete content a path was ever uploaded with."""

    def __init__(self, seed, path, number, size):
        self.path, self.number, self.size = path, number, size
        self._key = "%d/%s/%d" % (seed, path, number)
        self.sha256 = hashlib.sha256(self.data()).digest()
        self._crc = None

    def data(self):
        return random.Random(self._key).randbytes(self.size)

    def crc32c(self):
        if self._crc is None:
            self._crc = testlib.crc32c(self.data())
        return self._crc


class Versions:
    """Every version of every path the test tried to upload."""

    def __init__(self, seed):
        self.seed = seed
        self.by_path = {}  # path -> [Version]
        self.lock = threading.Lock()

    def new(self, path, size):
        with self.lock:
            versions = self.by_path.setdefault(path, [])
            v = Version(self.seed, path, len(versions) + 1, size)
            versions.append(v)
            return v

    def match(self, path, data):
        """The version of `path` whose content is exactly `data`, or None."""
        digest = hashlib.sha256(data).digest()
        for v in self.by_path.get(path, []):
            if v.size == len(data) and v.sha256 == digest and v.data() == data:
                return v
        return None


def visible_files(root):
    return testlib.visible_files(root)


def verify_tree(root, versions, stat, cache=None):
    """Checks every visible file under `root` against `versions`: it must be
    byte-identical to one version of its path, and stat(path) (a FileInfo,
    or None if the server has none) must report that version's size and
    CRC32C. `cache` (a dict, kept by the caller) skips files already
    verified and unchanged since. Returns ({path: (Version, FileInfo)},
    [problems])."""
    found, problems = {}, []
    for rel in visible_files(root):
        full = os.path.join(root, rel)
        st = os.stat(full)
        key = (rel, st.st_ino, st.st_size, st.st_mtime_ns)
        info = stat(rel)
        if info is None:
            problems.append("%s: on disk but Stat finds nothing" % rel)
            continue
        version = cache.get(key) if cache is not None else None
        if version is None:
            version = versions.match(rel, testlib.read_file(full))
            if version is None:
                problems.append("%s: %d bytes that match no complete upload of it (%d tried)"
                                % (rel, st.st_size, len(versions.by_path.get(rel, []))))
                continue
        if info.size != version.size or info.crc32c != version.crc32c():
            problems.append("%s: holds version %d (%d bytes, crc32c %d) but Stat says %d bytes, "
                            "crc32c %d" % (rel, version.number, version.size, version.crc32c(),
                                           info.size, info.crc32c))
            continue
        if cache is not None:
            cache[key] = version
        found[rel] = (version, info)
    return found, problems


def tmp_problems(root):
    """Temp data nobody owns, with one server running and no upload in
    flight: any regular file under .ringstore/tmp holding data, any file
    below a sub-directory of it (an upload's temp file; only empty
    <server>.lock files may sit at its top), and more than one
    sub-directory (each server has its own; a dead server's must go)."""
    base = os.path.join(root, ".ringstore", "tmp")
    out = []
    for dirpath, dirnames, filenames in os.walk(base):
        if dirpath == base and len(dirnames) > 1:
            out.append(".ringstore/tmp holds %d server directories: %s"
                       % (len(dirnames), " ".join(sorted(dirnames))))
        for f in filenames:
            full = os.path.join(dirpath, f)
            st = os.lstat(full)
            if st.st_size > 0 or dirpath != base:
                out.append("%s (%d bytes)" % (os.path.relpath(full, root), st.st_size))
    return sorted(out)


def session_files(root, upload_id):
    """Entries of session `upload_id` under .ringstore/uploads."""
    base = os.path.join(root, ".ringstore", "uploads")
    return sorted(f for f in os.listdir(base) if upload_id in f) if os.path.isdir(base) else []


def session_data(root):
    """Files under .ringstore/uploads that hold data."""
    base = os.path.join(root, ".ringstore", "uploads")
    out = []
    for dirpath, _, filenames in os.walk(base):
        for f in filenames:
            full = os.path.join(dirpath, f)
            if os.lstat(full).st_size > 0:
                out.append(os.path.relpath(full, root))
    return sorted(out)
