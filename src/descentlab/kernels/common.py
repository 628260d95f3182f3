"""Pieces shared by the CPU and CUDA adapters: the status codes as kernel constants
(from :class:`descentlab.core.status.Status`), the argument bundles of a chunk call, the
optimizer phases of a chunk, and the per-particle loop itself (:func:`checked_steps`).

Per-particle semantics (the canonical loop, identical on every target and in
the NumPy reference)::

    for k in range(t0, t1):                      # k = updates done so far
        if not all(|x_k| <= bound):  status = OUT_OF_BOUND, stop_step = k; stop
        g = grad(x_k);  cnt = cnt + 1 if |g|^2 < grad_tol^2 else 0
        if cnt >= patience:          status = CONVERGED,    stop_step = k; stop
        x_{k+1}, s_{k+1} = step(x_k, g, s_k)
        if not all finite(x_{k+1}):  status = DIVERGED, stop_step = k + 1;
                                     keep x_k, s_k (last finite state); stop

A stopped particle is frozen; the others go on. :func:`checked_steps` is that loop for one
particle, the one source of it: the CUDA kernel runs it in every thread, the CPU kernel in
its replay of a flagged particle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._jit import math_function
from ..core.schedules import schedule_factor
from ..core.status import Status

#: Mixed into the RNG key of phase j (golden-ratio increments), so noisy
#: optimizers in two phases of a switch draw different numbers.
_PHASE_KEY = 0x9E3779B97F4A7C15

# The status codes as plain ints for the kernels (module-level ints are compile-time constants).
RUNNING = int(Status.RUNNING)
CONVERGED = int(Status.CONVERGED)
DIVERGED = int(Status.DIVERGED)
OUT_OF_BOUND = int(Status.OUT_OF_BOUND)

__all__ = ["CONVERGED", "DIVERGED", "OUT_OF_BOUND", "RUNNING", "ChunkRecords", "Particles", "RunConstants",
           "checked_steps", "chunk_arguments", "phase_key", "phase_ranges"]  # fmt: skip


# --------------------------------------------------------------------------- what a chunk call carries
# The compiled kernels take their arguments positionally (Numba); the host bundles them by what
# travels together, and :func:`chunk_arguments` is the one place that lays them out in the
# kernels' order, for the CPU and the CUDA adapter alike.


@dataclass(frozen=True)
class Particles:
    """The state a chunk advances, all modified in place.

    ``x`` (D, n) positions; ``state`` (S, D, n) optimizer state of every phase; ``status``
    (n,) int8 (:class:`~descentlab.core.status.Status`); ``stop_step`` (n,) int64;
    ``count`` (n,) int64 steps in a row with the gradient under ``grad_tol``.
    """

    x: np.ndarray
    state: np.ndarray
    status: np.ndarray
    stop_step: np.ndarray
    count: np.ndarray


@dataclass(frozen=True)
class RunConstants:
    """What stays the same over a run (or a shard of one).

    ``lparams`` (P,) landscape parameters (dtype of ``x``); ``lrows`` scratch rows of the
    landscape math; ``hyper`` float64 hyperparameters of every phase; ``phase_start`` (Q,)
    int64 first global step of each phase; ``phase_lr`` (Q,) float64 base learning rates;
    ``schedule`` float64 (5,) (:func:`~descentlab.core.schedules.pack_schedule`); ``seed``
    uint64; ``gid_base`` int64 global id of column 0; ``orows`` scratch rows of the optimizer;
    ``tol2`` squared gradient tolerance and ``bound`` (both finite, in the dtype of ``x``);
    ``patience`` steps in a row under the tolerance that mean converged.
    """

    lparams: np.ndarray
    lrows: int
    hyper: np.ndarray
    phase_start: np.ndarray
    phase_lr: np.ndarray
    schedule: np.ndarray
    seed: np.uint64
    gid_base: int
    orows: int
    tol2: Any
    patience: int
    bound: Any


@dataclass(frozen=True)
class ChunkRecords:
    """Where a chunk's records go (modified): steps ``k`` in ``(t0, t1]`` with ``k % every == 0``
    fill ``x[:, k // every - first, :]`` (n, R, D) and ``loss[:, k // every - first]`` (n, R)."""

    x: np.ndarray
    loss: np.ndarray
    first: int
    every: int


def chunk_arguments(p: Particles, c: RunConstants, t0: int, t1: int, r: ChunkRecords) -> tuple[Any, ...]:
    """The compiled ``run_chunk`` kernels' leading arguments, in their order (CPU and CUDA)::

        X, S, status, stop_step, cnt, lp, hyper, phase_start, phase_lr, lr_sched, seed, gid_base,
        t0, t1, record_every, rec_x, rec_loss, rec_first, tol2, patience, bound

    (both adapters run a chunk one optimizer phase at a time and replace ``S``, ``hyper``,
    ``phase_start``, ``phase_lr`` and ``seed`` by that phase's, see
    :meth:`descentlab.kernels.cpu.CpuKernels.run_chunk`; the CUDA kernel gets the device copies of
    :class:`descentlab.kernels.cuda.Resident`, then its particle range and scratch).
    """
    return (p.x, p.state, p.status, p.stop_step, p.count, c.lparams, c.hyper, c.phase_start, c.phase_lr,
            c.schedule, c.seed, c.gid_base, t0, t1, r.every, r.x, r.loss, r.first, c.tol2, c.patience,
            c.bound)  # fmt: skip


def phase_key(j: int) -> np.uint64:
    """The RNG key mixed into the seed of optimizer phase ``j``."""
    return np.uint64((j * _PHASE_KEY) % 2**64)


def phase_ranges(t0: int, t1: int, phase_start: np.ndarray) -> list[tuple[int, int, int]]:
    """``(j, a, b)``: the steps ``[a, b)`` of ``[t0, t1)`` in optimizer phase ``j`` (non-empty ones, in
    order); ``phase_start`` (Q,) the first global step of each phase. Both adapters run a chunk as one
    kernel call per phase, with that phase's step function, state slice, hyperparameters and key."""
    q = len(phase_start)
    out = []
    for j in range(q):
        a = max(int(t0), int(phase_start[j]))
        b = min(int(t1), int(phase_start[j + 1])) if j + 1 < q else int(t1)
        if a < b:
            out.append((j, a, b))
    return out


# --------------------------------------------------------------------------- the canonical loop, once


@math_function
def checked_steps(x, s, g, hb, lw, ow, px, ps, lo, hi, t, te, st, c, lp, hyper, phase_start, phase_lr, lr_sched,
                  seed, gid0, tol2, patience, bound, use_hess, f_bgrad, f_hess, f_step):  # fmt: skip
    """Steps ``k`` in ``[t, te)`` of the one particle in column ``lo`` (``hi = lo + 1``) under one
    optimizer phase, with the checks of the canonical loop (module docstring).

    ``x`` (D, m) positions, ``s`` (S, D, m) the phase's optimizer state, ``g`` (D, m) gradient,
    ``hb`` (H, H, m) Hessian, ``lw`` (L, m) and ``ow`` (O, m) scratch of the landscape and
    optimizer, ``px`` (D, m) and ``ps`` (S, D, m) scratch for the last finite state - all modified
    in column ``lo`` only; ``st`` the particle's status and ``c`` its count of steps in a row
    under the tolerance, both on entry; ``hyper``, ``phase_start``, ``phase_lr``, ``seed`` the
    phase's; ``gid0`` the global id of column 0 of ``x``; ``tol2`` and ``bound`` in the dtype of
    ``x``. ``f_bgrad``, ``f_hess`` and ``f_step`` are the math (minibatch gradient, Hessian, the
    phase's step; :mod:`descentlab.kernels.cpu` math signatures), the Hessian used when ``use_hess``.

    Returns ``(status, count, stop_step)``: ``stop_step`` is the step the particle stopped at,
    -1 if it did not stop here. A particle that is not running on entry is left as it is.
    """
    dim = x.shape[0]
    n_state = s.shape[0]
    stop = -1
    for k in range(t, te):
        if st != RUNNING:
            break
        out = False
        for d in range(dim):
            if not (abs(x[d, lo]) <= bound):
                out = True
        if out:
            st = OUT_OF_BOUND
            stop = k
            break
        lr = phase_lr * schedule_factor(lr_sched, k)
        tl = k - phase_start + 1
        f_bgrad(x, lp, lw, g, lo, hi, k + 1, seed, gid0)
        acc = g[0, lo] * g[0, lo]
        for d in range(1, dim):
            acc += g[d, lo] * g[d, lo]
        c = c + 1 if acc < tol2 else 0
        if c >= patience:
            st = CONVERGED
            stop = k
            break
        for d in range(dim):
            px[d, lo] = x[d, lo]
            for q in range(n_state):
                ps[q, d, lo] = s[q, d, lo]
        if use_hess:
            f_hess(x, lp, lw, hb, lo, hi)
        f_step(x, g, s, hyper, lr, tl, hb, ow, seed, gid0, lo, hi)
        finite = True
        for d in range(dim):
            if not math.isfinite(x[d, lo]):
                finite = False
        if not finite:
            for d in range(dim):
                x[d, lo] = px[d, lo]
                for q in range(n_state):
                    s[q, d, lo] = ps[q, d, lo]
            st = DIVERGED
            stop = k + 1
            break
    return st, c, stop
