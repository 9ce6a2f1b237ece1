"""The two stores of notes/store-layout.md (issue 17), read by the package: real LMDB environments (py-lmdb,
the schema of docs/store.md), written by another process as the daemon would, in a temporary hot directory
and a temporary durable directory. No daemon needed."""
import functools
import json
import os
import pathlib
import re
import struct
import subprocess
import sys

import lmdb
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(HERE, "..", "src"))

from heatgate import Follower, HeatGate, default_run_dir, run_dir  # noqa: E402
from heatgate import apply, stores  # noqa: E402

FULL = "FULL_CLOSE_PROPOSED"
NOW = 1_764_000_000.0

# The writer, in a process of its own (LMDB forbids two opens of one environment in a process): the hot
# store with MDB_WRITEMAP|MDB_NOSYNC, the durable one with the default (synced) flags.
WRITER = r"""
import json, os, struct, sys
import lmdb
spec = json.loads(sys.argv[1])
path = spec["path"]
os.makedirs(path, exist_ok=True)
if spec.get("fresh"):  # a new store in place of the old one (another data.mdb)
    for name in ("data.mdb", "lock.mdb"):
        if os.path.exists(os.path.join(path, name)):
            os.unlink(os.path.join(path, name))
hot = spec["hot"]
env = lmdb.open(path, max_dbs=8, map_size=spec.get("map_size", 1 << 20), writemap=hot, sync=not hot,
                metasync=not hot)
dbs = {n: env.open_db(n.encode()) for n in ("meta", "book", "latest", "ttl", "journal", "events")}
be = lambda n: struct.pack(">Q", n)
with env.begin(write=True) as txn:
    for key, value in spec.get("meta", {}).items():
        if value is None:
            txn.delete(key.encode(), db=dbs["meta"])
        else:
            txn.put(key.encode(), value.encode(), db=dbs["meta"])
    for symbol, row in spec.get("book", {}).items():
        txn.put(symbol.encode(), json.dumps(row, separators=(",", ":")).encode(), db=dbs["book"])
    for symbol, raw in spec.get("latest", {}).items():
        txn.put(symbol.encode(), raw.encode(), db=dbs["latest"])
        d = json.loads(raw)
        txn.put(be(int(-(-d["expires_at"] * 1000 // 1))) + symbol.encode(), b"", db=dbs["ttl"])
    for seq, raw in spec.get("journal", []):
        txn.put(be(seq), raw.encode(), db=dbs["journal"])
    for eid, raw in spec.get("events", []):
        txn.put(be(eid), raw.encode(), db=dbs["events"])
    below = spec.get("journal_delete_below")
    if below is not None:  # retention: the hot store keeps only the newest rows
        cur = txn.cursor(db=dbs["journal"])
        while cur.first() and struct.unpack(">Q", cur.key())[0] < below:
            cur.delete()
    for i in range(spec.get("filler_rows", 0)):  # grows the map past what a reader mapped
        txn.put(b"FILL%06d" % i, b"x" * 1000, db=dbs["book"])
env.close()
"""


def compact(obj):
    return json.dumps(obj, separators=(",", ":"))


def decision(seq, plan, action="PARTIAL_25", symbol="ETHUSDT", expires_at=NOW + 60, store=None):
    """A decision as contract §4 publishes it (`store` marks which store a test row came from)."""
    d = {"seq": seq, "plan_id": plan, "trace_id": "%032x" % seq, "symbol": symbol, "original_action": FULL,
         "calibrated_action": "PARTIAL_25", "action": action, "mode": "enforce", "downgraded": True,
         "reason": "portfolio_heat_cold", "heat_value": 0.027, "heat_bucket": "COLD", "fail_closed": False,
         "fail_open": False, "kill_switch": False, "equity_usd": 10000, "equity_age_sec": 1.0, "positions": 1,
         "total_risk_usd": 270.0, "ts": expires_at - 60, "expires_at": expires_at,
         "proposal": {"symbol": symbol, "harvest_action": FULL, "plan_id": plan}}
    if store is not None:
        d["test_store"] = store
    return compact(d)


