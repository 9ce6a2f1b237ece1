"""Helpers of the package's tests (imported by conftest.py and the tests under this unique name, so this directory
runs in one pytest session with tests/python and examples/python): the package from its source (no install
needed), the daemon fixtures of tests/python (a real `heatgate run`, HEATGATE_BIN), and a real redis-server on
a unix socket in a temp dir."""
import importlib.util
import os
import subprocess
import sys
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "..", "src")
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, SRC)

_path = os.path.join(ROOT, "tests", "python", "conftest.py")
_spec = importlib.util.spec_from_file_location("heatgate_daemon_fixtures_clients", _path)
fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixtures)

Daemon, Client, daemon, make_daemon = fixtures.Daemon, fixtures.Client, fixtures.daemon, fixtures.make_daemon
BIN, free_port = fixtures.BIN, fixtures.free_port
REDIS_SERVER = os.environ.get("REDIS_SERVER", "/usr/bin/redis-server")


class RedisServer:
    """redis-server on a unix socket only (port 0: no TCP), no persistence, stopped by its pid."""

    def __init__(self, tmp):
        self.sock = os.path.join(tmp, "redis.sock")
        self.log = open(os.path.join(tmp, "redis.log"), "ab")
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", "0", "--unixsocket", self.sock, "--unixsocketperm", "700", "--save", "",
             "--appendonly", "no", "--dir", tmp, "--daemonize", "no"], stdout=self.log, stderr=self.log)
        import redis
        self.client = redis.Redis(unix_socket_path=self.sock, decode_responses=True)
        deadline = time.monotonic() + 10
        while True:
            try:
                if self.client.ping():
                    break
            except Exception:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("redis-server did not start")
                time.sleep(0.02)

    @property
    def url(self):
        return f"unix://{self.sock}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.log.close()


@pytest.fixture
def redis_server():
    with tempfile.TemporaryDirectory(prefix="hg-redis-") as tmp:
        r = RedisServer(tmp)
        yield r
        r.stop()
