"""Resolve an exit proposal to the action the Apply Layer executes: HeatGate's read contract (contract §5).

    from heatgate import HeatGate
    gate = HeatGate("/var/lib/quantum-portfolio-heat-gate", "tcp://127.0.0.1:5557")
    r = gate.resolve(symbol, plan_id, harvest_action)   # or gate.resolve_proposal(fields): no plan_id needed
    if r.action is not None:          # None: the kill switch is on, execute nothing
        execute(symbol, r.action)

It reads the hot store (in the run directory: `run_dir`, else P26_RUN_DIR, else the one derived from the
state directory, heatgate.stores); while there is none it can open, the durable store's kill switch (in the
state directory): on, execute nothing; off, execute the proposal as it stands.

Needs pyzmq and lmdb (Debian: python3-zmq python3-lmdb); the Apply Layer's user must be in the daemon's
group (`quantum`) to open the stores. Nothing here waits on the gate for longer than `wait_sec`.
"""
from __future__ import annotations

import json
import sys
import time
from typing import Any, Dict, List, NamedTuple, Optional, Tuple, Union

import lmdb
import zmq

from . import stores
from .plan import Rejected, proposal_key, same_action


class Resolution(NamedTuple):
    """action: what to execute (None: nothing); reason: decision, no_decision, expired, other_plan,
    other_action, rejected, kill_switch; decision: the gate's latest decision for the symbol, when there is one."""
    action: Optional[str]
    reason: str
    decision: Optional[Dict[str, Any]]


def contract(kill_switch: bool, decision: Optional[Dict[str, Any]], plan_id: str, original_action: str,
             now: float) -> Resolution:
    """contract §5: the decision's action only if it exists, is unexpired, and is for this plan_id and action."""
    if kill_switch:
        return Resolution(None, "kill_switch", decision)
    if decision is None:
        return Resolution(original_action, "no_decision", None)
    if not now < decision["expires_at"]:
        return Resolution(original_action, "expired", decision)
    if decision["plan_id"] != plan_id:
        return Resolution(original_action, "other_plan", decision)
    if not same_action(decision["original_action"], original_action):
        return Resolution(original_action, "other_action", decision)
    return Resolution(decision["action"], "decision", decision)


def kill_switch_on(record: Optional[bytes]) -> bool:
    """The gate's one parser: on unless the record is a JSON object whose "on" is false (unreadable: on)."""
    if record is None:
        return False
    try:
        state = json.loads(record)
    except ValueError:
        return True
    return not (isinstance(state, dict) and state.get("on") is False)