def kill(on):
    return compact({"on": on, "reason": "drill", "ts": NOW})


def write(path, hot, kill_switch=None, latest=(), journal=(), **extra):
    """Writes one store as docs/store.md documents it; `kill_switch`: a raw record, or None for none."""
    seqs = [seq for seq, _ in journal]
    meta = {
        "schema": compact({"schema_version": 1}),
        "seq": compact({"next_seq": max(seqs, default=0) + 1}),
        "event_seq": compact({"next_event": 2}),
        "equity": compact({"equity_usd": 10000, "ts": NOW}),
        "kill_switch": kill_switch,
    }
    if hot:
        with open("/proc/sys/kernel/random/boot_id") as f:
            meta["boot_id"] = compact({"boot_id": f.read().strip()})
        meta["state_dir"] = compact({"state_dir": extra.pop("state_dir", "/nonexistent")})
    spec = {
        "path": str(path), "hot": hot, "meta": meta,
        "book": {"ETHUSDT": {"symbol": "ETHUSDT", "notional_usd": 1800, "sigma": 0.15, "price": None, "ts": NOW}},
        "latest": dict(latest), "journal": list(journal),
        "events": [[1, compact({"id": 1, "ts": NOW, "kind": "position", "message": {
            "type": "position", "symbol": "ETHUSDT", "position_notional_usd": "1800", "sigma": "0.15"}})]],
        **extra,
    }
    subprocess.run([sys.executable, "-c", WRITER, json.dumps(spec)], check=True, timeout=60)


@pytest.fixture
def dirs(tmp_path):
    """(state_dir, run_dir): the durable store's directory and the hot store's, both empty."""
    return str(tmp_path / "state"), str(tmp_path / "shm" / "heatgate-test")


# The run directory's derivation, computed here a second way

def fnv_reference(data):
    return functools.reduce(lambda h, c: ((h ^ c) * 1099511628211) % 2 ** 64, data, 14695981039346656037)


def expected_run_dir(absolute, shm):
    name = "heatgate" + "-".join(absolute.split("/"))
    if len(name.encode("utf-8")) > 200:
        name = "heatgate-" + format(fnv_reference(absolute.encode("utf-8")), "016x")
    return shm + "/" + name


def test_fnv1a64_known_vectors():
    for data, h in ((b"", 0xcbf29ce484222325), (b"a", 0xaf63dc4c8601ec8c), (b"foobar", 0x85944171f73967e8)):
        assert stores.fnv1a64(data) == h == fnv_reference(data)


def test_the_notes_example(tmp_path):
    shm = str(tmp_path)
    if not os.path.exists("/var/lib/x"):
        assert default_run_dir("/var/lib/x", shm=shm) == shm + "/heatgate-var-lib-x"
    assert default_run_dir("/var//lib/./y/../x/", shm=shm) == default_run_dir("/var/lib/x", shm=shm)


def test_an_existing_state_dir_is_its_real_path(tmp_path, monkeypatch):
    monkeypatch.delenv("P26_RUN_DIR", raising=False)
    shm = str(tmp_path / "shm")
    os.mkdir(shm)
    state = tmp_path / "var" / "lib" / "heat-gate"
    state.mkdir(parents=True)
    real = str(pathlib.Path(state).resolve(strict=True))
    assert default_run_dir(str(state), shm=shm) == expected_run_dir(real, shm)
    assert default_run_dir(str(state) + "/", shm=shm) == expected_run_dir(real, shm)
    assert os.path.basename(default_run_dir(str(state), shm=shm)).endswith("-var-lib-heat-gate")
    if os.path.isdir("/dev/shm"):  # the daemon's own root
        assert default_run_dir(str(state)) == expected_run_dir(real, "/dev/shm")
        assert run_dir(str(state)) == default_run_dir(str(state))


