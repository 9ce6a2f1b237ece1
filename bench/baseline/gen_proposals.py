#!/usr/bin/python3
"""Open-loop proposal generator (the `remote` half of a paired benchmark, wrk2 style).

Sends `--rate` proposals a second for `--duration` seconds to the proposals stream, starting at
`--start-ns` on CLOCK_MONOTONIC (time.monotonic_ns, system-wide on Linux, so a receiver in another
process reads the same clock). Message i is *intended* at start + i/rate; that time travels in the
message (`bench_t_intended_ns`), so a receiver measures latency from the intended send time and a
stall anywhere (gate, Redis, or this generator) shows up as latency instead of silently lowering
the rate (no coordinated omission).

The generator sleeps until the next message is due and never spins. When it wakes late it sends,
in one pipelined round trip, every message already due (at most --max-batch), so that its own
Python overhead does not throttle the offered rate; each message still carries its own intended
time. How late it sent is reported (`send_lag_*`), so a generator that could not keep up is visible.

Prints one JSON object on stdout: counts and lag in microseconds.

Usage (alone, against a gate on port 6379, starting now):
    /usr/bin/python3 gen_proposals.py --port 6379 --rate 1000 --duration 10
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import redis

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import proposal_fields, summarize_ns, symbols  # noqa: E402
from redis_gate import PROPOSALS_STREAM  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="open-loop proposal generator (intended-time stamps)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=6379)
    ap.add_argument("--rate", type=float, required=True, help="proposals per second")
    ap.add_argument("--duration", type=float, required=True, help="seconds of sending")
    ap.add_argument("--start-ns", type=int, default=0, help="CLOCK_MONOTONIC ns of message 0 (0: now + 0.2 s)")
    ap.add_argument("--run", default=f"r{os.getpid()}", help="run tag carried in every message")
    ap.add_argument("--symbols", type=int, default=10)
    ap.add_argument("--max-batch", type=int, default=256)
    ap.add_argument("--give-up-after", type=float, default=30.0,
                    help="stop sending if this many seconds behind schedule (bounded run)")
    args = ap.parse_args(argv)

    r = redis.Redis(host=args.host, port=args.port)
    r.ping()
    syms = symbols(args.symbols)
    count = int(round(args.rate * args.duration))
    start = args.start_ns or time.monotonic_ns() + 200_000_000
    period_ns = 1e9 / args.rate
    give_up_ns = int(args.give_up_after * 1e9)

    pipe = r.pipeline(transaction=False)
    lags: list[int] = []  # per batch: how late its first message went out
    batches = 0
    sent = 0
    gave_up = False
    i = 0
    while i < count:
        due = start + int(i * period_ns)
        now = time.monotonic_ns()
        if due > now:
            time.sleep((due - now) / 1e9)
            continue
        if now - due > give_up_ns:
            gave_up = True
            break
        k = 0
        while i < count and k < args.max_batch:
            due_i = start + int(i * period_ns)
            if due_i > now:
                break
            fields = proposal_fields(args.run, i, syms[i % len(syms)], due_i)
            fields["bench_t_sent_ns"] = str(time.monotonic_ns())
            pipe.xadd(PROPOSALS_STREAM, fields)
            i += 1
            k += 1
        pipe.execute()
        sent += k
        batches += 1
        lags.append(now - due)

    end = time.monotonic_ns()
    lags.sort()
    lag = summarize_ns(lags)
    out = {
        "run": args.run,
        "rate_per_s": args.rate,
        "duration_s": args.duration,
        "scheduled": count,
        "sent": sent,
        "gave_up": gave_up,
        "batches": batches,
        "mean_batch": round(sent / batches, 3) if batches else None,
        "send_lag_p50_us": lag["p50_us"],
        "send_lag_p99_us": lag["p99_us"],
        "send_lag_max_us": lag["max_us"],
        "achieved_rate_per_s": round(sent / ((end - start) / 1e9), 1) if end > start else None,
    }
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
