#!/usr/bin/python3
"""Power-cut images of the durable store, built from the writes the daemon really made (contract §10, P9).

The daemon keeps two stores (issue 17, SPEC §5): a hot one in P26_RUN_DIR (MDB_WRITEMAP|MDB_NOSYNC, on a
memory-backed directory, lost with the host) and a durable one in P26_STATE_DIR in LMDB's default, synced
mode, written only by the replicator thread. A power cut leaves the durable store's data.mdb as the disk
had it and no hot store at all. This is the test of that.

1. Runs `heatgate run` on a fresh state directory (its run dir a separate temporary directory, not
   recorded) with recwrite.so preloaded, which logs every write and flush the daemon makes to
   `<P26_STATE_DIR>/data.mdb` — a write through an O_DSYNC fd (LMDB's meta page) counts as synced when
   it returns — and drives it with positions, equity and proposals at --rate for --seconds; then SIGKILLs
   it mid-load (the moment of the cut).
2. Builds --images disk images a power cut could leave: every write up to the last completed sync (and
   any write synced on its own), plus any subset of the later writes, each whole or torn at 512-byte
   sectors. The two extremes (none of the later writes, all of them) are always among them. The state
   at the last completed sync (the base image) is what every image must keep.
3. Checks each image, each check in its own processes so an abort or SIGBUS is counted, not fatal:
   a py-lmdb reader: the environment opens; journal keys contiguous, each value JSON whose "seq" is its
   key; events contiguous and JSON; book and meta rows JSON; meta/seq's next_seq above the last journal
   seq; `latest`/`ttl` empty (the durable store keeps none); every decision the base image holds present
   byte for byte. Then `heatgate run` on a copy with an EMPTY run dir: it must become ready, rebuild the
   hot store, give the next proposal the seq after the image's last journal seq, and `heatgate get`
   must return the image's newest decision still within its TTL from the rebuilt hot store.

Prints one line per failure class and a summary; exits 1 when any image failed. `make powercut`; CI runs
it (.ci/run). See docs/store.md ("What a power cut can do").
"""
import argparse
import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SECTOR = 512
# Decisions recorded here stay within their TTL for the whole run, so `heatgate get` has one to find.
TTL_SEC = 7200

# argv: the image's directory, the base image's directory ("" for none). Prints one JSON verdict.
READER = r"""
import json, struct, sys, time
import lmdb
path, base_path = sys.argv[1], sys.argv[2]
NAMES = ["meta", "book", "latest", "ttl", "journal", "events"]

def read(path):
    env = lmdb.open(path, readonly=True, lock=False, max_dbs=8, subdir=True)
    out = {}
    with env.begin() as txn:
        for n in NAMES:
            if txn.get(n.encode()) is None:
                continue
            db = env.open_db(n.encode(), txn=txn, create=False)
            out[n] = [(bytes(k), bytes(v)) for k, v in txn.cursor(db)]
    env.close()
    return out

def contiguous(keys):
    return not keys or keys[-1] - keys[0] + 1 == len(keys)

img = read(path)
problems = []
for n in ["meta", "journal", "events", "book"]:
    if n not in img: problems.append("missing database " + n)
journal = {}
for k, v in img.get("journal", []):
    if len(k) != 8: problems.append("journal key of %d bytes" % len(k)); break
    seq = struct.unpack(">Q", k)[0]
    try:
        d = json.loads(v)
    except Exception:
        problems.append("journal value is not JSON"); break
    if not isinstance(d, dict) or d.get("seq") != seq:
        problems.append("journal key holds another seq"); break
    journal[seq] = v
seqs = sorted(journal)
if not contiguous(seqs): problems.append("journal has gaps")
ids = []
for k, v in img.get("events", []):
    try:
        json.loads(v)
    except Exception:
        problems.append("event value is not JSON"); break
    ids.append(struct.unpack(">Q", k)[0])
if not contiguous(ids): problems.append("events have gaps")
for k, v in img.get("book", []):
    try:
        json.loads(v)
    except Exception:
        problems.append("book value is not JSON"); break
meta = {}
for k, v in img.get("meta", []):
    try:
        meta[k.decode()] = json.loads(v)
    except Exception:
        problems.append("meta %s is not JSON" % k.decode(errors="replace")); break
if seqs:
    nxt = (meta.get("seq") or {}).get("next_seq")
    if not isinstance(nxt, (int, float)):
        problems.append("meta/seq missing")
    elif nxt <= seqs[-1]:
        problems.append("meta/seq next_seq not above the last journal seq")
if ids:
    nxt = (meta.get("event_seq") or {}).get("next_event")
    if isinstance(nxt, (int, float)) and nxt <= ids[-1]:
        problems.append("meta/event_seq next_event not above the last event id")
for n in ["latest", "ttl"]:
    if img.get(n): problems.append("durable %s not empty" % n)
if base_path:
    base = read(base_path)
    lost = changed = 0
    for k, v in base.get("journal", []):
        seq = struct.unpack(">Q", k)[0]
        if seq not in journal: lost += 1
        elif journal[seq] != v: changed += 1
    if lost: problems.append("%d synced decisions lost" % lost)
    if changed: problems.append("%d synced decisions changed" % changed)
# The newest decision still within its TTL that the rebuilt hot store must serve (the newest of its
# symbol that is not a kill-switch or staleness hold).
probe = None
now = time.time()
for seq in reversed(seqs):
    d = json.loads(journal[seq])
    if d.get("reason") in ("kill_switch", "proposal_stale"): continue
    if isinstance(d.get("expires_at"), (int, float)) and d["expires_at"] > now + 60 and d.get("plan_id"):
        probe = {"symbol": d["symbol"], "plan_id": d["plan_id"], "json": journal[seq].decode()}
    break
print(json.dumps({"problems": problems, "last_seq": seqs[-1] if seqs else 0,
                  "decisions": len(seqs), "probe": probe}))
"""

