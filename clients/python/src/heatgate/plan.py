"""HeatGate's plan identity in Python: the plan id the gate derives for a proposal that carries none.

The Apply Layer looks a decision up by symbol, plan id and action (contract §5). The stack's producers send no
`plan_id`, so the gate derives one; this module computes the same id, byte for byte as docs/apply-layer.md
("Deriving the plan id") specifies and as the gate's Swift code (`PlanIdentity`) does:

    from heatgate.plan import proposal_key
    symbol, plan_id, action = proposal_key(fields)   # fields: the proposal as sent (dict, or its JSON text)

Only the standard library is used.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any, Dict, Iterator, Tuple, Union

ProposalInput = Union[Dict[str, Any], str, bytes]

FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
MASK = (1 << 64) - 1
US, RS = 0x1F, 0x1E
TIME_FIELDS = ("ts_epoch", "timestamp", "last_update_epoch", "computed_at_utc")
NOT_CONTENT = {"type", "at", "plan_id", "trace_id", "symbol", "harvest_action", "action"}
SYMBOL = re.compile(r"[A-Za-z0-9._:/-]{1,32}\Z")
NUMBER = re.compile(r" *[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)? *\Z")
WS = re.compile(r"[ \t\n\r]*")
SURROGATE = re.compile("[\ud800-\udfff]")


class Rejected(ValueError):
    """The gate refuses this proposal (so it holds no decision for it): execute it as it stands."""


def fnv1a64(data: bytes, h: int = FNV_OFFSET) -> int:
    for c in data:
        h = ((h ^ c) * FNV_PRIME) & MASK
    return h


def mix64(x: int) -> int:
    """SplitMix64's finaliser."""
    z = (x + 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def utf8(s: str) -> bytes:
    return SURROGATE.sub("\ufffd", s).encode("utf-8")


def absent(v: Any) -> bool:
    """contract §3: an optional field that is null, "" or "None" counts as absent."""
    return v is None or v == "" or v == "None"


def normalise_action(token: str) -> bytes:
    """Blanks trimmed, one trailing _PROPOSED (any case) cut, ASCII letters upper-cased."""
    b = token.encode("utf-8").strip(b" \t\r\n")
    if len(b) > 9 and b[-9:].upper() == b"_PROPOSED":
        b = b[:-9]
    return bytes(c - 32 if 97 <= c <= 122 else c for c in b)


def same_action(a: str, b: str) -> bool:
    return normalise_action(a) == normalise_action(b)


def members(text: str) -> Iterator[Tuple[str, Any, str]]:
    """(key, value, literal text) of each top-level member of a JSON object, in order."""
    decoder = json.JSONDecoder()
    i = WS.match(text, 0).end()
    if text[i : i + 1] != "{":
        raise Rejected("not a JSON object")
    i = WS.match(text, i + 1).end()
    if text[i : i + 1] == "}":
        return
    while True:
        key, i = json.decoder.scanstring(text, i + 1)
        i = WS.match(text, i).end()
        i = WS.match(text, i + 1).end()  # past ':'
        value, end = decoder.raw_decode(text, i)
        yield key, value, text[i:end]
        i = WS.match(text, end).end()
        if text[i] == "}":
            return
        i = WS.match(text, i + 1).end()  # past ','


def epoch(v: Any, field: str) -> float:
    """Epoch seconds from a number or numeric string; milliseconds when above 1e12."""
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        raise Rejected(f"{field}: expected epoch seconds or milliseconds")
    if isinstance(v, str):
        if not NUMBER.match(v):
            raise Rejected(f"{field}: expected epoch seconds or milliseconds")
        v = float(v)
    d = float(v)
    if not math.isfinite(d) or d < 0:
        raise Rejected(f"{field}: not a valid time")
    return d / 1000 if d > 1e12 else d


def iso8601(s: str) -> float:
    """ISO-8601 UTC, with the gate's own arithmetic (so the milliseconds round alike)."""
    i, n = 0, len(s)

    def digits(k: int) -> int:
        nonlocal i
        part = s[i : i + k]
        if len(part) != k or not all("0" <= c <= "9" for c in part):
            raise Rejected("computed_at_utc: expected ISO-8601 UTC")
        i += k
        return int(part)

    def expect(c: str) -> bool:
        nonlocal i
        if s[i : i + 1] == c:
            i += 1
            return True
        return False

    year = digits(4)
    if not expect("-"):
        raise Rejected("computed_at_utc")
    month = digits(2)
    if not expect("-"):
        raise Rejected("computed_at_utc")
    day = digits(2)
    if s[i : i + 1] not in ("T", "t", " "):
        raise Rejected("computed_at_utc")
    i += 1
    hour = digits(2)
    if not expect(":"):
        raise Rejected("computed_at_utc")
    minute = digits(2)
    second = 0.0
    if expect(":"):
        second = float(digits(2))
        if s[i : i + 1] in (".", ","):
            i += 1
            scale, any_digit = 0.1, False
            while i < n and "0" <= s[i] <= "9":
                second += (ord(s[i]) - 48) * scale
                scale /= 10
                i += 1
                any_digit = True
            if not any_digit:
                raise Rejected("computed_at_utc")
    offset = 0
    if i < n:
        c = s[i]
        if c in ("Z", "z"):
            i += 1
        elif c in ("+", "-"):
            i += 1
            oh = digits(2)
            expect(":")
            om = digits(2)
            offset = (oh * 3600 + om * 60) * (-1 if c == "-" else 1)
    if i != n or not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 61):
        raise Rejected("computed_at_utc: expected ISO-8601 UTC")
    y = year - 1 if month <= 2 else year
    era = int((y if y >= 0 else y - 399) / 400)
    yoe = y - era * 400
    mp = (month + 9) % 12
    doy = (153 * mp + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    days = era * 146097 + doe - 719468
    return float(days * 86400 + hour * 3600 + minute * 60 - offset) + second


def milliseconds(t: float) -> int:
    """The time in whole milliseconds, rounded half away from zero (as Swift's `rounded()`)."""
    x = t * 1000
    fl = math.floor(x)
    return int(fl) + (1 if x - fl >= 0.5 else 0)


def proposal_key(proposal: ProposalInput) -> Tuple[str, str, str]:
    """(symbol, plan_id, action) the gate uses for a proposal, as the gate reads them.

    `proposal`: the proposal as the producer sent it, a dict or its JSON text (str or bytes). Raises
    `Rejected` when the gate would refuse it.
    """
    if isinstance(proposal, bytes):
        proposal = proposal.decode("utf-8")
    text = proposal if isinstance(proposal, str) else json.dumps(proposal, ensure_ascii=False)
    pairs = list(members(text))
    fields = {k: v for k, v, _ in pairs if not (absent(v) and k not in ("type", "symbol"))}
    symbol = fields.get("symbol")
    if not isinstance(symbol, str) or not SYMBOL.match(symbol):
        raise Rejected("symbol: expected 1-32 of [A-Za-z0-9._:/-]")
    action = fields.get("harvest_action", fields.get("action"))
    if not isinstance(action, str):
        raise Rejected("harvest_action: missing or not a string")
    time = None
    for name in TIME_FIELDS:  # the first present; never `ts`, which the producer uses for trend strength
        if name in fields:
            v = fields[name]
            if name != "computed_at_utc":
                time = epoch(v, name)
            elif isinstance(v, str):
                time = iso8601(v)
            else:
                raise Rejected("computed_at_utc: expected ISO-8601 UTC")
            break
    if "plan_id" in fields:
        plan = fields["plan_id"]
        if isinstance(plan, bool) or not isinstance(plan, (str, int, float)):
            raise Rejected("plan_id: expected a string")
        # A numeric plan_id is its literal text, as the gate echoes it.
        plan = plan if isinstance(plan, str) else next(raw for k, _, raw in reversed(pairs) if k == "plan_id")
        if len(utf8(plan)) > 128:
            raise Rejected("plan_id: over 128 bytes")
        return symbol, plan, action
    head = utf8(symbol) + bytes([US]) + normalise_action(action) + bytes([US])
    if time is not None:
        h = fnv1a64(head + str(milliseconds(time)).encode())
    else:
        content = sorted(
            ((utf8(k), utf8(v) if isinstance(v, str) else utf8(raw)) for k, v, raw in pairs
             if k not in NOT_CONTENT and not absent(v)),
            key=lambda kv: kv[0],
        )
        body = b"".join(bytes([US]) + k + bytes([RS]) + v for k, v in content)
        h = fnv1a64(head + b"*" + body)
    return symbol, "hg-%016x" % mix64(h), action


def plan_id(proposal: ProposalInput) -> str:
    """The plan id the gate uses for `proposal` (its own, or the derived one)."""
    return proposal_key(proposal)[1]
