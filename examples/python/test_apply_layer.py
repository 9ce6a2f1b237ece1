"""The Apply Layer example (heatgate_apply.py) against a real daemon: every branch of contract §5's contract."""
import json
import os
import re
import signal
import subprocess
import sys
import time

from conftest import Client
from heatgate_apply import HeatGate, contract, kill_switch_on
from heatgate_plan import proposal_key

HERE = os.path.dirname(os.path.abspath(__file__))
VECTORS = os.path.join(HERE, "..", "..", "tests", "vectors", "plan-id.jsonl")
DOC = os.path.join(HERE, "..", "..", "docs", "apply-layer.md")
FULL = "FULL_CLOSE_PROPOSED"
STATE = [
    {"type": "portfolio", "equity_usd": "10000"},
    {"type": "position", "symbol": "ETHUSDT", "position_notional_usd": "1800", "sigma": "0.15"},
]  # heat 0.027: COLD, so a full close is calibrated to PARTIAL_25


def proposal(plan, action=FULL, symbol="ETHUSDT"):
    return {"type": "proposal", "symbol": symbol, "harvest_action": action, "plan_id": plan}


def started(d, *messages):
    """Starts the daemon, sends `messages`, and returns a producer and the decisions they produced."""
    d.start()
    c = Client(d)
    c.await_heartbeat()
    c.send(*messages)
    want = sum(1 for m in messages if m["type"] == "proposal")
    return c, [json.loads(body) for _, body in c.decisions(want)]


def gate(d, **kw):
    kw.setdefault("heartbeat_sec", 0.2)  # the fixtures' P26_HEARTBEAT_SEC
    return HeatGate(d.state_dir, d.env["P26_PUBLISH_ENDPOINT"], **kw)


def test_the_doc_shows_exactly_this_code():
    with open(DOC) as f:
        doc = f.read()
    with open(os.path.join(HERE, "..", "..", "clients", "python", "src", "heatgate", "apply.py")) as f:
        code = f.read()
    blocks = re.findall(r"<!-- begin clients/python/src/heatgate/apply.py -->\n```python\n(.*?)```\n", doc, re.S)
    assert blocks == [code]


def test_enforce_mode_executes_the_calibrated_action(make_daemon):
    d = make_daemon(P26_MODE="enforce")
    c, decided = started(d, *STATE, proposal("e1"))
    assert decided[0]["calibrated_action"] == "PARTIAL_25" and decided[0]["action"] == "PARTIAL_25"
    r = gate(d).resolve("ETHUSDT", "e1", FULL)
    assert (r.action, r.reason) == ("PARTIAL_25", "decision")
    c.close()


def test_shadow_mode_executes_the_original(daemon):
    c, decided = started(daemon, *STATE, proposal("s1"))
    assert decided[0]["calibrated_action"] == "PARTIAL_25"  # recorded for the shadow report...
    r = gate(daemon).resolve("ETHUSDT", "s1", FULL)
    assert (r.action, r.reason) == (FULL, "decision")  # ...but the decision's action is the original
    c.close()


def test_an_expired_decision_is_not_used(make_daemon):
    d = make_daemon(P26_CALIBRATED_TTL_SEC=1, P26_MODE="enforce")
    c, decided = started(d, *STATE, proposal("x1"))
    g = gate(d, wait_sec=0)
    assert g.resolve("ETHUSDT", "x1", FULL).action == "PARTIAL_25"
    at_expiry = g.resolve("ETHUSDT", "x1", FULL, now=decided[0]["expires_at"])
    assert (at_expiry.action, at_expiry.reason) == (FULL, "expired")
    time.sleep(1.3)  # the real clock passes expires_at; the sweep may also have removed the record
    r = g.resolve("ETHUSDT", "x1", FULL)
    assert r.action == FULL and r.reason in ("expired", "no_decision")
    c.close()


def test_a_decision_for_an_older_proposal_never_shadows_a_newer_one(make_daemon):
    d = make_daemon(P26_MODE="enforce")
    c, _ = started(d, *STATE, proposal("old"))
    g = gate(d, wait_sec=0.2)
    t0 = time.monotonic()
    r = g.resolve("ETHUSDT", "new", FULL)  # the gate never sees "new": wait at most wait_sec
    assert (r.action, r.reason) == (FULL, "other_plan")
    assert r.decision["plan_id"] == "old"
    assert time.monotonic() - t0 < 1
    c.close()


