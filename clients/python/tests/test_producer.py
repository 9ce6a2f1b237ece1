"""The producer against a real daemon; and the package installs offline."""
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from hg_fixtures import ROOT, Client
from heatgate import HeatGate, Producer, QueueFull, proposal_key


def test_each_message_kind_reaches_the_gate_and_sets_the_heat(daemon):
    daemon.start()
    c = Client(daemon)
    c.await_heartbeat()
    with Producer(daemon.env["P26_INGEST_ENDPOINT"]) as p:
        p.send_equity(20000, ts=time.time())
        p.send_positions([{"symbol": "ETHUSDT", "notional_usd": 1800}, {"symbol": "BTCUSDT", "notional_usd": 3000}])
        p.send_market("ETHUSDT", sigma=0.15, price=3600)
        p.send_position("BTCUSDT", notional_usd="-3000", sigma="0.2")  # a string is passed as is
        fields = {"symbol": "ETHUSDT", "harvest_action": "FULL_CLOSE_PROPOSED", "R_net": "1.8", "ts": "0.4",
                  "computed_at_utc": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())}
        p.send_proposal(fields)
        d = json.loads(c.decisions(1)[0][1])
    assert d["heat_value"] == pytest.approx((1800 * 0.15 + 3000 * 0.2) / 20000, abs=1e-12)
    assert d["positions"] == 2 and d["equity_usd"] == 20000
    assert d["proposal"]["ts"] == "0.4" and d["proposal"]["R_net"] == "1.8"
    assert d["plan_id"] == proposal_key(fields)[1]
    assert HeatGate(daemon.state_dir).resolve_proposal(fields).reason == "decision"
    status = json.loads(daemon.cli("status", "--json").stdout)
    assert status["positions"] == 2
    c.close()


def test_a_bounded_queue_refuses_rather_than_grows(tmp_path):
    nobody = f"ipc://{tmp_path}/nobody.sock"
    with Producer(nobody, immediate=True) as p:  # no gate: nothing is queued at all
        with pytest.raises(QueueFull):
            p.send_equity(1.0)
        assert p.sent == 0 and p.full == 1
    with Producer(nobody, queue_size=5, linger=0) as p:  # queued while the gate is down, up to the bound
        sent = 0
        with pytest.raises(QueueFull):
            for _ in range(100):
                p.send_market("ETHUSDT", sigma=0.1)
                sent += 1
        assert 5 <= sent < 100 and p.sent == sent
    with pytest.raises(ValueError):
        Producer(nobody).send_equity(float("nan"))
    with pytest.raises(ValueError):
        Producer(nobody, server_key="x" * 40)  # CURVE needs the client's key pair too


def test_pip_installs_the_package_offline(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(os.path.join(ROOT, "clients", "python"), src,
                    ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info", "tests"))
    target = tmp_path / "site"
    pip = subprocess.run(
        ["/usr/bin/python3", "-m", "pip", "install", "--no-index", "--no-build-isolation", "--no-deps",
         "--disable-pip-version-check", "--target", str(target), str(src)],
        capture_output=True, text=True, timeout=240)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    assert (target / "heatgate" / "py.typed").exists()
    assert (target / "bin" / "heatgate-redis-adapter").exists()
    probe = subprocess.run(
        ["/usr/bin/python3", "-c", "import sys; sys.path.insert(0, sys.argv[1]); import heatgate, "
         "heatgate.redis_adapter; print(heatgate.__file__); print(heatgate.plan_id("
         "'{\"symbol\":\"ETHUSDT\",\"harvest_action\":\"FULL_CLOSE_PROPOSED\",\"computed_at_utc\":\"2026-01-23T14:30:00\"}'))",
         str(target)], capture_output=True, text=True, timeout=60, cwd=str(tmp_path))
    assert probe.returncode == 0, probe.stderr
    where, pid = probe.stdout.split()
    assert where.startswith(str(target)) and pid == "hg-fee1d736fc692a39"  # docs/apply-layer.md's example
