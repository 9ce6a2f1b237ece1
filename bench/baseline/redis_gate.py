#!/usr/bin/python3
"""The Redis + Python portfolio heat gate that HeatGate replaces, rebuilt as the benchmark baseline.

Per proposal it does what the old gate did, one Redis round trip per command:

    XREADGROUP   one proposal from the proposals stream (consumer group)
    HGETALL      the portfolio state hash (equity_usd, ts)
    XREVRANGE    the last 50 position snapshots (newest snapshot of a symbol wins)
    -            heat = sum(|notional| * sigma) / max(equity, 1), bucket, calibrate
    XADD         the decision (one JSON object, SPEC section 4 shape) to the decisions stream
    HSET         quantum:harvest:calibrated:<symbol>
    EXPIRE       the same hash, TTL 300 s
    XACK         the proposal

This is deliberately plain, reasonably written redis-py code: no pipelining, no caching of state
between proposals (the old gate re-read the state for every proposal, which is the point of the
comparison). It runs until SIGTERM/SIGINT or --max-seconds, and prints one line `ready ...` on
stdout once its consumer group exists, so a harness knows when to start sending.

Usage (alone):
    /usr/bin/python3 redis_gate.py --port 6379
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time
import uuid

import redis

# Key names of the old deployment.
PROPOSALS_STREAM = "quantum:stream:harvest.proposal"
DECISIONS_STREAM = "quantum:stream:harvest.calibrated"
STATE_HASH = "quantum:state:portfolio"
POSITIONS_STREAM = "quantum:stream:position.snapshot"
CALIBRATED_PREFIX = "quantum:harvest:calibrated:"
GROUP = "p26_heat_gate"

HEAT_MIN = 0.25
HEAT_MAX = 0.65
CALIBRATED_TTL_SEC = 300
SNAPSHOT_WINDOW = 50

ACTIONS = ("FULL_CLOSE", "PARTIAL_75", "PARTIAL_50", "PARTIAL_25", "UPDATE_SL", "HOLD", "NONE")
BUCKET_ACTION = {"COLD": "PARTIAL_25", "WARM": "PARTIAL_75", "HOT": "FULL_CLOSE"}
BUCKET_REASON = {"COLD": "portfolio_heat_cold", "WARM": "portfolio_heat_warm", "HOT": "portfolio_heat_hot"}


def log(level: str, msg: str, **kv: object) -> None:
    """One logfmt line on stderr (the old gate logged to journald the same way)."""
    fields = " ".join(f"{k}={v}" for k, v in kv.items())
    print(f"ts={time.time():.6f} level={level} msg={msg} {fields}".rstrip(), file=sys.stderr, flush=True)


def canonical_action(token: str) -> str | None:
    """Case-insensitive, trimmed, trailing _PROPOSED ignored; None for an unknown action."""
    t = token.strip().upper()
    if t.endswith("_PROPOSED"):
        t = t[: -len("_PROPOSED")]
    return t if t in ACTIONS else None


def to_float(value: object) -> float | None:
    if value is None:
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def bucket_of(heat: float) -> str:
    if heat < HEAT_MIN:
        return "COLD"
    if heat < HEAT_MAX:
        return "WARM"
    return "HOT"


def compute_heat(snapshots: list) -> tuple[float, int, bool]:
    """Heat inputs from XREVRANGE entries (newest first): the newest snapshot of a symbol wins.

    Returns (total_risk_usd, open_positions, sigma_missing).
    """
    seen: set[str] = set()
    total_risk = 0.0
    open_positions = 0
    sigma_missing = False
    for _entry_id, fields in snapshots:
        symbol = fields.get("symbol")
        if not symbol or symbol in seen:
            continue
        seen.add(symbol)
        notional = to_float(fields.get("position_notional_usd", fields.get("notional_usd"))) or 0.0
        if notional == 0.0:
            continue
        open_positions += 1
        sigma = to_float(fields.get("sigma", fields.get("volatility")))
        if sigma is None or sigma < 0:
            sigma_missing = True
            continue
        total_risk += abs(notional) * sigma
    return total_risk, open_positions, sigma_missing


def decide(proposal: dict, state: dict, snapshots: list, seq: int, mode: str, now: float) -> dict:
    """The calibration of one proposal: the decision object of SPEC section 4."""
    original = proposal.get("harvest_action") or proposal.get("action") or ""
    canon = canonical_action(original)

    equity = to_float(state.get("equity_usd"))
    equity_ts = to_float(state.get("ts"))
    equity_age = (now - equity_ts) if equity_ts is not None else None
    total_risk, positions, sigma_missing = compute_heat(snapshots)

    input_reason = None
    if not state or "equity_usd" not in state:
        input_reason = "equity_missing"
    elif equity is None or equity <= 0:
        input_reason = "equity_invalid"
    elif sigma_missing:
        input_reason = "sigma_missing"

    heat = None if input_reason else total_risk / max(equity, 1.0)
    bucket = bucket_of(heat) if heat is not None else "UNKNOWN"
    fail_closed = False

    if canon is None:
        calibrated, reason = original, "unknown_action"
    elif canon != "FULL_CLOSE":
        calibrated = original
        reason = "partial_unchanged" if canon.startswith("PARTIAL_") else "non_full_close_unchanged"
    elif input_reason:
        calibrated, reason, fail_closed = "PARTIAL_25", input_reason, True
    else:
        target = BUCKET_ACTION[bucket]
        calibrated = original if target == "FULL_CLOSE" else target
        reason = BUCKET_REASON[bucket]

    effective = calibrated if mode == "enforce" else original
    plan_id = proposal.get("plan_id") or f"{proposal.get('symbol')}:{original}:{proposal.get('ts_epoch', '')}"
    return {
        "seq": seq,
        "plan_id": plan_id,
        "trace_id": proposal.get("trace_id") or uuid.uuid4().hex,
        "symbol": proposal.get("symbol"),
        "original_action": original,
        "calibrated_action": calibrated,
        "action": effective,
        "mode": mode,
        "downgraded": calibrated != original,
        "reason": reason,
        "heat_value": heat,
        "heat_bucket": bucket,
        "fail_closed": fail_closed,
        "fail_open": False,
        "kill_switch": False,
        "equity_usd": equity,
        "equity_age_sec": equity_age,
        "positions": positions,
        "total_risk_usd": total_risk,
        "ts": now,
        "expires_at": now + CALIBRATED_TTL_SEC,
        "proposal": proposal,
    }


def decision_stream_fields(decision: dict) -> dict:
    """The decisions-stream entry: the symbol (for consumers that filter) and the JSON object."""
    return {"symbol": decision["symbol"], "decision": json.dumps(decision, separators=(",", ":"))}


def calibrated_hash_fields(decision: dict) -> dict:
    """The calibrated hash the Apply Layer read (flat strings, as the old gate wrote them)."""
    return {
        "plan_id": decision["plan_id"],
        "action": decision["action"],
        "original_action": decision["original_action"],
        "calibrated_action": decision["calibrated_action"],
        "reason": decision["reason"],
        "heat_value": "" if decision["heat_value"] is None else repr(decision["heat_value"]),
        "heat_bucket": decision["heat_bucket"],
        "mode": decision["mode"],
        "seq": decision["seq"],
        "ts": repr(decision["ts"]),
        "expires_at": repr(decision["expires_at"]),
    }


class Gate:
    def __init__(self, r: redis.Redis, consumer: str, mode: str, read_count: int, maxlen: int) -> None:
        self.r = r
        self.consumer = consumer
        self.mode = mode
        self.read_count = read_count
        self.maxlen = maxlen or None
        self.seq = 0
        self.stopping = False

    def ensure_group(self) -> None:
        try:
            self.r.xgroup_create(PROPOSALS_STREAM, GROUP, id="$", mkstream=True)
        except redis.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise

    def handle(self, entry_id: str, proposal: dict) -> None:
        state = self.r.hgetall(STATE_HASH)
        snapshots = self.r.xrevrange(POSITIONS_STREAM, count=SNAPSHOT_WINDOW)
        self.seq += 1
        decision = decide(proposal, state, snapshots, self.seq, self.mode, time.time())
        self.r.xadd(DECISIONS_STREAM, decision_stream_fields(decision), maxlen=self.maxlen, approximate=True)
        key = CALIBRATED_PREFIX + str(decision["symbol"])
        self.r.hset(key, mapping=calibrated_hash_fields(decision))
        self.r.expire(key, CALIBRATED_TTL_SEC)
        self.r.xack(PROPOSALS_STREAM, GROUP, entry_id)

    def run(self, deadline: float) -> int:
        self.ensure_group()
        print(f"ready pid={os.getpid()} group={GROUP} consumer={self.consumer}", flush=True)
        processed = 0
        while not self.stopping and time.monotonic() < deadline:
            try:
                resp = self.r.xreadgroup(
                    GROUP, self.consumer, {PROPOSALS_STREAM: ">"}, count=self.read_count, block=100
                )
            except redis.ConnectionError as e:
                log("error", "redis_unreachable", error=repr(str(e)))
                time.sleep(0.5)
                continue
            if not resp:
                continue
            for _stream, entries in resp:
                for entry_id, fields in entries:
                    self.handle(entry_id, fields)
                    processed += 1
        return processed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Redis + Python portfolio heat gate (benchmark baseline)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=6379)
    ap.add_argument("--consumer", default=f"gate-{os.getpid()}")
    ap.add_argument("--mode", choices=("shadow", "enforce"), default="shadow")
    ap.add_argument("--read-count", type=int, default=1, help="XREADGROUP COUNT (1: one proposal per read)")
    ap.add_argument("--maxlen", type=int, default=0, help="XADD MAXLEN ~ on the decisions stream (0: no trim)")
    ap.add_argument("--max-seconds", type=float, default=3600.0, help="stop by itself after this long")
    args = ap.parse_args(argv)

    r = redis.Redis(host=args.host, port=args.port, decode_responses=True)
    gate = Gate(r, args.consumer, args.mode, args.read_count, args.maxlen)

    def stop(_signum: int, _frame: object) -> None:
        gate.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    started = time.monotonic()
    processed = gate.run(started + args.max_seconds)
    log("info", "stopped", processed=processed, last_seq=gate.seq, uptime_sec=f"{time.monotonic() - started:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
