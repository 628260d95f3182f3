"""Writing a run file: the layout, the atomic chunked writer and resume.

Writing: the file is built as ``OUT.partial`` and moved into place with
:func:`os.replace` once complete (root attr ``complete=True``). The engine runs
the (nogil) kernel in the main thread while a writer thread drains a bounded
queue: records of a chunk, then a checkpoint into the slot *not* in use, a
flush, and only then the checkpoint pointer (``/checkpoint`` attrs) and a second
flush. A run killed at any moment therefore leaves a partial file whose current
checkpoint is intact and whose records up to that checkpoint are on disk;
:func:`write_run` with ``resume=True`` continues from it, bit for bit.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import json
import math
import os
import queue
import shutil
import socket
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np

from ..buffers import ALIGN, aligned_empty

if TYPE_CHECKING:
    from ..run import Simulation
    from ..spec import RunSpec

from ...core.status import STATUS_CODES
from .format import (
    _ALIGNED,
    CHECKPOINT_SECONDS,
    CHUNK_RECORD_BYTES,
    FORMAT,
    FORMAT_VERSION,
    H5_CHUNK_BYTES,
    H5_CHUNK_RECORDS,
    StoreError,
    attach,
    dataset,
    lock_path,
    partial_path,
    scale,
)


class OutputLock:
    """Exclusive ownership of ``OUT`` and ``OUT.partial`` by one writing process.

    An ``flock`` on ``OUT.lock``, which holds the owner's pid and host. The
    kernel drops the lock when its owner dies (also on SIGKILL), so a stale lock
    file never blocks a later run or ``--resume``. A second writer is refused
    with :class:`StoreError` naming the owner. The file is removed on release
    (while still locked); a writer that opened it just before is detected by its
    inode and tries again.
    """

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        self.path = lock_path(self.out)
        self.fd: int | None = None

    def _owner(self, fd: int) -> str:
        try:
            text = os.pread(fd, 200, 0).decode(errors="replace").split()
        except OSError:
            text = []
        return f"pid {text[0]} on {text[1]}" if len(text) >= 2 else "pid unknown"

    def acquire(self) -> OutputLock:
        for _ in range(20):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                raise StoreError(f"OUT: cannot create {self.path} ({exc.strerror}); "
                                 f"is {self.out.parent} writable?") from None  # fmt: skip
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise StoreError(f"OUT: cannot lock {self.path} ({exc.strerror})") from None
                owner = self._owner(fd)
                os.close(fd)
                raise StoreError(f"OUT: {self.out} is being written by another run ({owner}, lock {self.path}); "
                                 "wait for it to finish or stop it, then use --resume") from None  # fmt: skip
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                try:  # the owner's name is for messages only: a full disk must not stop the lock
                    os.ftruncate(fd, 0)
                    os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
                except OSError:
                    pass
                self.fd = fd
                return self
            os.close(fd)  # the previous owner removed it between our open and flock: retry
        raise StoreError(f"OUT: cannot take the lock {self.path} (it keeps changing)")

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            if os.path.samestat(os.fstat(self.fd), os.stat(self.path)):
                os.unlink(self.path)
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


# ----------------------------------------------------------------------------- layout


def _even(n_rec: int, rc: int) -> int:
    """Records per chunk near ``rc`` that tile ``n_rec`` records with little waste."""
    rc = max(1, min(rc, n_rec))
    n_chunks = -(-n_rec // rc)
    return -(-n_rec // n_chunks)


def chunk_plan(spec: RunSpec, chunk_steps: int | None = None) -> tuple[list[int], int]:
    """(engine chunk end steps, records per HDF5 chunk) for a spec.

    Chunk ends are chosen so that every write of records covers whole HDF5
    chunks along the record axis (record 0 is written with the first chunk),
    and the records tile the record axis evenly. Without ``chunk_steps`` (or
    ``run.chunk_steps``) a chunk holds about :data:`H5_CHUNK_RECORDS` records,
    fewer when their buffer would exceed :data:`CHUNK_RECORD_BYTES`.
    Results never depend on this plan, only the speed and the file layout.
    """
    re_, steps, n_rec = spec.record_every, spec.steps, spec.n_records
    size = chunk_steps or spec.chunk_steps
    if size is None:
        item = np.dtype(spec.dtype).itemsize
        per_record = max(1, spec.particles * (spec.dim + 1) * item)
        recs = max(1, min(CHUNK_RECORD_BYTES // per_record, H5_CHUNK_RECORDS))
        size = _even(n_rec, recs) * re_
    if size >= re_:
        rc = _even(n_rec, size // re_)
        ends = [min(steps, ((j + 1) * rc - 1) * re_) for j in range((n_rec + rc - 1) // rc)]
    else:
        rc = 1
        ends = list(range(size, steps, size))
    ends = sorted({e for e in ends if 0 < e < steps} | {steps})
    return ends, max(1, rc)


def _versions() -> dict[str, str]:
    from ..._version import __version__

    out = {"descentlab_version": __version__, "numpy_version": np.__version__, "h5py_version": h5py.__version__,
           "hdf5_version": h5py.version.hdf5_version}  # fmt: skip
    try:
        import numba

        out["numba_version"] = numba.__version__
    except ImportError:  # pragma: no cover
        out["numba_version"] = "not installed"
    return out


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _spec_json(spec: RunSpec) -> str:
    return json.dumps(spec.resolved, sort_keys=True, allow_nan=True)


def _compare_spec(stored: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> str | None:
    """The first field where two resolved specs differ, ignoring ``run.chunk_steps`` and
    ``run.target`` (neither changes the result: a run begun on the CPU resumes on a GPU)."""
    for key in sorted(set(stored) | set(new)):
        where = f"{prefix}{key}"
        if where in ("run.chunk_steps", "run.target"):
            continue
        a, b = stored.get(key), new.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            diff = _compare_spec(a, b, where + ".")
            if diff:
                return diff
        elif a != b and not (isinstance(a, float) and isinstance(b, float) and np.isnan(a) and np.isnan(b)):
            return where
    return None


def _create_layout(f: h5py.File, sim: Simulation, rc: int, compression: str | None) -> None:
    spec = sim.spec
    n, d, r = sim.n, spec.dim, spec.n_records
    dt = np.dtype(spec.dtype)
    ids = np.arange(sim.start, sim.stop, dtype=np.int64)
    dims = np.arange(d, dtype=np.int64)
    f.attrs.update({
        "format": FORMAT, "format_version": FORMAT_VERSION, "spec": _spec_json(spec), "complete": False,
        "target": spec.target, "dtype": spec.dtype, "seed": np.uint64(spec.seed), "rng": _rng_name(),
        "created": _now(), "finished": "", "particles": spec.particles, "particle_start": sim.start,
        "particle_stop": sim.stop, "steps": spec.steps, "record_every": spec.record_every, "steps_done": 0,
        **_versions(),
    })  # fmt: skip
    comp: dict[str, Any] = {}
    if compression:
        comp = {"compression": compression, "shuffle": True}
    item = dt.itemsize
    pc = _particles_per_chunk(n, rc * d * item)
    pc_loss = _particles_per_chunk(n, rc * item)

    g = f.create_group("init")
    p_i, d_i = scale(g, "particle", ids), scale(g, "dim", dims)
    attach(dataset(g, "x", sim.init_x), p_i, d_i)

    t = f.create_group("trajectory")
    p_t, d_t = scale(t, "particle", ids), scale(t, "dim", dims)
    r_t = scale(t, "record", np.arange(r, dtype=np.int64))
    step = dataset(t, "step", np.arange(r, dtype=np.int64) * spec.record_every)
    attach(step, r_t)
    tx = _chunked(t, "x", (n, r, d), (n, None, d), (pc, rc, d), dt, comp)
    attach(tx, p_t, r_t, d_t)
    tl = _chunked(t, "loss", (n, r), (n, None), (pc_loss, rc), dt, comp)
    attach(tl, p_t, r_t)

    fin = f.create_group("final")
    p_f, d_f = scale(fin, "particle", ids), scale(fin, "dim", dims)
    for name, shape, typ in (("x", (n, d), dt), ("loss", (n,), dt), ("grad_norm", (n,), dt),
                             ("status", (n,), np.int8), ("stop_step", (n,), np.int64)):  # fmt: skip
        ds = _allocated(fin, name, shape, np.dtype(typ))  # before the checkpoint slots: _drop_checkpoint
        attach(ds, *((p_f, d_f) if len(shape) == 2 else (p_f,)))
    fin["status"].attrs["codes"] = json.dumps(STATUS_CODES)

    if spec.finite_sum is not None:
        _create_finite_sum_layout(f, sim, rc, p_t, r_t, tl.chunks)

    # every object exists before the first flush: later checkpoints only write data (space is
    # allocated at the first write, so a run shorter than checkpoint_every stores no slot data)
    c = f.create_group("checkpoint")
    c.attrs.update({"step": -1, "records": 0, "slot": -1, "layout": "engine-native: x (D, N), state (S, D, N)"})
    for slot in ("0", "1"):
        s = c.create_group(slot)
        for name, arr in (("x", sim.x), ("state", sim.state), ("status", sim.status),
                          ("stop_step", sim.stop_step), ("count", sim.count)):  # fmt: skip
            dataset(s, name, shape=arr.shape, dtype=arr.dtype)


def _particles_per_chunk(n: int, per_particle: int) -> int:
    """Particles per HDF5 chunk: about :data:`H5_CHUNK_BYTES`, and a multiple of
    :data:`ALIGN` bytes when ``n`` allows it, so whole chunks can be written with
    ``O_DIRECT`` (see :class:`_RawChunks`)."""
    step = ALIGN // math.gcd(ALIGN, per_particle)
    want = max(1, H5_CHUNK_BYTES // per_particle)
    if n >= step:
        return int(min(n - n % step, max(step, want - want % step)))
    return int(max(1, min(n, want)))


def _write_model_layout(f: h5py.File, layout: Any) -> None:
    """``/model/layout`` (T,): one row per tensor of the flat parameter vector - name, kind, offset,
    size, shape (text, e.g. "32x64"), fan_in, fan_out (see :mod:`descentlab.models.layout`)."""
    from ...models.layout import layout_records

    rows = layout_records(layout)
    text = h5py.string_dtype()
    dt = np.dtype([("name", text), ("kind", text), ("offset", np.int64), ("size", np.int64), ("shape", text),
                   ("fan_in", np.int64), ("fan_out", np.int64)])  # fmt: skip
    table = np.array([(r["name"], r["kind"], r["offset"], r["size"], "x".join(str(n) for n in r["shape"]),
                       r["fan_in"], r["fan_out"]) for r in rows], dtype=dt)  # fmt: skip
    g = f.create_group("model")
    g.create_dataset("layout", data=table)
    g.attrs["note"] = "coordinates offset .. offset + size of the flat parameter vector hold tensor `name`"


def _create_finite_sum_layout(f: h5py.File, sim: Simulation, rc: int, p_t: h5py.Dataset, r_t: h5py.Dataset,
                              chunks: tuple[int, ...]) -> None:  # fmt: skip
    """``/data`` (the data set, and how to rebuild it) and ``/metrics`` of a model run."""
    from ...problems.finite_sum import init_stats

    fs = sim.spec.finite_sum
    _write_model_layout(f, fs.model.layout)
    d = f.create_group("data")
    d.attrs["description"] = json.dumps(fs.data.description, default=str)
    d.attrs.update({"name": fs.data.name, "task": fs.data.task})
    for name in ("x_train", "y_train", "x_test", "y_test"):
        d.create_dataset(name, data=getattr(fs.data, name))
    m = f.create_group("metrics")
    m.attrs["note"] = ("train_loss is trajectory/loss (mean training loss at each record); "
                       "init_* are per-layer statistics at initialization (particle, layer)")  # fmt: skip
    m["train_loss"] = f["trajectory/loss"]  # a hard link: the same data
    n, r = sim.n, sim.spec.n_records
    for name in sim.metrics.names:  # allocated now, before the checkpoint slots (see _drop_checkpoint)
        ds = _chunked(m, name, (n, r), (n, r), chunks, sim.dtype, {})
        attach(ds, p_t, r_t)
    updates = fs.epoch_of_steps(sim.spec.steps)
    dataset(m, "epoch_updates", updates)
    dataset(m, "epoch_wall_time", np.full(updates.shape, np.nan))
    stats = init_stats(fs, sim.init_x)
    if stats:
        layer = scale(m, "layer", np.arange(fs.model.n_layers, dtype=np.int64))
        for name, arr in stats.items():
            ds = m.create_dataset(f"init_{name}", data=arr)
            attach(ds, p_t, layer)


def _write_epochs(f: h5py.File, updates: np.ndarray, chunk_times: list[tuple[int, float]], step0: int) -> None:
    """``/metrics/epoch_updates`` (E,) and ``epoch_wall_time`` (E,) seconds.

    Each epoch's time is measured: the engine advances in pieces cut at every epoch end
    (:meth:`Simulation.advance_timed`), and an epoch's time is the kernel time of its pieces
    (metrics at the records are not included); epochs run before a resume have NaN times
    (not measured here).
    """
    from ..run import epoch_times

    wall = epoch_times(updates, chunk_times, step0)
    m = f["metrics"]
    for name, arr in (("epoch_updates", updates), ("epoch_wall_time", wall)):
        if name in m and m[name].shape == arr.shape:
            m[name][...] = arr
        else:  # a partial file of an earlier version
            if name in m:
                del m[name]
            m.create_dataset(name, data=arr)


def _drop_checkpoint(f: h5py.File) -> None:
    """Delete the two checkpoint slots of a run that completed (they are only for resuming).

    The slots are the last storage the run allocates (every other dataset is allocated when the
    layout is created), so HDF5 gives their space back and the file shrinks - except with a
    compressed trajectory, whose chunks are allocated as they are written. ``/checkpoint`` keeps
    its attributes (``step``, ``records``; ``slot`` -1, ``dropped`` true).
    """
    c = f["checkpoint"]
    for slot in ("0", "1"):
        if slot in c:
            del c[slot]
    c.attrs.update({"slot": -1, "dropped": True})


def _write_metrics(f: h5py.File, r0: int, values: Mapping[str, np.ndarray]) -> None:
    for name, arr in values.items():
        f["metrics"][name][:, r0 : r0 + arr.shape[1]] = arr


def _chunked(grp: h5py.Group, name: str, shape: tuple[int, ...], maxshape: tuple[int | None, ...],
             chunks: tuple[int, ...], dt: np.dtype, comp: dict[str, Any]) -> h5py.Dataset:  # fmt: skip
    """A chunked dataset allocated up front and never filled (writes go straight to disk)."""
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_chunk(chunks)
    dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
    if comp:
        dcpl.set_shuffle()
        if comp["compression"] == "gzip":
            dcpl.set_deflate(4)
        elif comp["compression"] == "lzf":
            dcpl.set_filter(h5py.h5z.FILTER_LZF, h5py.h5z.FLAG_OPTIONAL, (0,))
        else:
            raise StoreError(f"compression: expected gzip or lzf, got {comp['compression']!r}")
    else:
        dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    space = h5py.h5s.create_simple(shape, tuple(h5py.h5s.UNLIMITED if m is None else m for m in maxshape))
    dsid = h5py.h5d.create(grp.id, name.encode(), h5py.h5t.py_create(dt), space, dcpl=dcpl)
    return h5py.Dataset(dsid)


def _allocated(grp: h5py.Group, name: str, shape: tuple[int, ...], dt: np.dtype) -> h5py.Dataset:
    """A contiguous dataset whose storage is allocated now (nothing is written until it is filled)."""
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
    space = h5py.h5s.create_simple(shape)
    return h5py.Dataset(h5py.h5d.create(grp.id, name.encode(), h5py.h5t.py_create(dt), space, dcpl=dcpl))


def _rng_name() -> str:
    from ...core.rng import RNG_NAME

    return RNG_NAME


# ----------------------------------------------------------------------------- writer


#: Run files smaller than this are written by the main thread between chunks (see :class:`_Writer`).
THREAD_MIN_BYTES = 64 * 2**20


class _Writer:
    """A writer thread fed through a bounded queue; errors surface in the caller.

    ``inline=True`` (small files, below :data:`THREAD_MIN_BYTES`): no thread; each
    job runs in the caller at :meth:`put`. Overlapping the writes with the next
    chunk only pays when they are large: for a point of a sweep (10^4 particles x
    1000 steps) the thread's start, the hand-over of the GIL between it and the
    main thread and the final join cost more (~5 ms) than the writes themselves.
    """

    def __init__(self, depth: int = 1, inline: bool = False) -> None:
        self.q: queue.Queue[Callable[[], None] | None] = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None
        if not inline:
            self.thread = threading.Thread(target=self._loop, name="descentlab-writer", daemon=True)
            self.thread.start()

    def _loop(self) -> None:
        while True:
            job = self.q.get()
            if job is None:
                return
            if self.error is None:
                try:
                    job()
                except BaseException as exc:  # re-raised in the main thread
                    self.error = exc

    def put(self, job: Callable[[], None]) -> None:
        self._check()
        if self.thread is None:
            job()
        else:
            self.q.put(job)

    def close(self) -> None:
        if self.thread is not None:
            self.q.put(None)
            self.thread.join()
        self._check()

    def _check(self) -> None:
        if self.error is not None:
            raise self.error


#: Run files smaller than this are written through the page cache (see :class:`_RawChunks`).
DIRECT_MIN_BYTES = 256 * 2**20


class _RawChunks:
    """Whole trajectory chunks written straight to their place in the file.

    The datasets are allocated when created (``ALLOC_TIME_EARLY``, aligned to
    :data:`ALIGN` bytes), so every chunk has a fixed file offset. Where the OS
    allows, the chunks are written with ``O_DIRECT``: the bytes go from the
    record buffer to the disk without the page cache. Measured on the 2-core
    VM, 2.7 GB written buffered cost 2.5-6 s of kernel (sys) CPU, which the
    simulation threads then miss; with ``O_DIRECT`` 0.2 s. Otherwise (no
    ``O_DIRECT``, unaligned buffer or chunk) H5Dwrite_chunk writes the chunk.
    HDF5 itself writes only metadata, never these regions.

    ``direct=False`` (small files, below :data:`DIRECT_MIN_BYTES`): no ``O_DIRECT``.
    Each direct write waits for the device, which for a small run (a point of a
    sweep) cost more than its whole simulation (10^4 particles x 1000 steps: the
    file took 40-55 ms to write against 21 ms of simulation); the page cache only
    hurts when gigabytes stream through it.
    """

    def __init__(self, path: Path, direct: bool = True) -> None:
        self.fd: int | None = None
        flag = getattr(os, "O_DIRECT", 0) if direct else 0
        if flag:
            try:
                self.fd = os.open(path, os.O_WRONLY | flag)
            except OSError:  # e.g. tmpfs: no O_DIRECT
                self.fd = None
        self._pad: dict[tuple[tuple[int, ...], str], np.ndarray] = {}

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def _padded(self, chunks: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        key = (chunks, dtype.str)
        if key not in self._pad:
            self._pad[key] = aligned_empty(chunks, dtype)
        return self._pad[key]

    def put(self, ds: h5py.Dataset, coords: tuple[int, ...], block: np.ndarray) -> None:
        if self.fd is not None and block.ctypes.data % ALIGN == 0 and block.nbytes % ALIGN == 0:
            info = ds.id.get_chunk_info_by_coord(coords)
            if info.byte_offset is not None and info.byte_offset % ALIGN == 0 and info.size == block.nbytes:
                os.pwrite(self.fd, block.data, info.byte_offset)  # type: ignore[arg-type]
                return
        ds.id.write_direct_chunk(coords, np.ascontiguousarray(block))

    def write(self, ds: h5py.Dataset, r0: int, arr: np.ndarray) -> bool:
        """Write records ``[r0, r0 + k)`` of all particles as whole chunks.

        Only for unfiltered datasets and chunk-aligned record blocks (what
        :func:`chunk_plan` produces): each chunk's bytes are then a contiguous
        slice of ``arr`` (particles, records, ...), so nothing is gathered or
        converted; edge chunks are padded. Returns False when not applicable.
        """
        chunks = ds.chunks
        k, total = arr.shape[1], ds.shape[1]
        pc, rc = chunks[0], chunks[1]
        if ds.compression is not None or r0 % rc or (k % rc and r0 + k != total) or arr.dtype != ds.dtype:
            return False
        n = arr.shape[0]
        for b0 in range(0, k, rc):
            sub = arr if k == rc else np.ascontiguousarray(arr[:, b0 : b0 + rc])
            kb = sub.shape[1]
            for p0 in range(0, n, pc):
                block = sub[p0 : p0 + pc]
                if block.shape != chunks:
                    full = self._padded(chunks, arr.dtype)
                    full[...] = 0
                    full[: block.shape[0], :kb] = block
                    block = full
                self.put(ds, (p0, r0 + b0) + (0,) * (arr.ndim - 2), block)
        return True


def _write_records(f: h5py.File, raw: _RawChunks, r0: int, x: np.ndarray, loss: np.ndarray) -> None:
    r1 = r0 + x.shape[1]
    if r1 > r0:
        for ds, arr in ((f["trajectory/x"], x), (f["trajectory/loss"], loss)):
            if not raw.write(ds, r0, arr):
                ds[:, r0:r1, ...] = arr


def _write_checkpoint(f: h5py.File, step: int, records: int, snap: dict[str, np.ndarray]) -> None:
    c = f["checkpoint"]
    slot = 1 - int(c.attrs["slot"]) if int(c.attrs["slot"]) >= 0 else 0
    g = c[str(slot)]
    for name, arr in snap.items():
        g[name][...] = arr
    f.flush()  # the slot (and the records before it) reach the OS before the pointer moves
    c.attrs.update({"step": step, "records": records, "slot": slot})
    f.attrs["steps_done"] = step
    f.flush()


def _snapshot(sim: Simulation) -> dict[str, np.ndarray]:
    return {"x": sim.x.copy(), "state": sim.state.copy(), "status": sim.status.copy(),
            "stop_step": sim.stop_step.copy(), "count": sim.count.copy()}  # fmt: skip


def _restore(f: h5py.File, sim: Simulation) -> int:
    c = f["checkpoint"]
    slot = int(c.attrs["slot"])
    if slot < 0:
        return 0
    g = c[str(slot)]
    for name in ("x", "state", "status", "stop_step", "count"):
        arr = getattr(sim, name)
        ds = g[name]
        if ds.shape != arr.shape or ds.dtype != arr.dtype:
            raise StoreError(f"checkpoint: {name} has shape {ds.shape} {ds.dtype}, expected {arr.shape} {arr.dtype}")
        ds.read_direct(arr)
    f["init/x"].read_direct(sim.init_x)
    sim.step = int(c.attrs["step"])
    return sim.step


def write_run(
    spec: Any,
    out: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    chunk_steps: int | None = None,
    compression: str | None = None,
    progress: bool | None = None,
    checkpoint_every: float = CHECKPOINT_SECONDS,
    on_checkpoint: Callable[[int], None] | None = None,
    particles: tuple[int, int] | None = None,
    check_resources: bool = True,
) -> Path:
    """Run a spec into the HDF5 file ``out`` (atomically); returns its path.

    ``spec``: dict, TOML path or :class:`RunSpec`. ``resume``: continue
    ``OUT.partial`` from its last checkpoint (start afresh if there is none).
    ``overwrite``: replace an existing ``out``. ``compression``: None (default),
    ``"gzip"`` or ``"lzf"`` for the trajectory. ``progress``: None shows a bar
    only on a terminal. ``checkpoint_every``: seconds between checkpoints (0:
    after every chunk; one is always written at the last step). ``on_checkpoint(step)``
    is called (in the writer thread) once a checkpoint is on disk. ``particles=(a, b)``
    writes only global particles ``[a, b)`` (a shard; bit-identical to rows ``a:b``).
    ``check_resources``:
    refuse up front a run whose memory (:func:`~descentlab.engine.spec.check_memory`)
    or file (:meth:`~descentlab.engine.spec.RunSpec.file_bytes`, uncompressed runs
    only) does not fit on this machine. Raises :class:`~descentlab.engine.spec.SpecError` or
    :class:`StoreError` on bad input before any file is touched.
    """
    from ..spec import RunSpec, parse_spec

    rs = spec if isinstance(spec, RunSpec) else parse_spec(spec)
    if compression not in (None, "gzip", "lzf"):
        raise StoreError(f"compression: expected gzip or lzf, got {compression!r}")
    if chunk_steps is not None and chunk_steps < 1:
        raise StoreError(f"chunk_steps: must be >= 1, got {chunk_steps}")
    out = Path(out)
    if out.is_dir():
        raise StoreError(f"OUT: {out} is a directory; give a file name")
    if not out.parent.is_dir():
        raise StoreError(f"OUT: directory {out.parent} does not exist")
    # a shard is checked for the particles it holds, not the whole run's
    sized = rs if particles is None else dataclasses.replace(rs, particles=particles[1] - particles[0])
    if check_resources:
        from ..spec import check_memory

        check_memory(sized, sized.streaming_records(chunk_steps))
    with OutputLock(out):  # one writer per output: refused (StoreError) while another holds it
        try:
            return _write_run_locked(rs, out, resume=resume, overwrite=overwrite, chunk_steps=chunk_steps,
                                     compression=compression, progress=progress, checkpoint_every=checkpoint_every,
                                     on_checkpoint=on_checkpoint, particles=particles,
                                     disk_check=sized if check_resources and compression is None else None)  # fmt: skip
        except (OSError, RuntimeError) as exc:  # h5py raises either when a write fails
            tmp = partial_path(out)
            if disk_full(exc):
                keep = (f"the partial file {tmp} is kept: free some space, then run again with --resume"
                        if tmp.exists() else "nothing was kept")  # fmt: skip
                raise StoreError(f"OUT: disk full while writing {tmp} ({_reason(exc)}); {keep}") from None
            if isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
                raise StoreError(f"OUT: cannot write {tmp} ({_reason(exc)})") from None
            raise


def _check_disk(rs: RunSpec, out: Path, resume: bool) -> None:
    """Refuse a run whose file cannot fit in the free space of OUT's folder (checked before writing)."""
    need = rs.file_bytes()
    tmp = partial_path(out)
    if resume and tmp.exists():  # the partial's blocks already hold part of it
        need -= tmp.stat().st_blocks * 512
    free = shutil.disk_usage(out.parent).free
    if need > free:
        from ..spec import human_bytes

        raise StoreError(f"OUT: the run file needs about {human_bytes(need)} but {out.parent} has "
                         f"{human_bytes(free)} free; free some space, write elsewhere, or pass "
                         "--no-resource-check")  # fmt: skip


