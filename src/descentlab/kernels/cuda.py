"""CUDA adapter: one particle per thread, the canonical loop of :mod:`.common`.

The only module that imports ``numba.cuda`` (package ``numba-cuda``, the
``cuda`` extra). The math functions are the same plain-Python functions the
CPU kernel inlines; here each thread calls them with ``hi = lo + 1`` on the
global structure-of-arrays buffers (coalesced: neighbouring threads read
neighbouring particles).

Without a GPU, ``target="cuda"`` fails with :class:`CudaUnavailable`; the
tests run these kernels under the CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``).

The host wrappers have the CPU kernels' signatures (NumPy arrays in, modified
in place) so the engine drives both targets alike. The engine keeps a run's
state on the device from chunk to chunk (:class:`Resident`): a chunk brings
back only its records, and the state comes back when the host reads it
(checkpoints, the end of the run). A chunk runs in pieces of particles on a
compute stream; each piece's records come back on a copy stream while the next
piece computes (see ``run_chunk``). Every thread runs the canonical per-particle
loop :func:`.common.checked_steps` (the CPU kernel's replay runs it too).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from .common import (
    RUNNING,
    ChunkRecords,
    Particles,
    RunConstants,
    checked_steps,
    chunk_arguments,
    phase_key,
    phase_ranges,
)

try:  # a module global: the CUDA simulator patches ``cuda`` in kernel globals
    from numba import cuda
except ImportError:  # pragma: no cover - depends on the install
    cuda = None

THREADS_PER_BLOCK = 128


class CudaUnavailable(RuntimeError):
    """``target = "cuda"`` was asked for but no usable CUDA device is present."""


def _cuda() -> Any:
    if cuda is None:
        raise CudaUnavailable("run.target: 'cuda' needs the numba-cuda package (pip install 'descentlab[cuda]')")
    if not cuda.is_available():
        raise CudaUnavailable(
            "run.target: 'cuda' was asked for but no CUDA GPU is available "
            "(numba.cuda.is_available() is False); use target = 'cpu'"
        )
    return cuda


#: Particles per launch at least when a chunk is split for overlap (about one wave of resident
#: threads on an H100/H200: 132 SMs x 2048); fewer particles are one launch.
PIECE_PARTICLES = 1 << 18
#: Launches per chunk at most (see :func:`piece_bounds`).
MAX_PIECES = 4


def piece_bounds(n: int) -> list[int]:
    """Particle bounds ``[0, ..., n]`` of a chunk's launches: ``min(MAX_PIECES, n // PIECE_PARTICLES)``
    pieces (at least one) of near-equal size. The records of piece ``j`` come back while piece
    ``j + 1`` computes; results do not depend on the pieces (particles are independent)."""
    k = max(1, min(MAX_PIECES, n // max(1, PIECE_PARTICLES)))
    return [n * j // k for j in range(k + 1)]


def make_cuda_kernels(l_value, l_grad, l_bgrad, l_hess, steps, state_slices, hyper_slices,  # type: ignore[no-untyped-def]
                      needs_hessian, require_device=True):  # fmt: skip
    """Host-callable ``(run_chunk, evaluate, hessian, resident)`` with the CPU kernels' signatures.

    ``steps[j]``, ``state_slices[j]`` and ``hyper_slices[j]`` describe optimizer phase ``j``
    (as for :class:`descentlab.kernels.cpu.CpuKernels`): a chunk is one launch per phase.
    ``run_chunk.ptx(particles, constants, cc)`` compiles every kernel to PTX; with
    ``require_device=False`` that (nothing else) works on a machine without a GPU.
    """
    if require_device:
        _cuda()
    elif cuda is None:
        raise CudaUnavailable("the CUDA kernels need the numba-cuda package (pip install 'descentlab[cuda]')")
    use_hess = needs_hessian

    def make_run_kernel(f_step):  # type: ignore[no-untyped-def]
        @cuda.jit
        def run_kernel(X, S, status, stop_step, cnt, lp, hyper, phase_start, phase_lr, lr_sched,
                       seed, gid_base, t0, t1, record_every, rec_x, rec_loss, rec_first,
                       tol2, patience, bound, i0, i1, G, LW, OW, HB, PX, PS, LOSS):  # fmt: skip
            """Particles ``[i0, i1)``, steps ``[t0, t1)`` of one phase (``S`` its state slice, ``hyper``,
            ``phase_start``, ``phase_lr``, ``seed`` its own); the arguments of :func:`.common.chunk_arguments`
            and the scratch of :class:`Resident`; records go to rec_x (n, R, D) and rec_loss (n, R)."""
            i = cuda.grid(1) + i0
            if i >= i1:
                return
            dim = X.shape[0]
            st = status[i]
            c = cnt[i]
            t = t0
            while t < t1:
                te = min((t // record_every + 1) * record_every, t1)
                if st == RUNNING:
                    st, c, stp = checked_steps(X, S, G, HB, LW, OW, PX, PS, i, i + 1, t, te, st, c, lp, hyper,
                                               phase_start, phase_lr, lr_sched, seed, gid_base, tol2, patience,
                                               bound, use_hess, l_bgrad, l_hess, f_step)  # fmt: skip
                    if stp >= 0:
                        stop_step[i] = stp
                t = te
                if t % record_every == 0:
                    r = t // record_every - rec_first
                    l_value(X, lp, LW, LOSS, i, i + 1)
                    rec_loss[i, r] = LOSS[i]
                    for d in range(dim):
                        rec_x[i, r, d] = X[d, i]
            status[i] = st
            cnt[i] = c

        return run_kernel

    run_kernels = [make_run_kernel(f) for f in steps]

    def run_arguments(dev: Resident, c: RunConstants, j: int, t0: int, t1: int, every: int, rec_x: Any,
                      rec_loss: Any, rec_first: int, i0: int, i1: int) -> tuple[Any, ...]:  # fmt: skip
        """``run_kernels[j]``'s arguments: phase ``j``, steps ``[t0, t1)``, particles ``[i0, i1)``
        (:func:`.common.chunk_arguments` with the device copies and phase ``j``'s constants, as the
        CPU adapter passes them, then the particle range and the scratch)."""
        s0, s1 = state_slices[j]
        h0, h1 = hyper_slices[j]
        p = Particles(dev.x, dev.state[s0:s1], dev.status, dev.stop_step, dev.count)
        phase = dataclasses.replace(c, lparams=dev.lparams, hyper=dev.hyper[h0:h1], phase_start=int(c.phase_start[j]),
                                    phase_lr=float(c.phase_lr[j]), schedule=dev.schedule,
                                    seed=np.uint64(c.seed) ^ phase_key(j), gid_base=int(c.gid_base),
                                    patience=int(c.patience))  # fmt: skip
        r = ChunkRecords(rec_x, rec_loss, int(rec_first), int(every))
        return (*chunk_arguments(p, phase, int(t0), int(t1), r), int(i0), int(i1), *dev.scratch)

    @cuda.jit
    def eval_kernel(X, lp, LW, G, loss, grad_norm):
        i = cuda.grid(1)
        if i >= X.shape[1]:
            return
        l_value(X, lp, LW, loss, i, i + 1)
        l_grad(X, lp, LW, G, i, i + 1)
        acc = G[0, i] * G[0, i]
        for d in range(1, X.shape[0]):
            acc += G[d, i] * G[d, i]
        grad_norm[i] = math.sqrt(acc)

    @cuda.jit
    def hess_kernel(X, lp, LW, HB):
        i = cuda.grid(1)
        if i >= X.shape[1]:
            return
        l_hess(X, lp, LW, HB, i, i + 1)

    def grid(n: int) -> tuple[int, int]:
        return max(1, (n + THREADS_PER_BLOCK - 1) // THREADS_PER_BLOCK), THREADS_PER_BLOCK

    def resident(p: Particles, c: RunConstants) -> Resident:
        """The run's state and constants copied to the device once (see :class:`Resident`)."""
        return Resident(p, c, use_hess)

    def run_chunk(p: Particles, c: RunConstants, t0: int, t1: int, r: ChunkRecords,
                  on_device: Resident | None = None) -> None:  # fmt: skip
        """Advance ``[t0, t1)``. With ``on_device`` (the caller keeps the state there between
        chunks), only the records come back; without, the state goes there and back.

        The particles run in pieces (:func:`piece_bounds`), one launch per piece and phase on the
        compute stream; once piece ``j`` is computed (an event), its rows of the records are copied
        back on the copy stream, straight into the caller's buffers (page-locked for the call),
        while piece ``j + 1`` computes. The call returns when every copy is done.
        """
        dev = on_device if on_device is not None else Resident(p, c, use_hess)
        n = p.x.shape[1]
        # the columns of the record buffers this chunk writes (the caller may have filled others,
        # e.g. the record of step 0): only they have device buffers and come back
        c0, c1 = t0 // r.every + 1 - r.first, t1 // r.every + 1 - r.first
        rec_x, rec_loss = dev.records((n, c1 - c0, *r.x.shape[2:]), (n, c1 - c0), r.x.dtype)
        whole = c0 == 0 and c1 == r.x.shape[1]
        # rows of the destination are contiguous when the chunk fills whole rows (every chunk but a
        # first one that leads with the record of step 0: that one goes through a page-locked buffer)
        dst_x, dst_loss = (r.x, r.loss) if whole else (cuda.pinned_array(rec_x.shape, r.x.dtype),
                                                       cuda.pinned_array(rec_loss.shape, r.x.dtype))  # fmt: skip
        phases = phase_ranges(t0, t1, c.phase_start)
        with contextlib.ExitStack() as pins:
            if c1 > c0 and whole:
                for a in (dst_x, dst_loss):
                    pins.enter_context(_page_locked(a))
            bounds = piece_bounds(n)
            for a, b in itertools.pairwise(bounds):
                for j, pa, pb in phases:
                    run_kernels[j][(*grid(b - a), dev.compute)](
                        *run_arguments(dev, c, j, pa, pb, r.every, rec_x, rec_loss, r.first + c0, a, b))
                if c1 > c0 and b > a:
                    done = cuda.event()
                    done.record(dev.compute)
                    done.wait(dev.copy)
                    rec_x[a:b].copy_to_host(dst_x[a:b], stream=dev.copy)
                    rec_loss[a:b].copy_to_host(dst_loss[a:b], stream=dev.copy)
            dev.copy.synchronize()  # before the buffers are unpinned and handed on
        if not whole and c1 > c0:
            r.x[:, c0:c1] = dst_x
            r.loss[:, c0:c1] = dst_loss
        if on_device is None:
            dev.download(p)

    def evaluate(X, lp, lrows, loss, grad_norm):  # type: ignore[no-untyped-def]
        dim, n = X.shape
        d_loss, d_gn = cuda.to_device(loss), cuda.to_device(grad_norm)
        eval_kernel[grid(n)](
            cuda.to_device(X), lp, cuda.device_array((lrows, n), X.dtype),
            cuda.device_array((dim, n), X.dtype), d_loss, d_gn,
        )  # fmt: skip
        d_loss.copy_to_host(loss)
        d_gn.copy_to_host(grad_norm)

    def hessian(X, lp, lrows, H):  # type: ignore[no-untyped-def]
        dim, n = X.shape
        d_h = cuda.device_array((dim, dim, n), X.dtype)
        hess_kernel[grid(n)](cuda.to_device(X), lp, cuda.device_array((lrows, n), X.dtype), d_h)
        H[...] = np.moveaxis(d_h.copy_to_host(), 2, 0)

    def ptx(p: Particles, c: RunConstants, cc: tuple[int, int] = (9, 0)) -> dict[str, str]:
        """PTX for compute capability ``cc`` of every kernel of these math functions, compiled for
        the argument types ``run_chunk``, ``evaluate`` and ``hessian`` pass for a run like ``p``, ``c``
        (NumPy stand-ins for the device arrays: both type as ``types.Array``). Needs libNVVM, not a GPU;
        keys ``run[j]`` (phase j), ``evaluate``, ``hessian``."""
        from numba import typeof

        dev = Resident(p, c, True, on_device=False)  # a (D, D, n) Hessian buffer for hess_kernel too
        dim, n = p.x.shape
        rec_x, rec_loss = np.empty((n, 1, dim), p.x.dtype), np.empty((n, 1), p.x.dtype)
        todo: dict[str, tuple[Any, tuple[Any, ...]]] = {
            f"run[{j}]": (k, run_arguments(dev, c, j, 0, 1, 1, rec_x, rec_loss, 0, 0, n))
            for j, k in enumerate(run_kernels)
        }
        todo["evaluate"] = (eval_kernel, (p.x, dev.lparams, dev.scratch[1], dev.scratch[0], dev.scratch[6],
                                          dev.scratch[6]))  # fmt: skip
        todo["hessian"] = (hess_kernel, (p.x, dev.lparams, dev.scratch[1], dev.scratch[3]))
        with _compute_capability(cc):
            return {name: cuda.compile_ptx(k.py_func, tuple(typeof(a) for a in args), cc=cc)[0]
                    for name, (k, args) in todo.items()}  # fmt: skip

    run_chunk.ptx = ptx  # type: ignore[attr-defined]
    return run_chunk, evaluate, hessian, resident


