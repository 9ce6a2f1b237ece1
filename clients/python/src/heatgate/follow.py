"""Follow HeatGate's decisions: each once, in `seq` order, with every gap filled from the store's journal.

    from heatgate import Follower
    f = Follower("/var/lib/quantum-portfolio-heat-gate", "tcp://127.0.0.1:5557", after=saved_seq)
    while running:
        e = f.next(timeout=1.0)
        if e is None:
            continue
        if e.kind == "decision":        # e.seq, e.raw (bytes as published), e.decision (dict), e.source
            record(e.decision); saved_seq = e.seq
        elif e.kind == "gate_down":     # keep executing proposals as they stand (contract §5)
            alert(e.silent_sec)
        elif e.kind == "missed":        # e.first..e.last are no longer in the journal (retention)
            log(e.first, e.last)

The Python counterpart of the Swift `DecisionSubscriber` (docs/apply-layer.md), with the same rules. PUB/SUB
loses messages by design — while either side restarts, while a reconnect is in flight, when a queue is
full — but `seq` is gap-free and every decision is journaled before it is published (contract §4). So a gap,
seen from the next decision's `seq` or from a heartbeat's `last_seq`, is read from the journal, read-only:
the hot store's (in the run directory, heatgate.stores), and for seqs older than its first row (it keeps
only a recent tail) the durable store's (in the state directory).
The gate answers each new subscription with a heartbeat, so after a restart of the gate the follower
learns at once what it missed. Pull-style and single-threaded: call `next` from one thread; while it is not
called, the socket's reconnects wait (libzmq resubscribes on the caller's thread), and the heartbeat that
follows tells what was missed meanwhile.

Needs pyzmq and lmdb (Debian: python3-zmq python3-lmdb) and read access to the stores (the `quantum` group).
"""
from __future__ import annotations

import collections
import json
import math
import struct
import sys
import time
from typing import Any, Callable, Deque, List, Optional, Tuple

import lmdb
import zmq

from . import stores

# kind: decision, gate_up, gate_down, missed. decision: seq, raw, decision (dict), source ("live" or
# "journal"); gate_up: last_seq; gate_down: silent_sec; missed: first, last.
Event = collections.namedtuple(
    "Event", "kind seq raw decision source last_seq silent_sec first last", defaults=(None,) * 8)