_ports_lock = threading.Lock()
_ports_given = set()


def free_port():
    with _ports_lock:
        while True:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            if port not in _ports_given:
                _ports_given.add(port)
                return port


def daemon_env(state, run, tmp, port, ttl=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("P26_", "HEAT_"))}
    env.update({
        "P26_STATE_DIR": state, "P26_RUN_DIR": run, "P26_INGEST_ENDPOINT": f"ipc://{tmp}/in.sock",
        "P26_PUBLISH_ENDPOINT": f"ipc://{tmp}/pub.sock", "P26_CONTROL_ENDPOINT": f"ipc://{tmp}/ctl.sock",
        "P26_METRICS_PORT": str(port), "P26_MAP_SIZE_MB": "256", "P26_HEARTBEAT_SEC": "0.2",
        "P26_LOG_LEVEL": "notice", "HEATGATE_CONFIG": "", "P26_MODE": "enforce",
    })
    if ttl is not None:
        env["P26_CALIBRATED_TTL_SEC"] = str(ttl)
    return env


def wait_ready(proc, port, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=0.5) as r:
                if r.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.01)
    return False


class LogTail:
    """Follows the write log as the shim appends to it; `poll()` gives the kind of its last whole record."""

    def __init__(self, path):
        self.f = open(path, "rb")
        self.buf = b""
        self.last = None

    def poll(self):
        self.buf += self.f.read()
        i = 0
        while i < len(self.buf):
            kind = self.buf[i:i + 1]
            if kind == b"W":
                if len(self.buf) < i + 25:
                    break
                (length,) = struct.unpack_from("<Q", self.buf, i + 17)
                if len(self.buf) < i + 25 + length:
                    break
                i += 25 + length
            elif len(self.buf) < i + 9:
                break
            else:
                i += 9
            self.last = kind
        self.buf = self.buf[i:]
        return self.last


class Recording:
    """The parsed write log: writes[i] = (offset, bytes); `durable` = the writes a power cut keeps."""

    def __init__(self, path):
        self.writes, self.flushes, self.alone = [], [], set()
        with open(path, "rb") as f:
            data = f.read()
        i = 0
        while i < len(data):
            kind = data[i:i + 1]
            if kind == b"W":
                idx, off, length = struct.unpack_from("<QQQ", data, i + 1)
                i += 25
                if idx != len(self.writes):
                    sys.exit(f"powercut: write {idx} out of order in {path}")
                self.writes.append((off, data[i:i + length]))
                i += length
            elif kind == b"S":
                (covered,) = struct.unpack_from("<Q", data, i + 1)
                self.flushes.append(covered)
                i += 9
            elif kind == b"D":  # one O_DSYNC write, durable on its own
                (idx,) = struct.unpack_from("<Q", data, i + 1)
                self.alone.add(idx)
                i += 9
            else:
                sys.exit(f"powercut: bad record at {i} in {path}")
        self.covered = max(self.flushes) if self.flushes else 0
        self.durable = [k < self.covered or k in self.alone for k in range(len(self.writes))]
        self.later = [k for k in range(len(self.writes)) if not self.durable[k]]


