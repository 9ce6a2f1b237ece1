#!/usr/bin/python3
"""Power-cut images of the durable store, built from the writes the daemon really made (contract §10, P9).

1. Runs `heatgate run` on a fresh state directory with recwrite.so preloaded, which logs every write and
   flush the daemon makes to `<P26_STATE_DIR>/data.mdb`, and drives it with proposals, positions and
   equity at --rate for --seconds; then SIGKILLs it (the moment of the cut).
2. Builds --images disk images a power cut could leave: every write up to the last completed flush,
   plus any subset of the writes after it, each whole or torn at 512-byte sectors. The two extremes
   (none of the later writes, all of them) are always among them.
3. Checks each image twice, each in its own process so an abort or SIGBUS is counted, not fatal:
   a reader (py-lmdb, as the Apply Layer's resolver reads) that walks every database and checks the
   journal, `latest`, the book and the events against each other and against what was flushed; then
   `heatgate run` on a copy, which must become ready and decide the next proposal with the next `seq`.

Prints one line per failure class and a summary; exits 1 when any image failed. This is the test the
store must pass; run against the store of 0.1.0 (MDB_NOSYNC on the disk) it fails, which is why it is a
make target (`make powercut`) and not part of `make test` yet. See docs/store.md.
"""
import argparse
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
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SECTOR = 512

READER = r'''
import json, struct, sys
import lmdb
path, base_json = sys.argv[1], sys.argv[2]
base = json.load(open(base_json))
env = lmdb.open(path, readonly=True, lock=False, max_dbs=8, subdir=True)
problems = []
with env.begin() as txn:
    dbs = {n: env.open_db(n.encode(), txn=txn, create=False) for n in
           ["meta", "book", "latest", "ttl", "journal", "events"] if txn.get(n.encode()) is not None}
    for n in ["meta", "journal"]:
        if n not in dbs: problems.append("missing database " + n)
    journal = {}
    if "journal" in dbs:
        for k, v in txn.cursor(dbs["journal"]):
            seq = struct.unpack(">Q", k)[0]
            try:
                d = json.loads(bytes(v))
            except Exception:
                problems.append("journal value is not JSON"); break
            if d.get("seq") != seq: problems.append("journal key %d holds seq %r" % (seq, d.get("seq"))); break
            journal[seq] = bytes(v)
    seqs = sorted(journal)
    if seqs and seqs[-1] - seqs[0] + 1 != len(seqs): problems.append("journal has gaps")
    if "latest" in dbs:
        for k, v in txn.cursor(dbs["latest"]):
            try:
                d = json.loads(bytes(v))
            except Exception:
                problems.append("latest value is not JSON"); break
            if d.get("symbol") != bytes(k).decode(errors="replace"): problems.append("latest row of another symbol"); break
            if d.get("seq") not in journal: problems.append("latest refers to seq %r, not in the journal" % d.get("seq")); break
    if "book" in dbs:
        for k, v in txn.cursor(dbs["book"]):
            try:
                json.loads(bytes(v))
            except Exception:
                problems.append("book value is not JSON"); break
    if "events" in dbs:
        ids = []
        for k, v in txn.cursor(dbs["events"]):
            try:
                json.loads(bytes(v))
            except Exception:
                problems.append("event value is not JSON"); break
            ids.append(struct.unpack(">Q", k)[0])
        if ids and ids[-1] - ids[0] + 1 != len(ids): problems.append("events have gaps")
    if "meta" in dbs:
        for k, v in txn.cursor(dbs["meta"]):
            try:
                json.loads(bytes(v))
            except Exception:
                problems.append("meta %s is not JSON" % bytes(k).decode(errors="replace")); break
    lost = [s for s in base["journal"] if s not in journal]
    if lost: problems.append("%d flushed decisions lost" % len(lost))
print(json.dumps({"problems": problems, "last_seq": seqs[-1] if seqs else 0}))
'''


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def daemon_env(state, tmp, port):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("P26_", "HEAT_"))}
    env.update({
        "P26_STATE_DIR": state, "P26_INGEST_ENDPOINT": f"ipc://{tmp}/in.sock",
        "P26_PUBLISH_ENDPOINT": f"ipc://{tmp}/pub.sock", "P26_CONTROL_ENDPOINT": f"ipc://{tmp}/ctl.sock",
        "P26_METRICS_PORT": str(port), "P26_MAP_SIZE_MB": "256", "P26_HEARTBEAT_SEC": "0.2",
        "P26_LOG_LEVEL": "warning", "HEATGATE_CONFIG": "", "P26_MODE": "enforce",
    })
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