class Follower:
    def __init__(self, state_dir: str, publish_endpoint: str, after: Optional[int] = None,
                 heartbeat_sec: float = 1.0, missed_heartbeats: int = 3, journal_chunk: int = 1024,
                 receive_hwm: int = 100_000, catch_up_on_connect: bool = True, run_dir: Optional[str] = None) -> None:
        """`after`: deliver every decision with a greater `seq` (pass the last one handled before a restart,
        0 for all the journal holds); None: from the journal's last `seq` now (or, with no store yet, from
        the first heartbeat's `last_seq` or before the first decision received). `run_dir`: the hot store's
        directory (else P26_RUN_DIR, else the one derived from `state_dir`)."""
        self.state_dir, self.chunk = state_dir, journal_chunk
        self.run_dir = stores.run_dir(state_dir, run_dir)
        self.hot = stores.Store(self.run_dir, (b"journal",))
        self.durable = None if stores.same_dir(self.run_dir, state_dir) else stores.Store(state_dir, (b"journal",))
        self.down_after = heartbeat_sec * missed_heartbeats if missed_heartbeats > 0 else None
        self.queue: Deque[Event] = collections.deque()
        self.health = "unknown"  # then "up" or "down", as the heartbeats tell
        self.last_heartbeat = None
        self.delivered_live = self.delivered_from_journal = self.duplicates = 0
        self.last_error = None  # the last journal read that failed (its gap was reported as missed)
        self.last_queued = after  # highest seq queued or delivered; None until known
        if after is None:
            try:
                self.last_queued = self.journal_last() or 0  # a readable store with an empty journal: 0
            except lmdb.Error as e:
                self.last_error = e
        self.last_seq = self.last_queued  # the last seq delivered (or where delivery starts after)
        self.target = self.last_queued or 0  # highest seq known to exist; beyond last_queued it is a gap
        self.sub = zmq.Context.instance().socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.RCVHWM, receive_hwm)  # what overflows it is read from the journal
        for topic in (b"calibrated.", b"heartbeat"):
            self.sub.setsockopt(zmq.SUBSCRIBE, topic)
        self.sub.connect(publish_endpoint)
        self.connected_at = time.monotonic()
        if catch_up_on_connect:  # read the journal's tail now rather than wait for a decision or heartbeat
            try:
                self.target = max(self.target, self.journal_last() or 0)
            except lmdb.Error:
                pass

    def close(self) -> None:
        self.sub.close()
        for store in (self.hot, self.durable):
            if store is not None:
                store.close()

    def next(self, timeout: float) -> Optional[Event]:
        """The next decision in `seq` order or a change in the gate's health; None after `timeout` seconds
        with nothing to report. A decision is never delivered twice and never out of order."""
        deadline = time.monotonic() + timeout
        while True:
            if self.queue:
                return self._deliver(self.queue.popleft())
            if self.last_queued is not None and self.target > self.last_queued:
                self._fill()
                continue
            now = time.monotonic()
            self._check_health(now)
            if self.queue:
                continue
            if now >= deadline:
                return None
            wait = deadline - now
            down_at = self._down_deadline()
            if down_at is not None and self.health != "down":
                wait = min(wait, max(0.0, down_at - now))
            if self.sub.poll(math.ceil(wait * 1000)):
                self._drain()

    def _deliver(self, e):
        if e.kind == "decision":
            self.last_seq = e.seq
            if e.source == "live":
                self.delivered_live += 1
            else:
                self.delivered_from_journal += 1
        return e

    # The stream

    def _drain(self):
        for _ in range(1024):  # bounded, so health and the journal get their turn
            try:
                frames = self.sub.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(frames) < 2:
                continue
            if frames[0] == b"heartbeat":
                self._heartbeat(json.loads(frames[1]))
            elif frames[0].startswith(b"calibrated."):
                self._live(frames[1])

    def _heartbeat(self, hb):
        self.last_heartbeat = time.monotonic()
        last = hb.get("last_seq")
        if isinstance(last, int):
            if self.last_queued is None:
                self.last_queued = self.last_seq = last
            self.target = max(self.target, last)
        if self.health != "up":
            self.health = "up"
            self.queue.append(Event("gate_up", last_seq=last or 0))

    def _live(self, raw):
        decision = json.loads(raw)
        seq = decision.get("seq")
        if not isinstance(seq, int) or seq <= 0:
            return
        if self.last_queued is None:
            self.last_queued = self.last_seq = seq - 1
        if seq <= self.last_queued:
            self.duplicates += 1  # a republished plan_id, or already read from the journal
        elif seq == self.last_queued + 1 and self.target <= self.last_queued:
            self.queue.append(Event("decision", seq=seq, raw=raw, decision=decision, source="live"))
            self.last_queued = self.target = seq
        else:
            self.target = max(self.target, seq)  # a gap, or one being filled: the journal holds this one too

    # The journal

    def read_journal(self, first: int, limit: int) -> List[Tuple[int, bytes]]:
        """Up to `limit` (seq, raw decision) pairs from `first` on (docs/store.md): from the hot journal, and
        for seqs older than its first row from the durable journal (each store read in one snapshot)."""
        def rows(txn, journal, below: Optional[int] = None) -> List[Tuple[int, bytes]]:
            out, cursor = [], txn.cursor(db=journal)
            if cursor.set_range(struct.pack(">Q", first)):
                for key, value in cursor:
                    seq = struct.unpack(">Q", key)[0]
                    if below is not None and seq >= below:
                        break
                    out.append((seq, bytes(value)))
                    if len(out) >= limit:
                        break
            return out

        def hot_rows(txn, journal) -> Tuple[Optional[int], List[Tuple[int, bytes]]]:
            return _first(txn, journal), rows(txn, journal)

        try:  # the hot store first: the rows it has dropped since were replicated before it dropped them
            hot_first, recent = self.hot.read(hot_rows)
        except lmdb.Error:
            if self.durable is None:
                raise
            return self.durable.read(rows)  # no hot store: all from the durable one
        if self.durable is None or (hot_first is not None and first >= hot_first):
            return recent
        try:
            older = self.durable.read(lambda txn, journal: rows(txn, journal, below=hot_first))
        except lmdb.Error as e:  # what precedes the hot journal is reported missed
            self.last_error = e
            return recent
        return (older + recent)[:limit]

    def journal_last(self) -> Optional[int]:
        """The journal's last seq (None when it is empty): the hot journal's, else the durable one's."""
        try:
            last = self.hot.read(_last)
        except lmdb.Error:
            if self.durable is None:
                raise
            return self.durable.read(_last)  # no hot store
        if last is None and self.durable is not None:
            try:
                return self.durable.read(_last)
            except lmdb.Error as e:
                self.last_error = e
        return last

    def _fill(self):
        after = self.last_queued
        want = min(self.chunk, self.target - after)
        try:
            rows = self.read_journal(after + 1, want)
        except lmdb.Error as e:
            self.last_error = e
            self.queue.append(Event("missed", first=after + 1, last=self.target))
            self.last_queued = self.target
            return
        expected = after + 1
        for seq, raw in rows:
            if seq > expected:
                self.queue.append(Event("missed", first=expected, last=seq - 1))
            self.queue.append(Event("decision", seq=seq, raw=raw, decision=json.loads(raw), source="journal"))
            expected = seq + 1
        if not rows or (len(rows) < want and expected <= self.target):
            # The journal ends before the target: swept by retention (or this is not the gate's store).
            self.queue.append(Event("missed", first=expected, last=self.target))
            expected = self.target + 1
        self.last_queued = expected - 1
        self.target = max(self.target, expected - 1)

    # Health

    def _down_deadline(self):
        if self.down_after is None:
            return None
        since = max(self.last_heartbeat or self.connected_at, self.connected_at)
        return since + self.down_after

    def _check_health(self, now):
        down_at = self._down_deadline()
        if self.health != "down" and down_at is not None and now >= down_at:
            self.health = "down"
            since = max(self.last_heartbeat or self.connected_at, self.connected_at)
            self.queue.append(Event("gate_down", silent_sec=now - since))


