"""bench/gen-day.py: a replayable day; the rollback guard trips on its downgrade storm and not on a normal day."""
import json
import os
import subprocess
import sys

# Not from conftest: in one pytest session three directories' conftest modules share that name.
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("HEATGATE_BIN", os.path.join(ROOT, ".build", "debug", "heatgate"))

GEN = os.path.join(ROOT, "bench", "gen-day.py")
GUARD = {"P26_MODE": "enforce", "P26_GUARD_ENABLED": "true", "P26_GUARD_WINDOW_SEC": "900",
         "P26_GUARD_MIN_FULL_CLOSES": "20", "P26_GUARD_MAX_DOWNGRADE_SHARE": "0.8", "HEATGATE_CONFIG": ""}


def day(tmp_path, seed, storm):
    path = tmp_path / f"day-{seed}-{storm}.jsonl"
    r = subprocess.run([sys.executable, GEN, "--seed", str(seed)] + (["--storm"] if storm else []),
                       capture_output=True, text=True, timeout=120, check=True)
    path.write_text(r.stdout)
    return path, r.stderr


def replay(path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("P26_", "HEAT_"))}
    env.update(GUARD)
    r = subprocess.run([BIN, "replay", str(path)], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines()]


def test_a_day_is_reproducible_and_shaped_like_a_day(tmp_path):
    a, _ = day(tmp_path, 3, False)
    b = subprocess.run([sys.executable, GEN, "--seed", "3"], capture_output=True, text=True, check=True).stdout
    assert a.read_text() == b
    lines = [json.loads(line) for line in a.read_text().splitlines()]
    kinds = {m["type"] for m in lines}
    assert kinds == {"portfolio", "position", "market", "proposal"}
    ats = [m["at"] for m in lines]
    assert ats == sorted(ats)
    assert ats[-1] - ats[0] >= 23.9 * 3600
    sigmas = sorted(m["sigma"] for m in lines if m["type"] == "market")
    # Three volatility regimes: calm sigmas and volatile ones differ by far more than their noise.
    assert sigmas[len(sigmas) // 20] * 4 < sigmas[-len(sigmas) // 20]


def test_the_guard_trips_on_the_storm_day_and_not_on_the_normal_day(tmp_path):
    for seed in (7, 8):
        normal, _ = day(tmp_path, seed, False)
        decided = replay(normal)
        assert len(decided) > 1000
        assert {d["mode"] for d in decided} == {"enforce"}, seed
        full = [d for d in decided if d["original_action"].startswith("FULL_CLOSE")]
        assert sum(d["downgraded"] for d in full) > 100, "the normal day does downgrade, just not in a storm"

        storm, note = day(tmp_path, seed, True)
        start = float(note.split()[2])
        decided = replay(storm)
        first_shadow = next(i for i, d in enumerate(decided) if d["mode"] == "shadow")
        # Enforced up to the trip, inside the storm's 45 minutes; shadow from the next proposal to the end.
        assert start < decided[first_shadow]["ts"] < start + 45 * 60
        assert all(d["mode"] == "enforce" for d in decided[:first_shadow])
        assert all(d["mode"] == "shadow" for d in decided[first_shadow:])
