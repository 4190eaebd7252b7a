"""bench/compare.py's peers: the processes it starts and the servers it
measures (ringstore-server on each of its engines, bench/baseline_server,
nginx), with the /proc readings each cell records.

The ringstore peers are one per engine the server binary knows, asked from
the binary itself (ringstore_engines), so adding an engine adds a peer.
Only the standard library.
"""

import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import time

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30

CLK_TCK = os.sysconf("SC_CLK_TCK")

# The peers besides ringstore's engines, after them in every list.
OTHER_PEERS = ("baseline", "nginx", "nginx-aio")
# Peers that run only in the cases that ask for them (compare_cases'
# @case(..., extra_peers=...)): nginx-aio (nginx plus `aio threads;`, reads
# off the event loop) matters only for data that is not in the page cache.
CASE_ONLY_PEERS = ("nginx-aio",)

# The fair method (issue 14): every server on one CPU, every client on
# another, so that a heavy client cannot make a server look slow and each
# side's CPU time is its own. compare.py sets these from --pin ("" = not
# pinned); spawn_server and client_run prefix `taskset -c CPU`, which
# execs, so the process id stays the server's or the client's own.
PIN = {"server": "0", "client": "1"}
# Extra environment for ringstore-server (compare.py --preload: LD_PRELOAD).
RINGSTORE_ENV = {}


def pinned(cmd, side):
    cpu = PIN.get(side, "")
    return ["taskset", "-c", cpu] + list(cmd) if cpu else list(cmd)


class Fail(Exception):
    """A cell or reference that could not be measured; the run goes on."""


def ringstore_engines(server_binary):
    """The engines ringstore-server knows, in its order of preference
    (storage/engine/engine_list.h): the list its refusal of an unknown
    --engine names ("...; use auto, io_uring, posix_aio or thread_pool")."""
    r = subprocess.run([server_binary, "--engine=", "--root=/nonexistent"],
                       capture_output=True, text=True, timeout=60)
    m = re.search(r"use auto, (.*) or (\w+)$", r.stderr.strip())
    if r.returncode != 2 or not m:
        raise Fail("%s did not list its engines (exit %d): %r"
                   % (server_binary, r.returncode, r.stderr.strip()[-400:]))
    return m.group(1).split(", ") + [m.group(2)]


def all_peers(server_binary):
    """"ringstore-ENGINE" for each engine, then OTHER_PEERS."""
    return tuple("ringstore-" + e for e in ringstore_engines(server_binary)) + OTHER_PEERS


# ---------------------------------------------------------------- processes

class Children:
    """Every long-lived process this run starts; their ids go to --pidfile
    so compare.sh's trap can stop them even if this process dies."""

    def __init__(self, pidfile):
        self.pidfile = pidfile
        self.procs = []

    def spawn(self, cmd, log_path, **kwargs):
        log = open(log_path, "ab")
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, **kwargs)
        log.close()
        self.procs.append(proc)
        if self.pidfile:
            with open(self.pidfile, "a") as f:
                f.write("%d\n" % proc.pid)
        return proc

    def stop(self, proc, sig=signal.SIGTERM, timeout=40):
        """Signals proc (if alive) and waits; kills it after timeout.
        Returns the exit code (None if it had to be killed)."""
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            rc = None
        if proc in self.procs:
            self.procs.remove(proc)
        return rc

    def stop_all(self):
        for proc in list(self.procs):
            self.stop(proc, timeout=10)


def proc_field_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def proc_cpu_s(pid):
    """utime + stime of the whole process (all its threads, io-wq workers
    included), in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def child_pids(ppid):
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == ppid:
            out.append(int(name))
    return sorted(out)


def cpu_jiffies():
    """(busy, steal) jiffies of the whole machine from /proc/stat; busy is
    everything but idle and iowait, steal included."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return sum(v) - v[3] - v[4], v[7]


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, proc, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise Fail("exited with %s before listening" % proc.returncode)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise Fail("not listening on port %d after %d s" % (port, timeout))


