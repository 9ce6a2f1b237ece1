#!/usr/bin/env python3
"""Checks `heatgate replay replay.jsonl` output (stdin): exactly one decision, per SPEC §2 and §4.

Equity 100 000 and one position of 5 000 at sigma 0.02 give heat 0.001, COLD: the full close is
calibrated to PARTIAL_25 and, in the default shadow mode, executed as proposed.
"""
import json
import sys

lines = [line for line in sys.stdin.read().splitlines() if line.strip()]
if len(lines) != 1:
    sys.exit(f"want 1 decision line, got {len(lines)}: {lines!r}")
decision = json.loads(lines[0])
want = {
    "seq": 1,
    "plan_id": "deb-test-1",
    "symbol": "BTCUSDT",
    "original_action": "FULL_CLOSE_PROPOSED",
    "calibrated_action": "PARTIAL_25",
    "action": "FULL_CLOSE_PROPOSED",
    "mode": "shadow",
    "downgraded": True,
    "reason": "portfolio_heat_cold",
    "heat_bucket": "COLD",
}
wrong = {k: (decision.get(k), v) for k, v in want.items() if decision.get(k) != v}
if wrong:
    sys.exit("fields (got, want): " + json.dumps(wrong))
if abs(float(decision.get("heat_value", -1)) - 0.001) > 1e-9:
    sys.exit(f"heat_value {decision.get('heat_value')!r}, want 0.001")