def record(args, work):
    """Runs the daemon under the shim and returns the parsed write log."""
    import zmq
    shim = os.path.join(work, "recwrite.so")
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("clang") or "gcc"
    subprocess.run([cc, "-O2", "-Wall", "-Werror", "-shared", "-fPIC", "-o", shim,
                    os.path.join(HERE, "recwrite.c"), "-ldl"], check=True)
    state = os.path.realpath(os.path.join(work, "state"))
    os.makedirs(state)
    log = os.path.join(work, "writes.log")
    port = free_port()
    env = daemon_env(state, work, port)
    env.update({"LD_PRELOAD": shim, "HG_REC_DIR": state, "HG_REC_LOG": log})
    with open(os.path.join(work, "daemon.log"), "ab") as out:
        proc = subprocess.Popen([args.heatgate, "run"], env=env, stdout=out, stderr=out)
    if not wait_ready(proc, port, 15):
        sys.exit("powercut: the recorded daemon did not start; see " + os.path.join(work, "daemon.log"))
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.SNDHWM, 100000)
    push.connect(env["P26_INGEST_ENDPOINT"])
    symbols = [f"S{i:03d}USDT" for i in range(args.symbols)]
    push.send(json.dumps({"type": "portfolio", "equity_usd": 100000}).encode())
    for s in symbols:
        push.send(json.dumps({"type": "position", "symbol": s, "position_notional_usd": 1000, "sigma": 0.1}).encode())
    rng = random.Random(args.seed)
    start = time.time()
    n = 0
    total = int(args.rate * args.seconds)
    while n < total:  # bounded: --rate x --seconds messages
        due = start + n / args.rate
        now = time.time()
        if due > now:
            time.sleep(due - now)
        s = rng.choice(symbols)
        if n % 10 == 9:  # a state change now and then: book rows and events are rewritten too
            push.send(json.dumps({"type": "position", "symbol": s, "position_notional_usd": rng.uniform(500, 5000),
                                  "sigma": rng.uniform(0.05, 0.3)}).encode())
        else:
            push.send(json.dumps({"type": "proposal", "symbol": s, "harvest_action": "FULL_CLOSE_PROPOSED",
                                  "plan_id": f"p{n}"}).encode())
        n += 1
    # The cut, while proposals are still arriving and being committed: what the daemon had written is
    # what the kernel had.
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    push.close(0)
    ctx.term()
    writes, flushes = [], []
    with open(log, "rb") as f:
        data = f.read()
    i = 0
    while i < len(data):
        kind = data[i:i + 1]
        if kind == b"W":
            idx, off, length = struct.unpack_from("<QQQ", data, i + 1)
            i += 25
            writes.append((off, data[i:i + length]))
            i += length
        elif kind == b"S":
            (covered,) = struct.unpack_from("<Q", data, i + 1)
            flushes.append(covered)
            i += 9
        else:
            sys.exit(f"powercut: bad record at {i} in {log}")
    return writes, flushes, state


def apply(img, off, data):
    end = off + len(data)
    if len(img) < end:
        img.extend(b"\0" * (end - len(img)))
    img[off:end] = data


def build_image(base, later, rng, mode):
    img = bytearray(base)
    if mode == "none":
        return img
    keep = 1.0 if mode == "all" else rng.choice([0.1, 0.25, 0.5, 0.75, 0.9])
    for off, data in later:
        if mode != "all" and rng.random() > keep:
            continue
        if mode != "all" and rng.random() < 0.3 and len(data) > SECTOR:
            # Torn: only some of its sectors reached the platter.
            for s in range(0, len(data), SECTOR):
                if rng.random() < 0.5:
                    apply(img, off + s, data[s:s + SECTOR])
        else:
            apply(img, off, data)
    return img


