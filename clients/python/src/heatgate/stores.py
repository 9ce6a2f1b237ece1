"""Where HeatGate's two stores are, and how a reader opens them (docs/apply-layer.md, "Where the stores are").

    from heatgate import run_dir
    hot = run_dir("/var/lib/quantum-portfolio-heat-gate")  # /dev/shm/heatgate-var-lib-quantum-portfolio-heat-gate

The durable store is in the state directory (`P26_STATE_DIR`); the hot store, which the decision loop
writes and readers read first, is in the run directory: `P26_RUN_DIR`, or when that is unset or empty the
directory `default_run_dir` derives from the state directory, byte for byte as the daemon does.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Optional, Sequence, Tuple, TypeVar, Union

import lmdb

T = TypeVar("T")
Path = Union[str, "os.PathLike[str]"]


def fnv1a64(data: bytes) -> int:
    """FNV-1a 64: h = 0xcbf29ce484222325; for each byte c, h = (h XOR c) x 0x100000001b3 mod 2^64."""
    h = 0xcbf29ce484222325
    for c in data:
        h = ((h ^ c) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def absolute_state_dir(state_dir: Path) -> str:
    """The state directory's real path if it exists, else its absolute, normalised path (symlinks kept)."""
    path = os.fspath(state_dir)
    return os.path.realpath(path) if os.path.exists(path) else os.path.abspath(path)


def default_run_dir(state_dir: Path, shm: str = "/dev/shm") -> str:
    """The run directory the daemon uses for `state_dir` when `P26_RUN_DIR` is unset or empty."""
    absolute = os.fsencode(absolute_state_dir(state_dir))
    if not os.path.isdir(shm):
        return os.fsdecode(absolute + b"/run")
    name = b"heatgate" + absolute.replace(b"/", b"-")  # /var/lib/x -> heatgate-var-lib-x
    if len(name) > 200:
        name = b"heatgate-%016x" % fnv1a64(absolute)
    return os.fsdecode(os.fsencode(shm) + b"/" + name)


def run_dir(state_dir: Path, run_dir: Optional[Path] = None) -> str:
    """The hot store's directory: `run_dir` when given, else `P26_RUN_DIR` when set and not empty, else the
    one the gate last ran with (its first line of `<state_dir>/run_dir`), else the default for `state_dir`."""
    if run_dir is not None and os.fspath(run_dir):
        return os.fspath(run_dir)
    if os.environ.get("P26_RUN_DIR"):
        return os.environ["P26_RUN_DIR"]
    try:
        with open(os.path.join(os.fspath(state_dir), "run_dir"), encoding="utf-8") as f:
            named = f.readline().strip()
        if named:
            return named
    except OSError:
        pass
    return default_run_dir(state_dir)


def same_dir(a: Path, b: Path) -> bool:
    """True when both name one directory (then there is one store, never opened twice in a process)."""
    return os.path.realpath(a) == os.path.realpath(b)


class NoStore(lmdb.Error):
    """The directory holds no store (no data.mdb, or it cannot be seen)."""


class Store:
    """One store, read-only: opened when first read, and again after a failed open (the daemon may start
    after the reader) or once `data.mdb` is another file (the daemon made a new store: the old one is stale)."""

    def __init__(self, path: Path, names: Sequence[bytes]) -> None:
        self.path, self.names = os.fspath(path), tuple(names)
        self.env: Optional[lmdb.Environment] = None
        self.dbs: Tuple[Any, ...] = ()
        self.file: Optional[Tuple[int, int]] = None  # (st_dev, st_ino) of the data.mdb opened
        self.resized = 0  # how often a map the daemon grew was adopted

    def read(self, body: Callable[..., T]) -> T:
        """body(txn, *dbs) in one read transaction, the databases in the order of `names`. Raises lmdb.Error
        when the store is missing or cannot be opened or read."""
        try:
            st = os.stat(os.path.join(self.path, "data.mdb"))
        except OSError as e:
            self.close()
            raise NoStore(f"{self.path}: {e.strerror}") from e
        if self.file != (st.st_dev, st.st_ino):
            self.close()
        for _ in range(3):
            if self.env is None:
                env = lmdb.open(self.path, readonly=True, max_dbs=8, map_size=0, create=False)
                try:
                    self.dbs = tuple(env.open_db(n, create=False) for n in self.names)
                except BaseException:
                    env.close()
                    raise
                self.env, self.file = env, (st.st_dev, st.st_ino)
            try:
                with self.env.begin() as txn:
                    return body(txn, *self.dbs)
            except lmdb.MapResizedError:  # the daemon grew its map: adopt the new size and read again
                self.env.set_mapsize(0)
                self.resized += 1
            except lmdb.Error:
                self.close()  # opened afresh on the next read
                raise
        raise lmdb.Error(f"{self.path}: store kept resizing")

    def close(self) -> None:
        if self.env is not None:
            self.env.close()
        self.env, self.dbs, self.file = None, (), None