def record(args, work):
    """Runs the daemon under the shim (hot store outside the recorded directory); returns the Recording."""
    import zmq
    shim = os.path.join(work, "recwrite.so")
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("clang") or "gcc"
    subprocess.run([cc, "-O2", "-Wall", "-Werror", "-shared", "-fPIC", "-o", shim,
                    os.path.join(HERE, "recwrite.c"), "-ldl"], check=True)
    state = os.path.realpath(os.path.join(work, "state"))
    run = os.path.realpath(os.path.join(work, "run"))  # the hot store: not under HG_REC_DIR
    os.makedirs(state)
    os.makedirs(run)
    log = os.path.join(work, "writes.log")
    port = free_port()
    env = daemon_env(state, run, work, port, ttl=TTL_SEC)
    env.update({"LD_PRELOAD": shim, "HG_REC_DIR": state, "HG_REC_LOG": log})
    dlog = os.path.join(work, "daemon.log")
    with open(dlog, "ab") as out:
        proc = subprocess.Popen([args.heatgate, "run"], env=env, stdout=out, stderr=out)
    if not wait_ready(proc, port, 30):
        sys.stdout.write(open(dlog, errors="replace").read()[-2000:])
        sys.exit("powercut: the recorded daemon did not start")
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.SNDHWM, 100000)
    push.connect(env["P26_INGEST_ENDPOINT"])
    symbols = [f"S{i:03d}USDT" for i in range(args.symbols)]
    push.send(json.dumps({"type": "portfolio", "equity_usd": 100000}).encode())
    for s in symbols:
        push.send(json.dumps({"type": "position", "symbol": s, "position_notional_usd": 1000, "sigma": 0.1}).encode())
    rng = random.Random(args.seed)

    def send(n):
        s = rng.choice(symbols)
        if n % 50 == 49:  # the portfolio now and then: meta/equity is rewritten
            push.send(json.dumps({"type": "portfolio", "equity_usd": rng.uniform(50000, 150000)}).encode())
        elif n % 10 == 9:  # a state change now and then: book rows and events are rewritten too
            push.send(json.dumps({"type": "position", "symbol": s, "position_notional_usd": rng.uniform(500, 5000),
                                  "sigma": rng.uniform(0.05, 0.3)}).encode())
        else:
            push.send(json.dumps({"type": "proposal", "symbol": s, "harvest_action": "FULL_CLOSE_PROPOSED",
                                  "plan_id": f"p{n}"}).encode())

    start = time.time()
    n = 0
    total = int(args.rate * args.seconds)
    tail = LogTail(log)
    mid_round = False
    while True:  # bounded: --rate x --seconds messages, then at most --cut-wait seconds more
        due = start + n / args.rate
        now = time.time()
        if due > now:
            time.sleep(due - now)
        send(n)
        n += 1
        if n < total:
            continue
        # The load is done; the cut comes while it goes on, at a moment the replicator's round has
        # written pages to the durable store and not yet synced them (the log ends in a write, and
        # stays so), which is what a power cut must survive; or, failing that, when the time is up.
        if tail.poll() == b"W":
            time.sleep(0.0002)
            if tail.poll() == b"W":
                mid_round = True
                break
        if now > start + args.seconds + args.cut_wait:
            break
    # The cut: what the daemon had written to the durable store is what the kernel had.
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    push.close(0)
    ctx.term()
    print(f"powercut: {n} messages in {time.time() - start:.1f} s; SIGKILL "
          + ("in a replication round (pages written, not yet synced)" if mid_round else "(between rounds)"),
          flush=True)
    with open(dlog, errors="replace") as f:
        if "recwrite: msync seen" in f.read():
            sys.exit("powercut: the durable store was written through a memory map; this recording proves nothing")
    return Recording(log), state


def apply(img, off, data):
    end = off + len(data)
    if len(img) < end:
        img.extend(b"\0" * (end - len(img)))
    img[off:end] = data


