"""CPU adapter: a ``prange`` over blocks of particles.

Each block of ``BLOCK`` particles is copied into local (D, n) arrays; the step
loop runs outside and every math function loops over the block's particles
inside, which LLVM vectorises. Status is not branched on per step (that stops
vectorisation); instead each sub-block of at most ``CHECK_EVERY`` steps

1. snapshots positions, optimizer state and convergence counters,
2. runs its steps branch-free, accumulating per particle an *event* flag
   (a coordinate not ``<= bound`` - so also NaN/Inf -, or ``cnt >= patience``),
3. restores particles that were already stopped, and replays each flagged
   particle from the snapshot one step at a time with the canonical checks of
   :mod:`.common`.

Vector and scalar code run the same IEEE operations (no fastmath, no FMA
contraction, no SVML), so the replay reproduces the vectorised steps bit for
bit and a particle's result does not depend on its block, chunk or thread.
Sub-blocks end at record steps, so records see the settled state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numba import njit, prange

from .._jit import BLOCK, CHECK_EVERY, CPU_KERNEL_OPTIONS, block_function
from .common import CONVERGED, DIVERGED, OUT_OF_BOUND, RUNNING, phase_of


def make_cpu_kernels(l_value, l_grad, l_bgrad, l_hess, o_step, needs_hessian, salt, block=BLOCK):  # type: ignore[no-untyped-def]
    """Compile-on-first-call kernels for one landscape x optimizer pair.

    Returns ``(run_chunk, evaluate, hessian)``, each a :class:`PerDtype` that
    sends a call to the dispatcher of its first array's dtype; see the
    docstrings of the functions below. ``salt`` is a hash of the math sources:
    a closure constant, so Numba's on-disk cache key changes when the math does.

    Every (salt, dtype) gets its own dispatcher under its own name, hence its
    own on-disk cache index holding a single entry. Numba numbers the data
    files of one index by its length at the time of saving, so two processes
    (pytest-xdist, Dask workers) that save *different* entries to one index at
    once can write the same file name, and one of them later loads the other's
    machine code: silently wrong results. With one entry per index, concurrent
    writers only ever write the same kernel.
    """

    family = _Family(
        lambda tag: _make_cpu_kernels(l_value, l_grad, l_bgrad, l_hess, o_step, needs_hessian, salt, tag, block)
    )
    return PerDtype(family, 0), PerDtype(family, 1), PerDtype(family, 2)


class _Family:
    """The three dispatchers of each dtype, made on first use."""

    def __init__(self, make: Callable[[str], tuple[Any, Any, Any]]) -> None:
        self._make = make
        self._made: dict[str, tuple[Any, Any, Any]] = {}

    def get(self, tag: str) -> tuple[Any, Any, Any]:
        if tag not in self._made:
            self._made[tag] = self._make(tag)
        return self._made[tag]


class PerDtype:
    """A kernel entry point: calls the dispatcher of its first array's dtype."""

    def __init__(self, family: _Family, which: int) -> None:
        self._family = family
        self._which = which
        self.dispatchers: dict[str, Any] = {}

    def __call__(self, X: np.ndarray, *args: Any) -> Any:
        disp = self.dispatchers.get(X.dtype.name)
        if disp is None:
            disp = self.dispatchers[X.dtype.name] = self._family.get(X.dtype.name)[self._which]
        return disp(X, *args)

    @property
    def signatures(self) -> list[Any]:
        """Compiled signatures over all dtypes."""
        return [sig for d in self.dispatchers.values() for sig in d.signatures]


def _called(l_bgrad, l_hess, o_step):  # type: ignore[no-untyped-def]
    """The landscape and optimizer math compiled as functions of their own and called.

    The replay of a flagged particle is scalar code (``hi = lo + 1``): it gains
    nothing from inlining, and a second inlined copy of the math was about a
    third of a kernel's compile time. Same IEEE operations, so the same bits.
    """

    @block_function
    def bgrad(x, p, w, g, lo, hi, t, seed, gid0):  # type: ignore[no-untyped-def]
        l_bgrad(x, p, w, g, lo, hi, t, seed, gid0)

    @block_function
    def hess(x, p, w, h, lo, hi):  # type: ignore[no-untyped-def]
        l_hess(x, p, w, h, lo, hi)

    @block_function
    def step(phase, x, g, s, h, lr, t, H, ws, seed, gid0, lo, hi):  # type: ignore[no-untyped-def]
        o_step(phase, x, g, s, h, lr, t, H, ws, seed, gid0, lo, hi)

    return bgrad, hess, step