def test_a_symlinked_state_dir_is_resolved(tmp_path):
    shm = str(tmp_path / "shm")
    os.mkdir(shm)
    target = tmp_path / "disks" / "ssd0" / "heatgate"
    target.mkdir(parents=True)
    link = tmp_path / "var-lib-link"
    link.symlink_to(target)
    real = str(pathlib.Path(target).resolve(strict=True))
    assert default_run_dir(str(link), shm=shm) == expected_run_dir(real, shm)
    assert default_run_dir(str(link), shm=shm).endswith("-disks-ssd0-heatgate")
    assert "var-lib-link" not in default_run_dir(str(link), shm=shm)


def test_a_state_dir_that_does_not_exist_is_made_absolute_and_normalised(tmp_path, monkeypatch):
    shm = str(tmp_path / "shm")
    os.mkdir(shm)
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    cwd = os.getcwd()
    assert default_run_dir("rel/./x/../state", shm=shm) == expected_run_dir(cwd + "/rel/state", shm)
    assert default_run_dir("./data", shm=shm) == expected_run_dir(cwd + "/data", shm)  # the daemon's default
    # Under a symlinked parent, step 1 keeps the link: the path does not exist, so no realpath.
    target = tmp_path / "real-parent"
    target.mkdir()
    (tmp_path / "link-parent").symlink_to(target)
    missing = str(tmp_path / "link-parent" / "not-yet")
    assert default_run_dir(missing, shm=shm) == expected_run_dir(missing, shm)
    # ...and a dangling symlink is a path that does not exist.
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    assert default_run_dir(str(tmp_path / "dangling"), shm=shm) == expected_run_dir(str(tmp_path / "dangling"), shm)


