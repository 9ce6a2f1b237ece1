"""Resolve an exit proposal to the action the Apply Layer executes: HeatGate's read contract (contract §5).

    gate = HeatGate("/var/lib/quantum-portfolio-heat-gate", "tcp://127.0.0.1:5557")
    r = gate.resolve(symbol, plan_id, harvest_action)   # or gate.resolve_proposal(fields): no plan_id needed
    if r.action is not None:          # None: the kill switch is on, execute nothing
        execute(symbol, r.action)

Needs pyzmq and lmdb (Debian: python3-zmq python3-lmdb); the Apply Layer's user must be in the daemon's
group (`quantum`) to open the store. Nothing here waits on the gate for longer than `wait_sec`.
"""
import json
import sys
import time
from collections import namedtuple

import lmdb
import zmq

from heatgate_plan import Rejected, proposal_key, same_action

# action: what to execute (None: nothing); reason: decision, no_decision, expired, other_plan, other_action,
# rejected, kill_switch; decision: the gate's latest decision for the symbol (a dict), when there is one.
Resolution = namedtuple("Resolution", "action reason decision")


def contract(kill_switch, decision, plan_id, original_action, now):
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


def kill_switch_on(record):
    """The gate's one parser: on unless the record is a JSON object whose "on" is false (unreadable: on)."""
    if record is None:
        return False
    try:
        state = json.loads(record)
    except ValueError:
        return True
    return not (isinstance(state, dict) and state.get("on") is False)


class HeatGate:
    def __init__(self, state_dir, publish_endpoint=None, wait_sec=0.05, heartbeat_sec=1.0, missed_heartbeats=3):
        self.state_dir, self.wait_sec, self.env = state_dir, wait_sec, None
        self.down_after = heartbeat_sec * missed_heartbeats
        self.last_heartbeat = None
        self.sub = None
        if publish_endpoint:  # optional: wait briefly for a decision in flight, and know if the gate is up
            self.sub = zmq.Context.instance().socket(zmq.SUB)
            self.sub.setsockopt(zmq.LINGER, 0)
            for topic in (b"calibrated.", b"heartbeat"):
                self.sub.setsockopt(zmq.SUBSCRIBE, topic)
            self.sub.connect(publish_endpoint)

    def read(self, symbol):
        """(kill switch on?, latest decision or None) from one snapshot of the store."""
        for _ in range(3):
            if self.env is None:
                try:
                    self.env = lmdb.open(self.state_dir, readonly=True, max_dbs=8, map_size=0, create=False)
                    self.meta, self.latest = (self.env.open_db(n, create=False) for n in (b"meta", b"latest"))
                except lmdb.Error:  # no store (yet): the gate never ran here, or we may not read it
                    self.env = None
                    return False, None
            try:
                with self.env.begin() as txn:
                    kill, record = txn.get(b"kill_switch", db=self.meta), txn.get(symbol.encode(), db=self.latest)
                return kill_switch_on(kill), (record and json.loads(record))
            except lmdb.MapResizedError:  # the daemon grew its map: adopt the new size and read again
                self.env.set_mapsize(0)
        raise RuntimeError("store kept resizing")

    def gate_up(self):
        """Drains the subscription; True while heartbeats arrive (within missed_heartbeats intervals)."""
        self.wait_for("", 0)
        return self.last_heartbeat is not None and time.monotonic() - self.last_heartbeat < self.down_after

    def wait_for(self, symbol, deadline):
        """Reads the stream until a decision for `symbol` is published (True) or `deadline` passes."""
        while self.sub is not None and self.sub.poll(max(0, int((deadline - time.monotonic()) * 1000))):
            topic, _ = self.sub.recv_multipart()
            if topic == b"heartbeat":
                self.last_heartbeat = time.monotonic()
            elif topic == b"calibrated." + symbol.encode():
                return True
        return False

    def resolve_proposal(self, proposal, now=None):
        """Resolves a proposal as the producer sent it (dict or JSON), deriving its plan id as the gate does."""
        try:
            symbol, plan_id, action = proposal_key(proposal)
        except Rejected:  # the gate refuses it, so holds no decision for it: execute it as it stands
            fields = proposal if isinstance(proposal, dict) else json.loads(proposal)
            if self.read("-")[0]:  # the kill switch still holds
                return Resolution(None, "kill_switch", None)
            return Resolution(fields.get("harvest_action") or fields.get("action"), "rejected", None)
        return self.resolve(symbol, plan_id, action, now)

    def resolve(self, symbol, plan_id, original_action, now=None):
        deadline = time.monotonic() + self.wait_sec
        while True:
            up = self.wait_sec > 0 and self.gate_up()  # drain first, then read: no wake-up is lost
            kill, decision = self.read(symbol)
            pending = not kill and (decision is None or decision["plan_id"] != plan_id
                                    or not same_action(decision["original_action"], original_action))
            # The gate may be deciding this very proposal: while it is up, wait up to wait_sec for it.
            if not (pending and up and time.monotonic() < deadline and self.wait_for(symbol, deadline)):
                return contract(kill, decision, plan_id, original_action, time.time() if now is None else now)


if __name__ == "__main__":  # heatgate_apply.py STATE_DIR SYMBOL PLAN_ID ACTION
    r = HeatGate(sys.argv[1]).resolve(*sys.argv[2:5])
    print(json.dumps({"action": r.action, "reason": r.reason}))
    sys.exit(4 if r.action is None else 0)