def _make_cpu_kernels(l_value, l_grad, l_bgrad, l_hess, o_step, needs_hessian, salt, tag, block):  # type: ignore[no-untyped-def]
    check_every = CHECK_EVERY
    use_hess = needs_hessian
    r_bgrad, r_hess, r_step = _called(l_bgrad, l_hess, o_step)

    @block_function
    def run_block(b, X, S, status, stop_step, cnt, lp, hyper, phase_start, phase_lr, lr_sched,
                  seed, gid_base, t0, t1, record_every, rec_x, rec_loss, rec_first,
                  tol2, patience, bound, lrows, orows):  # fmt: skip
        """One block of particles of :func:`run_chunk`."""
        dim, n_all = X.shape
        n_state = S.shape[0]
        hd = dim if use_hess else 1
        lo_g = b * block
        n = min(block, n_all - lo_g)
        gid0 = gid_base + lo_g
        x = np.empty((dim, n), X.dtype)
        g = np.empty((dim, n), X.dtype)
        s = np.empty((n_state, dim, n), X.dtype)
        xs = np.empty((dim, n), X.dtype)
        ss = np.empty((n_state, dim, n), X.dtype)
        hb = np.empty((hd, hd, n), X.dtype)
        lw = np.empty((lrows, n), X.dtype)
        ow = np.empty((orows, n), X.dtype)
        gn2 = np.empty(n, X.dtype)
        loss = np.empty(n, X.dtype)
        ev = np.empty(n, np.uint8)
        st = np.empty(n, np.int8)
        c = np.empty(n, np.int64)
        cs = np.empty(n, np.int64)
        px = np.empty(dim, X.dtype)
        ps = np.empty((n_state, dim), X.dtype)
        for i in range(n):
            st[i] = status[lo_g + i]
            c[i] = cnt[lo_g + i]
        for d in range(dim):
            for i in range(n):
                x[d, i] = X[d, lo_g + i]
        for q in range(n_state):
            for d in range(dim):
                for i in range(n):
                    s[q, d, i] = S[q, d, lo_g + i]
        bnd = bound
        tol = tol2
        t = t0
        while t < t1:
            te = min(t + check_every, t1)
            nxt = (t // record_every + 1) * record_every
            if nxt < te:
                te = nxt
            n_run = 0
            for i in range(n):
                if st[i] == RUNNING:
                    n_run += 1
            if n_run > 0:
                for d in range(dim):
                    for i in range(n):
                        xs[d, i] = x[d, i]
                for q in range(n_state):
                    for d in range(dim):
                        for i in range(n):
                            ss[q, d, i] = s[q, d, i]
                for i in range(n):
                    cs[i] = c[i]
                    ev[i] = 0
                # ---- vectorised, branch-free steps
                for k in range(t, te):
                    ph, tl, lr = phase_of(k, phase_start, phase_lr, lr_sched)
                    l_bgrad(x, lp, lw, g, 0, n, k + 1, seed, gid0)
                    for i in range(n):
                        gn2[i] = 0
                    for d in range(dim):
                        for i in range(n):
                            gi = g[d, i]
                            gn2[i] += gi * gi
                            ev[i] |= not (abs(x[d, i]) <= bnd)
                    for i in range(n):
                        ci = c[i] + 1 if gn2[i] < tol else 0
                        c[i] = ci
                        ev[i] |= ci >= patience
                    if use_hess:
                        l_hess(x, lp, lw, hb, 0, n)
                    o_step(ph, x, g, s, hyper, lr, tl, hb, ow, seed, gid0, 0, n)
                for d in range(dim):
                    for i in range(n):
                        ev[i] |= not (abs(x[d, i]) <= bnd)
                # ---- settle: restore stopped particles, replay flagged ones
                for i in range(n):
                    if st[i] != RUNNING or ev[i] != 0:
                        for d in range(dim):
                            x[d, i] = xs[d, i]
                        for q in range(n_state):
                            for d in range(dim):
                                s[q, d, i] = ss[q, d, i]
                        c[i] = cs[i]
                    if st[i] != RUNNING or ev[i] == 0:
                        continue
                    for k in range(t, te):
                        out = False
                        for d in range(dim):
                            if not (abs(x[d, i]) <= bnd):
                                out = True
                        if out:
                            st[i] = OUT_OF_BOUND
                            stop_step[lo_g + i] = k
                            break
                        ph, tl, lr = phase_of(k, phase_start, phase_lr, lr_sched)
                        r_bgrad(x, lp, lw, g, i, i + 1, k + 1, seed, gid0)
                        acc = g[0, i] * g[0, i]
                        for d in range(1, dim):
                            acc += g[d, i] * g[d, i]
                        c[i] = c[i] + 1 if acc < tol else 0
                        if c[i] >= patience:
                            st[i] = CONVERGED
                            stop_step[lo_g + i] = k
                            break
                        for d in range(dim):
                            px[d] = x[d, i]
                            for q in range(n_state):
                                ps[q, d] = s[q, d, i]
                        if use_hess:
                            r_hess(x, lp, lw, hb, i, i + 1)
                        r_step(ph, x, g, s, hyper, lr, tl, hb, ow, seed, gid0, i, i + 1)
                        finite = True
                        for d in range(dim):
                            if not np.isfinite(x[d, i]):
                                finite = False
                        if not finite:
                            for d in range(dim):
                                x[d, i] = px[d]
                                for q in range(n_state):
                                    s[q, d, i] = ps[q, d]
                            st[i] = DIVERGED
                            stop_step[lo_g + i] = k + 1
                            break
            t = te
            if t % record_every == 0:
                r = t // record_every - rec_first
                l_value(x, lp, lw, loss, 0, n)
                for i in range(n):
                    rec_loss[lo_g + i, r] = loss[i]
                    for d in range(dim):
                        rec_x[lo_g + i, r, d] = x[d, i]
        for i in range(n):
            status[lo_g + i] = st[i]
            cnt[lo_g + i] = c[i]
        for d in range(dim):
            for i in range(n):
                X[d, lo_g + i] = x[d, i]
        for q in range(n_state):
            for d in range(dim):
                for i in range(n):
                    S[q, d, lo_g + i] = s[q, d, i]

    @block_function
    def run_block_entry(b, X, S, status, stop_step, cnt, lp, hyper, phase_start, phase_lr, lr_sched,
                        seed, gid_base, t0, t1, record_every, rec_x, rec_loss, rec_first,
                        tol2, patience, bound, lrows, orows):  # fmt: skip
        # A trampoline: Numba builds a registered function once per caller's
        # compile flags, and run_chunk is typed twice with different flags (as
        # itself, then as the parfor body, with noalias). This cheap function
        # absorbs that, so run_block - the bulk of the compile time - is built
        # once (measured: 17 s + 12 s before).
        run_block(np.int64(b), X, S, status, stop_step, cnt, lp, hyper, phase_start, phase_lr, lr_sched,
                  seed, gid_base, t0, t1, record_every, rec_x, rec_loss, rec_first,
                  tol2, patience, bound, lrows, orows)  # fmt: skip

    def run_chunk(X, S, status, stop_step, cnt, lp, hyper, phase_start, phase_lr, lr_sched,
                  seed, gid_base, t0, t1, record_every, rec_x, rec_loss, rec_first,
                  tol2, patience, bound, lrows, orows):  # fmt: skip
        """Advance particles from step ``t0`` to ``t1`` (all arrays modified in place).

        X (D, N) positions; S (Sopt, D, N) optimizer state; status (N,) int8;
        stop_step (N,) int64; cnt (N,) int64 steps in a row under grad_tol;
        lp landscape params (dtype of X); hyper float64; phase_start int64 (P,);
        phase_lr float64 (P,); lr_sched float64 (5,); seed uint64; gid_base int64
        global id of column 0; records of steps k in (t0, t1] with
        k % record_every == 0 go to rec_x[:, k // record_every - rec_first, :]
        (N, R, D) and rec_loss (N, R); tol2 and bound have the dtype of X.
        """
        if salt == "":
            return
        n_blocks = (X.shape[1] + block - 1) // block
        for b in prange(n_blocks):
            run_block_entry(b, X, S, status, stop_step, cnt, lp, hyper, phase_start, phase_lr, lr_sched,
                      seed, gid_base, t0, t1, record_every, rec_x, rec_loss, rec_first,
                      tol2, patience, bound, lrows, orows)  # fmt: skip

    def evaluate(X, lp, lrows, loss, grad_norm):
        """loss (N,) and grad_norm (N,) at X (D, N), both modified in place."""
        if salt == "":
            return
        dim, n_all = X.shape
        n_blocks = (n_all + block - 1) // block
        for b in prange(n_blocks):
            lo_g = b * block
            n = min(block, n_all - lo_g)
            x = np.empty((dim, n), X.dtype)
            g = np.empty((dim, n), X.dtype)
            lw = np.empty((lrows, n), X.dtype)
            out = np.empty(n, X.dtype)
            for d in range(dim):
                for i in range(n):
                    x[d, i] = X[d, lo_g + i]
            l_value(x, lp, lw, out, 0, n)
            l_grad(x, lp, lw, g, 0, n)
            for i in range(n):
                acc = g[0, i] * g[0, i]
                for d in range(1, dim):
                    acc += g[d, i] * g[d, i]
                loss[lo_g + i] = out[i]
                grad_norm[lo_g + i] = np.sqrt(acc)

    def hessian(X, lp, lrows, H):
        """H (N, D, D) Hessians at X (D, N), modified in place."""
        if salt == "":
            return
        dim, n_all = X.shape
        n_blocks = (n_all + block - 1) // block
        for b in prange(n_blocks):
            lo_g = b * block
            n = min(block, n_all - lo_g)
            x = np.empty((dim, n), X.dtype)
            hb = np.empty((dim, dim, n), X.dtype)
            lw = np.empty((lrows, n), X.dtype)
            for d in range(dim):
                for i in range(n):
                    x[d, i] = X[d, lo_g + i]
            l_hess(x, lp, lw, hb, 0, n)
            for i in range(n):
                for r in range(dim):
                    for q in range(dim):
                        H[lo_g + i, r, q] = hb[r, q, i]

    out = []
    for fn in (run_chunk, evaluate, hessian):
        # The qualified name names the on-disk cache index (see make_cpu_kernels).
        fn.__qualname__ = f"{fn.__name__}_{salt}_{tag}"
        out.append(njit(**CPU_KERNEL_OPTIONS)(fn))
    return tuple(out)