def test_a_name_longer_than_200_bytes_is_hashed(tmp_path):
    shm = str(tmp_path / "shm")
    os.mkdir(shm)
    base = str(pathlib.Path(tmp_path).resolve(strict=True))
    deep = pathlib.Path(base) / ("d" * 120) / ("e" * 120)
    deep.mkdir(parents=True)  # an existing one, > 200 bytes
    got = default_run_dir(str(deep), shm=shm)
    assert got == shm + "/heatgate-" + format(fnv_reference(str(deep).encode()), "016x")
    assert len(os.path.basename(got)) == len("heatgate-") + 16
    # The limit is on the name's bytes: "heatgate" + 192 bytes of path is kept, 193 are hashed.
    for extra, hashed in ((0, False), (1, True)):
        path = base + "/" + "p" * (192 + extra - len(base) - 1)
        assert len(("heatgate" + path.replace("/", "-")).encode()) == 200 + extra
        name = os.path.basename(default_run_dir(path, shm=shm))
        assert name == ("heatgate-" + format(fnv_reference(path.encode()), "016x") if hashed
                        else "heatgate" + path.replace("/", "-"))
    # UTF-8 bytes, not characters: "é" is two.
    path = base + "/" + "é" * ((192 - len(base)) // 2 + 1)
    assert len(path) <= 192 < len(path.encode())
    assert default_run_dir(path, shm=shm) == expected_run_dir(path, shm)
    assert os.path.basename(default_run_dir(path, shm=shm)).startswith("heatgate-") and \
        len(os.path.basename(default_run_dir(path, shm=shm))) == 25


def test_without_dev_shm_the_run_dir_is_under_the_state_dir(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    no_shm = str(tmp_path / "no-shm")
    assert default_run_dir(str(state), shm=no_shm) == str(pathlib.Path(state).resolve()) + "/run"
    assert default_run_dir(str(tmp_path / "missing" / ".." / "new"), shm=no_shm) == str(tmp_path) + "/new/run"
    (tmp_path / "file-shm").write_text("")  # not a directory
    assert default_run_dir(str(state), shm=str(tmp_path / "file-shm")).endswith("/state/run")


def test_an_explicit_run_dir_then_P26_RUN_DIR_then_the_default(tmp_path, monkeypatch):
    state = str(tmp_path / "state")
    monkeypatch.delenv("P26_RUN_DIR", raising=False)
    assert run_dir(state) == default_run_dir(state)
    monkeypatch.setenv("P26_RUN_DIR", "")  # empty: unset
    assert run_dir(state) == default_run_dir(state)
    monkeypatch.setenv("P26_RUN_DIR", str(tmp_path / "from-env"))
    assert run_dir(state) == str(tmp_path / "from-env")
    assert run_dir(state, str(tmp_path / "given")) == str(tmp_path / "given")
    assert run_dir(state, "") == str(tmp_path / "from-env")
    assert HeatGate(state).run_dir == str(tmp_path / "from-env")
    assert HeatGate(state, run_dir=str(tmp_path / "given")).run_dir == str(tmp_path / "given")


# The resolver

def test_the_resolver_reads_latest_and_the_kill_switch_from_the_hot_store(dirs):
    state, hot = dirs
    write(state, hot=False, kill_switch=kill(True), journal=[(1, decision(1, "p1", store="durable"))])
    write(hot, hot=True, kill_switch=kill(False), latest={"ETHUSDT": decision(1, "p1")},
          journal=[(1, decision(1, "p1"))], state_dir=state)
    gate = HeatGate(state, run_dir=hot)
    r = gate.resolve("ETHUSDT", "p1", FULL, now=NOW)
    assert (r.action, r.reason) == ("PARTIAL_25", "decision")  # the durable switch is not consulted
    assert gate.resolve("ETHUSDT", "p2", FULL, now=NOW)[:2] == (FULL, "other_plan")
    assert gate.resolve("BTCUSDT", "p1", FULL, now=NOW)[:2] == (FULL, "no_decision")
    write(hot, hot=True, kill_switch=kill(True))
    assert gate.resolve("ETHUSDT", "p1", FULL, now=NOW)[:2] == (None, "kill_switch")
    write(hot, hot=True, kill_switch="not json")  # unreadable: on
    assert gate.resolve("ETHUSDT", "p1", FULL, now=NOW)[:2] == (None, "kill_switch")


@pytest.mark.parametrize("record", [kill(True), "not json", '{"on":"false"}', "{}"])
def test_no_hot_store_and_the_durable_kill_switch_on_or_unreadable_executes_nothing(dirs, record):
    state, hot = dirs
    write(state, hot=False, kill_switch=record)
    gate = HeatGate(state, run_dir=hot)
    assert gate.resolve("ETHUSDT", "p1", FULL, now=NOW) == (None, "kill_switch", None)
    assert gate.resolve_proposal({"symbol": "", "harvest_action": FULL}) == (None, "kill_switch", None)


@pytest.mark.parametrize("record", [kill(False), None])
def test_no_hot_store_and_the_durable_kill_switch_off_executes_the_proposal_as_it_stands(dirs, record):
    state, hot = dirs
    write(state, hot=False, kill_switch=record, journal=[(1, decision(1, "p1"))])
    gate = HeatGate(state, run_dir=hot)
    assert gate.resolve("ETHUSDT", "p1", FULL, now=NOW) == (FULL, "no_decision", None)


def test_a_hot_store_that_cannot_be_opened_is_no_hot_store(dirs):
    state, hot = dirs
    write(state, hot=False, kill_switch=kill(True))
    os.makedirs(hot)
    gate = HeatGate(state, run_dir=hot)
    assert gate.read("ETHUSDT") == (True, None)  # the directory exists, no data.mdb
    with open(os.path.join(hot, "data.mdb"), "wb") as f:
        f.write(b"\0garbage" * 4096)  # not an LMDB file: MDB_INVALID
    assert gate.read("ETHUSDT") == (True, None)
    write(state, hot=False, kill_switch=kill(False))
    assert gate.read("ETHUSDT") == (False, None)


def test_neither_store_fails_open(dirs):
    state, hot = dirs
    r = HeatGate(state, run_dir=hot).resolve("ETHUSDT", "p1", FULL, now=NOW)
    assert (r.action, r.reason) == (FULL, "no_decision")


def test_a_hot_store_that_appears_later_is_read(dirs):
    state, hot = dirs
    gate = HeatGate(state, run_dir=hot)  # before either store exists
    assert gate.resolve("ETHUSDT", "p1", FULL, now=NOW)[:2] == (FULL, "no_decision")
    write(state, hot=False, kill_switch=kill(True))
    assert gate.resolve("ETHUSDT", "p1", FULL, now=NOW)[:2] == (None, "kill_switch")
    write(hot, hot=True, kill_switch=kill(False), latest={"ETHUSDT": decision(1, "p1")}, state_dir=state)
    assert gate.resolve("ETHUSDT", "p1", FULL, now=NOW)[:2] == ("PARTIAL_25", "decision")
    # The daemon restarted on a new hot store (another data.mdb): the old one is not read any more.
    write(hot, hot=True, fresh=True, kill_switch=None, latest={"ETHUSDT": decision(2, "p2")}, state_dir=state)
    assert gate.resolve("ETHUSDT", "p1", FULL, now=NOW)[:2] == (FULL, "other_plan")
    assert gate.resolve("ETHUSDT", "p2", FULL, now=NOW)[:2] == ("PARTIAL_25", "decision")
    # Gone (the run directory was emptied): the durable switch again.
    for name in ("data.mdb", "lock.mdb"):
        os.unlink(os.path.join(hot, name))
    assert gate.resolve("ETHUSDT", "p2", FULL, now=NOW)[:2] == (None, "kill_switch")


def test_the_default_run_dir_is_where_the_resolver_looks(tmp_path, monkeypatch):
    monkeypatch.delenv("P26_RUN_DIR", raising=False)
    state = str(tmp_path / "state")
    write(state, hot=False, kill_switch=kill(True))
    gate = HeatGate(state)
    assert gate.run_dir == default_run_dir(state) and gate.hot.path == default_run_dir(state)
    assert gate.read("ETHUSDT") == (True, None)  # no hot store there (none was written)


def test_a_map_the_daemon_grew_is_adopted(dirs):
    state, hot = dirs
    write(hot, hot=True, latest={"ETHUSDT": decision(1, "small")}, map_size=1 << 20, state_dir=state)
    gate = HeatGate(state, run_dir=hot)
    assert gate.resolve("ETHUSDT", "small", FULL, now=NOW).reason == "decision"  # mapped at 1 MiB
    write(hot, hot=True, latest={"ETHUSDT": decision(2, "grown")}, map_size=64 << 20, filler_rows=4000,
          state_dir=state)
    assert gate.resolve("ETHUSDT", "grown", FULL, now=NOW)[:2] == ("PARTIAL_25", "decision")
    assert gate.hot.resized == 1  # MDB_MAP_RESIZED inside: adopted, read again


def test_heatgate_resolve_takes_a_run_dir(dirs, capsys, monkeypatch):
    state, hot = dirs
    monkeypatch.delenv("P26_RUN_DIR", raising=False)
    write(state, hot=False, kill_switch=kill(True))
    assert apply.main([state, "ETHUSDT", "p1", FULL]) == 4  # the default run dir holds no store
    assert json.loads(capsys.readouterr().out) == {"action": None, "reason": "kill_switch"}
    write(hot, hot=True, kill_switch=kill(False), latest={"ETHUSDT": decision(1, "p1", expires_at=4e9)},
          state_dir=state)
    assert apply.main(["--run-dir", hot, state, "ETHUSDT", "p1", FULL]) == 0
    assert json.loads(capsys.readouterr().out) == {"action": "PARTIAL_25", "reason": "decision"}
    monkeypatch.setenv("P26_RUN_DIR", hot)
    assert apply.main([state, "ETHUSDT", "p1", FULL]) == 0
    assert json.loads(capsys.readouterr().out)["reason"] == "decision"
    cli = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "python", "heatgate_apply.py"),
                          "--run-dir", hot, state, "ETHUSDT", "p9", FULL], capture_output=True, text=True,
                         timeout=60)
    assert cli.returncode == 0 and json.loads(cli.stdout) == {"action": FULL, "reason": "other_plan"}
    assert apply.main(["--run-dir", hot, state]) == 2


