#!/usr/bin/python3
"""Baseline benchmark: the Redis + Python heat gate, measured for SPEC section 10 (P4, P5, P6).

Starts its own redis-server on 127.0.0.1 (free port, no persistence, temporary directory) and always
stops it; seeds the portfolio state; runs redis_gate.py as a subprocess and drives it with
gen_proposals.py (open loop) and recv_decisions.py (latency from the intended send time).

    P4  open loop at fixed rates (default 1000/s and 10000/s, --duration s each)
    P5  highest rate held with p99 <= 2 ms and no loss (rate ladder, then bisection)
    P6  Redis used_memory for N decisions (~600 B JSON each) plus the calibrated hashes

Writes one JSON file (--out) with every figure, .hgrm percentile distributions beside it, and a
short table on stdout. See README.md in this directory.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from array import array

import redis
from redis.utils import HIREDIS_AVAILABLE

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import redis_gate  # noqa: E402
from benchlib import proposal_fields, summarize_ns, symbols, write_hgrm  # noqa: E402
from redis_gate import (  # noqa: E402
    CALIBRATED_PREFIX, CALIBRATED_TTL_SEC, DECISIONS_STREAM, POSITIONS_STREAM, PROPOSALS_STREAM,
    STATE_HASH,
)

PY = sys.executable or "/usr/bin/python3"
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
WARMUP = 200
BENCH_KEYS = ("bench_run", "bench_i", "bench_t_intended_ns")
START_DELAY_NS = 700_000_000  # time for the generator and receiver processes to be up


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes

class Children:
    """Every process this harness started, so that each can be stopped by its own pid."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(self, argv: list[str], **kw) -> subprocess.Popen:
        p = subprocess.Popen(argv, **kw)
        self.procs.append(p)
        return p

    @staticmethod
    def stop(p: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 5.0) -> None:
        if p.poll() is not None:
            return
        try:
            p.send_signal(sig)
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)

    def stop_all(self) -> None:
        for p in reversed(self.procs):
            self.stop(p)
        self.procs.clear()


