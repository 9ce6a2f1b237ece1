"""heatgate-redis-adapter against a real redis-server and a real daemon, fed as the stack's producers write."""
import json
import os
import signal
import struct
import subprocess
import sys
import time

import lmdb
import pytest

from hg_fixtures import SRC, Client
from heatgate import HeatGate, default_run_dir, proposal_key

FULL = "FULL_CLOSE_PROPOSED"


def utc(t=None):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() if t is None else t))


def harvest_proposal(action=FULL, sigma="0.15", at=None, **over):
    """Every field the Harvest publisher writes, all strings, and no plan_id, trace_id or symbol."""
    at = time.time() if at is None else at
    h = {"harvest_action": action, "R_net": "1.82", "risk_unit": "35.5", "cost_est": "0.8", "kill_score": "0.61",
         "reason_codes": "regime_flip,sigma_spike", "new_sl_proposed": "None", "k_regime_flip": "0.3",
         "k_sigma_spike": "0.2", "k_ts_drop": "0.05", "k_age_penalty": "0.06", "sigma": sigma, "ts": "0.45",
         "p_trend": "0.2", "p_mr": "0.5", "p_chop": "0.3", "computed_at_utc": utc(at),
         "last_update_epoch": f"{at:.3f}", "position_side": "SHORT", "position_age_sec": "5400",
         "position_current_price": "3600", "position_entry_price": "3700", "position_unrealized_pnl": "50"}
    h.update(over)
    return h


def portfolio(equity="10000", at=None):
    at = time.time() if at is None else at
    return {"equity_usd": equity, "timestamp": f"{at:.3f}", "ts_utc": utc(at), "balance_usd": "9950",
            "unrealized_pnl_usd": "50", "positions_count": "2", "positions_notional_usd": "2800"}


def position(amt, mark):
    return {"position_amt": amt, "entry_price": mark, "mark_price": mark, "unrealized_pnl": "0", "leverage": "5"}