def build_image(rec, rng, mode):
    """The writes a disk could hold, in the order they were made: every durable one, and of the later
    ones none ("none"), all ("all") or a random subset, some torn at sectors ("subset")."""
    img = bytearray()
    keep = rng.choice([0.1, 0.25, 0.5, 0.75, 0.9]) if mode == "subset" else 0
    for k, (off, data) in enumerate(rec.writes):
        if rec.durable[k] or mode == "all":
            apply(img, off, data)
        elif mode == "none" or rng.random() > keep:
            continue
        elif rng.random() < 0.3 and len(data) > SECTOR:
            # Torn: only some of its sectors reached the platter.
            for s in range(0, len(data), SECTOR):
                if rng.random() < 0.5:
                    apply(img, off + s, data[s:s + SECTOR])
        else:
            apply(img, off, data)
    return img


def read_image(path, base):
    r = subprocess.run([sys.executable, "-c", READER, path, base], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        if r.returncode < 0:
            return f"reader killed by signal {-r.returncode}", None
        last = (r.stderr.strip().splitlines() or ["?"])[-1]
        return "reader failed: " + re.sub(r"(/[^\s:]+)+", "PATH", last)[:160], None
    verdict = json.loads(r.stdout)
    if verdict["problems"]:
        return "inconsistent: " + verdict["problems"][0], verdict
    return None, verdict


def check_daemon(args, d, verdict):
    """The daemon on the image with an empty run dir: ready, the hot store rebuilt, the next seq, `get`."""
    import zmq
    state, run = os.path.join(d, "state"), os.path.join(d, "run")
    os.makedirs(run)
    port = free_port()
    env = daemon_env(state, run, d, port)
    with open(os.path.join(d, "daemon.log"), "ab") as out:
        proc = subprocess.Popen([args.heatgate, "run"], env=env, stdout=out, stderr=out)
    why = None
    try:
        if not wait_ready(proc, port, 20):
            code = proc.poll()
            return f"daemon did not start (exit {code})" if code is not None else "daemon not ready in 20 s"
        if not os.path.exists(os.path.join(run, "data.mdb")):
            return "no hot store in the run dir after the start"
        with open(os.path.join(d, "daemon.log"), errors="replace") as f:
            if "hot store rebuilt" not in f.read():
                return "the daemon did not say it rebuilt the hot store"
        probe = verdict["probe"]
        if probe:
            g = subprocess.run([args.heatgate, "get", probe["symbol"], "--plan-id", probe["plan_id"],
                                "--action", "FULL_CLOSE_PROPOSED"], env=env, capture_output=True, text=True,
                               timeout=20)
            if g.returncode != 0:
                return f"heatgate get: exit {g.returncode} ({g.stdout.strip()[:40]})"
            if g.stdout.strip() != probe["json"]:
                return "heatgate get: another decision than the image's"
        ctx = zmq.Context()
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.SUBSCRIBE, b"calibrated.")
        sub.setsockopt(zmq.RCVTIMEO, 5000)
        sub.connect(env["P26_PUBLISH_ENDPOINT"])
        push = ctx.socket(zmq.PUSH)
        push.connect(env["P26_INGEST_ENDPOINT"])
        time.sleep(0.1)
        push.send(json.dumps({"type": "proposal", "symbol": "PCUTUSDT", "harvest_action": "PARTIAL_25",
                              "plan_id": "after-the-cut"}).encode())
        seq = None
        try:
            seq = json.loads(sub.recv_multipart()[1])["seq"]
        except zmq.Again:
            # A subscription that joined late (a loaded machine) misses the publication; the decision is
            # in the hot store all the same, where `heatgate get` finds it.
            deadline = time.time() + 5
            while seq is None and time.time() < deadline:
                g = subprocess.run([args.heatgate, "get", "PCUTUSDT", "--plan-id", "after-the-cut", "--action",
                                    "PARTIAL_25"], env=env, capture_output=True, text=True, timeout=20)
                if g.returncode == 0:
                    seq = json.loads(g.stdout)["seq"]
                else:
                    time.sleep(0.2)
        if seq is None:
            why = "no decision from the daemon on the image"
        elif seq <= verdict["last_seq"]:
            why = "next decision reused a seq of the image"
        elif seq != verdict["last_seq"] + 1:
            why = "next decision skipped seqs after the image's last"
        push.close(0)
        sub.close(0)
        ctx.term()
        return why
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()