def _first(txn, journal) -> Optional[int]:
    cursor = txn.cursor(db=journal)
    return struct.unpack(">Q", cursor.key())[0] if cursor.first() else None


def _last(txn, journal) -> Optional[int]:
    cursor = txn.cursor(db=journal)
    return struct.unpack(">Q", cursor.key())[0] if cursor.last() else None


def main(argv: Optional[List[str]] = None) -> int:
    """heatgate-follow [--run-dir DIR] STATE_DIR PUBLISH_ENDPOINT [AFTER_SEQ [HEARTBEAT_SEC]]: decisions on stdout,
    one a line. Without --run-dir: P26_RUN_DIR, else the run directory derived from STATE_DIR."""
    args = sys.argv[1:] if argv is None else argv
    run_dir = None
    if len(args) > 1 and args[0] == "--run-dir":
        run_dir, args = args[1], args[2:]
    if len(args) < 2:
        print("usage: heatgate-follow [--run-dir DIR] STATE_DIR PUBLISH_ENDPOINT [AFTER_SEQ [HEARTBEAT_SEC]]",
              file=sys.stderr)
        return 2
    after = int(args[2]) if len(args) > 2 else None
    f = Follower(args[0], args[1], after=after, heartbeat_sec=float(args[3]) if len(args) > 3 else 1.0,
                 run_dir=run_dir)
    out = sys.stdout.buffer
    try:
        while True:
            e = f.next(timeout=0.2)
            if e is None:
                out.flush()
            elif e.kind == "decision":
                out.write(e.raw + b"\n")
            else:
                out.flush()
                print(f"heatgate_follow: {e.kind} " + " ".join(
                    f"{k}={v}" for k, v in e._asdict().items() if v is not None and k != "kind"), file=sys.stderr)
    except KeyboardInterrupt:
        pass
    finally:
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
