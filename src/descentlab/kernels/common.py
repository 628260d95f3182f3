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

__all__ = ["CONVERGED", "DIVERGED", "OUT_OF_BOUND", "RUNNING", "make_dispatch", "phase_of"]


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