@contextlib.contextmanager
def _page_locked(a: np.ndarray) -> Iterator[None]:
    """``a`` page-locked (registered with the driver) inside the block, so that copies into it are
    asynchronous. Where the driver refuses (e.g. a page already registered), the copies still land,
    but synchronously: the result is the same, only the overlap is lost."""
    try:
        pin = cuda.pinned(a)
        pin.__enter__()
    except Exception:  # any refusal of the driver: go on unpinned
        yield
        return
    try:
        yield
    finally:
        pin.__exit__(None, None, None)


@contextlib.contextmanager
def _compute_capability(cc: tuple[int, int]) -> Iterator[None]:
    """Without a GPU, the device functions a kernel calls are compiled for ``cc`` too.

    numba-cuda compiles a device function (each ``math_function`` a kernel calls) for the
    compute capability of the current device, even inside ``compile_ptx(..., cc=...)``; with no
    device present it would fail to initialise the driver. Here it is told ``cc`` instead.
    """
    if cuda.is_available():
        yield
        return
    from numba.cuda import dispatcher

    class _Device:
        compute_capability = cc

    saved = dispatcher.get_current_device
    dispatcher.get_current_device = lambda: _Device()
    try:
        yield
    finally:
        dispatcher.get_current_device = saved


class Resident:
    """A simulation's state on the device for the whole run.

    Positions, optimizer state, status, stop steps and counters (:class:`~.common.Particles`),
    the run's constants and the kernel's scratch are allocated (and copied) once; a chunk
    then sends nothing and brings back only its records (into the caller's record buffers).
    :meth:`download` brings the state back to the host arrays when the host needs it
    (checkpoints, the end of the run), :meth:`upload` sends host changes (a resume).
    """

    def __init__(self, p: Particles, c: RunConstants, use_hess: bool, on_device: bool = True) -> None:
        # on_device=False: NumPy copies instead (the argument types of the kernels, for compiling them to PTX)
        to_device = cuda.to_device if on_device else np.array
        empty = cuda.device_array if on_device else np.empty
        dim, n = p.x.shape
        self.x, self.state, self.status, self.stop_step, self.count = (
            to_device(a) for a in (p.x, p.state, p.status, p.stop_step, p.count))  # fmt: skip
        self.lparams, self.hyper, self.phase_start, self.phase_lr, self.schedule = (
            to_device(np.ascontiguousarray(a)) for a in (c.lparams, c.hyper, c.phase_start, c.phase_lr,
                                                         c.schedule))  # fmt: skip
        hd = dim if use_hess else 1
        dt = p.x.dtype
        self.scratch = [empty(shape, dt) for shape in
                        ((dim, n), (c.lrows, n), (c.orows, n), (hd, hd, n), (dim, n), (p.state.shape[0], dim, n),
                         (n,))]  # fmt: skip
        self._rec: dict[tuple[tuple[int, ...], tuple[int, ...]], tuple[Any, Any]] = {}
        #: The kernels run on ``compute``; the records come back on ``copy`` (see ``run_chunk``).
        self.compute, self.copy = (cuda.stream(), cuda.stream()) if on_device else (None, None)

    def records(self, x_shape: tuple[int, ...], loss_shape: tuple[int, ...], dtype: np.dtype) -> tuple[Any, Any]:
        """Device buffers for a chunk's records (n, R, D) and (n, R), made once per shape."""
        key = (x_shape, loss_shape)
        if key not in self._rec:
            self._rec[key] = (cuda.device_array(x_shape, dtype), cuda.device_array(loss_shape, dtype))
        return self._rec[key]

    def download(self, p: Particles) -> None:
        """Device state -> the host arrays of ``p`` (in place)."""
        self.compute.synchronize()
        for dev, host in zip((self.x, self.state, self.status, self.stop_step, self.count),
                             (p.x, p.state, p.status, p.stop_step, p.count), strict=True):  # fmt: skip
            dev.copy_to_host(host)

    def upload(self, p: Particles) -> None:
        """The host arrays of ``p`` -> the device state."""
        self.compute.synchronize()
        for dev, host in zip((self.x, self.state, self.status, self.stop_step, self.count),
                             (p.x, p.state, p.status, p.stop_step, p.count), strict=True):  # fmt: skip
            dev.copy_to_device(host)
