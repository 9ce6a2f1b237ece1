"""Shared pieces of the baseline benchmark: the proposal shape, percentiles, .hgrm output.

Kept free of Redis so that each program imports only what it needs.
"""

from __future__ import annotations

import math
import time

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "ADAUSDT", "DOGEUSDT", "AVAXUSDT",
           "LINKUSDT", "DOTUSDT", "TRXUSDT", "LTCUSDT", "NEARUSDT", "ATOMUSDT", "APTUSDT", "ARBUSDT")


def symbols(n: int) -> list[str]:
    """n symbols: the common ones first, then synthetic ones."""
    out = list(SYMBOLS[:n])
    out += [f"SYM{i:04d}USDT" for i in range(len(out), n)]
    return out


def proposal_fields(run: str, i: int, symbol: str, intended_ns: int) -> dict:
    """One exit proposal as the Harvest producer wrote it to its stream (string values, hash style).

    `bench_*` fields carry the benchmark's bookkeeping through the gate, which passes every
    proposal field through into the decision's `proposal` object, as SPEC section 3 requires.
    """
    return {
        "symbol": symbol,
        "harvest_action": "FULL_CLOSE_PROPOSED",
        "plan_id": f"{run}-{i}",
        "trace_id": f"{i:016x}",
        "ts_epoch": f"{time.time():.3f}",
        "R_net": "2.37",
        "ts": "0.62",
        "mark_price": "65912.25",
        "bench_run": run,
        "bench_i": str(i),
        "bench_t_intended_ns": str(intended_ns),
    }


def percentile(sorted_values, pct: float):
    """Nearest-rank percentile of an ascending sequence (pct in 0..100)."""
    n = len(sorted_values)
    if n == 0:
        return None
    if pct <= 0:
        return sorted_values[0]
    rank = math.ceil(pct / 100.0 * n)
    return sorted_values[min(max(rank, 1), n) - 1]


def summarize_ns(sorted_ns) -> dict:
    """The figures every latency result carries, in microseconds."""
    if not sorted_ns:
        return {"p50_us": None, "p90_us": None, "p99_us": None, "p99_9_us": None, "max_us": None,
                "mean_us": None, "min_us": None}
    us = lambda v: round(v / 1000.0, 3)  # noqa: E731
    return {
        "min_us": us(sorted_ns[0]),
        "p50_us": us(percentile(sorted_ns, 50)),
        "p90_us": us(percentile(sorted_ns, 90)),
        "p99_us": us(percentile(sorted_ns, 99)),
        "p99_9_us": us(percentile(sorted_ns, 99.9)),
        "max_us": us(sorted_ns[-1]),
        "mean_us": us(sum(sorted_ns) / len(sorted_ns)),
    }


def write_hgrm(path: str, sorted_ns, ticks_per_half_distance: int = 5) -> str:
    """Percentile distribution in HdrHistogram's text format, values in microseconds.

    Uses the `hdrh` package when it is installed (the reference implementation, 3 significant
    digits); otherwise writes the same columns (Value, Percentile, TotalCount, 1/(1-Percentile)) from
    the exact samples, with HdrHistogram's percentile-iteration schedule. Returns which writer ran.
    """
    try:
        from hdrh.histogram import HdrHistogram  # type: ignore
    except ImportError:
        HdrHistogram = None

    if HdrHistogram is not None and sorted_ns:
        h = HdrHistogram(1, max(int(sorted_ns[-1]) * 2, 3_600_000_000_000), 3)
        for v in sorted_ns:
            h.record_value(max(int(v), 1))
        with open(path, "wb") as f:
            h.output_percentile_distribution(f, 1000, ticks_per_half_distance)
        return "hdrh"

    n = len(sorted_ns)
    lines = [f"{'Value':>12} {'Percentile':>14} {'TotalCount':>10} {'1/(1-Percentile)':>14}", ""]
    if n:
        pct = 0.0
        while True:
            rank = max(1, min(n, math.ceil(pct / 100.0 * n)))
            value = sorted_ns[rank - 1] / 1000.0
            if rank >= n:
                lines.append(f"{sorted_ns[-1] / 1000.0:12.3f} {1.0:1.12f} {n:10d}")
                break
            lines.append(f"{value:12.3f} {pct / 100.0:1.12f} {rank:10d} {1.0 / (1.0 - pct / 100.0):14.2f}")
            # HdrHistogram's PercentileIterator: ticks halve the remaining distance to 100 %.
            half_distance = 2 ** (int(math.log2(100.0 / (100.0 - pct))) + 1)
            pct += 100.0 / (ticks_per_half_distance * half_distance)
            if 100.0 - pct < 100.0 / n / 2:
                pct = 100.0
        mean = sum(sorted_ns) / n / 1000.0
        std = math.sqrt(sum((v / 1000.0 - mean) ** 2 for v in sorted_ns) / n)
        lines.append(f"#[Mean    = {mean:12.3f}, StdDeviation   = {std:12.3f}]")
        lines.append(f"#[Max     = {sorted_ns[-1] / 1000.0:12.3f}, Total count    = {n:12d}]")
        lines.append("#[Values in microseconds; exact samples, no HdrHistogram buckets]")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return "builtin"
