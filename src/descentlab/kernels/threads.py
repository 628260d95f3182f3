"""Threads of the CPU kernels: a pool of Python threads running compiled code that releases the GIL.

Two ways to share out work: :func:`on_threads` calls a kernel once on each of
``threads`` threads (the calling one and ``threads - 1`` pool threads) and the kernel
hands out its blocks itself - the CPU block loop claims blocks from an atomic counter,
so no Python runs between blocks; :func:`for_pieces` cuts ``[0, n)`` into pieces that
the threads claim one after another, a Python call each (evaluations, Hessians). A
block's or piece's result does not depend on the thread that runs it, so results are
the same for every thread count.

Why not Numba's ``prange`` (the engine used it until 2026-12): a parallel kernel
costs ~0.6 s more to compile per dtype (the parfor lowering and its gufunc), a
fresh process pays for starting the threading layer, and prange splits the blocks
statically, so with another program busy on one core every chunk waits for the
thread that shares it; here a thread that is ahead takes more blocks. Calls from
several threads at once (a sweep's points) need no thread-safe threading layer.

The thread count is per calling thread (like :func:`numba.set_num_threads`, which
it also follows), by default ``NUMBA_NUM_THREADS`` (the number of cores unless set).
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager

import numba

_local = threading.local()
_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_size = 0

#: Pieces per thread: more pieces balance uneven threads (a busy core), fewer cost less
#: (each piece is one call of a compiled kernel from Python, ~16 us with the GIL held).
#: Rosenbrock + Adam, N = 1e4, T = 1000, 2 threads, M particle-steps/s, best of 15
#: (float32 / float64): quiet 2 -> 1295 / 552, 4 -> 1167 / 514; with 2 busy processes
#: 2 -> 666 / 289, 4 -> 643 / 272; decreasing ("guided") pieces were no better than 2.
PIECES_PER_THREAD = 2


def max_threads() -> int:
    """The most threads a kernel may use: ``NUMBA_NUM_THREADS``."""
    return int(numba.config.NUMBA_NUM_THREADS)


def get_threads() -> int:
    """Threads the kernels called from this thread use.

    :func:`set_threads` of this thread if called, else Numba's own per-thread setting
    (:func:`numba.set_num_threads`) if a program has started Numba's threading layer,
    else :func:`max_threads`.
    """
    n = getattr(_local, "n", None)
    if n is not None:
        return n
    from numba.np.ufunc import parallel

    return int(numba.get_num_threads()) if parallel._is_initialized else max_threads()


def set_threads(n: int | None) -> None:
    """Threads for the kernels called from this thread (``None``: back to :func:`max_threads`)."""
    if n is not None and not 1 <= int(n) <= max_threads():
        raise ValueError(f"threads: expected 1..{max_threads()} (NUMBA_NUM_THREADS), got {n}")
    _local.n = None if n is None else int(n)


@contextmanager
def using_threads(n: int | None) -> Iterator[None]:
    """Within the block, kernels called from this thread use ``n`` threads."""
    old = getattr(_local, "n", None)
    set_threads(n)
    try:
        yield
    finally:
        _local.n = old


def _forget_pool() -> None:
    """In a forked child: the parent's pool threads do not exist here; the next call makes a new pool."""
    global _pool, _pool_size, _lock
    _pool, _pool_size, _lock = None, 0, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool)


def _get_pool(workers: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    with _lock:
        if _pool is None or _pool_size < workers:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="descentlab-kernel")
            _pool_size = workers
        return _pool


def pieces(n: int, threads: int) -> list[tuple[int, int]]:
    """``[0, n)`` cut into at most ``PIECES_PER_THREAD * threads`` contiguous, non-empty pieces."""
    if n <= 0:
        return []
    k = max(1, min(PIECES_PER_THREAD * threads, n))
    edges = [n * j // k for j in range(k + 1)]
    return [(a, b) for a, b in itertools.pairwise(edges) if b > a]


def on_threads(threads: int, fn: Callable[[], int]) -> int:
    """``sum(fn())`` over ``threads`` calls at once: this thread's and ``threads - 1`` pool threads'.

    For kernels that share out their work themselves (the CPU block loop claims blocks
    from an atomic counter): one call per thread, no Python between pieces. A pool call
    that has not started when this thread's call returns is cancelled - this thread has
    then done its share (with a busy pool, all the work). An exception in any call is
    raised here after all have returned.
    """
    if threads <= 1:
        return fn()
    pool = _get_pool(threads - 1)
    futures = [pool.submit(fn) for _ in range(threads - 1)]
    total = 0
    error: BaseException | None = None
    try:
        total = fn()
    except BaseException as exc:
        error = exc
    for f in futures:
        if f.cancel():  # never started (the pool was busy): the others did its share
            continue
        try:
            total += f.result()
        except BaseException as exc:
            error = error or exc
    if error is not None:
        raise error
    return total


def for_pieces(n: int, fn: Callable[[int, int], int], threads: int | None = None) -> int:
    """``sum(fn(lo, hi))`` over pieces of ``[0, n)``, run on ``threads`` threads (this one among them).

    ``fn`` must release the GIL for the threads to overlap (a ``nogil`` kernel) and must
    not depend on which thread runs it. An exception in any piece is raised here (after
    the other threads have stopped).
    """
    threads = get_threads() if threads is None else threads
    work = pieces(n, threads)
    if threads <= 1 or len(work) <= 1:
        return sum(fn(a, b) for a, b in work)
    claim = itertools.count()  # next() of a count is atomic under the GIL
    failed: list[BaseException] = []

    def loop() -> int:
        total = 0
        while not failed:
            j = next(claim)
            if j >= len(work):
                break
            try:
                total += fn(*work[j])
            except BaseException as exc:  # stop the others; raised in the caller
                failed.append(exc)
                raise
        return total

    pool = _get_pool(threads - 1)
    futures: list[Future[int]] = [pool.submit(loop) for _ in range(min(threads, len(work)) - 1)]
    total = 0
    try:
        total = loop()
    finally:
        for f in futures:
            if f.cancel():  # never started (the pool was busy): nothing left for it
                continue
            try:
                total += f.result()
            except BaseException:
                if not failed:
                    raise
    if failed:
        raise failed[0]
    return total