# The follower

def follow(f):
    """Every event `f` reports until it has nothing more (its journal work done)."""
    events = []
    while True:
        e = f.next(0.2)
        if e is None:
            return events
        events.append(e)


def test_a_gap_fill_spans_the_durable_and_the_hot_journal(dirs, tmp_path):
    state, hot = dirs
    write(state, hot=False, journal=[(s, decision(s, f"p{s}", store="durable")) for s in range(1, 11)])
    # The hot store keeps the newest rows only: 8..15 (8..10 replicated already).
    write(hot, hot=True, journal=[(s, decision(s, f"p{s}", store="hot")) for s in range(1, 16)],
          journal_delete_below=8, state_dir=state)
    for chunk in (1024, 3):
        f = Follower(state, f"ipc://{tmp_path}/nobody.sock", after=2, missed_heartbeats=0, journal_chunk=chunk,
                     run_dir=hot)
        got = follow(f)
        assert [(e.kind, e.seq, e.source) for e in got] == [("decision", s, "journal") for s in range(3, 16)]
        assert [e.decision["test_store"] for e in got] == ["durable"] * 5 + ["hot"] * 8
        assert [e.decision["seq"] for e in got] == list(range(3, 16))
        assert got[0].raw == decision(3, "p3", store="durable").encode()  # byte for byte
        assert f.last_seq == 15 and f.last_error is None
        f.close()
    f = Follower(state, f"ipc://{tmp_path}/nobody.sock", missed_heartbeats=0, run_dir=hot)
    assert f.last_seq == 15  # after=None: from the hot journal's last seq
    assert follow(f) == []
    assert f.read_journal(9, 4) == [(9, decision(9, "p9", store="hot").encode()),
                                    (10, decision(10, "p10", store="hot").encode()),
                                    (11, decision(11, "p11", store="hot").encode()),
                                    (12, decision(12, "p12", store="hot").encode())]
    assert [s for s, _ in f.read_journal(6, 4)] == [6, 7, 8, 9]
    assert [raw.count(b'"durable"') for _, raw in f.read_journal(6, 4)] == [1, 1, 0, 0]
    f.close()


