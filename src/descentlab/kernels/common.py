"""Pieces shared by the CPU and CUDA adapters: the status codes as kernel constants
(from :class:`descentlab.core.status.Status`), the per-step phase/learning-rate lookup
(:func:`descentlab.core.schedules.phase_of`), and the optimizer-phase dispatcher.

Per-particle semantics (the canonical loop, identical on every target and in
the NumPy reference)::

    for k in range(t0, t1):                      # k = updates done so far
        if not all(|x_k| <= bound):  status = OUT_OF_BOUND, stop_step = k; stop
        g = grad(x_k);  cnt = cnt + 1 if |g|^2 < grad_tol^2 else 0
        if cnt >= patience:          status = CONVERGED,    stop_step = k; stop
        x_{k+1}, s_{k+1} = step(x_k, g, s_k)
        if not all finite(x_{k+1}):  status = DIVERGED, stop_step = k + 1;
                                     keep x_k, s_k (last finite state); stop

A stopped particle is frozen; the others go on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._jit import math_function
from ..core.schedules import phase_of
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
           "chunk_arguments", "make_dispatch", "phase_of"]  # fmt: skip


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

    (the CPU adapter then replaces ``S``, ``hyper``, ``phase_start``, ``phase_lr`` and ``seed``
    by one phase's, see :meth:`descentlab.kernels.cpu.CpuKernels.run_chunk`; the CUDA kernel
    takes the same order, with the device copies of :class:`descentlab.kernels.cuda.Resident`).
    """
    return (p.x, p.state, p.status, p.stop_step, p.count, c.lparams, c.hyper, c.phase_start, c.phase_lr,
            c.schedule, c.seed, c.gid_base, t0, t1, r.every, r.x, r.loss, r.first, c.tol2, c.patience,
            c.bound)  # fmt: skip


def make_dispatch(steps, state_slices, hyper_slices):  # type: ignore[no-untyped-def]
    """One step function over phases: ``step(phase, x, g, s, h, lr, t, H, ws, seed, gid0, lo, hi)``.

    ``steps[j]`` runs with its own slices of the state and hyperparameter
    vectors (compile-time constants), so a switch optimizer starts each phase
    with fresh state as a newly constructed torch optimizer would.
    """
    k = len(steps) - 1
    fn = steps[k]
    s0, s1 = state_slices[k]
    h0, h1 = hyper_slices[k]
    key = np.uint64((k * _PHASE_KEY) % 2**64)

    @math_function
    def last(phase, x, g, s, h, lr, t, H, ws, seed, gid0, lo, hi):
        fn(x, g, s[s0:s1], h[h0:h1], lr, t, H, ws, seed ^ key, gid0, lo, hi)

    dispatch = last
    for j in range(k - 1, -1, -1):
        dispatch = _prepend(j, steps[j], state_slices[j], hyper_slices[j], dispatch)
    return dispatch


def _prepend(j, fn, ss, hs, rest):  # type: ignore[no-untyped-def]
    s0, s1 = ss
    h0, h1 = hs
    key = np.uint64((j * _PHASE_KEY) % 2**64)

    @math_function
    def dispatch(phase, x, g, s, h, lr, t, H, ws, seed, gid0, lo, hi):
        if phase == j:
            fn(x, g, s[s0:s1], h[h0:h1], lr, t, H, ws, seed ^ key, gid0, lo, hi)
        else:
            rest(phase, x, g, s, h, lr, t, H, ws, seed, gid0, lo, hi)

    return dispatch
