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
(checkpoints, the end of the run).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .common import (
    CONVERGED,
    DIVERGED,
    OUT_OF_BOUND,
    RUNNING,
    ChunkRecords,
    Particles,
    RunConstants,
    phase_of,
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


def make_cuda_kernels(l_value, l_grad, l_bgrad, l_hess, o_step, needs_hessian):  # type: ignore[no-untyped-def]
    """Host-callable ``(run_chunk, evaluate, hessian)`` with the CPU kernels' signatures."""
    _cuda()
    use_hess = needs_hessian

    @cuda.jit
    def run_kernel(X, S, status, stop_step, cnt, lp, hyper, phase_start, phase_lr, lr_sched,
                   seed, gid_base, t0, t1, record_every, rec_x, rec_loss, rec_first,
                   tol2, patience, bound, G, LW, OW, HB, PX, PS, LOSS):  # fmt: skip
        i = cuda.grid(1)
        dim = X.shape[0]
        n_state = S.shape[0]
        if i >= X.shape[1]:
            return
        st = status[i]
        c = cnt[i]
        for k in range(t0, t1):
            if st == RUNNING:
                out = False
                for d in range(dim):
                    if not (abs(X[d, i]) <= bound):
                        out = True
                if out:
                    st = OUT_OF_BOUND
                    stop_step[i] = k
                else:
                    ph, tl, lr = phase_of(k, phase_start, phase_lr, lr_sched)
                    l_bgrad(X, lp, LW, G, i, i + 1, k + 1, seed, gid_base)
                    acc = G[0, i] * G[0, i]
                    for d in range(1, dim):
                        acc += G[d, i] * G[d, i]
                    c = c + 1 if acc < tol2 else 0
                    if c >= patience:
                        st = CONVERGED
                        stop_step[i] = k
                    else:
                        for d in range(dim):
                            PX[d, i] = X[d, i]
                            for q in range(n_state):
                                PS[q, d, i] = S[q, d, i]
                        if use_hess:
                            l_hess(X, lp, LW, HB, i, i + 1)
                        o_step(ph, X, G, S, hyper, lr, tl, HB, OW, seed, gid_base, i, i + 1)
                        finite = True
                        for d in range(dim):
                            if not math.isfinite(X[d, i]):
                                finite = False
                        if not finite:
                            for d in range(dim):
                                X[d, i] = PX[d, i]
                                for q in range(n_state):
                                    S[q, d, i] = PS[q, d, i]
                            st = DIVERGED
                            stop_step[i] = k + 1
            if (k + 1) % record_every == 0:
                r = (k + 1) // record_every - rec_first
                l_value(X, lp, LW, LOSS, i, i + 1)
                rec_loss[i, r] = LOSS[i]
                for d in range(dim):
                    rec_x[i, r, d] = X[d, i]
        status[i] = st
        cnt[i] = c

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
        return (n + THREADS_PER_BLOCK - 1) // THREADS_PER_BLOCK, THREADS_PER_BLOCK

    def resident(p: Particles, c: RunConstants) -> Resident:
        """The run's state and constants copied to the device once (see :class:`Resident`)."""
        return Resident(p, c, use_hess)

    def run_chunk(p: Particles, c: RunConstants, t0: int, t1: int, r: ChunkRecords,
                  on_device: Resident | None = None) -> None:  # fmt: skip
        """Advance ``[t0, t1)``. With ``on_device`` (the caller keeps the state there between
        chunks), only the records come back; without, the state goes there and back."""
        dev = on_device if on_device is not None else Resident(p, c, use_hess)
        n = p.x.shape[1]
        # the columns of the record buffers this chunk writes (the caller may have filled others,
        # e.g. the record of step 0): only they have device buffers and come back
        c0, c1 = t0 // r.every + 1 - r.first, t1 // r.every + 1 - r.first
        rec_x, rec_loss = dev.records((n, c1 - c0, *r.x.shape[2:]), (n, c1 - c0), r.x.dtype)
        if n:
            run_kernel[grid(n)](
                dev.x, dev.state, dev.status, dev.stop_step, dev.count, dev.lparams, dev.hyper, dev.phase_start,
                dev.phase_lr, dev.schedule, c.seed, c.gid_base, t0, t1, r.every, rec_x, rec_loss, r.first + c0,
                c.tol2, c.patience, c.bound, *dev.scratch,
            )  # fmt: skip
        if c1 > c0:
            for d_buf, host in ((rec_x, r.x), (rec_loss, r.loss)):
                if c0 == 0 and c1 == host.shape[1]:
                    d_buf.copy_to_host(host)
                else:
                    host[:, c0:c1] = d_buf.copy_to_host()
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

    return run_chunk, evaluate, hessian, resident


class Resident:
    """A simulation's state on the device for the whole run.

    Positions, optimizer state, status, stop steps and counters (:class:`~.common.Particles`),
    the run's constants and the kernel's scratch are allocated (and copied) once; a chunk
    then sends nothing and brings back only its records (into the caller's record buffers).
    :meth:`download` brings the state back to the host arrays when the host needs it
    (checkpoints, the end of the run), :meth:`upload` sends host changes (a resume).
    """

    def __init__(self, p: Particles, c: RunConstants, use_hess: bool) -> None:
        dim, n = p.x.shape
        self.x, self.state, self.status, self.stop_step, self.count = (
            cuda.to_device(a) for a in (p.x, p.state, p.status, p.stop_step, p.count))  # fmt: skip
        self.lparams, self.hyper, self.phase_start, self.phase_lr, self.schedule = (
            cuda.to_device(np.ascontiguousarray(a)) for a in (c.lparams, c.hyper, c.phase_start, c.phase_lr,
                                                              c.schedule))  # fmt: skip
        hd = dim if use_hess else 1
        dt = p.x.dtype
        self.scratch = [cuda.device_array(shape, dt) for shape in
                        ((dim, n), (c.lrows, n), (c.orows, n), (hd, hd, n), (dim, n), (p.state.shape[0], dim, n),
                         (n,))]  # fmt: skip
        self._rec: dict[tuple[tuple[int, ...], tuple[int, ...]], tuple[Any, Any]] = {}

    def records(self, x_shape: tuple[int, ...], loss_shape: tuple[int, ...], dtype: np.dtype) -> tuple[Any, Any]:
        """Device buffers for a chunk's records (n, R, D) and (n, R), made once per shape."""
        key = (x_shape, loss_shape)
        if key not in self._rec:
            self._rec[key] = (cuda.device_array(x_shape, dtype), cuda.device_array(loss_shape, dtype))
        return self._rec[key]

    def download(self, p: Particles) -> None:
        """Device state -> the host arrays of ``p`` (in place)."""
        for dev, host in zip((self.x, self.state, self.status, self.stop_step, self.count),
                             (p.x, p.state, p.status, p.stop_step, p.count), strict=True):  # fmt: skip
            dev.copy_to_host(host)

    def upload(self, p: Particles) -> None:
        """The host arrays of ``p`` -> the device state."""
        for dev, host in zip((self.x, self.state, self.status, self.stop_step, self.count),
                             (p.x, p.state, p.status, p.stop_step, p.count), strict=True):  # fmt: skip
            dev.copy_to_device(host)
