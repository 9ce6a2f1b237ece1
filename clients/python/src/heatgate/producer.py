"""Send HeatGate its inputs (contract §3): proposals, positions, equity and market data, over ZeroMQ PUSH.

    from heatgate import Producer
    p = Producer("tcp://127.0.0.1:5556")                  # P26_INGEST_ENDPOINT
    p.send_equity(10000.0, ts=time.time())
    p.send_position("ETHUSDT", notional_usd=1800.0, sigma=0.15)
    p.send_market("ETHUSDT", sigma=0.15, price=3600.0)
    p.send_proposal({"symbol": "ETHUSDT", "harvest_action": "FULL_CLOSE_PROPOSED", "computed_at_utc": "..."})

Each message is one frame, one JSON object with its `type`. The queue is bounded: at most `queue_size`
messages wait in the socket (ZeroMQ's SNDHWM); a send that finds it full waits `send_timeout` seconds and
then raises `QueueFull`, so a producer never grows without bound while the gate is down or slow. With
`immediate=True` messages are queued only on a connection that is up (ZMQ_IMMEDIATE): while the gate is
unreachable every send raises `QueueFull` at once instead of filling the queue.

CURVE (the daemon's `P26_CURVE_SECRET_KEY` / `P26_CURVE_ALLOWED_CLIENTS`): pass the server's public key and
this client's key pair, all Z85 (40 characters); this client's public key must be in the gate's list.
A message is "sent" once ZeroMQ holds it; PUSH has no acknowledgement: a caller that must know a
proposal was decided watches the decision stream (see heatgate.redis_adapter) or the store.
"""
from __future__ import annotations

import json
import math
from typing import Any, Dict, Iterable, Mapping, Optional, Union

import zmq

Number = Union[int, float, str]


class QueueFull(Exception):
    """The bounded queue is full (or, with `immediate`, the gate is not connected): nothing was sent."""


def _number(name: str, v: Number) -> Number:
    """A finite number, or a numeric string passed as is (the gate reads both)."""
    if isinstance(v, bool):
        raise ValueError(f"{name}: expected a number")
    if isinstance(v, (int, float)):
        if not math.isfinite(v):
            raise ValueError(f"{name}: not a finite number")
        return v
    if isinstance(v, str):
        f = float(v)  # raises ValueError for a non-number
        if not math.isfinite(f):
            raise ValueError(f"{name}: not a finite number")
        return v
    raise ValueError(f"{name}: expected a number")