def check_image(args, work, k, img, base):
    d = os.path.join(work, f"img{k}")
    os.makedirs(os.path.join(d, "state"))
    with open(os.path.join(d, "state", "data.mdb"), "wb") as f:
        f.write(img)
    why = None
    try:
        why, verdict = read_image(os.path.join(d, "state"), base)
        if why is None:
            why = check_daemon(args, d, verdict)
        return why, verdict
    finally:
        if why and args.keep:
            print(f"  kept {d}: {why}", flush=True)
        else:
            shutil.rmtree(d, ignore_errors=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--heatgate", default=os.path.join(ROOT, ".build", "debug", "heatgate"))
    p.add_argument("--images", type=int, default=1000)
    p.add_argument("--rate", type=float, default=2000)
    p.add_argument("--seconds", type=float, default=3)
    p.add_argument("--symbols", type=int, default=50)
    p.add_argument("--seed", type=int, default=26)
    p.add_argument("--cut-wait", type=float, default=5, help="seconds of load past --seconds to wait for a "
                   "moment inside a replication round")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="images checked at once")
    p.add_argument("--keep", action="store_true", help="keep the directories of failed images")
    args = p.parse_args()
    t0 = time.time()
    work = tempfile.mkdtemp(prefix="heatgate-powercut-")
    try:
        rec, state = record(args, work)
        later_bytes = sum(len(rec.writes[k][1]) for k in rec.later)
        print(f"powercut: recorded {len(rec.writes)} writes to the durable data.mdb, {len(rec.flushes)} syncs "
              f"({len(rec.alone)} O_DSYNC writes synced alone); the last completed sync covers {rec.covered}, "
              f"{len(rec.later)} writes after it ({later_bytes} bytes)", flush=True)
        if not rec.flushes:
            sys.exit("powercut: no sync recorded; is the durable store in LMDB's synced mode?")
        # The state at the last completed sync: what every image must keep.
        bdir = os.path.join(work, "base")
        os.makedirs(bdir)
        with open(os.path.join(bdir, "data.mdb"), "wb") as f:
            f.write(build_image(rec, random.Random(0), "none"))
        why, verdict = read_image(bdir, "")
        if why:
            sys.exit(f"powercut: the image at the last sync itself is bad: {why}")
        print(f"powercut: {verdict['decisions']} decisions (up to seq {verdict['last_seq']}) were in the durable "
              f"store at the last completed sync; every image must keep them", flush=True)
        rng = random.Random(args.seed)
        results = {}  # image -> why it is bad (None: fine)
        same = {}  # image -> the earlier image of the same bytes, whose result it shares
        first = {}  # sha256 -> image
        started = time.time()
        lock = threading.Lock()
        slots = threading.Semaphore(args.jobs * 2)

        def one(k, img):
            try:
                why, _ = check_image(args, work, k, img, bdir)
            except Exception as e:  # a hung reader or the like: the image is still counted
                why = f"check failed: {type(e).__name__}"
            finally:
                slots.release()
            with lock:
                results[k] = why
                if why:
                    print(f"powercut: image {k} bad: {why}", flush=True)
                if len(results) % 100 == 0:
                    bad = sum(1 for w in results.values() if w)
                    print(f"powercut: {len(results)} distinct images checked, {bad} bad "
                          f"({time.time() - started:.0f} s)", flush=True)

        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            for k in range(args.images):
                mode = "none" if k == 0 else "all" if k == 1 else "subset"
                img = build_image(rec, rng, mode)
                h = hashlib.sha256(img).digest()
                if h in first:
                    same[k] = first[h]
                    continue
                first[h] = k
                slots.acquire()
                pool.submit(one, k, img)
        failures = {}
        for k in range(args.images):
            why = results[same.get(k, k)]
            if why:
                failures.setdefault(re.sub(r"\d+", "N", why), []).append(k)
        bad = sum(len(v) for v in failures.values())
        for why, ks in sorted(failures.items(), key=lambda kv: -len(kv[1])):
            print(f"  {len(ks):5d}  {why}  (e.g. image {min(ks)})")
        print(f"powercut: {args.images} images ({len(results)} distinct), {bad} bad, {args.images - bad} fine "
              f"({time.time() - started:.0f} s checking, {time.time() - t0:.0f} s in all)")
        return 1 if bad else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