class HeatGate:
    def __init__(self, state_dir: str, publish_endpoint: Optional[str] = None, wait_sec: float = 0.05,
                 heartbeat_sec: float = 1.0, missed_heartbeats: int = 3, run_dir: Optional[str] = None) -> None:
        self.state_dir, self.wait_sec = state_dir, wait_sec
        self.run_dir = stores.run_dir(state_dir, run_dir)
        self.hot = stores.Store(self.run_dir, (b"meta", b"latest"))
        # Read only while the hot store cannot be, for its kill switch (its `latest` is empty).
        self.durable = None if stores.same_dir(self.run_dir, state_dir) else stores.Store(state_dir, (b"meta",))
        self.down_after = heartbeat_sec * missed_heartbeats
        self.last_heartbeat: Optional[float] = None
        self.sub: Optional[zmq.Socket] = None
        if publish_endpoint:  # optional: wait briefly for a decision in flight, and know if the gate is up
            self.sub = zmq.Context.instance().socket(zmq.SUB)
            self.sub.setsockopt(zmq.LINGER, 0)
            for topic in (b"calibrated.", b"heartbeat"):
                self.sub.setsockopt(zmq.SUBSCRIBE, topic)
            self.sub.connect(publish_endpoint)

    def read(self, symbol: str) -> Tuple[bool, Optional[Dict[str, Any]]]:
        """(kill switch on?, latest decision or None) from one snapshot of the hot store; without a hot store, the
        durable store's kill switch and no decision; without either, (False, None)."""
        try:
            kill, record = self.hot.read(lambda txn, meta, latest: (
                txn.get(b"kill_switch", db=meta), txn.get(symbol.encode(), db=latest)))
        except lmdb.Error:  # no hot store (not yet, or not since a reboot), or we may not read it
            if self.durable is None:
                return False, None
            try:  # the durable store's kill switch: on (or unreadable), execute nothing
                kill, record = self.durable.read(lambda txn, meta: txn.get(b"kill_switch", db=meta)), None
            except lmdb.Error:  # no store at all: the gate never ran here, or we may not read it
                return False, None
        return kill_switch_on(kill), (record and json.loads(record))

    def close(self) -> None:
        if self.sub is not None:
            self.sub.close()
        for store in (self.hot, self.durable):
            if store is not None:
                store.close()

    def gate_up(self) -> bool:
        """Drains the subscription; True while heartbeats arrive (within missed_heartbeats intervals)."""
        self.wait_for("", 0)
        return self.last_heartbeat is not None and time.monotonic() - self.last_heartbeat < self.down_after

    def wait_for(self, symbol: str, deadline: float) -> bool:
        """Reads the stream until a decision for `symbol` is published (True) or `deadline` passes."""
        while self.sub is not None and self.sub.poll(max(0, int((deadline - time.monotonic()) * 1000))):
            topic, _ = self.sub.recv_multipart()
            if topic == b"heartbeat":
                self.last_heartbeat = time.monotonic()
            elif topic == b"calibrated." + symbol.encode():
                return True
        return False

    def resolve_proposal(self, proposal: Union[Dict[str, Any], str, bytes], now: Optional[float] = None) -> Resolution:
        """Resolves a proposal as the producer sent it (dict or JSON), deriving its plan id as the gate does."""
        try:
            symbol, plan_id, action = proposal_key(proposal)
        except Rejected:  # the gate refuses it, so holds no decision for it: execute it as it stands
            fields = proposal if isinstance(proposal, dict) else json.loads(proposal)
            if self.read("-")[0]:  # the kill switch still holds
                return Resolution(None, "kill_switch", None)
            return Resolution(fields.get("harvest_action") or fields.get("action"), "rejected", None)
        return self.resolve(symbol, plan_id, action, now)

    def resolve(self, symbol: str, plan_id: str, original_action: str, now: Optional[float] = None) -> Resolution:
        deadline = time.monotonic() + self.wait_sec
        while True:
            up = self.wait_sec > 0 and self.gate_up()  # drain first, then read: no wake-up is lost
            kill, decision = self.read(symbol)
            pending = not kill and (decision is None or decision["plan_id"] != plan_id
                                    or not same_action(decision["original_action"], original_action))
            # The gate may be deciding this very proposal: while it is up, wait up to wait_sec for it.
            if not (pending and up and time.monotonic() < deadline and self.wait_for(symbol, deadline)):
                return contract(kill, decision, plan_id, original_action, time.time() if now is None else now)


def main(argv: Optional[List[str]] = None) -> int:
    """heatgate-resolve [--run-dir DIR] STATE_DIR SYMBOL PLAN_ID ACTION: prints {"action", "reason"}; 4 when nothing
    may run. Without --run-dir: P26_RUN_DIR, else the run directory derived from STATE_DIR."""
    args = sys.argv[1:] if argv is None else argv
    run_dir = None
    if len(args) > 1 and args[0] == "--run-dir":
        run_dir, args = args[1], args[2:]
    if len(args) != 4:
        print("usage: heatgate-resolve [--run-dir DIR] STATE_DIR SYMBOL PLAN_ID ACTION", file=sys.stderr)
        return 2
    r = HeatGate(args[0], run_dir=run_dir).resolve(args[1], args[2], args[3])
    print(json.dumps({"action": r.action, "reason": r.reason}))
    return 4 if r.action is None else 0


if __name__ == "__main__":
    sys.exit(main())