def test_a_proposal_in_flight_is_waited_for_briefly(make_daemon):
    d = make_daemon(P26_MODE="enforce")
    c, _ = started(d, *STATE, proposal("first"))
    g = gate(d, wait_sec=2)
    deadline = time.monotonic() + 5
    while not g.gate_up() and time.monotonic() < deadline:
        g.wait_for("", time.monotonic() + 0.1)  # until a heartbeat shows the subscription is live
    assert g.gate_up()
    c.send(proposal("in-flight"))  # sent by the producer as the Apply Layer receives it
    t0 = time.monotonic()
    r = g.resolve("ETHUSDT", "in-flight", FULL)
    assert (r.action, r.reason) == ("PARTIAL_25", "decision")
    assert time.monotonic() - t0 < 2
    c.close()


def test_a_killed_daemon_never_blocks_an_exit(make_daemon):
    d = make_daemon(P26_MODE="enforce")
    c, _ = started(d, *STATE, proposal("k1"))
    c.close()
    g = gate(d, wait_sec=0.5)
    assert g.resolve("ETHUSDT", "k1", FULL).action == "PARTIAL_25"
    d.stop(signal.SIGKILL)
    # The store survives kill -9: what the gate committed still holds for its plan...
    assert g.resolve("ETHUSDT", "k1", FULL).action == "PARTIAL_25"
    # ...and a proposal it never decided runs as it stands, at once once the heartbeats have stopped.
    time.sleep(0.8)
    assert not g.gate_up()
    t0 = time.monotonic()
    r = g.resolve("ETHUSDT", "k2", FULL)
    assert (r.action, r.reason) == (FULL, "other_plan")
    assert time.monotonic() - t0 < 0.1


def test_no_store_at_all_executes_the_original(tmp_path):
    r = HeatGate(str(tmp_path / "never-ran"), f"ipc://{tmp_path}/nobody.sock").resolve("ETHUSDT", "n1", FULL)
    assert (r.action, r.reason) == (FULL, "no_decision")
    cli = subprocess.run(
        [sys.executable, os.path.join(HERE, "heatgate_apply.py"), str(tmp_path), "ETHUSDT", "n1", FULL],
        capture_output=True, text=True, timeout=30)
    assert cli.returncode == 0 and json.loads(cli.stdout) == {"action": FULL, "reason": "no_decision"}


def test_nothing_is_executed_while_the_kill_switch_is_on(make_daemon):
    d = make_daemon(P26_MODE="enforce")
    c, _ = started(d, *STATE, proposal("before"))
    g = gate(d, wait_sec=0.2)
    assert g.resolve("ETHUSDT", "before", FULL).action == "PARTIAL_25"
    assert d.cli("kill", "on", "--reason", "drill").returncode == 0
    for plan in ("before", "never-decided"):
        r = g.resolve("ETHUSDT", plan, FULL)
        assert (r.action, r.reason) == (None, "kill_switch")
    c.send(proposal("during"))
    held = json.loads(c.decisions(1)[0][1])
    assert held["action"] == "HOLD" and held["kill_switch"] is True
    assert g.resolve("ETHUSDT", "during", FULL).action is None
    # Still nothing with the daemon gone: the switch is in the store.
    d.stop(signal.SIGKILL)
    assert g.resolve("ETHUSDT", "anything", FULL).action is None
    cli = subprocess.run(
        [sys.executable, os.path.join(HERE, "heatgate_apply.py"), d.state_dir, "ETHUSDT", "during", FULL],
        capture_output=True, text=True, timeout=30)
    assert cli.returncode == 4 and json.loads(cli.stdout)["reason"] == "kill_switch"
    assert d.cli("kill", "off").returncode == 0
    # The hold decided while the switch was on is journaled but never the symbol's latest decision: once
    # the switch is off it blocks nothing, and the proposal runs as it stands until it is decided again.
    r = g.resolve("ETHUSDT", "during", FULL)
    assert (r.action, r.reason) == (FULL, "other_plan")
    c.close()


def test_the_reader_follows_the_daemon_when_it_grows_the_map(make_daemon):
    d = make_daemon(P26_MAP_SIZE_MB=1, P26_MODE="enforce", P26_LOG_LEVEL="warning")
    c, _ = started(d, *STATE, proposal("small"))
    g = gate(d, wait_sec=0)
    assert g.resolve("ETHUSDT", "small", FULL).reason == "decision"  # maps the store at 1 MiB
    c.send(*[proposal(f"grow-{i}") for i in range(4000)])
    assert len(c.decisions(4000, timeout=30)) == 4000
    r = g.resolve("ETHUSDT", "grow-3999", FULL)  # MDB_MAP_RESIZED inside: adopted, read again
    assert (r.action, r.reason) == ("PARTIAL_25", "decision")
    c.close()


