#!/usr/bin/python3
"""Decision receiver (the `local` half of a paired benchmark): latency from the intended send time.

Blocking XREAD on the decisions stream from `--from-id`. For every decision of run `--run` it takes
the receive time (CLOCK_MONOTONIC, right after XREAD returns) minus the proposal's
`bench_t_intended_ns`, written by gen_proposals.py. It stops when all `--expect` decisions have
arrived or at `--deadline-ns` (CLOCK_MONOTONIC), whichever is first; what has not arrived by then is
lost. Latencies go to `--samples` as native int64 nanoseconds (array('q')), and those measured from
the actual send time (`bench_t_sent_ns`, secondary: it hides the generator's lateness) to
`--samples`.sent; a JSON summary with units in the keys goes to stdout.

Usage (alone):
    /usr/bin/python3 recv_decisions.py --port 6379 --run r123 --expect 10000 --timeout 15
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from array import array

import redis

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import summarize_ns  # noqa: E402
from redis_gate import DECISIONS_STREAM  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="decision receiver: latency from intended send time")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=6379)
    ap.add_argument("--run", required=True)
    ap.add_argument("--expect", type=int, required=True)
    ap.add_argument("--from-id", default="$", help="stream id to read after ($: only new entries)")
    ap.add_argument("--deadline-ns", type=int, default=0, help="CLOCK_MONOTONIC ns to give up at")
    ap.add_argument("--timeout", type=float, default=60.0, help="used when --deadline-ns is 0")
    ap.add_argument("--samples", default="", help="file for the raw int64 ns latencies")
    args = ap.parse_args(argv)

    r = redis.Redis(host=args.host, port=args.port)
    r.ping()
    deadline = args.deadline_ns or time.monotonic_ns() + int(args.timeout * 1e9)
    run = args.run
    seen = bytearray(args.expect)
    lat = array("q")
    lat_sent = array("q")  # from the actual send: excludes the generator's own lateness
    duplicates = foreign = 0
    last_id = args.from_id
    if last_id == "$":
        # Resolve '$' once, so nothing is missed between two reads.
        info = r.xinfo_stream(DECISIONS_STREAM) if r.exists(DECISIONS_STREAM) else None
        last_id = info["last-generated-id"] if info else "0-0"
    first_recv = last_recv = 0

    while len(lat) < args.expect:
        now = time.monotonic_ns()
        if now >= deadline:
            break
        block_ms = max(1, min(100, (deadline - now) // 1_000_000))
        resp = r.xread({DECISIONS_STREAM: last_id}, count=1000, block=block_ms)
        t_recv = time.monotonic_ns()
        if not resp:
            continue
        for _stream, entries in resp:
            for entry_id, fields in entries:
                last_id = entry_id
                proposal = json.loads(fields[b"decision"])["proposal"]
                if proposal.get("bench_run") != run:
                    foreign += 1
                    continue
                i = int(proposal["bench_i"])
                if i >= args.expect or seen[i]:
                    duplicates += 1
                    continue
                seen[i] = 1
                lat.append(t_recv - int(proposal["bench_t_intended_ns"]))
                sent = proposal.get("bench_t_sent_ns")
                if sent is not None:
                    lat_sent.append(t_recv - int(sent))
        if not first_recv:
            first_recv = t_recv
        last_recv = t_recv

    if args.samples:
        with open(args.samples, "wb") as f:
            lat.tofile(f)
        with open(args.samples + ".sent", "wb") as f:
            lat_sent.tofile(f)
    s = summarize_ns(sorted(lat))
    s_sent = {f"from_send_{k}": v for k, v in summarize_ns(sorted(lat_sent)).items()}
    out = {
        "run": run,
        "expected": args.expect,
        "received": len(lat),
        "lost": args.expect - len(lat),
        "duplicates": duplicates,
        "foreign": foreign,
        "receive_span_s": round((last_recv - first_recv) / 1e9, 3) if first_recv else None,
        **s,
        **s_sent,
    }
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
