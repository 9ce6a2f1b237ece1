"""The daemon seen from clients we did not write: pyzmq on the sockets, py-lmdb on the store."""
import json
import struct
import time

import lmdb

from conftest import Client

STATE = [
    {"type": "portfolio", "equity_usd": "10000"},
    {"type": "position", "symbol": "ETHUSDT", "position_notional_usd": "1800", "sigma": "0.15"},
]


def proposal(plan, action="FULL_CLOSE_PROPOSED", symbol="ETHUSDT", **extra):
    return {"type": "proposal", "symbol": symbol, "harvest_action": action, "plan_id": plan, **extra}


def open_store(d):
    """The hot store: where decisions are committed before they are published (the durable copy trails it)."""
    env = lmdb.open(d.run_dir, readonly=True, max_dbs=8, lock=True)
    return env, {name: env.open_db(name.encode(), create=False)
                 for name in ("meta", "book", "latest", "ttl", "journal", "events")}


def test_decisions_over_pyzmq_are_in_the_store_as_documented(daemon):
    daemon.start()
    c = Client(daemon)
    c.await_heartbeat()
    c.send(*STATE, proposal("py-1", ts="0.45", confidence=0.8), proposal("py-2", action="PARTIAL_50"))
    got = c.decisions(2)
    assert [t for t, _ in got] == [b"calibrated.ETHUSDT", b"calibrated.ETHUSDT"]
    first = json.loads(got[0][1])
    assert first["plan_id"] == "py-1"
    assert first["heat_value"] == 0.027
    assert first["heat_bucket"] == "COLD"
    assert first["calibrated_action"] == "PARTIAL_25"
    assert first["action"] == "FULL_CLOSE_PROPOSED"  # shadow mode
    assert first["proposal"]["ts"] == "0.45"  # trend strength passes through untouched
    assert first["expires_at"] > first["ts"]
    c.close()

    env, db = open_store(daemon)
    with env.begin() as txn:
        # The journal holds every published decision, byte for byte, keyed by big-endian seq.
        for _, body in got:
            seq = json.loads(body)["seq"]
            assert txn.get(struct.pack(">Q", seq), db=db["journal"]) == body
        latest = json.loads(txn.get(b"ETHUSDT", db=db["latest"]))
        assert latest["plan_id"] == "py-2"
        assert json.loads(txn.get(b"seq", db=db["meta"])) == {"next_seq": 3}
        assert json.loads(txn.get(b"schema", db=db["meta"])) == {"schema_version": 1}
        equity = json.loads(txn.get(b"equity", db=db["meta"]))
        assert equity["equity_usd"] == 10000
        book = json.loads(txn.get(b"ETHUSDT", db=db["book"]))
        assert book["notional_usd"] == 1800 and book["sigma"] == 0.15 and book["price"] is None
        kinds = [json.loads(v)["kind"] for _, v in txn.cursor(db=db["events"])]
        assert kinds == ["portfolio", "position"]
        ttl_keys = [k for k, _ in txn.cursor(db=db["ttl"])]
        assert all(k.endswith(b"ETHUSDT") and len(k) == 15 for k in ttl_keys)
        expiry_ms = struct.unpack(">Q", ttl_keys[-1][:8])[0]
        assert abs(expiry_ms / 1000 - latest["expires_at"]) < 0.002
    env.close()


def test_kill_switch_is_visible_to_an_lmdb_reader_and_holds(daemon):
    daemon.start()
    assert daemon.cli("kill", "on", "--reason", "drill").returncode == 0
    env, db = open_store(daemon)
    with env.begin() as txn:
        ks = json.loads(txn.get(b"kill_switch", db=db["meta"]))
    assert ks["on"] is True and ks["reason"] == "drill"
    env.close()
    # Written to the durable store too, flushed, before `kill` returned: it survives a reboot.
    durable = lmdb.open(daemon.state_dir, readonly=True, max_dbs=8, lock=True)
    with durable.begin() as txn:
        assert json.loads(txn.get(b"kill_switch", db=durable.open_db(b"meta", txn=txn, create=False)))["on"] is True
    durable.close()
    c = Client(daemon)
    c.await_heartbeat()
    c.send(*STATE, proposal("k-1"))
    d = json.loads(c.decisions(1)[0][1])
    assert d["action"] == "HOLD" and d["reason"] == "kill_switch"
    c.close()


def test_bad_frames_are_counted_and_the_next_message_is_decided(daemon):
    daemon.start()
    c = Client(daemon)
    c.await_heartbeat()
    c.send(b"{", b'{"type":"position","symbol":"X","position_notional_usd":1,"sigma":"NaN"}', b"x" * (1 << 20))
    c.send(*STATE, proposal("after-garbage"))
    assert json.loads(c.decisions(1)[0][1])["plan_id"] == "after-garbage"
    time.sleep(0.2)
    m = daemon.metrics()
    assert 'p26_rejected_total{reason="not_json"} 1' in m
    assert 'p26_rejected_total{reason="non_finite_number"} 1' in m
    assert 'p26_rejected_total{reason="frame_too_large"} 1' in m
    c.close()


def test_sequence_continues_after_kill_9(make_daemon):
    d = make_daemon().start()
    c = Client(d)
    c.await_heartbeat()
    c.send(*STATE, *[proposal(f"s{i}") for i in range(50)])
    seen = [json.loads(b)["seq"] for _, b in c.decisions(50)]
    assert seen == list(range(1, 51))
    c.close()
    d.stop(9)
    d.start()
    c = Client(d)
    c.await_heartbeat()
    c.send(proposal("after-kill"))
    assert json.loads(c.decisions(1)[0][1])["seq"] == 51
    c.close()
