"""Executors: run a sweep's points (or a run's shards) locally or on a Dask cluster.

A task is :func:`run_task`: a plain spec dict, an output path and an optional
particle range go to the worker (never compiled objects); the worker parses the
spec, compiles or loads its kernel (memoised per process, so a worker compiles a
kernel at most once; Numba's disk cache is shared when the workers share a
disk) and calls :func:`~descentlab.engine.store.write_run` with ``resume=True``.
Tasks are therefore idempotent: a complete file is left alone, a partial one
resumes from its checkpoint, and a task re-run after its worker died gives the
same bits.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..engine.store import StoreError


@dataclass(frozen=True)
class Task:
    """One unit of work: write ``spec`` (particles ``[a, b)`` if given) to ``out``."""

    key: str
    spec: dict[str, Any]
    out: str
    particles: tuple[int, int] | None = None


def run_task(spec: dict[str, Any], out: str, particles: tuple[int, int] | None = None,
             chunk_steps: int | None = None, threads: int | None = None, progress: bool | None = False,
             checkpoint_every: float = 30.0) -> dict[str, Any]:  # fmt: skip
    """Run one task (in this process); returns what happened. Safe to call again."""
    import h5py

    from ..engine.store import partial_path, write_run
    from .index import read_point

    if threads is not None:
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    path = Path(out)
    t0 = time.perf_counter()
    if path.exists():
        with h5py.File(path, "r") as f:
            if bool(f.attrs.get("complete", False)):
                return {"out": out, "skipped": True, "pid": os.getpid(), "seconds": 0.0, "compile_time": 0.0}
    kw = {"chunk_steps": chunk_steps, "progress": progress, "particles": particles,
          "checkpoint_every": checkpoint_every}  # fmt: skip
    try:
        write_run(spec, path, resume=True, **kw)
    except StoreError as exc:
        # a partial file that cannot be opened (killed before HDF5 wrote its superblock): start afresh -
        # the result is the same bits; any other refusal (e.g. another spec) stands
        if "cannot resume from" not in str(exc):
            raise
        partial_path(path).unlink(missing_ok=True)
        write_run(spec, path, resume=False, **kw)
    status, summary, compile_time = read_point(path)  # one read: the index needs no other
    return {"out": out, "skipped": False, "pid": os.getpid(), "seconds": time.perf_counter() - t0,
            "compile_time": compile_time, "status": status, "summary": summary}  # fmt: skip


def _bar(total: int, show: bool | None, unit: str) -> Any:
    from tqdm.auto import tqdm

    disable = (not sys.stderr.isatty()) if show is None else not show
    return tqdm(total=total, unit=unit, disable=disable, dynamic_ncols=True)


class LocalExecutor:
    """Tasks one after another in this process (each uses all of Numba's threads)."""

    name = "local"

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads

    def run(self, tasks: Sequence[Task], *, progress: bool | None = None, unit: str = "point",
            chunk_steps: int | None = None, on_done: Callable[[Task, dict[str, Any]], None] | None = None,
            checkpoint_every: float = 30.0) -> list[dict[str, Any]]:  # fmt: skip
        out = []
        bar = _bar(len(tasks), progress, unit)
        try:
            for t in tasks:
                res = run_task(t.spec, t.out, t.particles, chunk_steps, self.threads,
                               progress if progress is not None else None, checkpoint_every)  # fmt: skip
                out.append(res)
                if on_done is not None:
                    on_done(t, res)
                bar.update(1)
        finally:
            bar.close()
        return out

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any], *, keys: Sequence[str] | None = None,
            progress: bool | None = None) -> list[Any]:  # fmt: skip
        """``[fn(item) for item in items]``, in this process."""
        out = []
        bar = _bar(len(items), progress, "task")
        try:
            for it in items:
                out.append(fn(it))
                bar.update(1)
        finally:
            bar.close()
        return out

    def close(self) -> None:
        pass


class DaskExecutor:
    """Tasks on a Dask cluster: ``"local"`` starts a ``LocalCluster``; otherwise a scheduler address."""

    name = "dask"

    def __init__(self, address: str = "local", *, workers: int | None = None, threads: int | None = None,
                 client: Any = None) -> None:  # fmt: skip
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise StoreError("--dask: needs the distributed extra (pip install 'descentlab[distributed]')") from None
        self.threads = threads
        self._own: list[Any] = []
        if client is not None:
            self.client = client
        elif address == "local":
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                   dashboard_address=":0")  # fmt: skip
            self._own.append(cluster)
            self.client = Client(cluster)
            self._own.insert(0, self.client)
            if threads is None:  # share this machine's cores among the workers instead of oversubscribing
                import numba

                self.threads = max(1, numba.config.NUMBA_NUM_THREADS // max(1, len(cluster.workers)))
        else:
            if not address.startswith(("tcp://", "tls://", "ws://", "wss://", "inproc://", "ucx://")):
                raise StoreError(f"--dask: expected 'local' or a scheduler address (tcp://HOST:8786), got {address!r}")
            try:
                self.client = Client(address, timeout="20s")
            except OSError as exc:
                raise StoreError(f"--dask: cannot reach the scheduler at {address} ({exc})") from None
            self._own.append(self.client)

    def run(self, tasks: Sequence[Task], *, progress: bool | None = None, unit: str = "point",
            chunk_steps: int | None = None, on_done: Callable[[Task, dict[str, Any]], None] | None = None,
            checkpoint_every: float = 30.0) -> list[dict[str, Any]]:  # fmt: skip
        from distributed import as_completed

        futures = {}
        for t in tasks:
            fut = self.client.submit(run_task, t.spec, t.out, t.particles, chunk_steps, self.threads, False,
                                     checkpoint_every, key=t.key, pure=False, retries=2)  # fmt: skip
            futures[fut] = t
        results: dict[str, dict[str, Any]] = {}
        bar = _bar(len(tasks), progress, unit)
        try:
            for fut in as_completed(list(futures)):
                t = futures[fut]
                res = fut.result()
                results[t.key] = res
                if on_done is not None:
                    on_done(t, res)
                bar.update(1)
        finally:
            bar.close()
        return [results[t.key] for t in tasks]

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any], *, keys: Sequence[str] | None = None,
            progress: bool | None = None) -> list[Any]:  # fmt: skip
        """``fn`` of every item on the cluster (in parallel); results in the order of ``items``."""
        from distributed import as_completed

        futs = [self.client.submit(fn, it, key=None if keys is None else keys[i], pure=False, retries=2)
                for i, it in enumerate(items)]  # fmt: skip
        bar = _bar(len(items), progress, "task")
        try:
            for _ in as_completed(futs):
                bar.update(1)
        finally:
            bar.close()
        return [f.result() for f in futs]

    def close(self) -> None:
        for obj in self._own:
            obj.close()
        self._own = []


def make_executor(dask: str | None = None, *, workers: int | None = None, threads: int | None = None) -> Any:
    if dask is None:
        return LocalExecutor(threads)
    return DaskExecutor(dask, workers=workers, threads=threads)
