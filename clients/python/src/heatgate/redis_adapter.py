"""heatgate-redis-adapter: feeds HeatGate from the Redis keys the stack's producers already write.

No producer changes. It reads (defaults; every key, interval and field name is a flag or an environment
variable, see `--help`):

- exit proposals: the hashes `quantum:harvest:proposal:{symbol}` (SCAN, every `--poll-sec`) and/or the
  stream `quantum:stream:harvest.proposal` (consumer group, XREADGROUP);
- equity: the hash `quantum:state:portfolio` (`equity_usd`, with its own `timestamp`);
- positions: the hashes `quantum:state:positions:{symbol}` (notional = |position_amt| × mark_price) and/or
  the stream `quantum:stream:position.snapshot` (|position_qty| × mark_price);
- sigma: the `sigma` field of each proposal, sent as a `market` message just before the proposal.

and sends HeatGate's messages (contract §3) to its ingest endpoint. What it derives, and nothing else:

- a proposal is every field of the hash (or stream entry) as written, all strings, plus `type` and, for a
  hash without a `symbol` field, the symbol from the key name. No plan_id is added: the gate derives it.
- `position_notional_usd` = |amount| × mark price; the mark price also goes out as a `market` price (the
  shadow report prices downgrades with it). A position hash that disappears is sent as notional 0.
- `ts` of a state message: the producer's own time field read as epoch seconds (milliseconds above 1e12)
  or ISO-8601 UTC; a portfolio hash without a readable time is skipped (`equity_bad_timestamp`), never
  given the adapter's clock.

Delivery. A proposal hash is sent only when its content changed since the last one the gate decided
(digests are kept in the Redis hash `--sent-key`, so a restarted adapter does not resend). A proposal counts
as delivered when its decision is seen on the gate's decision stream (`--publish-endpoint`, matched on
symbol, plan id as `heatgate.plan` derives it, and action); only then is a stream entry XACKed and a
hash's digest recorded. Until then it is re-sent every `--confirm-sec`: a resend of a proposal the gate
already decided is a repeat (contract §2: the same decision, the same `seq`), so nothing is decided
twice within `P26_CALIBRATED_TTL_SEC`, and nothing handed to a gate that died before deciding it is lost.
Entries a previous run read but did not acknowledge are read again at start (the same `--consumer`).
Proposals are sent only while the gate's heartbeats arrive. State messages (equity, positions, market)
are sent when they change and again every `--refresh-sec`; position stream entries are XACKed once
ZeroMQ holds the message.

Counters (read, sent, skipped by reason, confirmed, resent) go to stderr every `--status-sec`, and to
`--status-file` as JSON when given.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import zmq

from .plan import Rejected, epoch, iso8601, normalise_action, proposal_key
from .producer import Producer, QueueFull

log = logging.getLogger("heatgate.redis_adapter")

# The names of the producers' fields the adapter reads (all overridable with --field NAME=FIELD).
DEFAULT_FIELDS = {
    "proposal_symbol": "symbol",
    "proposal_sigma": "sigma",
    "equity": "equity_usd",
    "equity_time": "timestamp",
    "equity_time_fallback": "ts_utc",
    "position_amount": "position_amt",
    "position_mark": "mark_price",
    "position_time": "timestamp",
    "snapshot_symbol": "symbol",
    "snapshot_amount": "position_qty",
    "snapshot_mark": "mark_price",
    "snapshot_time": "timestamp",
}
PROPOSAL_TIME_FIELDS = ("ts_epoch", "timestamp", "last_update_epoch", "computed_at_utc")


def env(name: str, default: Any) -> Any:
    return os.environ.get("HEATGATE_ADAPTER_" + name, default)


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="heatgate-redis-adapter",
        description="Feeds HeatGate from the stack's Redis keys (proposals, equity, positions). Every flag "
                    "also reads HEATGATE_ADAPTER_<NAME> (upper case, '-' as '_').")
    a = p.add_argument
    a("--redis-url", default=env("REDIS_URL", "redis://127.0.0.1:6379/0"),
      help="redis://host:port/db or unix:///path/redis.sock")
    a("--ingest-endpoint", default=env("INGEST_ENDPOINT", "tcp://127.0.0.1:5556"), help="P26_INGEST_ENDPOINT")
    a("--publish-endpoint", default=env("PUBLISH_ENDPOINT", "tcp://127.0.0.1:5557"), help="P26_PUBLISH_ENDPOINT")
    a("--heartbeat-sec", type=float, default=float(env("HEARTBEAT_SEC", 1.0)), help="P26_HEARTBEAT_SEC")
    a("--proposals", choices=("hash", "stream", "both"), default=env("PROPOSALS", "hash"),
      help="where proposals are read (the producer writes the stream only with ENABLE_STREAM=true)")
    a("--positions", choices=("hash", "stream", "both"), default=env("POSITIONS", "hash"))
    a("--proposal-prefix", default=env("PROPOSAL_PREFIX", "quantum:harvest:proposal:"))
    a("--proposal-stream", default=env("PROPOSAL_STREAM", "quantum:stream:harvest.proposal"))
    a("--portfolio-key", default=env("PORTFOLIO_KEY", "quantum:state:portfolio"))
    a("--position-prefix", default=env("POSITION_PREFIX", "quantum:state:positions:"))
    a("--position-stream", default=env("POSITION_STREAM", "quantum:stream:position.snapshot"))
    a("--group", default=env("GROUP", "heatgate"), help="the consumer group on both streams")
    a("--consumer", default=env("CONSUMER", "heatgate-adapter"),
      help="this consumer's name; keep it across restarts so unacknowledged entries are read again")
    a("--group-start", default=env("GROUP_START", "$"),
      help="where a new consumer group starts: $ (new entries) or 0 (the whole stream)")
    a("--sent-key", default=env("SENT_KEY", "heatgate:adapter:sent"),
      help="Redis hash of the digest of the last decided proposal per symbol ('' keeps it in memory)")
    a("--poll-sec", type=float, default=float(env("POLL_SEC", 1.0)), help="hash polling interval")
    a("--confirm-sec", type=float, default=float(env("CONFIRM_SEC", 2.0)),
      help="re-send a proposal whose decision was not seen within this long")
    a("--refresh-sec", type=float, default=float(env("REFRESH_SEC", 30.0)),
      help="re-send unchanged equity and positions this often (0: only on change)")
    a("--status-sec", type=float, default=float(env("STATUS_SEC", 60.0)), help="status line interval")
    a("--status-file", default=env("STATUS_FILE", ""), help="write the counters here as JSON, each cycle")
    a("--queue-size", type=int, default=int(env("QUEUE_SIZE", 10000)), help="the producer's bounded queue")
    a("--skip-action", action="append", default=[a_ for a_ in env("SKIP_ACTION", "").split(",") if a_],
      help="an action not sent to the gate (normalised, e.g. NONE); repeatable")
    a("--field", action="append", default=[f for f in env("FIELD", "").split(",") if f],
      metavar="NAME=FIELD", help="rename a producer field: " + ", ".join(f"{k}={v}" for k, v in DEFAULT_FIELDS.items()))
    a("--curve-server-key", default=env("CURVE_SERVER_KEY", None), help="the gate's CURVE public key (Z85)")
    a("--curve-public-key", default=env("CURVE_PUBLIC_KEY", None))
    a("--curve-secret-key", default=env("CURVE_SECRET_KEY", None))
    a("--max-cycles", type=int, default=int(env("MAX_CYCLES", 0)), help="stop after this many cycles (0: never)")
    a("--log-level", default=env("LOG_LEVEL", "info"))
    return p.parse_args(argv)


def digest(fields: Dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(sorted(fields.items()), separators=(",", ":")).encode()).hexdigest()[:32]


def state_time(v: Optional[str]) -> Optional[float]:
    """A producer's time: epoch seconds (ms above 1e12) or ISO-8601 UTC; None when absent or unreadable."""
    if v is None or v in ("", "None"):
        return None
    try:
        return epoch(v, "time")
    except Rejected:
        pass
    try:
        return iso8601(v)
    except (Rejected, IndexError, ValueError):
        return None


