"""Pieces shared by the CPU and CUDA adapters: status codes, the per-step
phase/learning-rate lookup, and the optimizer-phase dispatcher.

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
from ..optimizers.schedules import schedule_factor

#: Mixed into the RNG key of phase j (golden-ratio increments), so noisy
#: optimizers in two phases of a switch draw different numbers.
_PHASE_KEY = 0x9E3779B97F4A7C15

RUNNING = 0
CONVERGED = 1
DIVERGED = 2
OUT_OF_BOUND = 3
STATUS_NAMES = {RUNNING: "ran all steps", CONVERGED: "converged", DIVERGED: "diverged", OUT_OF_BOUND: "left the bound"}


@math_function(inline="never")
def phase_of(k, phase_start, phase_lr, sched):
    """(phase, 1-based step within the phase, learning rate) of global step k."""
    ph = 0
    for j in range(1, phase_start.shape[0]):
        if k >= phase_start[j]:
            ph = j
    lr = phase_lr[ph] * schedule_factor(sched, k)
    return ph, k - phase_start[ph] + 1, lr


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