def test_what_neither_journal_holds_is_reported_missed(dirs, tmp_path):
    state, hot = dirs
    write(state, hot=False, journal=[(s, decision(s, f"p{s}")) for s in range(3, 6)])  # 1, 2: retention
    write(hot, hot=True, journal=[(s, decision(s, f"p{s}")) for s in range(8, 11)], state_dir=state)  # 6, 7 lost
    f = Follower(state, f"ipc://{tmp_path}/nobody.sock", after=0, missed_heartbeats=0, run_dir=hot)
    got = [(e.kind, e.seq or (e.first, e.last)) for e in follow(f)]
    assert got == [("missed", (1, 2)), ("decision", 3), ("decision", 4), ("decision", 5), ("missed", (6, 7)),
                   ("decision", 8), ("decision", 9), ("decision", 10)]
    f.close()


def test_without_a_hot_store_the_follower_reads_the_durable_journal_until_one_appears(dirs, tmp_path):
    state, hot = dirs
    write(state, hot=False, journal=[(s, decision(s, f"p{s}", store="durable")) for s in range(1, 6)])
    f = Follower(state, f"ipc://{tmp_path}/nobody.sock", after=None, missed_heartbeats=0, run_dir=hot)
    assert f.last_seq == 5 and follow(f) == []
    f.close()
    f = Follower(state, f"ipc://{tmp_path}/nobody.sock", after=1, missed_heartbeats=0, run_dir=hot)
    assert [(e.seq, e.decision["test_store"]) for e in follow(f)] == [(s, "durable") for s in range(2, 6)]
    # The daemon starts: its hot store holds the new rows (6..8) and the replicated tail (4, 5).
    write(hot, hot=True, journal=[(s, decision(s, f"p{s}", store="hot")) for s in range(4, 9)], state_dir=state)
    f._heartbeat({"last_seq": 8})  # the daemon's heartbeat tells its last seq
    got = follow(f)
    assert [e.kind for e in got] == ["gate_up"] + ["decision"] * 3
    assert [(e.seq, e.decision["test_store"]) for e in got[1:]] == [(s, "hot") for s in range(6, 9)]
    f.close()


