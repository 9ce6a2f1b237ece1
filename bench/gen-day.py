#!/usr/bin/env python3
"""Generate a replayable trading day for HeatGate: `heatgate replay` JSON lines, each with "at".

The model (all seeded, so a day is reproducible):

* **Market**: a geometric random walk per symbol, every 10 s, driven by one market-wide factor plus a
  symbol's own noise. Volatility follows a three-state Markov chain of regimes, CALM, NORMAL and VOLATILE
  (daily volatility 1.5 %, 7 %, 15 %, times the symbol's beta); a regime lasts about an hour on average.
  Each minute every symbol gets a `market` message with its price and its sigma (the regime's daily
  volatility with estimation noise): the heat input.
* **Positions**: a fixed quantity per symbol (four long, two short; gross about 5 x equity), marked to market: a `position` message with
  the signed notional every 5 minutes per symbol.
* **Equity**: the starting equity plus the book's P&L, a `portfolio` message every 30 s.
* **Proposals**: exit proposals of a Harvest-like producer. Full closes arrive at a rate that rises with
  volatility (0.3, 0.6, 3 per minute across the book): in a calm book they are few, in a volatile one
  many, and then the heat is mostly HOT so they pass. Partials and stop updates arrive besides
  (1 per minute). With `--storm`, a downgrade storm is injected at the first calm hour after 06:00: for
  45 minutes the producer fires a full close every 30 s while the book is COLD, so every one of them is
  downgraded: the rollback guard (`P26_GUARD_*`) must trip on it and on nothing else.

With the default thresholds (HEAT_MIN 0.25, HEAT_MAX 0.65) CALM books sit in COLD, NORMAL ones in WARM and
VOLATILE ones in HOT.

Usage:

    python3 bench/gen-day.py --seed 7 > day.jsonl
    python3 bench/gen-day.py --seed 7 --storm > storm.jsonl
    P26_MODE=enforce P26_GUARD_ENABLED=true heatgate replay storm.jsonl | grep -c '"mode":"shadow"'

Options: --seed, --storm, --start (epoch seconds, default 2026-12-01T00:00:00Z), --hours (default 24),
--equity (default 100000). Only the Python standard library is used.
"""

import argparse
import json
import math
import random
import sys

STEP = 10.0
# name, price, beta, quantity sign
SYMBOLS = [
    ("BTCUSDT", 60000.0, 1.0, 1),
    ("ETHUSDT", 3000.0, 1.2, 1),
    ("SOLUSDT", 150.0, 1.6, -1),
    ("BNBUSDT", 550.0, 0.9, 1),
    ("XRPUSDT", 0.6, 1.4, -1),
    ("ADAUSDT", 0.45, 1.5, 1),
]
REGIMES = ["CALM", "NORMAL", "VOLATILE"]
DAILY_VOL = {"CALM": 0.015, "NORMAL": 0.07, "VOLATILE": 0.15}
FULL_CLOSES_PER_MIN = {"CALM": 0.3, "NORMAL": 0.6, "VOLATILE": 3.0}
OTHERS_PER_MIN = 1.0
# A regime lasts about an hour: the chance of leaving it in one step.
LEAVE = STEP / 3600.0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--storm", action="store_true", help="inject a 45-minute downgrade storm")
    ap.add_argument("--start", type=float, default=1764547200.0)
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--equity", type=float, default=100000.0)
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    out = sys.stdout

    def emit(at, msg):
        msg["at"] = round(at, 3)
        out.write(json.dumps(msg, separators=(",", ":")) + "\n")

    prices = {s: p for s, p, _, _ in SYMBOLS}
    # Quantities so that the gross notional is about 5 x equity, split evenly.
    qty = {s: sign * (args.equity * 5 / len(SYMBOLS)) / p for s, p, _, sign in SYMBOLS}
    entry = dict(prices)
    regime = "NORMAL"
    steps = int(args.hours * 3600 / STEP)
    storm_from = None
    plan = 0
    t0 = args.start

    def sigma(sym_beta):
        return max(0.001, DAILY_VOL[regime] * sym_beta * math.exp(rng.gauss(0, 0.15)))

    def equity():
        return args.equity + sum(qty[s] * (prices[s] - entry[s]) for s, _, _, _ in SYMBOLS)

    def propose(at, action):
        nonlocal plan
        plan += 1
        sym = rng.choice(SYMBOLS)[0]
        emit(at, {"type": "proposal", "symbol": sym, "harvest_action": action, "plan_id": f"day-{plan}", "ts": round(at, 3)})

    # The opening book: equity, every position, a first price and sigma.
    emit(t0, {"type": "portfolio", "equity_usd": round(equity(), 2), "ts": t0})
    for s, _, beta, _ in SYMBOLS:
        emit(t0, {"type": "market", "symbol": s, "price": prices[s], "sigma": round(sigma(beta), 5), "ts": t0})
        emit(t0, {"type": "position", "symbol": s, "position_notional_usd": round(qty[s] * prices[s], 2), "ts": t0})

    for k in range(1, steps + 1):
        at = t0 + k * STEP
        if rng.random() < LEAVE:
            regime = rng.choice([r for r in REGIMES if r != regime])
        if args.storm and storm_from is None and regime == "CALM" and at - t0 >= 6 * 3600:
            storm_from = at
        storming = storm_from is not None and at < storm_from + 45 * 60
        vol = DAILY_VOL[regime] * math.sqrt(STEP / 86400.0)
        common = rng.gauss(0, 1)
        for s, _, beta, _ in SYMBOLS:
            z = 0.7 * common + math.sqrt(1 - 0.49) * rng.gauss(0, 1)
            prices[s] *= math.exp(beta * vol * z - 0.5 * (beta * vol) ** 2)
        if k % 6 == 0:
            for s, _, beta, _ in SYMBOLS:
                emit(at, {"type": "market", "symbol": s, "price": round(prices[s], 6), "sigma": round(sigma(beta), 5), "ts": round(at, 3)})
        if k % 3 == 0:
            emit(at, {"type": "portfolio", "equity_usd": round(equity(), 2), "ts": round(at, 3)})
        if k % 30 == 0:
            for s, _, _, _ in SYMBOLS:
                emit(at, {"type": "position", "symbol": s, "position_notional_usd": round(qty[s] * prices[s], 2), "ts": round(at, 3)})
        per_step = STEP / 60.0
        if rng.random() < FULL_CLOSES_PER_MIN[regime] * per_step:
            propose(at + 1, "FULL_CLOSE_PROPOSED")
        if rng.random() < OTHERS_PER_MIN * per_step:
            propose(at + 2, rng.choice(["PARTIAL_50", "PARTIAL_25", "UPDATE_SL", "PARTIAL_75"]))
        if storming and k % 3 == 0:
            propose(at + 3, "FULL_CLOSE_PROPOSED")
    if storm_from is not None:
        sys.stderr.write(f"storm from {storm_from:.0f} for 45 min\n")
    elif args.storm:
        sys.stderr.write("no calm hour after 06:00: no storm injected (try another --seed)\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