class Producer:
    def __init__(self, endpoint: str, *, server_key: Optional[str] = None, public_key: Optional[str] = None,
                 secret_key: Optional[str] = None, queue_size: int = 10_000, send_timeout: float = 0.0,
                 immediate: bool = False, linger: float = 2.0, context: Optional[zmq.Context] = None) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        if (server_key is None) != (public_key is None) or (public_key is None) != (secret_key is None):
            raise ValueError("CURVE needs server_key, public_key and secret_key together")
        self.endpoint = endpoint
        self.sent = 0
        self.full = 0
        self._ctx = context or zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.PUSH)
        self._sock.setsockopt(zmq.SNDHWM, queue_size)
        self._sock.setsockopt(zmq.LINGER, int(linger * 1000))
        self._sock.setsockopt(zmq.IMMEDIATE, 1 if immediate else 0)
        self._timeout_ms = int(send_timeout * 1000)
        if server_key is not None:
            self._sock.setsockopt(zmq.CURVE_SERVERKEY, server_key.encode())
            self._sock.setsockopt(zmq.CURVE_PUBLICKEY, str(public_key).encode())
            self._sock.setsockopt(zmq.CURVE_SECRETKEY, str(secret_key).encode())
        self._sock.connect(endpoint)

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> "Producer":
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def send(self, message: Union[Mapping[str, Any], bytes]) -> None:
        """Sends one message (a dict with its `type`, or the JSON bytes); raises QueueFull when it cannot."""
        frame = message if isinstance(message, bytes) else json.dumps(message, separators=(",", ":"),
                                                                       allow_nan=False).encode()
        if len(frame) > 64 * 1024:
            raise ValueError("frame over 64 KiB: the gate would refuse it")
        try:
            if self._timeout_ms > 0 and not self._sock.poll(self._timeout_ms, zmq.POLLOUT):
                raise zmq.Again()
            self._sock.send(frame, zmq.NOBLOCK)
        except zmq.Again:
            self.full += 1
            raise QueueFull(self.endpoint) from None
        self.sent += 1

    def send_proposal(self, fields: Mapping[str, Any], **extra: Any) -> None:
        """An exit proposal: every field passed through as given (symbol and harvest_action or action are
        required; no plan_id needed: the gate derives one, see heatgate.plan)."""
        msg: Dict[str, Any] = {"type": "proposal"}
        msg.update(fields)
        msg.update(extra)
        msg["type"] = "proposal"
        if not msg.get("symbol") or not (msg.get("harvest_action") or msg.get("action")):
            raise ValueError("a proposal needs symbol and harvest_action (or action)")
        self.send(msg)

    def send_position(self, symbol: str, notional_usd: Number, sigma: Optional[Number] = None,
                      ts: Optional[float] = None, **extra: Any) -> None:
        """One position: its notional in USD (0 closes it), optionally its sigma, and its time."""
        self.send(self._position(symbol, notional_usd, sigma, ts, extra, "position"))

    def send_positions(self, positions: Iterable[Mapping[str, Any]], ts: Optional[float] = None) -> None:
        """The whole book at once (replaces every position): dicts with symbol, notional_usd (or
        position_notional_usd) and optionally sigma."""
        book = []
        for p in positions:
            n = p.get("position_notional_usd", p.get("notional_usd"))
            if n is None:
                raise ValueError(f"{p.get('symbol')}: position_notional_usd missing")
            book.append(self._position(p["symbol"], n, p.get("sigma"), None, {}, None))
        msg: Dict[str, Any] = {"type": "positions", "positions": book}
        if ts is not None:
            msg["ts"] = _number("ts", ts)
        self.send(msg)

    def send_equity(self, equity_usd: Number, ts: Optional[float] = None, **extra: Any) -> None:
        """The portfolio's equity, with the time it was measured (absent: the gate's now)."""
        msg: Dict[str, Any] = {"type": "portfolio", **extra, "equity_usd": _number("equity_usd", equity_usd)}
        if ts is not None:
            msg["ts"] = _number("ts", ts)
        self.send(msg)

    def send_market(self, symbol: str, sigma: Optional[Number] = None, price: Optional[Number] = None,
                    ts: Optional[float] = None, **extra: Any) -> None:
        """Market data for a symbol: its sigma (used in the heat) and/or its price (used by `analyze`)."""
        if sigma is None and price is None:
            raise ValueError("a market message needs sigma or price")
        msg: Dict[str, Any] = {"type": "market", **extra, "symbol": symbol}
        if sigma is not None:
            msg["sigma"] = _number("sigma", sigma)
        if price is not None:
            msg["price"] = _number("price", price)
        if ts is not None:
            msg["ts"] = _number("ts", ts)
        self.send(msg)

    @staticmethod
    def _position(symbol: str, notional: Number, sigma: Optional[Number], ts: Optional[float],
                  extra: Mapping[str, Any], type_: Optional[str]) -> Dict[str, Any]:
        msg: Dict[str, Any] = {} if type_ is None else {"type": type_}
        msg.update(extra)
        msg["symbol"] = symbol
        msg["position_notional_usd"] = _number("position_notional_usd", notional)
        if sigma is not None:
            msg["sigma"] = _number("sigma", sigma)
        if ts is not None:
            msg["ts"] = _number("ts", ts)
        return msg