def test_neither_journal_is_reported_missed_with_its_error(dirs, tmp_path):
    state, hot = dirs
    f = Follower(state, f"ipc://{tmp_path}/nobody.sock", after=3, missed_heartbeats=0, run_dir=hot)
    f.target = 5
    assert [(e.kind, e.first, e.last) for e in follow(f)] == [("missed", 4, 5)]
    assert isinstance(f.last_error, lmdb.Error)
    f.close()


def test_the_follower_finds_the_default_run_dir_and_takes_P26_RUN_DIR(tmp_path, monkeypatch):
    state = str(tmp_path / "state")
    monkeypatch.delenv("P26_RUN_DIR", raising=False)
    f = Follower(state, f"ipc://{tmp_path}/nobody.sock", after=0, missed_heartbeats=0)
    assert f.run_dir == default_run_dir(state)
    f.close()
    monkeypatch.setenv("P26_RUN_DIR", str(tmp_path / "hot"))
    f = Follower(state, f"ipc://{tmp_path}/nobody.sock", after=0, missed_heartbeats=0)
    assert f.run_dir == str(tmp_path / "hot") and f.hot.path == str(tmp_path / "hot")
    f.close()


def test_one_directory_for_both_is_one_store(tmp_path):
    state = str(tmp_path / "state")
    write(state, hot=False, kill_switch=kill(True), latest={"ETHUSDT": decision(1, "p1")},
          journal=[(1, decision(1, "p1"))])
    gate = HeatGate(state, run_dir=state)
    assert gate.durable is None and gate.read("ETHUSDT")[0] is True
    gate.close()  # one open of an environment per process
    f = Follower(state + "/", f"ipc://{tmp_path}/nobody.sock", after=0, missed_heartbeats=0, run_dir=state)
    assert f.durable is None and [e.seq for e in follow(f)] == [1]
    f.close()


def test_the_doc_shows_exactly_this_module():
    with open(os.path.join(ROOT, "docs", "apply-layer.md")) as f:
        doc = f.read()
    with open(os.path.join(HERE, "..", "src", "heatgate", "stores.py")) as f:
        code = f.read()
    blocks = re.findall(r"<!-- begin clients/python/src/heatgate/stores.py -->\n```python\n(.*?)```\n", doc, re.S)
    assert blocks == [code]


def test_the_run_dir_the_gate_wrote_beside_its_state_dir_wins_over_the_default(tmp_path, monkeypatch):
    """The package's P26_RUN_DIR is not the default: the daemon names it in <state>/run_dir for readers."""
    monkeypatch.delenv("P26_RUN_DIR", raising=False)
    state = tmp_path / "state"
    state.mkdir()
    assert run_dir(state) == default_run_dir(state)
    (state / "run_dir").write_text("/run/quantum-portfolio-heat-gate\n")
    assert run_dir(state) == "/run/quantum-portfolio-heat-gate"
    monkeypatch.setenv("P26_RUN_DIR", str(tmp_path / "env"))
    assert run_dir(state) == str(tmp_path / "env")
    assert run_dir(state, tmp_path / "arg") == str(tmp_path / "arg")
    (state / "run_dir").write_text("\n")
    monkeypatch.delenv("P26_RUN_DIR")
    assert run_dir(state) == default_run_dir(state)