def test_the_gate_the_swift_client_and_the_python_client_derive_the_same_plan_ids(make_daemon):
    """Issue 12 item 2: the stack's producer sends no plan_id; the Apply Layer must compute the gate's."""
    with open(VECTORS) as f:
        lines = [line.strip() for line in f if line.strip()]
    d = make_daemon(P26_PROPOSAL_MAX_AGE_SEC=315360000)  # the vectors' times are fixed, in the past
    c, _ = started(d, *STATE)
    c.send(*[line.encode() for line in lines])  # byte for byte: an untimed id hashes numbers' literal text
    decided = [json.loads(body) for _, body in c.decisions(len(lines))]
    assert len(decided) == len(lines)
    found = 0
    for line, decision in zip(lines, decided):
        symbol, plan, action = proposal_key(line)  # Python, from the text...
        assert (symbol, plan, action) == (decision["symbol"], decision["plan_id"], decision["original_action"]), line
        fields = json.loads(line)
        if any(k in fields for k in ("ts_epoch", "timestamp", "last_update_epoch", "computed_at_utc", "plan_id")) \
                or all(isinstance(v, str) for v in fields.values()):
            assert proposal_key(fields)[1] == plan  # ...and from the fields as a dict (as Redis gives them)
        # The Swift client derives from the proposal what the gate's decision says: the same answer as a
        # look-up with the gate's own plan id, and the decision itself for each symbol's latest.
        swift = d.cli("get", "--proposal", line)
        given = d.cli("get", symbol, "--plan-id", decision["plan_id"], "--action", decision["original_action"])
        assert (swift.returncode, swift.stdout) == (given.returncode, given.stdout), line
        found += swift.returncode == 0 and json.loads(swift.stdout)["seq"] == decision["seq"]
    assert found >= 5
    c.close()


def test_a_proposal_without_plan_id_resolves_to_its_decision(make_daemon):
    d = make_daemon(P26_MODE="enforce")
    fields = {"type": "proposal", "symbol": "ETHUSDT", "harvest_action": FULL, "R_net": "1.8", "ts": "0.45",
              "computed_at_utc": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()), "new_sl_proposed": "None"}
    c, decided = started(d, *STATE, fields)
    assert decided[0]["plan_id"].startswith("hg-") and decided[0]["action"] == "PARTIAL_25"
    r = gate(d, wait_sec=0).resolve_proposal({k: v for k, v in fields.items() if k != "type"})
    assert (r.action, r.reason) == ("PARTIAL_25", "decision")
    # A revised action for the same proposal is another proposal: never the full close's decision.
    revised = dict(fields, harvest_action="PARTIAL_25")
    assert gate(d, wait_sec=0).resolve_proposal(revised).reason in ("other_plan", "other_action")
    c.close()


def test_a_revised_action_under_one_plan_is_never_given_the_other_actions_decision(make_daemon):
    d = make_daemon(P26_MODE="enforce")
    c, decided = started(d, *STATE, proposal("plan-eth"))
    assert decided[0]["action"] == "PARTIAL_25"
    g = gate(d, wait_sec=0)
    assert g.resolve("ETHUSDT", "plan-eth", "full_close").action == "PARTIAL_25"  # normalised: one action
    r = g.resolve("ETHUSDT", "plan-eth", "PARTIAL_25")
    assert (r.action, r.reason) == ("PARTIAL_25", "other_action")  # its own action, not the full close's
    got = d.cli("get", "ETHUSDT", "--plan-id", "plan-eth", "--action", "PARTIAL_25")
    assert (got.returncode, got.stdout) == (3, "other_action\n")
    c.close()


def test_one_kill_switch_parser():
    assert kill_switch_on(None) is False
    assert kill_switch_on(b'{"on":false,"reason":""}') is False
    assert kill_switch_on(b'{"reason":"x","on":true}') is True
    for unreadable in (b"not json", b'{"on":"false"}', b"{}", b"[false]", b'{"on":0}'):
        assert kill_switch_on(unreadable) is True, unreadable


def test_the_contract_table():
    d = {"plan_id": "p", "action": "PARTIAL_25", "expires_at": 100.0, "original_action": FULL}
    assert contract(False, d, "p", "PARTIAL_25", 99.0) == ("PARTIAL_25", "other_action", d)
    assert contract(False, d, "p", FULL, 99.0).action == "PARTIAL_25"
    assert contract(False, d, "p", FULL, 100.0) == (FULL, "expired", d)
    assert contract(False, d, "q", FULL, 99.0) == (FULL, "other_plan", d)
    assert contract(False, None, "p", FULL, 99.0) == (FULL, "no_decision", None)
    assert contract(True, d, "p", FULL, 99.0) == (None, "kill_switch", d)
    assert contract(True, None, "p", FULL, 99.0).action is None