def check_image(args, work, k, img, base_json):
    d = os.path.join(work, f"img{k}")
    os.makedirs(os.path.join(d, "state"))
    with open(os.path.join(d, "state", "data.mdb"), "wb") as f:
        f.write(img)
    r = subprocess.run([sys.executable, "-c", READER, os.path.join(d, "state"), base_json],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        why = f"reader killed by signal {-r.returncode}" if r.returncode < 0 else \
            "reader failed: " + (r.stderr.strip().splitlines() or ["?"])[-1][:160]
        shutil.rmtree(d)
        return why
    verdict = json.loads(r.stdout)
    if verdict["problems"]:
        shutil.rmtree(d)
        return "inconsistent: " + verdict["problems"][0]
    # The daemon on the image, with nothing else: ready, and the next decision takes the next seq.
    import zmq
    port = free_port()
    env = daemon_env(os.path.join(d, "state"), d, port)
    with open(os.path.join(d, "daemon.log"), "ab") as out:
        proc = subprocess.Popen([args.heatgate, "run"], env=env, stdout=out, stderr=out)
    why = None
    try:
        if not wait_ready(proc, port, 10):
            code = proc.poll()
            why = f"daemon did not start (exit {code})" if code is not None else "daemon not ready in 10 s"
        else:
            ctx = zmq.Context()
            sub = ctx.socket(zmq.SUB)
            sub.setsockopt(zmq.SUBSCRIBE, b"calibrated.")
            sub.setsockopt(zmq.RCVTIMEO, 3000)
            sub.connect(env["P26_PUBLISH_ENDPOINT"])
            push = ctx.socket(zmq.PUSH)
            push.connect(env["P26_INGEST_ENDPOINT"])
            time.sleep(0.1)
            push.send(json.dumps({"type": "proposal", "symbol": "PCUTUSDT", "harvest_action": "PARTIAL_25",
                                  "plan_id": "after-the-cut"}).encode())
            try:
                seq = json.loads(sub.recv_multipart()[1])["seq"]
                if seq != verdict["last_seq"] + 1:
                    why = f"next decision took seq {seq}, the journal ends at {verdict['last_seq']}"
            except zmq.Again:
                why = "no decision from the daemon on the image"
            push.close(0)
            sub.close(0)
            ctx.term()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        if why and args.keep:
            print(f"  kept {d}")
        else:
            shutil.rmtree(d, ignore_errors=True)
    return why


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--heatgate", default=os.path.join(ROOT, ".build", "debug", "heatgate"))
    p.add_argument("--images", type=int, default=1000)
    p.add_argument("--rate", type=float, default=2000)
    p.add_argument("--seconds", type=float, default=3)
    p.add_argument("--symbols", type=int, default=50)
    p.add_argument("--seed", type=int, default=26)
    p.add_argument("--keep", action="store_true", help="keep the directories of failed images")
    args = p.parse_args()
    work = tempfile.mkdtemp(prefix="heatgate-powercut-")
    try:
        writes, flushes, state = record(args, work)
        covered = max(flushes) if flushes else 0
        base = bytearray()
        for off, data in writes[:covered]:
            apply(base, off, data)
        later = writes[covered:]
        print(f"powercut: recorded {len(writes)} writes, {len(flushes)} flushes; the last flush covers "
              f"{covered}, {len(later)} writes after it ({sum(len(d) for _, d in later)} bytes)")
        # What every image must keep: the journal as flushed.
        bdir = os.path.join(work, "base")
        os.makedirs(bdir)
        with open(os.path.join(bdir, "data.mdb"), "wb") as f:
            f.write(base)
        base_json = os.path.join(work, "base.json")
        with open(base_json, "w") as f:
            json.dump({"journal": []}, f)
        r = subprocess.run([sys.executable, "-c", READER, bdir, base_json], capture_output=True, text=True)
        if r.returncode != 0 or json.loads(r.stdout)["problems"]:
            sys.exit(f"powercut: the flushed image itself does not read: {r.stdout}{r.stderr}")
        import lmdb
        env = lmdb.open(bdir, readonly=True, lock=False, max_dbs=8)
        with env.begin() as txn:
            db = env.open_db(b"journal", txn=txn, create=False)
            flushed = [struct.unpack(">Q", k)[0] for k, _ in txn.cursor(db)]
        env.close()
        with open(base_json, "w") as f:
            json.dump({"journal": flushed}, f)
        print(f"powercut: {len(flushed)} decisions were flushed before the cut; every image must keep them")
        rng = random.Random(args.seed)
        failures = {}
        started = time.time()
        for k in range(args.images):
            mode = "none" if k == 0 else "all" if k == 1 else "subset"
            img = build_image(base, later, rng, mode)
            why = check_image(args, work, k, img, base_json)
            if why:
                failures.setdefault(re.sub(r"\d+", "N", why), []).append(k)
            if (k + 1) % 100 == 0:
                bad = sum(len(v) for v in failures.values())
                print(f"powercut: {k + 1} images, {bad} bad ({time.time() - started:.0f} s)", flush=True)
        bad = sum(len(v) for v in failures.values())
        for why, ks in sorted(failures.items(), key=lambda kv: -len(kv[1])):
            print(f"  {len(ks):5d}  {why}  (e.g. image {ks[0]})")
        print(f"powercut: {args.images} images, {bad} bad, {args.images - bad} fine")
        return 1 if bad else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
