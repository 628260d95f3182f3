"""CPU adapter: a ``prange`` over blocks of particles, math called through function pointers.

Each block of ``block`` particles is copied into local (D, n) arrays; the step
loop runs outside and every math function loops over the block's particles
inside, which LLVM vectorises. Status is not branched on per step (that stops
vectorisation); instead each sub-block of at most ``CHECK_EVERY`` steps

1. snapshots positions, optimizer state and convergence counters,
2. runs its steps branch-free, accumulating per particle an *event* flag
   (a coordinate not ``<= bound`` - so also NaN/Inf -, or ``cnt >= patience``),
3. restores particles that were already stopped, and replays each flagged
   particle from the snapshot one step at a time with the canonical checks:
   :func:`.common.checked_steps`, the per-particle loop the CUDA kernel runs too.

Vector and scalar code run the same machine code (the same compiled math
function, called with ``hi = lo + 1`` for a replay), no fastmath, no FMA
contraction, so the replay reproduces the vectorised steps bit for bit and a
particle's result does not depend on its block, chunk or thread.
Sub-blocks end at record steps, so records see the settled state.

Compilation (what makes the first result come in seconds):

* the **skeleton** (:func:`skeleton`: ``run_chunk``, ``evaluate``, ``hessian``)
  is compiled once per dtype for *every* landscape and optimizer: the math
  reaches it as first-class function arguments (``numba.types.FunctionType``),
  so it never depends on which landscape or optimizer runs;
* each landscape function (value, gradient, minibatch gradient, Hessian) and
  each optimizer step is compiled once per dtype as a small function of its own
  (:func:`math_kernel`) with unsigned particle bounds (a signed index makes
  Numba emit negative-index wraparound, which stops LLVM from vectorising);
* all of them are cached on disk under names that carry the full identity
  (see :mod:`.compile`), and each returns an identity constant that is checked
  on the first call in a process, so a cache hit is provably the requested code.

A switch of optimizers is run as one call of the skeleton per phase: the host
splits a chunk at phase boundaries and hands each call its phase's step
function, state slice, hyperparameters and RNG key.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
from numba import njit, prange, types
from numba.core.errors import NumbaIRAssumptionWarning

from .._jit import CHECK_EVERY, CPU_KERNEL_OPTIONS, math_function
from ..core.identity import identity_code, package_salt, salt_of
from ..core.schedules import schedule_factor
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

log = logging.getLogger("descentlab")

def _allow_noalias() -> None:
    """Let ``njit`` take Numba's ``noalias`` compiler flag (it has the flag, but no option for it).

    With it, the array arguments of a compiled function are marked ``noalias`` for
    LLVM, as Numba does for parfor bodies: the particle loops then vectorise
    without run-time overlap checks between every pair of arrays.
    """
    from numba.core.cpu import CPUTargetOptions
    from numba.core.options import TargetOptions

    if not hasattr(CPUTargetOptions, "noalias"):
        CPUTargetOptions.noalias = TargetOptions.Mapping("noalias")  # type: ignore[attr-defined]


_allow_noalias()

#: Options of the small math kernels (serial; the skeleton is the parallel one). The
#: arrays they get never overlap (the skeleton passes distinct arrays; a probe with
#: repeated arrays touches none of them), and math allocates nothing, so no reference
#: counting (``_nrt=False``: no atomic increments around every call).
MATH_OPTIONS: dict[str, Any] = {
    **{k: v for k, v in CPU_KERNEL_OPTIONS.items() if k != "parallel"},
    "noalias": True,
    "_nrt": False,
}

U64 = types.uint64
I64 = types.int64


def _arrays(dtype: np.dtype) -> tuple[Any, Any, Any, Any]:
    f = numba.from_dtype(np.dtype(dtype))
    return f, types.Array(f, 1, "C"), types.Array(f, 2, "C"), types.Array(f, 3, "C")


def math_signature(kind: str, dtype: np.dtype) -> Any:
    """Numba signature of a compiled math function of ``kind`` for ``dtype`` (returns its identity)."""
    _, a1, a2, a3 = _arrays(dtype)
    if kind == "value":  # (x, p, w, out, lo, hi)
        return I64(a2, a1, a2, a1, U64, U64)
    if kind == "grad":  # (x, p, w, g, lo, hi)
        return I64(a2, a1, a2, a2, U64, U64)
    if kind == "batch_grad":  # (x, p, w, g, lo, hi, t, seed, gid0)
        return I64(a2, a1, a2, a2, U64, U64, I64, U64, I64)
    if kind == "hess":  # (x, p, w, h, lo, hi)
        return I64(a2, a1, a2, a3, U64, U64)
    if kind == "step":  # (x, g, s, h, lr, t, H, ws, seed, gid0, lo, hi)
        h = types.Array(types.float64, 1, "C")
        return I64(a2, a2, a3, h, types.float64, I64, a3, a2, U64, I64, U64, U64)
    raise ValueError(f"unknown math kind {kind!r}")


def _wrapper(kind: str, fn: Callable[..., Any], ident: int) -> Callable[..., Any]:
    # One plain function per kind; ``hi > lo`` guards the math, so the identity
    # probe (lo = hi = 0) never touches it.
    if kind == "value" or kind == "grad" or kind == "hess":

        def w(x, p, w, out, lo, hi):  # type: ignore[no-untyped-def]
            if hi > lo:
                fn(x, p, w, out, lo, hi)
            return ident

    elif kind == "batch_grad":

        def w(x, p, w, g, lo, hi, t, seed, gid0):  # type: ignore[no-untyped-def]
            if hi > lo:
                fn(x, p, w, g, lo, hi, t, seed, gid0)
            return ident

    else:

        def w(x, g, s, h, lr, t, H, ws, seed, gid0, lo, hi):  # type: ignore[no-untyped-def]
            if hi > lo:
                fn(x, g, s, h, lr, t, H, ws, seed, gid0, lo, hi)
            return ident

    return w


def _probe_args(kind: str, dtype: np.dtype) -> tuple[Any, ...]:
    """Arguments of an identity probe: well-formed arrays, no particles (lo = hi = 0)."""
    a1 = np.zeros(1, dtype)
    a2 = np.zeros((1, 1), dtype)
    a3 = np.zeros((1, 1, 1), dtype)
    z = np.uint64(0)
    if kind == "value":
        return (a2, a1, a2, a1, z, z)
    if kind == "grad":
        return (a2, a1, a2, a2, z, z)
    if kind == "batch_grad":
        return (a2, a1, a2, a2, z, z, np.int64(1), np.uint64(0), np.int64(0))
    if kind == "hess":
        return (a2, a1, a2, a3, z, z)
    return (a2, a2, a3, np.zeros(1), 0.0, np.int64(1), a3, a2, np.uint64(0), np.int64(0), z, z)


@dataclass
class Compiled:
    """A compiled function, how long it took, and whether it came from the disk cache."""

    dispatcher: Any
    seconds: float
    from_cache: bool
    name: str
    #: Whether a compile message has named it already.
    reported: bool = False


def _compile(
    fn: Callable[..., Any], sig: Any, options: dict[str, Any], name: str, probe: tuple[int, tuple[Any, ...]] | None
) -> Compiled:
    """``fn`` compiled for ``sig`` under ``name``; ``probe = (ident, args)``: a call that must return ``ident``."""
    fn.__qualname__ = fn.__name__ = name  # names the on-disk cache index: the full identity
    t = time.perf_counter()
    with warnings.catch_warnings():  # a pedantic Numba check about inlined code; not for users
        warnings.simplefilter("ignore", NumbaIRAssumptionWarning)
        disp = njit(sig, **options)(fn)  # explicit signature: compiles (or loads) now, never again
    seconds = time.perf_counter() - t
    if probe is not None:
        ident, args = probe
        got = disp(*args)
        if got != ident:
            raise RuntimeError(
                f"descentlab: the kernel cache returned the wrong machine code for {name} "
                f"(identity {got} instead of {ident}); delete the Numba cache folder (NUMBA_CACHE_DIR) and rerun"
            )
    stats = disp.stats
    return Compiled(disp, seconds, bool(stats.cache_hits) and not stats.cache_misses, name)


@functools.cache
def math_kernel(kind: str, fn: Callable[..., Any], dtype_name: str) -> Compiled:
    """``fn`` (a math function of ``kind``) compiled for ``dtype_name`` as a kernel of its own.

    The name of its cache index and the constant it returns both come from
    :func:`.identity.salt_of` (the function's identity, its sources, the dtype).
    """
    salt = salt_of(fn, kind, dtype_name)
    ident = identity_code(salt)
    dtype = np.dtype(dtype_name)
    label = getattr(fn, "__name__", "fn").strip("<>")
    name = f"{kind}_{label}_{salt}_{dtype_name}"
    return _compile(_wrapper(kind, fn, ident), math_signature(kind, dtype), MATH_OPTIONS, name,
                    (ident, _probe_args(kind, dtype)))  # fmt: skip


# --------------------------------------------------------------------------- the skeleton


def _skeleton_functions(ident: int):  # type: ignore[no-untyped-def]
    check_every = CHECK_EVERY

    def run_block(b, block, X, S, status, stop_step, cnt, lp, hyper, phase_start, phase_lr, lr_sched,
                  seed, gid_base, t0, t1, record_every, rec_x, rec_loss, rec_first,
                  tol2, patience, bound, lrows, orows, f_value, f_bgrad, f_hess, f_step, use_hess):  # fmt: skip
        """One block of particles of :func:`run_chunk`; returns the identity constant."""
        dim, n_all = X.shape
        n_state = S.shape[0]
        hd = dim if use_hess else 1
        lo_g = b * block
        n = min(block, n_all - lo_g)
        gid0 = gid_base + lo_g
        un = np.uint64(n)
        z = np.uint64(0)
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
                    lr = phase_lr * schedule_factor(lr_sched, k)
                    tl = k - phase_start + 1
                    f_bgrad(x, lp, lw, g, z, un, k + 1, seed, gid0)
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
                        f_hess(x, lp, lw, hb, z, un)
                    f_step(x, g, s, hyper, lr, tl, hb, ow, seed, gid0, z, un)
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
                    # column i of the snapshot (just restored) is free: the replay's last-finite-state scratch
                    st[i], c[i], stp = checked_steps(x, s, g, hb, lw, ow, xs, ss, np.uint64(i), np.uint64(i + 1),
                                                     t, te, st[i], c[i], lp, hyper, phase_start, phase_lr,
                                                     lr_sched, seed, gid0, tol, patience, bnd, use_hess, f_bgrad,
                                                     f_hess, f_step)  # fmt: skip
                    if stp >= 0:
                        stop_step[lo_g + i] = stp
            t = te
            if t % record_every == 0:
                r = t // record_every - rec_first
                f_value(x, lp, lw, loss, z, un)
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
        return ident

    def run_chunk(X, S, status, stop_step, cnt, lp, hyper, phase_start, phase_lr, lr_sched,
                  seed, gid_base, t0, t1, record_every, rec_x, rec_loss, rec_first,
                  tol2, patience, bound, lrows, orows, f_value, f_bgrad, f_hess, f_step, use_hess, block,
                  f_block):  # fmt: skip
        """Advance particles from step ``t0`` to ``t1`` under one optimizer phase (arrays modified in place).

        X (D, N) positions; S (Sphase, D, N) this phase's optimizer state; status (N,) int8;
        stop_step (N,) int64; cnt (N,) int64 steps in a row under grad_tol;
        lp landscape params (dtype of X); hyper float64 (this phase's); phase_start the
        phase's first global step; phase_lr its base learning rate; lr_sched float64 (5,);
        seed uint64 (this phase's RNG key); gid_base int64 global id of column 0; records of
        steps k in (t0, t1] with k % record_every == 0 go to rec_x[:, k // record_every -
        rec_first, :] (N, R, D) and rec_loss (N, R); tol2 and bound have the dtype of X.
        ``f_*`` are compiled math functions (:func:`math_kernel`), ``f_block`` the compiled
        ``run_block``: a function pointer, so that its machine code is generated once (Numba
        generates a called function's code again inside every caller's library). Returns
        the skeleton's identity constant times the number of blocks run, plus one.
        """
        n_blocks = (X.shape[1] + block - 1) // block
        acc = 0
        for b in prange(n_blocks):
            acc += f_block(np.int64(b), block, X, S, status, stop_step, cnt, lp, hyper, phase_start, phase_lr,
                           lr_sched, seed, gid_base, t0, t1, record_every, rec_x, rec_loss, rec_first,
                           tol2, patience, bound, lrows, orows, f_value, f_bgrad, f_hess, f_step,
                           use_hess)  # fmt: skip
        return acc + ident

    def evaluate(X, lp, lrows, loss, grad_norm, f_value, f_grad, block):
        """loss (N,) and grad_norm (N,) at X (D, N), both modified in place; returns the identity."""
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
            f_value(x, lp, lw, out, np.uint64(0), np.uint64(n))
            f_grad(x, lp, lw, g, np.uint64(0), np.uint64(n))
            for i in range(n):
                acc = g[0, i] * g[0, i]
                for d in range(1, dim):
                    acc += g[d, i] * g[d, i]
                loss[lo_g + i] = out[i]
                grad_norm[lo_g + i] = np.sqrt(acc)
        return ident

    def hessian(X, lp, lrows, H, f_hess, block):
        """H (N, D, D) Hessians at X (D, N), modified in place; returns the identity."""
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
            f_hess(x, lp, lw, hb, np.uint64(0), np.uint64(n))
            for i in range(n):
                for r in range(dim):
                    for q in range(dim):
                        H[lo_g + i, r, q] = hb[r, q, i]
        return ident

    return run_block, run_chunk, evaluate, hessian


class Skeleton:
    """A dtype's parallel kernels, shared by every landscape and optimizer; each built on first use.

    ``run_chunk`` calls ``run_block`` through a function pointer; ``evaluate`` and
    ``hessian`` are only compiled when asked for (the Hessian kernel by analysis).
    Each returns :attr:`ident`, which the host checks after every call.
    """

    def __init__(self, dtype_name: str) -> None:
        self.dtype_name = dtype_name
        self.dtype = np.dtype(dtype_name)
        self.tag = f"{package_salt()}_{dtype_name}"
        self.ident = identity_code(self.tag)
        self._fns = dict(zip(("run_block", "run_chunk", "evaluate", "hessian"), _skeleton_functions(self.ident),
                             strict=True))  # fmt: skip
        self._made: dict[str, Compiled] = {}

    def _types(self) -> dict[str, Any]:
        f, a1, a2, a3 = _arrays(self.dtype)
        t = {k: types.FunctionType(math_signature(k, self.dtype)) for k in ("value", "grad", "batch_grad", "hess",
                                                                            "step")}  # fmt: skip
        t.update(f=f, a1=a1, a2=a2, a3=a3, i8=types.Array(types.int8, 1, "C"), i64=types.Array(types.int64, 1, "C"),
                 f64=types.Array(types.float64, 1, "C"))  # fmt: skip
        return t

    def _block_sig(self) -> Any:
        t = self._types()
        return I64(I64, I64, t["a2"], t["a3"], t["i8"], t["i64"], t["i64"], t["a1"], t["f64"], I64, types.float64,
                   t["f64"], U64, I64, I64, I64, I64, t["a3"], t["a2"], I64, t["f"], I64, t["f"], I64, I64,
                   t["value"], t["batch_grad"], t["hess"], t["step"], types.boolean)  # fmt: skip

    def get(self, name: str) -> Compiled:
        """The compiled kernel ``name`` (``run_block``, ``run_chunk``, ``evaluate`` or ``hessian``)."""
        if name in self._made:
            return self._made[name]
        t = self._types()
        if name == "run_block":
            sig = self._block_sig()
            opts = {**MATH_OPTIONS, "_nrt": True}  # it allocates the block's arrays
        elif name == "run_chunk":
            sig = I64(t["a2"], t["a3"], t["i8"], t["i64"], t["i64"], t["a1"], t["f64"], I64, types.float64, t["f64"],
                      U64, I64, I64, I64, I64, t["a3"], t["a2"], I64, t["f"], I64, t["f"], I64, I64, t["value"],
                      t["batch_grad"], t["hess"], t["step"], types.boolean, I64,
                      types.FunctionType(self._block_sig()))  # fmt: skip
            opts = CPU_KERNEL_OPTIONS
        elif name == "evaluate":
            sig = I64(t["a2"], t["a1"], I64, t["a1"], t["a1"], t["value"], t["grad"], I64)
            opts = CPU_KERNEL_OPTIONS
        else:
            sig = I64(t["a2"], t["a1"], I64, t["a3"], t["hess"], I64)
            opts = CPU_KERNEL_OPTIONS
        self._made[name] = _compile(self._fns[name], sig, opts, f"{name}_{self.tag}", None)
        return self._made[name]

    def check(self, name: str, got: int, calls: int = 1) -> None:
        """Raise unless ``got`` is the identity a kernel of this skeleton returns (``calls`` blocks plus one)."""
        if got != self.ident * calls:
            raise RuntimeError(
                f"descentlab: the {name} kernel returned a foreign identity ({got}, expected {self.ident * calls}): "
                "the Numba cache holds wrong machine code; delete the cache folder (NUMBA_CACHE_DIR) and rerun"
            )


@functools.cache
def skeleton(dtype_name: str) -> Skeleton:
    """The parallel kernels of ``dtype_name`` (one object per process; kernels compiled or loaded on first use)."""
    return Skeleton(dtype_name)


def _noop_value(x, p, w, out, lo, hi):  # type: ignore[no-untyped-def]
    pass


#: The Hessian of a run whose optimizers do not use it.
_NO_HESSIAN = math_function(_noop_value)


# --------------------------------------------------------------------------- host side


class KernelEntry:
    """A host entry point with the Numba ``signatures`` of what it has compiled (tests count them)."""

    def __init__(self, owner: CpuKernels, name: str) -> None:
        self.owner = owner
        self._name = name

    def __call__(self, *args: Any) -> Any:
        return getattr(self.owner, self._name)(*args)

    @property
    def signatures(self) -> list[Any]:
        out = []
        for dtype in self.owner.prepared:
            out.extend(skeleton(dtype).get(self._name).dispatcher.signatures)
        return out


class CpuKernels:
    """Kernels of one landscape x optimizer phases on the CPU.

    ``steps[j]``, ``state_slices[j]`` and ``hyper_slices[j]`` describe phase j;
    ``needs_hessian`` makes every step evaluate the landscape Hessian first.
    Nothing is compiled until :meth:`prepare` (or the first call) for a dtype.
    """

    def __init__(
        self,
        value: Callable[..., Any],
        grad: Callable[..., Any],
        bgrad: Callable[..., Any],
        hess: Callable[..., Any],
        steps: Sequence[Callable[..., Any]],
        state_slices: Sequence[tuple[int, int]],
        hyper_slices: Sequence[tuple[int, int]],
        needs_hessian: bool,
        block: int,
    ) -> None:
        self.math = {"value": value, "grad": grad, "batch_grad": bgrad, "hess": hess}
        self.steps = tuple(steps)
        self.state_slices = tuple(state_slices)
        self.hyper_slices = tuple(hyper_slices)
        self.needs_hessian = needs_hessian
        self.block = int(block)
        self.prepared: dict[str, dict[str, Any]] = {}

    def prepare(self, dtype: Any, label: str = "") -> float:
        """Compile (or load) everything a run of ``dtype`` needs; returns the seconds it took.

        Logs ``compiling <label> (<dtype>) - first use, cached afterwards`` at INFO
        level (the CLI prints it) whenever something is compiled rather than loaded.
        """
        name = np.dtype(dtype).name
        if name in self.prepared:
            return 0.0
        what = f"{label or 'kernels'} ({name})"
        # Loading from the disk cache takes a fraction of a second; say what is happening only
        # when it takes longer (a compile), before the wait rather than after it.
        notice = threading.Timer(0.5, log.info, ("compiling %s - first use, cached afterwards", what))
        notice.daemon = True
        t = time.perf_counter()
        notice.start()
        try:
            parts, fns = self._build(name)
        finally:
            notice.cancel()
        self.prepared[name] = fns
        seconds = time.perf_counter() - t
        compiled = [p for p in parts if not p.from_cache and not p.reported]
        for p in parts:
            p.reported = True
        if compiled:
            log.info("compiled %s in %.1f s (%s)", what, seconds,
                     ", ".join(f"{p.name.rsplit('_', 2)[0]} {p.seconds:.1f} s" for p in compiled))  # fmt: skip
        return seconds

    def _build(self, name: str) -> tuple[list[Compiled], dict[str, Any]]:
        parts: list[Compiled] = []
        sk = skeleton(name)
        parts += [sk.get("run_block"), sk.get("run_chunk"), sk.get("evaluate")]
        fns: dict[str, Any] = {"skeleton": sk}
        for kind in ("value", "grad", "batch_grad"):
            c = math_kernel(kind, self.math[kind], name)
            parts.append(c)
            fns[kind] = c.dispatcher
        c = math_kernel("hess", self.math["hess"] if self.needs_hessian else _NO_HESSIAN, name)
        parts.append(c)
        fns["run_hess"] = c.dispatcher
        fns["steps"] = []
        for fn in self.steps:
            c = math_kernel("step", fn, name)
            parts.append(c)
            fns["steps"].append(c.dispatcher)
        return parts, fns

    def names(self, dtype: Any) -> dict[str, str]:
        """What each role is compiled as for ``dtype`` (the names of the on-disk cache indexes)."""
        name = np.dtype(dtype).name
        self.prepare(name)
        out = {f"skeleton.{k}": skeleton(name).get(k).name for k in ("run_block", "run_chunk", "evaluate")}
        for kind in ("value", "grad", "batch_grad"):
            out[kind] = math_kernel(kind, self.math[kind], name).name
        for j, fn in enumerate(self.steps):
            out[f"step{j}"] = math_kernel("step", fn, name).name
        return out

    def _fns(self, dtype: np.dtype) -> dict[str, Any]:
        name = dtype.name
        if name not in self.prepared:
            self.prepare(dtype)
        return self.prepared[name]

    def hessian_kernel(self, dtype: Any) -> Any:
        """The compiled landscape Hessian of ``dtype`` (compiled on first use)."""
        return math_kernel("hess", self.math["hess"], np.dtype(dtype).name).dispatcher

    def run_chunk(self, p: Particles, c: RunConstants, t0: int, t1: int, r: ChunkRecords) -> None:
        """Advance ``p`` from step ``t0`` to ``t1``, one skeleton call per optimizer phase in the range.

        The skeleton's arguments (:func:`_skeleton_functions`'s ``run_chunk``) come from the
        bundles; each phase gets its slice of the state and of the hyperparameters, its first
        step, base learning rate and RNG key.
        """
        X = p.x
        fns = self._fns(X.dtype)
        sk: Skeleton = fns["skeleton"]
        dt = X.dtype.type
        # the skeleton's explicit signature: int64 counts and ids, limits in the dtype of X
        c = dataclasses.replace(c, gid_base=np.int64(c.gid_base), tol2=dt(c.tol2), patience=np.int64(c.patience),
                                bound=dt(c.bound))  # fmt: skip
        r = dataclasses.replace(r, first=np.int64(r.first), every=np.int64(r.every))
        for j, a, b in phase_ranges(t0, t1, c.phase_start):
            s0, s1 = self.state_slices[j]
            h0, h1 = self.hyper_slices[j]
            phase = dataclasses.replace(c, hyper=np.ascontiguousarray(c.hyper[h0:h1]),
                                        phase_start=np.int64(c.phase_start[j]), phase_lr=float(c.phase_lr[j]),
                                        seed=np.uint64(c.seed) ^ phase_key(j))  # fmt: skip
            got = sk.get("run_chunk").dispatcher(
                *chunk_arguments(dataclasses.replace(p, state=p.state[s0:s1]), phase, np.int64(a), np.int64(b), r),
                np.int64(c.lrows), np.int64(c.orows),
                fns["value"], fns["batch_grad"], fns["run_hess"], fns["steps"][j], self.needs_hessian,
                np.int64(self.block), sk.get("run_block").dispatcher,
            )  # fmt: skip
            sk.check("run", got, (X.shape[1] + self.block - 1) // self.block + 1)

    def evaluate(self, X: np.ndarray, lp: np.ndarray, lrows: int, loss: np.ndarray, grad_norm: np.ndarray) -> None:
        """loss (N,) and grad_norm (N,) at X (D, N), modified in place."""
        fns = self._fns(X.dtype)
        sk: Skeleton = fns["skeleton"]
        got = sk.get("evaluate").dispatcher(X, lp, np.int64(lrows), loss, grad_norm, fns["value"], fns["grad"],
                                            np.int64(self.block))  # fmt: skip
        sk.check("evaluate", got)

    def hessian(self, X: np.ndarray, lp: np.ndarray, lrows: int, H: np.ndarray) -> None:
        """H (N, D, D) Hessians at X (D, N), modified in place."""
        sk = skeleton(X.dtype.name)
        got = sk.get("hessian").dispatcher(X, lp, np.int64(lrows), H, self.hessian_kernel(X.dtype),
                                           np.int64(self.block))  # fmt: skip
        sk.check("hessian", got)