class Adapter:
    def __init__(self, tmp, redis_url, daemon, *flags):
        self.status_file = os.path.join(tmp, "adapter-status.json")
        self.log = open(os.path.join(tmp, "adapter.log"), "ab")
        env = dict(os.environ, PYTHONPATH=SRC)
        self.cmd = [sys.executable, "-m", "heatgate.redis_adapter", "--redis-url", redis_url,
                    "--ingest-endpoint", daemon.env["P26_INGEST_ENDPOINT"],
                    "--publish-endpoint", daemon.env["P26_PUBLISH_ENDPOINT"], "--heartbeat-sec", "0.2",
                    "--poll-sec", "0.1", "--confirm-sec", "0.5", "--status-sec", "5", "--status-file",
                    self.status_file, *flags]
        self.env = env
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=self.log, stderr=self.log)
        return self

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=15)
        self.proc = None

    def status(self):
        try:
            with open(self.status_file) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def wait(self, pred, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = self.status()
            if s and s.get("pid") == (self.proc.pid if self.proc else None) and pred(s):
                return s
            assert self.proc is None or self.proc.poll() is None, "the adapter exited"
            time.sleep(0.05)
        raise TimeoutError(f"adapter status never matched: {self.status()}")


@pytest.fixture
def adapters(tmp_path):
    made = []

    def make(redis_server, daemon, *flags):
        a = Adapter(str(tmp_path), redis_server.url, daemon, *flags)
        made.append(a)
        return a
    yield make
    for a in made:
        a.stop(signal.SIGKILL)


def journal_rows(path):
    env = lmdb.open(path, readonly=True, max_dbs=8, map_size=0, create=False)
    try:
        with env.begin(db=env.open_db(b"journal", create=False)) as txn:
            return [(struct.unpack(">Q", k)[0], json.loads(v)) for k, v in txn.cursor()]
    finally:
        env.close()


def journal(d):
    """Every decision in the daemon's journals, in seq order: the hot store's (in its run directory) and, for
    seqs older than its first row, the durable store's (notes/store-layout.md)."""
    hot_dir = d.env.get("P26_RUN_DIR") or default_run_dir(d.state_dir)
    hot = journal_rows(hot_dir) if os.path.exists(os.path.join(hot_dir, "data.mdb")) else []
    older = [row for row in journal_rows(d.state_dir) if not hot or row[0] < hot[0][0]]
    return older + hot


def test_producer_hashes_reach_the_gate_with_the_heat_computed_by_hand(redis_server, daemon, adapters):
    r = redis_server.client
    daemon.start()
    c = Client(daemon)
    c.await_heartbeat()
    r.hset("quantum:state:portfolio", mapping=portfolio("12500"))
    r.expire("quantum:state:portfolio", 120)
    r.hset("quantum:state:positions:ETHUSDT", mapping=position("-0.5", "3600"))
    r.hset("quantum:state:positions:BTCUSDT", mapping=position("0.02", "50000"))
    eth, btc = harvest_proposal(sigma="0.15"), harvest_proposal(action="PARTIAL_50", sigma="0.1")
    with r.pipeline() as p:  # the Harvest cycle writes both
        p.hset("quantum:harvest:proposal:ETHUSDT", mapping=eth)
        p.hset("quantum:harvest:proposal:BTCUSDT", mapping=btc)
        p.execute()
    a = adapters(redis_server, daemon).start()
    got = sorted((json.loads(b) for _, b in c.decisions(2)), key=lambda d: d["symbol"])
    assert [d["symbol"] for d in got] == ["BTCUSDT", "ETHUSDT"]
    by_hand = (0.5 * 3600 * 0.15 + 0.02 * 50000 * 0.1) / 12500  # |amount| x mark x sigma / equity
    for d in got:
        assert d["heat_value"] == pytest.approx(by_hand, rel=1e-12)
        assert d["heat_bucket"] == "COLD" and d["equity_usd"] == 12500 and d["positions"] == 2
    e = got[1]
    assert e["calibrated_action"] == "PARTIAL_25" and e["original_action"] == FULL
    assert e["proposal"] == {**eth, "symbol": "ETHUSDT", "type": "proposal"}  # every field passed through
    assert e["plan_id"].startswith("hg-") and e["plan_id"] == proposal_key({**eth, "symbol": "ETHUSDT"})[1]
    status = json.loads(daemon.cli("status", "--json").stdout)
    assert status["heat_value"] == pytest.approx(by_hand, rel=1e-12)

    # The Apply Layer reads the same hash (no plan_id in it) and finds the gate's decision for it.
    fields = r.hgetall("quantum:harvest:proposal:ETHUSDT")
    res = HeatGate(daemon.state_dir).resolve_proposal({**fields, "symbol": "ETHUSDT"})
    assert (res.reason, res.action, res.decision["seq"]) == ("decision", FULL, e["seq"])  # shadow: the original

    # Republished unchanged, cycle after cycle: no second decision.
    s = a.wait(lambda s: s["confirmed"] == 2)
    for _ in range(5):
        r.hset("quantum:harvest:proposal:ETHUSDT", mapping=eth)
        time.sleep(0.1)
    a.wait(lambda st: st["skipped"].get("proposal_unchanged", 0) >= s["skipped"].get("proposal_unchanged", 0) + 10)
    assert c.decisions(1, timeout=0.6) == []
    assert a.status()["sent"]["proposal"] == 2 and len(journal(daemon)) == 2

    # A new cycle's proposal (new time) is a new proposal; the portfolio's own timestamp is the equity's.
    r.hset("quantum:state:portfolio", mapping=portfolio("10000", at=time.time() - 30))
    r.hset("quantum:harvest:proposal:ETHUSDT", mapping=harvest_proposal(sigma="0.3", at=time.time() + 1))
    d = json.loads(c.decisions(1)[0][1])
    assert d["heat_value"] == pytest.approx((0.5 * 3600 * 0.3 + 0.02 * 50000 * 0.1) / 10000, rel=1e-12)
    assert 29 <= d["equity_age_sec"] < 35

    # A position hash that disappears is a closed position.
    r.delete("quantum:state:positions:BTCUSDT")
    r.hset("quantum:harvest:proposal:ETHUSDT", mapping=harvest_proposal(sigma="0.3", at=time.time() + 2))
    d = json.loads(c.decisions(1)[0][1])
    assert d["positions"] == 1 and d["heat_value"] == pytest.approx(0.5 * 3600 * 0.3 / 10000, rel=1e-12)
    c.close()


def test_a_restarted_adapter_does_not_resend_what_the_gate_decided(redis_server, daemon, adapters):
    r = redis_server.client
    daemon.start()
    r.hset("quantum:state:portfolio", mapping=portfolio())
    r.hset("quantum:state:positions:ETHUSDT", mapping=position("-0.5", "3600"))
    r.hset("quantum:harvest:proposal:ETHUSDT", mapping=harvest_proposal())
    a = adapters(redis_server, daemon).start()
    a.wait(lambda s: s["confirmed"] == 1)
    a.stop(signal.SIGKILL)
    a.start()
    s = a.wait(lambda s: s["pid"] == a.proc.pid and s["skipped"].get("proposal_unchanged", 0) >= 3)
    assert s["sent"].get("proposal", 0) == 0 and len(journal(daemon)) == 1


def test_stream_entries_survive_sigkill_of_the_adapter_and_of_the_daemon(redis_server, make_daemon, adapters):
    """Proposals on the stream (ENABLE_STREAM=true), positions from position.snapshot: kill -9 the adapter and
    the daemon while entries flow; every entry is decided exactly once and acknowledged."""
    r = redis_server.client
    d = make_daemon()
    d.start()
    flags = ("--proposals", "stream", "--positions", "stream", "--group-start", "0")
    a = adapters(redis_server, d, *flags).start()
    symbols = [f"SYM{i}USDT" for i in range(8)]
    r.hset("quantum:state:portfolio", mapping=portfolio("50000"))
    for i, s in enumerate(symbols):
        r.xadd("quantum:stream:position.snapshot", {"symbol": s, "side": "LONG", "position_qty": str(i + 1),
                                                   "entry_price": "100", "mark_price": "100",
                                                   "timestamp": str(time.time())})
    expected = set()
    n = 0

    def write(k):
        nonlocal n
        for _ in range(k):
            s = symbols[n % len(symbols)]
            fields = {**harvest_proposal(sigma="0.05", at=time.time() + n * 0.001), "symbol": s}
            r.xadd("quantum:stream:harvest.proposal", fields)
            expected.add((s, proposal_key(fields)[1]))
            n += 1
            time.sleep(0.005)

    write(40)
    a.wait(lambda st: st["confirmed"] >= 10, timeout=15)
    a.stop(signal.SIGKILL)  # with entries read and not yet acknowledged
    write(40)  # while the adapter is down
    a.start()
    write(20)
    # The gate freezes, so what the adapter hands ZeroMQ now stays in the socket's buffers, and then dies
    # with it: sent, never decided. Only a re-send recovers those.
    a.wait(lambda st: st["pending"] == 0, timeout=15)
    d.proc.send_signal(signal.SIGSTOP)
    write(10)
    frozen = a.wait(lambda st: st["pending"] >= 10, timeout=5)
    d.stop(signal.SIGKILL)
    write(30)  # while the gate is down: read, not sent until it is back
    time.sleep(0.3)
    d.start()
    write(20)
    recovered = a.wait(lambda st: st["pending"] == 0 and st["resent"] >= 10, timeout=15)
    assert recovered["confirmed"] >= frozen["confirmed"] + 10
    a.stop(signal.SIGKILL)
    a.start()
    write(20)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pending = r.xpending("quantum:stream:harvest.proposal", "heatgate")["pending"]
        lag = r.xinfo_groups("quantum:stream:harvest.proposal")[0].get("lag")
        if pending == 0 and lag == 0:
            break
        time.sleep(0.1)
    assert pending == 0 and lag == 0, (pending, lag)
    decided = [(dec["symbol"], dec["plan_id"]) for _, dec in journal(d)]
    assert len(decided) == len(set(decided)), "a decision was duplicated"
    assert set(decided) == expected and len(expected) == 180
    assert all(dec["heat_bucket"] == "COLD" and dec["positions"] == 8 for _, dec in journal(d)[-20:])
    a.stop()
