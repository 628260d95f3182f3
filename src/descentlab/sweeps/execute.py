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
from dataclasses import dataclass, field
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
    #: The parsed spec, when the caller has it (local execution only: workers get ``spec``).
    run: Any = field(default=None, compare=False, repr=False)


def run_task(spec: Any, out: str, particles: tuple[int, int] | None = None,
             chunk_steps: int | None = None, threads: int | None = None, progress: bool | None = False,
             checkpoint_every: float = 30.0) -> dict[str, Any]:  # fmt: skip
    """Run one task (in this process); returns what happened. Safe to call again.

    ``spec``: a spec dict (what workers get) or its parsed :class:`~descentlab.engine.spec.RunSpec`.
    """
    import h5py

    from ..engine.store import partial_path, write_run
    from .index import read_point

    if threads is not None:
        from ..kernels.threads import max_threads, set_threads

        set_threads(min(threads, max_threads()))
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


#: Points of at most this many particles run several at once on the local executor (see
#: :class:`LocalExecutor`); larger ones keep every core busy on their own.
SMALL_POINT_PARTICLES = 1 << 17


class LocalExecutor:
    """Tasks in this process: one after another, each on all of Numba's threads - or, for
    small points, several at once, each on its share of the threads.

    ``threads``: kernel threads per task (default: all, and the automatic choice below).
    ``at_once``: tasks run at the same time (default: automatic). A small point (at most
    :data:`SMALL_POINT_PARTICLES` particles) spends as much time in fixed costs - spec,
    HDF5 layout, final writes, all on one core under the GIL - as in its kernel, so with
    ``threads`` unset and every task small, the executor runs as many tasks at once as
    Numba has threads, each single-threaded: one task's file work overlaps another's
    kernel (measured on 2 cores: a 64-point sweep of 10^4 x 1000 went from 2.0-2.6x to
    1.25-1.65x the time of one run of the same particle-steps). Results do not depend on
    it (a kernel's result does not depend on its thread count). The first task runs
    alone; the kernels every task needs are loaded before the others start.
    """

    name = "local"

    def __init__(self, threads: int | None = None, at_once: int | None = None) -> None:
        self.threads = threads
        self.at_once = at_once

    def _plan(self, tasks: Sequence[Task]) -> tuple[int, int | None]:
        """(tasks at once, threads per task) for these tasks."""
        from ..kernels.threads import get_threads

        if self.at_once is not None:
            k = max(1, min(self.at_once, len(tasks)))
            return k, self.threads or max(1, get_threads() // k)
        if self.threads is not None or len(tasks) < 2:
            return 1, self.threads
        from ..engine.spec import parse_spec

        sizes, cpu = [], True
        for t in tasks:
            rs = t.run or parse_spec(t.spec)
            sizes.append(t.particles[1] - t.particles[0] if t.particles else rs.particles)
            cpu = cpu and rs.target == "cpu"
        total = get_threads()
        if total < 2 or max(sizes) > SMALL_POINT_PARTICLES or not cpu:  # a GPU takes one point at a time
            return 1, None
        return min(total, len(tasks)), 1

    def run(self, tasks: Sequence[Task], *, progress: bool | None = None, unit: str = "point",
            chunk_steps: int | None = None, on_done: Callable[[Task, dict[str, Any]], None] | None = None,
            checkpoint_every: float = 30.0) -> list[dict[str, Any]]:  # fmt: skip
        k, threads = self._plan(tasks)
        results: list[dict[str, Any] | None] = [None] * len(tasks)
        bar = _bar(len(tasks), progress, unit)

        def one(i: int, at_once: bool) -> None:
            t = tasks[i]
            res = run_task(t.run or t.spec, t.out, t.particles, chunk_steps, threads if at_once else self.threads,
                           False if at_once else progress, checkpoint_every)  # fmt: skip
            results[i] = res
            if on_done is not None:
                on_done(t, res)
            bar.update(1)

        try:
            rest = range(len(tasks))
            if k > 1:
                one(0, False)  # alone: it loads its kernels
                rest = range(1, len(tasks))
                _load_kernels([tasks[i] for i in rest])
            if k == 1:
                for i in rest:
                    one(i, False)
            else:
                _run_at_once(rest, k, lambda i: one(i, True))
        finally:
            bar.close()
        return [r for r in results if r is not None]

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


def _load_kernels(tasks: Sequence[Task]) -> None:
    """Compile or load, one after another, the kernels of these tasks (each distinct one once)."""
    from ..engine.run import describe_kernels, kernels_for
    from ..engine.spec import parse_spec
    from .spec import kernel_key

    seen = set()
    for t in tasks:
        rs = t.run or parse_spec(t.spec)
        key = kernel_key(rs)
        if key not in seen and rs.target == "cpu":
            seen.add(key)
            kernels_for(rs).prepare(rs.dtype, describe_kernels(rs))


def _run_at_once(indices: Sequence[int], k: int, fn: Callable[[int], None]) -> None:
    """``fn(i)`` for every index, ``k`` at a time in threads; the first error stops what has not started."""
    from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

    pool = ThreadPoolExecutor(k, thread_name_prefix="descentlab-point")
    futures = [pool.submit(fn, i) for i in indices]
    try:
        wait(futures, return_when=FIRST_EXCEPTION)
    finally:  # an error or Ctrl-C: what has not started never starts; running tasks finish
        for f in futures:
            f.cancel()
        pool.shutdown(wait=True)
    for f in futures:
        if not f.cancelled() and f.exception() is not None:
            raise f.exception()  # type: ignore[misc]


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