CHILDREN = Children()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A private redis-server on loopback: no RDB snapshots, no AOF, data in a temporary dir."""

    def __init__(self, binary: str, workdir: str, name: str) -> None:
        self.binary = binary
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.proc: subprocess.Popen | None = None
        self.port = 0

    def __enter__(self) -> "RedisServer":
        for _attempt in range(5):
            self.port = free_port()
            argv = [self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
                    "--appendonly", "no", "--dir", self.dir, "--daemonize", "no",
                    "--logfile", os.path.join(self.dir, "redis.log"), "--protected-mode", "yes"]
            self.proc = CHILDREN.start(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    if redis.Redis(host="127.0.0.1", port=self.port).ping():
                        return self
                except redis.ConnectionError:
                    time.sleep(0.05)
            CHILDREN.stop(self.proc)  # port taken in between, or slow start: try another port
        raise RuntimeError(f"redis-server did not start; see {self.dir}/redis.log")

    def client(self, **kw) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, **kw)

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            try:
                self.client().shutdown(nosave=True)
            except redis.RedisError:
                pass  # shutdown closes the connection by design
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                CHILDREN.stop(self.proc)


class GateProcess:
    """redis_gate.py as a subprocess, ready once it printed its `ready` line."""

    def __init__(self, port: int, logdir: str, read_count: int) -> None:
        self.port = port
        self.logpath = os.path.join(logdir, "gate.log")
        self.read_count = read_count
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "GateProcess":
        argv = [PY, os.path.join(HERE, "redis_gate.py"), "--port", str(self.port),
                "--read-count", str(self.read_count), "--max-seconds", "900"]
        self.proc = CHILDREN.start(argv, stdout=subprocess.PIPE, stderr=open(self.logpath, "ab"))
        ready, _, _ = select.select([self.proc.stdout], [], [], 15)
        line = self.proc.stdout.readline().decode() if ready else ""
        if not line.startswith("ready"):
            CHILDREN.stop(self.proc)
            raise RuntimeError(f"gate did not become ready; see {self.logpath}")
        return self

    def cpu_seconds(self) -> float | None:
        try:
            with open(f"/proc/{self.proc.pid}/stat") as f:
                parts = f.read().rsplit(")", 1)[1].split()
            return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return None

    def __exit__(self, *exc) -> None:
        CHILDREN.stop(self.proc)


def others_cpu_ticks() -> int:
    """CPU ticks used so far by every user-space process that is not this harness or its children.

    Sums utime+stime+cutime+cstime from /proc/<pid>/stat: a process that exits moves its time into
    its parent's cutime, so the difference of two sums counts short-lived compilers too. Per-process
    times come from the scheduler's exact runtime; /proc/stat's machine totals are tick-sampled and,
    with processes that run in short bursts between sleeps (all of ours), badly off.
    """
    me = os.getpid()
    total = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        pid, ppid = int(name), int(rest[1])
        if pid == me or ppid == me or pid == 2 or ppid == 2:  # ours, or a kernel thread
            continue
        total += int(rest[11]) + int(rest[12]) + int(rest[13]) + int(rest[14])
    return total


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def wait_for_quiet(max_wait_s: float, busy_limit_pct: float = 25.0) -> tuple[float, float]:
    """Wait (bounded) until the machine's CPU is mostly idle, measured over 1 s windows.

    Other work on a 2-core machine (a compiler, a test run) turns straight into latency here; this
    does not prevent it, it only avoids starting a step in the middle of it. Returns
    (busy percent of the last window, seconds waited).
    """
    t0 = time.monotonic()
    capacity = os.sysconf("SC_CLK_TCK") * (os.cpu_count() or 1)
    while True:
        a, ta = others_cpu_ticks(), time.monotonic()
        time.sleep(1.0)
        b, tb = others_cpu_ticks(), time.monotonic()
        busy = 100.0 * max(0, b - a) / (capacity * (tb - ta))
        waited = time.monotonic() - t0
        if busy <= busy_limit_pct or waited >= max_wait_s:
            return round(busy, 1), round(waited, 1)


def redis_cpu_seconds(r: redis.Redis) -> float:
    info = r.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


# ---------------------------------------------------------------- state

def seed_state(r: redis.Redis, nsyms: int, nsnapshots: int) -> dict:
    """Equity hash and the last `nsnapshots` position snapshots over `nsyms` symbols (a COLD book)."""
    now = time.time()
    r.delete(STATE_HASH, POSITIONS_STREAM)
    r.hset(STATE_HASH, mapping={"equity_usd": "250000.0", "ts": f"{now:.6f}", "source": "portfolio_state",
                                 "margin_used_usd": "41250.0", "unrealized_pnl_usd": "1834.5"})
    syms = symbols(nsyms)
    for k in range(nsnapshots):
        sym = syms[k % nsyms]
        notional = 8000.0 + 500.0 * (k % 7) - (0.0 if k % 3 else 1500.0)
        r.xadd(POSITIONS_STREAM, {"symbol": sym, "position_notional_usd": f"{notional:.2f}",
                                  "sigma": f"{0.012 + 0.001 * (k % 5):.4f}", "side": "LONG",
                                  "ts": f"{now - (nsnapshots - k) * 0.5:.6f}"})
    return {"symbols": nsyms, "position_snapshots": nsnapshots, "equity_usd": 250000.0}


def reset_streams(r: redis.Redis) -> None:
    """Fresh proposals and decisions streams (and calibrated hashes) for one measured step."""
    keys = [PROPOSALS_STREAM, DECISIONS_STREAM] + list(r.scan_iter(CALIBRATED_PREFIX + "*", count=1000))
    r.delete(*keys)


def warm_up(r: redis.Redis, nsyms: int) -> None:
    syms = symbols(nsyms)
    pipe = r.pipeline(transaction=False)
    now = time.monotonic_ns()
    for i in range(WARMUP):
        pipe.xadd(PROPOSALS_STREAM, proposal_fields("warmup", i, syms[i % nsyms], now))
    pipe.execute()
    deadline = time.monotonic() + 20
    while r.xlen(DECISIONS_STREAM) < WARMUP:
        if time.monotonic() > deadline:
            raise RuntimeError("gate did not decide the warm-up proposals within 20 s")
        time.sleep(0.02)


# ---------------------------------------------------------------- one open-loop step

def open_loop_step(srv: RedisServer, args: argparse.Namespace, label: str, rate: float, duration: float,
                   workdir: str) -> dict:
    r = srv.client()
    reset_streams(r)
    busy_before, waited = wait_for_quiet(args.wait_quiet) if args.wait_quiet > 0 else (None, 0.0)
    if busy_before is not None and busy_before > 25.0:
        log(f"  note: machine {busy_before}% busy before this step (other processes): expect noisy tails")
    run = f"{label}-{int(rate)}"
    count = int(round(rate * duration))
    with GateProcess(srv.port, workdir, args.read_count) as gate:
        warm_up(r, args.symbols)
        from_id = r.xinfo_stream(DECISIONS_STREAM)["last-generated-id"]
        if isinstance(from_id, bytes):
            from_id = from_id.decode()
        cpu_gate0, cpu_redis0 = gate.cpu_seconds(), redis_cpu_seconds(r)
        others0, wall0 = others_cpu_ticks(), time.monotonic()
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        start_ns = time.monotonic_ns() + START_DELAY_NS
        deadline_ns = start_ns + int(duration * 1e9) + int(args.drain_timeout * 1e9)
        samples = os.path.join(workdir, f"{run}.lat")
        recv = CHILDREN.start(
            [PY, os.path.join(HERE, "recv_decisions.py"), "--port", str(srv.port), "--run", run,
             "--expect", str(count), "--from-id", from_id, "--deadline-ns", str(deadline_ns),
             "--samples", samples],
            stdout=subprocess.PIPE, stderr=open(os.path.join(workdir, "recv.log"), "ab"))
        gen = CHILDREN.start(
            [PY, os.path.join(HERE, "gen_proposals.py"), "--port", str(srv.port), "--rate", str(rate),
             "--duration", str(duration), "--start-ns", str(start_ns), "--run", run,
             "--symbols", str(args.symbols), "--give-up-after", str(args.drain_timeout + 10)],
            stdout=subprocess.PIPE, stderr=open(os.path.join(workdir, "gen.log"), "ab"))
        budget = (deadline_ns - time.monotonic_ns()) / 1e9 + 30
        gen_out, _ = gen.communicate(timeout=budget)
        recv_out, _ = recv.communicate(timeout=budget)
        cpu_gate1, cpu_redis1 = gate.cpu_seconds(), redis_cpu_seconds(r)
        others1, wall1 = others_cpu_ticks(), time.monotonic()
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    # The gate is stopped: what it decided is final.
    decided = max(0, r.xlen(DECISIONS_STREAM) - WARMUP)
    if gen.returncode != 0 or recv.returncode != 0:
        raise RuntimeError(f"generator/receiver failed (rc {gen.returncode}/{recv.returncode}); logs in {workdir}")
    g = json.loads(gen_out)
    rc = json.loads(recv_out)
    lat = array("q")
    with open(samples, "rb") as f:
        lat.frombytes(f.read())
    lat = sorted(lat)
    s = summarize_ns(lat)
    wall = duration + args.drain_timeout
    gen_recv_cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    # CPU of everything that is not this benchmark (a compiler in another work tree, say), as a
    # percentage of the whole machine over the step.
    other_cpu_s = max(0, others1 - others0) / os.sysconf("SC_CLK_TCK")
    other_pct = 100.0 * other_cpu_s / ((wall1 - wall0) * (os.cpu_count() or 1))
    res = {
        "rate_per_s": rate,
        "duration_s": duration,
        "sent": g["sent"],
        "scheduled": g["scheduled"],
        "received": rc["received"],
        "lost": rc["expected"] - rc["received"],
        "duplicates": rc["duplicates"],
        "gate_decided_total": decided,
        **s,
        "from_send_p50_us": rc["from_send_p50_us"],
        "from_send_p99_us": rc["from_send_p99_us"],
        "from_send_max_us": rc["from_send_max_us"],
        "generator_send_lag_p50_us": g["send_lag_p50_us"],
        "generator_send_lag_p99_us": g["send_lag_p99_us"],
        "generator_send_lag_max_us": g["send_lag_max_us"],
        "generator_mean_batch": g["mean_batch"],
        "generator_gave_up": g["gave_up"],
        "gate_cpu_s": round(cpu_gate1 - cpu_gate0, 3) if cpu_gate0 is not None and cpu_gate1 is not None else None,
        "redis_cpu_s": round(cpu_redis1 - cpu_redis0, 3),
        # Every process on the machine, ours included: other load here shows up as latency.
        "machine_cpu_busy_before_step_pct": busy_before,
        "waited_for_quiet_s": waited,
        "other_processes_cpu_s": round(other_cpu_s, 2),
        "loadavg_1m_after": loadavg()[0],
        "generator_receiver_cpu_s": round(gen_recv_cpu, 3),
        "other_processes_cpu_pct": round(other_pct, 1),
        "disturbed": other_pct > 10.0,
        "gate_throughput_per_s": round(rc["received"] / rc["receive_span_s"], 1) if rc.get("receive_span_s") else None,
        "drain_timeout_s": args.drain_timeout,
        "window_s": wall,
    }
    res["kept_up"] = res["lost"] == 0 and res["sent"] == res["scheduled"]
    res["_samples"] = lat
    return res


def strip_samples(res: dict) -> dict:
    return {k: v for k, v in res.items() if not k.startswith("_")}


def hgrm_path(out: str, label: str, rate: float) -> str:
    stem = os.path.splitext(out)[0]
    return f"{stem}-{label}-{int(rate)}per_s.hgrm"


# ---------------------------------------------------------------- P4, P5, P6

def run_p4(srv: RedisServer, args, workdir: str) -> list[dict]:
    results = []
    for rate in args.rates:
        log(f"P4 open loop {rate:g}/s for {args.duration:g} s")
        res = open_loop_step(srv, args, "p4", rate, args.duration, workdir)
        path = hgrm_path(args.out, "p4", rate)
        res["hgrm_file"] = os.path.relpath(path, REPO) if path.startswith(REPO) else path
        res["hgrm_writer"] = write_hgrm(path, res["_samples"])
        log(f"  p50 {res['p50_us']} us  p99 {res['p99_us']} us  received {res['received']}/{res['sent']}")
        results.append(strip_samples(res))
    return results


def held(res: dict, p99_limit_us: float) -> bool:
    return res["kept_up"] and res["p99_us"] is not None and res["p99_us"] <= p99_limit_us


def run_p5(srv: RedisServer, args, workdir: str) -> dict:
    """Highest rate held: the ladder upwards, bisection after the first failure, halving below the first rung.

    A rung that fails is run again up to --p5-retries times and holds if any attempt held, so that
    one stall caused by something else on the machine does not decide the figure; a failure in a
    step marked disturbed does not count as one, up to --disturbed-reruns more runs per rung. Every
    attempt is reported.
    """
    steps = []
    budget_end = time.monotonic() + args.p5_budget

    def over_budget() -> bool:
        return time.monotonic() > budget_end

    def attempt(rate: float, n: int) -> bool:
        log(f"P5 step {rate:g}/s for {args.p5_duration:g} s" + (f" (retry {n})" if n else ""))
        res = open_loop_step(srv, args, "p5", rate, args.p5_duration, workdir)
        res["held"] = held(res, args.p5_p99_us)
        res["attempt"] = n + 1
        if args.p5_hgrm:
            res["hgrm_writer"] = write_hgrm(hgrm_path(args.out, "p5", rate), res["_samples"])
        log(f"  p99 {res['p99_us']} us  lost {res['lost']}  held={res['held']}")
        steps.append(strip_samples(res))
        return res["held"]

    def step(rate: float) -> bool:
        failures = disturbed_reruns = n = 0
        while True:
            if attempt(rate, n):
                return True
            n += 1
            last = steps[-1]
            if last["lost"] > 0 and last["gate_throughput_per_s"] and last["gate_throughput_per_s"] < 0.9 * rate:
                return False  # plainly over capacity: a retry would only repeat it
            if over_budget():
                return False
            if last["disturbed"] and disturbed_reruns < args.disturbed_reruns:
                disturbed_reruns += 1  # failed while something else loaded the machine: does not count
                continue
            failures += 1
            if failures > args.p5_retries:
                return False

    best, first_fail = None, None
    for rate in args.p5_rates:
        if step(rate):
            best = rate
        else:
            first_fail = rate
            break
        if over_budget():
            break
    if best is None and first_fail is not None:
        rate = first_fail
        for _ in range(args.p5_descend):
            if over_budget():
                break
            rate = rate / 2
            if step(rate):
                best = rate
                break
            first_fail = rate
    if best is not None and first_fail is not None and best < first_fail:
        lo, hi = best, first_fail
        for _ in range(args.p5_refine):
            if over_budget():
                break
            mid = float(round((lo + hi) / 2 / 50) * 50) or (lo + hi) / 2
            if mid <= lo or mid >= hi:
                break
            if step(mid):
                lo = best = mid
            else:
                hi = mid
        first_fail = hi
    return {
        "criterion": f"p99 <= {args.p5_p99_us:g} us and no loss, held for {args.p5_duration:g} s per step",
        "step_duration_s": args.p5_duration,
        "p99_limit_us": args.p5_p99_us,
        "retries_per_rung": args.p5_retries,
        "disturbed_reruns_per_rung": args.disturbed_reruns,
        "highest_rate_held_per_s": best,
        "lowest_rate_failed_per_s": first_fail,
        "ladder_exhausted": first_fail is None and not over_budget(),
        "budget_s": args.p5_budget,
        "budget_exhausted": over_budget(),
        "steps": steps,
    }


def run_p6(binary: str, args, workdir: str) -> dict:
    """Memory of N decisions in the decisions stream plus the calibrated hashes, on a fresh server."""
    with RedisServer(binary, workdir, "p6") as srv:
        r = srv.client()
        empty = r.info("memory")
        syms = symbols(args.symbols)
        # The same inputs the gate reads, so that decide() builds decisions exactly as in P4/P5.
        state = {"equity_usd": "250000.0", "ts": f"{time.time():.6f}"}
        snaps = [("0-0", {"symbol": s, "position_notional_usd": "9000.00", "sigma": "0.0140"}) for s in syms]
        n = args.p6_count
        log(f"P6 loading {n} decisions (pipelined, {args.p6_batch} a round trip)")
        t0 = time.monotonic()
        pipe = r.pipeline(transaction=False)
        json_bytes = 0
        last_by_symbol: dict[str, dict] = {}
        for i in range(n):
            sym = syms[i % len(syms)]
            proposal = proposal_fields("p6", i, sym, 0)
            for k in BENCH_KEYS:  # benchmark bookkeeping, not part of a real proposal
                del proposal[k]
            d = redis_gate.decide(proposal, state, snaps, i + 1, "shadow", time.time())
            fields = redis_gate.decision_stream_fields(d)
            json_bytes += len(fields["decision"])
            pipe.xadd(DECISIONS_STREAM, fields)
            last_by_symbol[sym] = d
            if (i + 1) % args.p6_batch == 0:
                pipe.execute()
        pipe.execute()
        for sym, d in last_by_symbol.items():
            key = CALIBRATED_PREFIX + sym
            pipe.hset(key, mapping=redis_gate.calibrated_hash_fields(d))
            pipe.expire(key, CALIBRATED_TTL_SEC)
        pipe.execute()
        load_s = time.monotonic() - t0
        full = r.info("memory")
        stream_bytes = r.memory_usage(DECISIONS_STREAM, samples=0)
        hash_bytes = sum(r.memory_usage(CALIBRATED_PREFIX + s, samples=0) or 0 for s in last_by_symbol)
        res = {
            "decisions": n,
            "calibrated_hashes": len(last_by_symbol),
            "decision_json_mean_bytes": round(json_bytes / n, 1) if n else None,
            "load_s": round(load_s, 2),
            "used_memory_empty_bytes": empty["used_memory"],
            "used_memory_bytes": full["used_memory"],
            "used_memory_delta_bytes": full["used_memory"] - empty["used_memory"],
            "used_memory_delta_per_decision_bytes": round((full["used_memory"] - empty["used_memory"]) / n, 1) if n else None,
            "used_memory_dataset_bytes": full.get("used_memory_dataset"),
            "used_memory_rss_empty_bytes": empty["used_memory_rss"],
            "used_memory_rss_bytes": full["used_memory_rss"],
            "memory_usage_decisions_stream_bytes": stream_bytes,
            "memory_usage_calibrated_hashes_bytes": hash_bytes,
            "mem_allocator": full.get("mem_allocator"),
        }
        if args.p6_save:
            t1 = time.monotonic()
            r.save()  # explicit one-off SAVE: the server itself runs with --save ""
            res["rdb_save_s"] = round(time.monotonic() - t1, 2)
            res["rdb_file_bytes"] = os.path.getsize(os.path.join(srv.dir, "dump.rdb"))
            res["rdb_compression"] = r.config_get("rdbcompression").get("rdbcompression")
        log(f"  used_memory delta {res['used_memory_delta_bytes']} B "
            f"({res['used_memory_delta_per_decision_bytes']} B/decision) in {load_s:.1f} s")
        return res


# ---------------------------------------------------------------- machine, output

def machine_info(binary: str) -> dict:
    cpu = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    ver = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip()
    return {
        "uname_r": platform.release(),
        "cpu_model": cpu,
        "nproc": os.cpu_count(),
        "redis_server_version": ver,
        "python_version": platform.python_version(),
        "python_executable": PY,
        "redis_py_version": redis.__version__,
        "redis_py_parser": "hiredis" if HIREDIS_AVAILABLE else "python",
    }


def print_table(result: dict) -> None:
    print()
    print("HeatGate baseline: Redis + Python gate (one round trip per command)")
    if result.get("p4"):
        print(f"{'P4 rate/s':>10} {'sent':>8} {'recv':>8} {'lost':>7} {'p50 us':>10} {'p90 us':>10} "
              f"{'p99 us':>10} {'p99.9 us':>10} {'max us':>10}  kept up")
        for x in result["p4"]:
            print(f"{x['rate_per_s']:>10g} {x['sent']:>8} {x['received']:>8} {x['lost']:>7} "
                  f"{x['p50_us']!s:>10} {x['p90_us']!s:>10} {x['p99_us']!s:>10} {x['p99_9_us']!s:>10} "
                  f"{x['max_us']!s:>10}  {'yes' if x['kept_up'] else 'NO'}"
                  f"{'  (disturbed: other processes %s%%)' % x['other_processes_cpu_pct'] if x['disturbed'] else ''}")
    if result.get("p5"):
        p5 = result["p5"]
        steps = ", ".join(f"{s['rate_per_s']:g}:{'ok' if s['held'] else 'fail'}{'*' if s['disturbed'] else ''}"
                          for s in p5["steps"])
        print(f"P5 highest rate held ({p5['criterion']}): {p5['highest_rate_held_per_s']}/s   [{steps}]")
        if any(s["disturbed"] for s in p5["steps"]):
            print("   * other processes used > 10 % of the machine during that step")
    if result.get("p6"):
        p6 = result["p6"]
        extra = f", RDB {p6['rdb_file_bytes']} B" if "rdb_file_bytes" in p6 else ""
        print(f"P6 used_memory delta for {p6['decisions']} decisions (~{p6['decision_json_mean_bytes']} B JSON): "
              f"{p6['used_memory_delta_bytes']} B = {p6['used_memory_delta_per_decision_bytes']} B/decision{extra}")
    print()


def parse_rates(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=None, help="result JSON (default bench/results/baseline.json, "
                                                 "bench/results/baseline-smoke.json with --smoke)")
    ap.add_argument("--redis-server", default="redis-server")
    ap.add_argument("--rates", type=parse_rates, default=[1000.0, 10000.0], help="P4 rates, comma separated")
    ap.add_argument("--duration", type=float, default=10.0, help="P4 seconds per rate")
    ap.add_argument("--drain-timeout", type=float, default=5.0,
                    help="seconds after the last scheduled send that a decision may still arrive; later = lost")
    ap.add_argument("--p5-rates", type=parse_rates,
                    default=[500.0, 1000.0, 2000.0, 4000.0, 8000.0, 16000.0, 32000.0, 64000.0])
    ap.add_argument("--p5-duration", type=float, default=10.0, help="P5 seconds per step (SPEC: 60)")
    ap.add_argument("--p5-refine", type=int, default=2, help="bisection steps after the first failing rate")
    ap.add_argument("--p5-p99-us", type=float, default=2000.0)
    ap.add_argument("--p5-retries", type=int, default=1, help="extra attempts for a failing rung (all reported)")
    ap.add_argument("--p5-budget", type=float, default=180.0,
                    help="P5 seconds after which no further retry, rerun, descent or bisection starts")
    ap.add_argument("--disturbed-reruns", type=int, default=2,
                    help="P5: extra runs of a rung whose failure came with other load on the machine")
    ap.add_argument("--p5-descend", type=int, default=3, help="halvings below the first rung if it fails")
    ap.add_argument("--wait-quiet", type=float, default=5.0,
                    help="before each step, wait up to this many seconds for the machine to be <= 25%% busy")
    ap.add_argument("--p5-hgrm", action="store_true", help="also write .hgrm files for P5 steps")
    ap.add_argument("--p6-count", type=int, default=1_000_000)
    ap.add_argument("--p6-batch", type=int, default=1000, help="commands per pipelined round trip (load only)")
    ap.add_argument("--no-p6-save", dest="p6_save", action="store_false",
                    help="skip the one-off SAVE that measures the RDB file size")
    ap.add_argument("--symbols", type=int, default=10)
    ap.add_argument("--snapshots", type=int, default=50)
    ap.add_argument("--read-count", type=int, default=1, help="gate's XREADGROUP COUNT")
    ap.add_argument("--only", default="p4,p5,p6", help="subset of p4,p5,p6 to run")
    ap.add_argument("--smoke", action="store_true", help="a few seconds, tiny rates and counts, no assertions")
    args = ap.parse_args(argv)

    if args.smoke:
        args.rates, args.duration, args.drain_timeout = [200.0], 1.0, 2.0
        args.p5_rates, args.p5_duration, args.p5_refine = [100.0, 400.0], 0.5, 0
        args.p5_retries, args.p5_descend, args.wait_quiet, args.disturbed_reruns = 0, 0, 0.0, 0
        args.p6_count = 2000
    if args.out is None:
        args.out = os.path.join(REPO, "bench", "results", "baseline-smoke.json" if args.smoke else "baseline.json")
    args.out = os.path.abspath(args.out)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    only = {x.strip() for x in args.only.split(",")}
    if shutil.which(args.redis_server) is None:
        log(f"redis-server not found as '{args.redis_server}': apt-get install -y redis-server, or pass --redis-server PATH")
        return 2

    # SIGTERM/SIGHUP unwind through the finally blocks below, so redis-server is always stopped.
    def on_signal(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    if not HIREDIS_AVAILABLE:
        log("note: hiredis is not installed, so redis-py parses replies in pure Python (much slower "
            "XREVRANGE); a production gate had it: apt-get install -y python3-hiredis")
    started = time.time()
    result: dict = {
        "benchmark": "heatgate-baseline-redis-python",
        "pipeline": "XREADGROUP, HGETALL, XREVRANGE(50), XADD, HSET, EXPIRE, XACK: one round trip each",
        "command_line": shlex.join([PY] + sys.argv),
        "smoke": args.smoke,
        "started_at_epoch_s": round(started, 3),
        "loadavg_at_start": loadavg(),
        "machine": machine_info(args.redis_server),
        "latency_clock": "CLOCK_MONOTONIC (time.monotonic_ns), receive time - intended send time",
    }
    try:
        with tempfile.TemporaryDirectory(prefix="heatgate-baseline-") as workdir:
            try:
                if only & {"p4", "p5"}:
                    with RedisServer(args.redis_server, workdir, "gate") as srv:
                        result["seed"] = seed_state(srv.client(), args.symbols, args.snapshots)
                        result["gate_read_count"] = args.read_count
                        if "p4" in only:
                            result["p4"] = run_p4(srv, args, workdir)
                        if "p5" in only:
                            result["p5"] = run_p5(srv, args, workdir)
                if "p6" in only:
                    result["p6"] = run_p6(args.redis_server, args, workdir)
            finally:
                CHILDREN.stop_all()
    except BaseException as e:
        result["error"] = repr(e)
        result["elapsed_s"] = round(time.time() - started, 1)
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
        log(f"FAILED: {e!r} (partial results in {args.out})")
        if isinstance(e, SystemExit):
            raise
        return 1
    result["elapsed_s"] = round(time.time() - started, 1)
    result["loadavg_at_end"] = loadavg()
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print_table(result)
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