def client_run(cmd, timeout, env=None):
    """Runs a client to completion on the client CPU; returns (stdout,
    stderr, cpu seconds)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        r = subprocess.run(pinned(cmd, "client"), capture_output=True, timeout=timeout,
                           env=env)
    except subprocess.TimeoutExpired:
        raise Fail("%s timed out after %d s" % (os.path.basename(cmd[0]), timeout))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    out = r.stdout.decode(errors="replace")
    err = r.stderr.decode(errors="replace")
    if r.returncode != 0:
        raise Fail("%s exited %d: %s" % (os.path.basename(cmd[0]), r.returncode,
                                         (err or out).strip()[-400:]))
    return out, err, cpu


# ------------------------------------------------------------------ servers

class GrpcServer:
    """ringstore-server (one engine) or baseline_server on 127.0.0.1:0."""

    def __init__(self, run, peer, root, engine=None):
        self.run, self.peer, self.root = run, peer, root
        if peer == "baseline":
            self.engine = None
            self.cmd = [run.bins["baseline"], "--listen=127.0.0.1:0", "--root=" + root]
        else:
            self.engine = engine or peer.split("-", 1)[1]
            self.cmd = [run.bins["ringstore"], "--listen=127.0.0.1:0", "--root=" + root,
                        "--engine=" + self.engine]
        self.proc = None
        self.address = None

    def start(self):
        log = os.path.join(self.run.logdir, "%s.log" % self.peer)
        start = os.path.getsize(log) if os.path.exists(log) else 0
        env = None
        if self.peer != "baseline" and RINGSTORE_ENV:
            env = dict(os.environ, **RINGSTORE_ENV)
        self.proc = self.run.children.spawn(pinned(self.cmd, "server"), log, env=env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with open(log, "rb") as f:
                f.seek(start)
                text = f.read().decode(errors="replace")
            m = re.search(r"listening on (\S+):(\d+)", text)
            if m:
                self.address = "%s:%s" % (m.group(1), m.group(2))
                if self.engine not in (None, "auto") and ("engine=" + self.engine) not in text:
                    raise Fail("server started another engine: %r" % text.strip())
                return
            if self.proc.poll() is not None:
                raise Fail("%s exited %s at start: %s" % (self.peer, self.proc.returncode,
                                                          text.strip()[-400:]))
            time.sleep(0.05)
        raise Fail("%s did not print its address within 60 s" % self.peer)

    def rss_pids(self):
        return [self.proc.pid]

    def cpu_pids(self):
        return [self.proc.pid]

    def stop(self):
        return self.run.children.stop(self.proc)


NGINX_CONF = """\
# Written by bench/compare.py. nginx defaults except: sendfile on, no access
# log (the gRPC peers log nothing per request either), uploads of any size
# on /upload/ kept in a file, every path under this run's directory, and
# one worker (the fair method: the server gets one CPU, as ringstore does).
daemon off;
master_process on;
worker_processes 1;
pid {run}/nginx.pid;
error_log {run}/error.log warn;
events {{ }}
http {{
    default_type application/octet-stream;
    sendfile on;{aio}
    access_log off;
    client_body_temp_path {run}/body;
    proxy_temp_path {run}/proxy;
    fastcgi_temp_path {run}/fastcgi;
    uwsgi_temp_path {run}/uwsgi;
    scgi_temp_path {run}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{ }}
        # The body is read completely into a file under client_body_temp_path
        # (write(2) into the page cache, no fsync) before the request is
        # passed on; the answer (201, the file's name) comes after that.
        location /upload/ {{
            client_max_body_size 0;
            client_body_in_file_only on;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Body-File $request_body_file;
            proxy_pass http://127.0.0.1:{port}/stored/;
        }}
        location /stored/ {{
            return 201 "$http_x_body_file\\n";
        }}
    }}
}}
"""


class NginxServer:
    """nginx (master + one worker, both on the server CPU) serving root on a
    free port; peer nginx-aio adds `aio threads;` (file reads in nginx's
    thread pool, sendfile still on)."""

    def __init__(self, run, peer, root):
        self.run, self.peer, self.root = run, peer, root
        self.aio = peer == "nginx-aio"
        self.rundir = os.path.join(run.dir, "run", peer)
        self.proc = None
        self.port = None

    def start(self):
        shutil.rmtree(self.rundir, ignore_errors=True)
        os.makedirs(self.rundir)
        os.chmod(self.rundir, 0o755)
        self.port = free_port()
        conf = os.path.join(self.rundir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(run=self.rundir, port=self.port, root=self.root,
                                      aio="\n    aio threads;" if self.aio else ""))
        log = os.path.join(self.run.logdir, "%s.log" % self.peer)
        self.proc = self.run.children.spawn(
            pinned([self.run.bins["nginx"], "-p", self.rundir + "/", "-c", conf,
                    "-e", os.path.join(self.rundir, "error.log")], "server"), log)
        wait_for_port(self.port, self.proc)
        self.address = "127.0.0.1:%d" % self.port
        # The master listens before it forks its worker: wait for the worker.
        deadline = time.monotonic() + 20
        while not self.rss_pids():
            if time.monotonic() > deadline:
                raise Fail("nginx has no worker processes")
            time.sleep(0.05)

    def url(self, path):
        return "http://%s/%s" % (self.address, path)

    def rss_pids(self):
        return child_pids(self.proc.pid)

    def cpu_pids(self):
        return [self.proc.pid] + child_pids(self.proc.pid)

    def stop(self):
        rc = self.run.children.stop(self.proc)
        try:
            with open(os.path.join(self.rundir, "error.log")) as f:
                errors = [l for l in f if "[emerg]" in l or "[alert]" in l or "[crit]" in l]
        except OSError:
            errors = []
        if errors:
            raise Fail("nginx error.log: " + errors[-1].strip())
        return rc


def make_server(run, peer):
    root = os.path.join(run.dir, "roots", peer)
    if peer.startswith("nginx"):
        return NginxServer(run, peer, root)
    return GrpcServer(run, peer, root)
