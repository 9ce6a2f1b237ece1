"""Shared fixtures: a real `heatgate run` in a temporary directory, reached with pyzmq and lmdb."""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

import pytest
import zmq

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("HEATGATE_BIN", os.path.join(ROOT, ".build", "debug", "heatgate"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemon:
    def __init__(self, tmp, **settings):
        self.tmp = tmp
        self.port = free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("P26_", "HEAT_"))}
        self.env.update({
            "P26_STATE_DIR": os.path.join(tmp, "state"),
            "P26_INGEST_ENDPOINT": f"ipc://{tmp}/ingest.sock",
            "P26_PUBLISH_ENDPOINT": f"ipc://{tmp}/publish.sock",
            "P26_CONTROL_ENDPOINT": f"ipc://{tmp}/control.sock",
            "P26_METRICS_PORT": str(self.port),
            "P26_MAP_SIZE_MB": "64",
            "P26_HEARTBEAT_SEC": "0.2",
            "HEATGATE_CONFIG": "",  # never the host's packaged config
        })
        self.env.update({k: str(v) for k, v in settings.items()})
        self.proc = None

    @property
    def state_dir(self):
        return self.env["P26_STATE_DIR"]

    @property
    def run_dir(self):
        """The hot store's directory: P26_RUN_DIR, else the gate's default on /dev/shm, named after the
        state dir (docs/store.md). These tests leave it to the default, so the daemon and the Python
        readers must agree on the derivation."""
        if self.env.get("P26_RUN_DIR"):
            return self.env["P26_RUN_DIR"]
        path = os.path.realpath(self.state_dir)
        return "/dev/shm/heatgate" + path.replace("/", "-") if os.path.isdir("/dev/shm") else path + "/run"

    def remove_run_dir(self):
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def start(self):
        self.log = open(os.path.join(self.tmp, "daemon.log"), "ab")
        self.proc = subprocess.Popen([BIN, "run"], env=self.env, stdout=self.log, stderr=self.log)
        deadline = time.time() + 15
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            assert self.proc.poll() is None, "daemon exited during start-up"
            time.sleep(0.02)
        raise TimeoutError("daemon not ready")

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=15)
        code = self.proc.returncode if self.proc else None
        self.proc = None
        return code

    def cli(self, *args, stdin=None):
        return subprocess.run([BIN, *args], env=self.env, input=stdin, capture_output=True, text=True, timeout=60)

    def metrics(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            return r.read().decode()


class Client:
    """A producer (PUSH) and a subscriber (SUB) of the daemon, written with pyzmq."""

    def __init__(self, daemon, topics=(b"calibrated.", b"heartbeat")):
        self.ctx = zmq.Context()
        self.push = self.ctx.socket(zmq.PUSH)
        self.push.setsockopt(zmq.LINGER, 2000)
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.RCVTIMEO, 200)
        self.sub.setsockopt(zmq.LINGER, 0)
        for t in topics:
            self.sub.setsockopt(zmq.SUBSCRIBE, t)
        self.sub.connect(daemon.env["P26_PUBLISH_ENDPOINT"])
        self.push.connect(daemon.env["P26_INGEST_ENDPOINT"])

    def await_heartbeat(self, timeout=5):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                topic, body = self.sub.recv_multipart()
            except zmq.Again:
                continue
            if topic == b"heartbeat":
                return json.loads(body)
        raise TimeoutError("no heartbeat")

    def send(self, *messages):
        for m in messages:
            self.push.send(m if isinstance(m, bytes) else json.dumps(m).encode())

    def decisions(self, n, timeout=10):
        out = []
        deadline = time.time() + timeout
        while len(out) < n and time.time() < deadline:
            try:
                topic, body = self.sub.recv_multipart()
            except zmq.Again:
                continue
            if topic.startswith(b"calibrated."):
                out.append((topic, body))
        return out

    def close(self):
        self.push.close()
        self.sub.close()
        self.ctx.term()


@pytest.fixture
def daemon():
    with tempfile.TemporaryDirectory(prefix="hg-py-") as tmp:
        d = Daemon(tmp)
        yield d
        d.stop(signal.SIGKILL)
        d.remove_run_dir()


@pytest.fixture
def make_daemon():
    made = []
    dirs = []

    def make(**settings):
        tmp = tempfile.TemporaryDirectory(prefix="hg-py-")
        dirs.append(tmp)
        d = Daemon(tmp.name, **settings)
        made.append(d)
        return d

    yield make
    for d in made:
        d.stop(signal.SIGKILL)
        d.remove_run_dir()
    for t in dirs:
        t.cleanup()