def disk_full(exc: BaseException) -> bool:
    """Whether an error (OSError from the OS or from HDF5) means the disk or the file-size limit is full."""
    text = str(exc)
    return getattr(exc, "errno", None) in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT) or any(
        s in text for s in ("No space left", "File too large", "Disk quota", "errno = 28,", "errno = 27,")
    )


def _reason(exc: BaseException) -> str:
    if getattr(exc, "strerror", None):
        return str(exc.strerror)  # type: ignore[attr-defined]
    for s in ("No space left on device", "File too large", "Disk quota exceeded", "Read-only file system",
              "Permission denied"):  # fmt: skip
        if s in str(exc):
            return s
    return str(exc).splitlines()[0][:120]


def _write_run_locked(
    rs: RunSpec,
    out: Path,
    *,
    resume: bool,
    overwrite: bool,
    chunk_steps: int | None,
    compression: str | None,
    progress: bool | None,
    checkpoint_every: float,
    on_checkpoint: Callable[[int], None] | None,
    particles: tuple[int, int] | None,
    disk_check: RunSpec | None,
) -> Path:
    from ..run import Simulation

    tmp = partial_path(out)
    if out.exists() and not overwrite:
        if resume and _is_complete(out):
            # nothing to do only if OUT is this very run (spec, and the hashes of its input files)
            diff = _stored_diff(out, rs)
            if diff:
                raise StoreError(f"{diff}: differs from the spec of the complete run {out}; "
                                 "pass --overwrite to replace it")  # fmt: skip
            return out
        raise StoreError(f"OUT: {out} exists; pass --overwrite to replace it")
    resuming = resume and tmp.exists()
    if resuming:
        try:
            with h5py.File(tmp, "r") as f:
                if f.attrs.get("format") != FORMAT:
                    raise KeyError("format")
                diff = _compare_spec(json.loads(f.attrs["spec"]), rs.resolved)
                if particles is not None and not diff and "particle_start" in f.attrs:  # a shard: same range
                    if (int(f.attrs["particle_start"]), int(f.attrs["particle_stop"])) != tuple(particles):
                        diff = "particles"
                has_checkpoint = "checkpoint" in f and int(f["checkpoint"].attrs.get("slot", -1)) >= 0
                finished = bool(f.attrs.get("complete", False))
        except (OSError, KeyError, ValueError):
            # killed before the first flush (not yet a readable HDF5 file) or while the layout was
            # being created: there is no checkpoint to keep, so start afresh (we hold the lock)
            diff, has_checkpoint, finished = None, False, False
        resuming = has_checkpoint
        if diff:
            raise StoreError(f"{diff}: differs from the spec of the partial run {tmp}; cannot resume")
        if finished:  # killed after the run completed, before the file was moved into place
            with h5py.File(tmp, "r+") as f:
                _drop_checkpoint(f)
                if "wall_time" not in f.attrs:  # not measured: the process that ran it was killed
                    f.attrs.update({"finished": _now(), "wall_time": float("nan"), "compile_time": float("nan")})
            os.replace(tmp, out)
            return out
    if disk_check is not None:  # compressed sizes are not known in advance
        _check_disk(disk_check, out, resuming)

    sim = Simulation(rs) if particles is None else Simulation(rs, *particles)
    ends, rc = chunk_plan(rs, chunk_steps)
    if resuming:
        f = h5py.File(tmp, "r+", **_ALIGNED)
        step0 = _restore(f, sim)
        rec0 = int(f["checkpoint"].attrs["records"])
    else:
        tmp.unlink(missing_ok=True)
        f = h5py.File(tmp, "w", **_ALIGNED)
        step0, rec0 = 0, 0
    ident = os.stat(tmp)  # the file this process writes (and the only one it will move into place)
    t_start = time.perf_counter()
    from ..run import PROGRESS_SECONDS, progress_bar

    bar = progress_bar(rs.steps, sim.n, step0, progress)
    # epochs timed one by one; a visible bar moves every second or so (pieces adapt to the speed)
    cuts = np.cumsum(rs.finite_sum.epoch_of_steps(rs.steps)) if rs.finite_sum is not None else None
    piece_seconds = None if bar.hidden else PROGRESS_SECONDS / 2
    file_bytes = rs.file_bytes()
    writer = _Writer(depth=1, inline=file_bytes < THREAD_MIN_BYTES)
    raw: _RawChunks | None = None
    chunk_times: list[tuple[int, float]] = []  # (steps, seconds) of each chunk of this process
    try:
        if not resuming:
            _create_layout(f, sim, rc, compression)
            f.flush()
        raw = _RawChunks(tmp, direct=file_bytes >= DIRECT_MIN_BYTES)
        rec = rec0
        last_checkpoint = time.perf_counter()
        for t1 in ends:
            if t1 <= sim.step:
                continue
            # record 0 goes with the first chunk
            recs, times = sim.advance_timed(t1, with_initial=rec == 0, cuts=cuts, seconds=piece_seconds,
                                            on_piece=lambda s: bar.update(s - bar.n))  # fmt: skip
            now = time.perf_counter()
            snap = None
            if now - last_checkpoint >= checkpoint_every:
                snap = _snapshot(sim)
                last_checkpoint = now
            r0, step_now = rec, sim.step
            rec += recs.x.shape[1]
            rec_now = rec

            mets = sim.metrics.at(recs.x) if sim.metrics is not None else {}
            chunk_times.extend(times)

            def job(r0=r0, recs=recs, snap=snap, step_now=step_now, rec_now=rec_now, mets=mets) -> None:
                _write_records(f, raw, r0, recs.x, recs.loss)
                _write_metrics(f, r0, mets)
                if snap is not None:
                    _write_checkpoint(f, step_now, rec_now, snap)
                    if on_checkpoint is not None:
                        on_checkpoint(step_now)

            writer.put(job)
        loss, gn = sim.finish()
        writer.close()
        raw.close()
        fin = f["final"]
        fin["x"][...] = sim.x.T
        fin["loss"][...] = loss
        fin["grad_norm"][...] = gn
        fin["status"][...] = sim.status
        fin["stop_step"][...] = sim.stop_step
        if rs.finite_sum is not None:
            _write_epochs(f, rs.finite_sum.epoch_of_steps(rs.steps), chunk_times, step0)
        # No flush from here to the close: killed before it, the file on disk is the one of the last
        # checkpoint (a resume continues from there); closed but not yet renamed, a resume moves it.
        _drop_checkpoint(f)  # first: the slots are the file's last storage, so the file shrinks
        f.attrs.update({"finished": _now(), "wall_time": time.perf_counter() - t_start,
                        "compile_time": sim.compile_time, "complete": True})  # fmt: skip
        f.close()
        bar.close()
    except BaseException:
        bar.close()
        try:
            writer.close()
        except BaseException:  # the first error wins
            pass
        if raw is not None:
            raw.close()
        try:
            f.close()
        except Exception:  # e.g. the disk is full: the first error is the one to report
            pass
        raise
    try:
        same = os.path.samestat(os.stat(tmp), ident)
    except FileNotFoundError:
        same = False
    if not same:
        raise StoreError(f"OUT: {tmp} was removed or replaced by another process during the run; "
                         f"not moving it into place")  # fmt: skip
    os.replace(tmp, out)
    return out


def _stored_diff(path: Path, rs: RunSpec) -> str | None:
    """The first field where the spec stored in run file ``path`` differs from ``rs`` (None: the same)."""
    try:
        with h5py.File(path, "r") as f:
            stored = json.loads(f.attrs["spec"])
    except (OSError, KeyError, ValueError):
        return "OUT"
    return _compare_spec(stored, rs.resolved)


def _is_complete(path: Path) -> bool:
    try:
        with h5py.File(path, "r") as f:
            return bool(f.attrs.get("complete", False))
    except OSError:
        return False