def number(v: Optional[str]) -> Optional[float]:
    if v is None or v in ("", "None"):
        return None
    try:
        f = float(v)
    except ValueError:
        return None
    return f if math.isfinite(f) else None


@dataclass
class Pending:
    """A proposal sent and not yet seen decided."""
    frame: bytes
    symbol: str
    sent_at: float
    digest: Optional[str] = None  # a hash's content: recorded once decided
    entries: List[str] = field(default_factory=list)  # stream entry ids: XACKed once decided


class Adapter:
    def __init__(self, args: argparse.Namespace, redis_client: Any) -> None:
        self.a = args
        self.r = redis_client
        self.f = dict(DEFAULT_FIELDS)
        for item in args.field:
            name, _, value = item.partition("=")
            if name not in DEFAULT_FIELDS or not value:
                raise SystemExit(f"--field {item}: expected NAME=FIELD with NAME one of {', '.join(DEFAULT_FIELDS)}")
            self.f[name] = value
        self.skip_actions = {normalise_action(s) for s in args.skip_action}
        self.read: Counter[str] = Counter()
        self.sent: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()
        self.confirmed = self.resent = 0
        self.pending: Dict[Tuple[str, str, bytes], Pending] = {}
        self.decided: Dict[str, str] = {}  # symbol -> digest of its last decided proposal hash
        self.state_digests: Dict[str, str] = {}  # what state was last sent, by key
        self.positions_seen: Dict[str, bool] = {}  # position hash symbols last seen open
        self.last_refresh = time.monotonic()
        self.last_heartbeat: Optional[float] = None
        self.last_status = time.monotonic()
        self.started = time.time()
        self.running = True
        self.redis_errors = 0
        self.producer = Producer(args.ingest_endpoint, server_key=args.curve_server_key,
                                 public_key=args.curve_public_key, secret_key=args.curve_secret_key,
                                 queue_size=args.queue_size, immediate=True, linger=1.0)
        self.sub = zmq.Context.instance().socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.RCVHWM, 0)
        if args.curve_server_key:
            self.sub.setsockopt(zmq.CURVE_SERVERKEY, args.curve_server_key.encode())
            self.sub.setsockopt(zmq.CURVE_PUBLICKEY, args.curve_public_key.encode())
            self.sub.setsockopt(zmq.CURVE_SECRETKEY, args.curve_secret_key.encode())
        for topic in (b"calibrated.", b"heartbeat"):
            self.sub.setsockopt(zmq.SUBSCRIBE, topic)
        self.sub.connect(args.publish_endpoint)
        self.groups_ready = False
        self.pel_cursor: Dict[str, Optional[str]] = {"proposal": "0", "position": "0"}  # None: read through

    # ---- the loop

    def run(self) -> int:
        cycles, loaded = 0, not self.a.sent_key
        while self.running:
            t0 = time.monotonic()
            try:
                if not loaded:
                    self.decided = dict(self.r.hgetall(self.a.sent_key) or {})
                    loaded = True
                self.cycle()
                self.redis_errors = 0
                cycles += 1
                self.status()
                if self.a.max_cycles and cycles >= self.a.max_cycles:
                    break
                self.listen(t0 + self.a.poll_sec)
            except Exception as e:  # Redis down or restarting: log, back off, go on (bounded by the interval)
                if not self._is_redis_error(e):
                    raise
                self.redis_errors += 1
                self.skipped["redis_error"] += 1
                self.pel_cursor = {k: "0" for k in self.pel_cursor}  # re-read what we hold unacknowledged
                self.groups_ready = False
                if self.redis_errors == 1 or self.redis_errors % 30 == 0:
                    log.warning("redis: %s (retrying every %.1fs)", e, self.a.poll_sec)
                self.status()
                self.listen(t0 + self.a.poll_sec)
        self.status(force=True)
        self.producer.close()
        self.sub.close()
        return 0

    @staticmethod
    def _is_redis_error(e: Exception) -> bool:
        import redis  # the optional extra: only the adapter needs it
        return isinstance(e, (redis.RedisError, OSError))

    def cycle(self) -> None:
        self.listen(0)
        if self.a.refresh_sec > 0 and time.monotonic() - self.last_refresh >= self.a.refresh_sec:
            self.state_digests.clear()
            self.last_refresh = time.monotonic()
        self.poll_portfolio()
        if self.a.positions in ("hash", "both"):
            self.poll_position_hashes()
        if self.a.positions in ("stream", "both"):
            self.read_position_stream()
        if self.a.proposals in ("hash", "both"):
            self.poll_proposal_hashes()
        if self.a.proposals in ("stream", "both"):
            self.read_proposal_stream()
        self.listen(0)
        self.resend_overdue()

    def gate_up(self) -> bool:
        return self.last_heartbeat is not None and time.monotonic() - self.last_heartbeat < 3 * self.a.heartbeat_sec

    def listen(self, until: float) -> None:
        """Reads the decision stream (confirmations, heartbeats) until the monotonic time `until`."""
        while True:
            wait = max(0, int((until - time.monotonic()) * 1000))
            if not self.sub.poll(wait):
                return
            for _ in range(10_000):
                try:
                    topic, body = self.sub.recv_multipart(zmq.NOBLOCK)[:2]
                except zmq.Again:
                    break
                except ValueError:
                    continue
                if topic == b"heartbeat":
                    self.last_heartbeat = time.monotonic()
                elif topic.startswith(b"calibrated."):
                    self.on_decision(body)
            if not self.running or time.monotonic() >= until:
                return

    def on_decision(self, body: bytes) -> None:
        try:
            d = json.loads(body)
            key = (d["symbol"], d["plan_id"], normalise_action(d["original_action"]))
        except (ValueError, KeyError, TypeError, AttributeError):
            return
        p = self.pending.pop(key, None)
        if p is None:
            return
        self.confirmed += 1
        if p.digest is not None:
            self.decided[p.symbol] = p.digest
            if self.a.sent_key:
                self.r.hset(self.a.sent_key, p.symbol, p.digest)
        if p.entries:
            self.r.xack(self.a.proposal_stream, self.a.group, *p.entries)

    def resend_overdue(self) -> None:
        if not self.gate_up():
            return
        now = time.monotonic()
        for p in list(self.pending.values()):
            if now - p.sent_at >= self.a.confirm_sec:
                try:
                    self.producer.send(p.frame)
                except QueueFull:
                    self.skipped["queue_full"] += 1
                    return
                p.sent_at = now
                self.resent += 1

    # ---- state

    def send_state(self, key: str, kind: str, messages: List[Dict[str, Any]], content: Dict[str, str]) -> bool:
        """Sends the messages for one state key when its content changed (or a refresh is due)."""
        d = digest(content)
        if self.state_digests.get(key) == d:
            self.skipped["state_unchanged"] += 1
            return True
        try:
            for m in messages:
                self.producer.send(m)
        except QueueFull:
            self.skipped["queue_full"] += 1
            return False
        self.sent[kind] += len(messages)
        self.state_digests[key] = d
        return True

    def poll_portfolio(self) -> None:
        h = self.r.hgetall(self.a.portfolio_key)
        if not h:
            self.skipped["equity_missing"] += 1
            return
        self.read["portfolio"] += 1
        equity = number(h.get(self.f["equity"]))
        if equity is None:
            self.skipped["equity_invalid"] += 1
            return
        ts = state_time(h.get(self.f["equity_time"]))
        if ts is None:
            ts = state_time(h.get(self.f["equity_time_fallback"]))
        if ts is None:
            self.skipped["equity_bad_timestamp"] += 1
            return
        msg = {**h, "type": "portfolio", "equity_usd": h[self.f["equity"]], "ts": ts}
        self.send_state(self.a.portfolio_key, "portfolio", [msg], h)

    def position_messages(self, symbol: str, amount: Optional[float], mark: Optional[float],
                          ts: Optional[float]) -> Optional[List[Dict[str, Any]]]:
        if amount is None or mark is None or mark < 0:
            return None
        msg: Dict[str, Any] = {"type": "position", "symbol": symbol, "position_notional_usd": abs(amount) * mark}
        market: Dict[str, Any] = {"type": "market", "symbol": symbol, "price": mark}
        if ts is not None:
            msg["ts"] = market["ts"] = ts
        return [msg, market] if mark > 0 else [msg]

    def scan(self, prefix: str) -> List[str]:
        keys: List[str] = []
        cursor = 0
        for _ in range(100_000):  # bounded: SCAN returns to 0 once the key space is covered
            cursor, batch = self.r.scan(cursor=cursor, match=prefix + "*", count=1000)
            keys.extend(batch)
            if cursor == 0:
                break
        return sorted(set(keys))

    def hashes(self, prefix: str) -> List[Tuple[str, Dict[str, str]]]:
        keys = self.scan(prefix)
        if not keys:
            return []
        pipe = self.r.pipeline(transaction=False)
        for k in keys:
            pipe.hgetall(k)
        return [(k, h) for k, h in zip(keys, pipe.execute()) if h]

    def poll_position_hashes(self) -> None:
        seen: Dict[str, bool] = {}
        for key, h in self.hashes(self.a.position_prefix):
            symbol = key[len(self.a.position_prefix):]
            self.read["position"] += 1
            msgs = self.position_messages(symbol, number(h.get(self.f["position_amount"])),
                                          number(h.get(self.f["position_mark"])),
                                          state_time(h.get(self.f["position_time"])))
            if msgs is None:
                self.skipped["position_invalid"] += 1
                continue
            seen[symbol] = True
            self.send_state("position:" + symbol, "position", msgs, h)
        for symbol in self.positions_seen:
            if symbol not in seen:  # the hash is gone: the position is closed
                closed = [{"type": "position", "symbol": symbol, "position_notional_usd": 0}]
                if not self.send_state("position:" + symbol, "position", closed, {"closed": "1"}):
                    seen[symbol] = True  # try again next cycle
        self.positions_seen = seen

    # ---- streams

    def ensure_groups(self) -> None:
        if self.groups_ready:
            return
        import redis
        streams = []
        if self.a.proposals in ("stream", "both"):
            streams.append(self.a.proposal_stream)
        if self.a.positions in ("stream", "both"):
            streams.append(self.a.position_stream)
        for s in streams:
            try:
                self.r.xgroup_create(s, self.a.group, id=self.a.group_start, mkstream=True)
            except redis.ResponseError as e:
                if "BUSYGROUP" not in str(e):
                    raise
        self.groups_ready = True

    def read_stream(self, kind: str, stream: str, limit: int = 1000) -> List[Tuple[str, Dict[str, str]]]:
        """This consumer's unacknowledged entries first (a previous run's), then new ones."""
        self.ensure_groups()
        cursor = self.pel_cursor[kind]
        if cursor is not None:  # our pending list, from `cursor` on: entries a previous run did not ack
            got = self.r.xreadgroup(self.a.group, self.a.consumer, {stream: cursor}, count=limit)
            entries = got[0][1] if got else []
            self.pel_cursor[kind] = entries[-1][0] if len(entries) >= limit else None
            if entries:
                return entries
        got = self.r.xreadgroup(self.a.group, self.a.consumer, {stream: ">"}, count=limit)
        return got[0][1] if got else []

    def read_position_stream(self) -> None:
        entries = self.read_stream("position", self.a.position_stream)
        acks = []
        for entry_id, h in entries:
            self.read["position_snapshot"] += 1
            symbol = h.get(self.f["snapshot_symbol"])
            msgs = None if not symbol else self.position_messages(
                symbol, number(h.get(self.f["snapshot_amount"])), number(h.get(self.f["snapshot_mark"])),
                state_time(h.get(self.f["snapshot_time"])))
            if msgs is None:
                self.skipped["position_invalid"] += 1
                acks.append(entry_id)
                continue
            try:
                for m in msgs:
                    self.producer.send(m)
            except QueueFull:
                self.skipped["queue_full"] += 1
                self.pel_cursor["position"] = "0"  # read the rest again from our pending list
                break
            self.sent["position"] += len(msgs)
            self.state_digests.pop("position:" + symbol, None)  # the next hash poll re-sends its own view
            acks.append(entry_id)
        if acks:
            self.r.xack(self.a.position_stream, self.a.group, *acks)

    # ---- proposals

    def proposal(self, fields: Dict[str, str], symbol_hint: Optional[str]) -> Optional[Dict[str, Any]]:
        msg: Dict[str, Any] = {**fields, "type": "proposal"}
        sym_field = self.f["proposal_symbol"]
        if fields.get(sym_field) in (None, "", "None"):
            if symbol_hint is None:
                return None
            msg["symbol"] = symbol_hint
        elif sym_field != "symbol":
            msg["symbol"] = fields[sym_field]
        return msg

    def market_for(self, msg: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        """The proposal's sigma as a market message, timed as the proposal."""
        raw = msg.get(self.f["proposal_sigma"])
        if raw in (None, "", "None"):
            self.skipped["sigma_missing"] += 1
            return None
        sigma = number(raw)
        if sigma is None or sigma < 0:
            self.skipped["sigma_invalid"] += 1
            return None
        market: Dict[str, Any] = {"type": "market", "symbol": msg["symbol"], "sigma": sigma}
        for name in PROPOSAL_TIME_FIELDS:
            if msg.get(name) not in (None, "", "None"):
                t = state_time(str(msg[name]))
                if t is not None:
                    market["ts"] = t
                break
        return market

    def offer(self, batch: List[Tuple[Dict[str, Any], Optional[str], Optional[str]]]) -> List[Optional[str]]:
        """Sends (proposal, digest, entry id) items: all their markets first, then the proposals.

        Returns, per item, None when it was sent or settled, or the reason it must be tried again."""
        keyed = []
        for msg, dig, entry in batch:
            try:
                key = proposal_key(msg)
            except Rejected as e:
                log.warning("proposal refused as the gate would refuse it (%s): %s", e, msg.get("symbol"))
                self.skipped["invalid_proposal"] += 1
                keyed.append(None)
                continue
            action = normalise_action(key[2])
            if action in self.skip_actions:
                self.skipped["action_filtered"] += 1
                keyed.append(None)
                continue
            keyed.append((key[0], key[1], action))
        out: List[Optional[str]] = []
        if any(k is not None for k in keyed) and not self.gate_up():
            self.skipped["gate_down"] += sum(1 for k in keyed if k is not None)
            return ["gate_down" if k is not None else None for k in keyed]
        try:
            for (msg, _, _), k in zip(batch, keyed):
                if k is not None and k not in self.pending:
                    m = self.market_for(msg)
                    if m is not None:
                        self.producer.send(m)
                        self.sent["market"] += 1
        except QueueFull:
            self.skipped["queue_full"] += len(batch)
            return ["queue_full" if k is not None else None for k in keyed]
        for (msg, dig, entry), k in zip(batch, keyed):
            if k is None:
                out.append(None)
                continue
            p = self.pending.get(k)
            if p is not None:  # already in flight (a hash and a stream entry, or the pending list re-read)
                if entry is not None and entry not in p.entries:
                    p.entries.append(entry)
                if dig is not None:
                    p.digest = dig
                self.skipped["in_flight"] += 1
                out.append(None)
                continue
            frame = json.dumps(msg, separators=(",", ":")).encode()
            try:
                self.producer.send(frame)
            except QueueFull:
                self.skipped["queue_full"] += 1
                out.append("queue_full")
                continue
            self.sent["proposal"] += 1
            self.pending[k] = Pending(frame, k[0], time.monotonic(), dig, [entry] if entry else [])
            out.append(None)
        return out

    def poll_proposal_hashes(self) -> None:
        batch = []
        in_flight = {p.symbol: p.digest for p in self.pending.values() if p.digest is not None}
        for key, h in self.hashes(self.a.proposal_prefix):
            symbol = key[len(self.a.proposal_prefix):]
            self.read["proposal_hash"] += 1
            d = digest(h)
            if self.decided.get(symbol) == d or in_flight.get(symbol) == d:
                self.skipped["proposal_unchanged"] += 1
                continue
            msg = self.proposal(h, symbol)
            if msg is None:
                self.skipped["invalid_proposal"] += 1
                continue
            # A newer proposal for the symbol supersedes one still awaiting its decision.
            for k, p in list(self.pending.items()):
                if p.symbol == msg["symbol"] and p.digest is not None and not p.entries:
                    del self.pending[k]
                    self.skipped["superseded"] += 1
            batch.append((msg, d, None))
        if batch:
            for (msg, d, _), why in zip(batch, self.offer(batch)):
                if why is None and not any(p.digest == d for p in self.pending.values()):
                    self.decided[msg["symbol"]] = d  # settled without a decision (refused or filtered)

    def read_proposal_stream(self) -> None:
        entries = self.read_stream("proposal", self.a.proposal_stream)
        batch, settled = [], []
        waiting = {e for p in self.pending.values() for e in p.entries}
        for entry_id, h in entries:
            if entry_id in waiting:
                continue
            self.read["proposal_stream"] += 1
            msg = self.proposal(h, None)
            if msg is None:
                self.skipped["invalid_proposal"] += 1
                settled.append(entry_id)
                continue
            batch.append((msg, None, entry_id))
        if batch:
            for (_, _, entry_id), why in zip(batch, self.offer(batch)):
                if why is not None:
                    self.pel_cursor["proposal"] = "0"  # read it again from our pending list
                elif not any(entry_id in p.entries for p in self.pending.values()):
                    settled.append(entry_id)
        if settled:
            self.r.xack(self.a.proposal_stream, self.a.group, *settled)

    # ---- status

    def counters(self) -> Dict[str, Any]:
        return {"read": dict(self.read), "sent": dict(self.sent), "skipped": dict(self.skipped),
                "confirmed": self.confirmed, "resent": self.resent, "pending": len(self.pending),
                "gate_up": self.gate_up(), "pid": os.getpid(), "uptime_sec": round(time.time() - self.started, 3), "ts": time.time()}

    def status(self, force: bool = False) -> None:
        c = self.counters()
        if self.a.status_file:
            tmp = self.a.status_file + ".tmp"
            with open(tmp, "w") as f:
                json.dump(c, f)
            os.replace(tmp, self.a.status_file)
        if force or time.monotonic() - self.last_status >= self.a.status_sec:
            self.last_status = time.monotonic()

            def fmt(d: Dict[str, int]) -> str:
                return ",".join(f"{k}:{v}" for k, v in sorted(d.items())) or "0"
            print(f"heatgate-redis-adapter: read={fmt(c['read'])} sent={fmt(c['sent'])} "
                  f"skipped={fmt(c['skipped'])} confirmed={c['confirmed']} resent={c['resent']} "
                  f"pending={c['pending']} gate={'up' if c['gate_up'] else 'down'}", file=sys.stderr, flush=True)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="heatgate-redis-adapter: %(levelname)s %(message)s")
    try:
        import redis
    except ImportError:
        print("heatgate-redis-adapter needs redis-py (pip install 'heatgate[redis]'; Debian: python3-redis)",
              file=sys.stderr)
        return 2
    options: Dict[str, Any] = {"decode_responses": True, "socket_timeout": 5}
    if not args.redis_url.startswith("unix:"):  # redis-py 4.3's unix connections refuse this option
        options["socket_connect_timeout"] = 5
    client = redis.Redis.from_url(args.redis_url, **options)
    adapter = Adapter(args, client)

    def stop(*_: Any) -> None:
        adapter.running = False
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("reading %s (proposals from %s, positions from %s); sending to %s; decisions from %s",
             args.redis_url, args.proposals, args.positions, args.ingest_endpoint, args.publish_endpoint)
    return adapter.run()


if __name__ == "__main__":
    sys.exit(main())
