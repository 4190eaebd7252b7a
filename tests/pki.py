"""A throw-away PKI for tests: CAs and certificates made by the real
`openssl` command (tests/tls_test.py, deploy/container_test.py)."""

import os
import subprocess


def openssl(*args, cwd):
    r = subprocess.run(["openssl"] + list(args), cwd=cwd, capture_output=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError("openssl %s failed: %s" % (" ".join(args), r.stderr.decode()))


class Pki:
    """A throw-away PKI: CAs and certificates signed by them, as PEM files in
    one directory. EC P-256 keys: quick to make."""

    def __init__(self, directory):
        self.dir = directory
        self.serial = 1000

    def path(self, name):
        return os.path.join(self.dir, name)

    def read(self, name):
        with open(self.path(name), "rb") as f:
            return f.read()

    def ca(self, name, cn):
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", name + ".key", "-out", name + ".crt", "-days", "2", "-subj", "/CN=" + cn,
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=self.dir)

    def leaf(self, name, cn, ca, usage, san=None):
        """Certificate `name`.crt and key `name`.key for `cn`, signed by CA `ca`;
        `usage` is serverAuth or clientAuth."""
        self.serial += 1
        ext = ["basicConstraints=CA:FALSE", "keyUsage=critical,digitalSignature",
               "extendedKeyUsage=" + usage]
        if san:
            ext.append("subjectAltName=" + san)
        with open(self.path(name + ".ext"), "w") as f:
            f.write("\n".join(ext) + "\n")
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + cn, cwd=self.dir)
        openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt", "-CAkey", ca + ".key",
                "-set_serial", str(self.serial), "-days", "2", "-extfile", name + ".ext",
                "-out", name + ".crt", cwd=self.dir)
