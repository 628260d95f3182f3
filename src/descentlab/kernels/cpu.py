"""CPU adapter: blocks of particles spread over threads, math called through function pointers.

The host cuts the particles into blocks and runs the block loop once on each of
its threads (:mod:`.threads`: the compiled code releases the GIL); the threads claim
blocks from an atomic counter. Each block of ``block``
particles is copied into local (D, n) arrays; the step loop runs outside and
every math function loops over the block's particles inside, which LLVM
vectorises. Status is not branched on per step (that stops vectorisation);
instead each sub-block of at most ``CHECK_EVERY`` steps

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

* the **skeleton** (:func:`skeleton`: the block loop ``run_block``, serial) is
  compiled once per dtype for *every* landscape and optimizer: the math
  reaches it as first-class function arguments (``numba.types.FunctionType``),
  so it never depends on which landscape or optimizer runs;
* each landscape function (value, gradient, minibatch gradient, Hessian) and
  each optimizer step is compiled once per dtype as a small function of its own
  (:func:`math_kernel`) with unsigned particle bounds (a signed index makes
  Numba emit negative-index wraparound, which stops LLVM from vectorising);
* all of them are cached on disk under names that carry the full identity
  (see :mod:`.compile`), and each returns an identity constant that is checked
  on the first call in a process, so a cache hit is provably the requested code.

Evaluations (loss and gradient norm at a run's start and end, Hessians for the
analysis) call the compiled math on blocks of columns from the host, in threads.

A switch of optimizers is run as one call of the skeleton per phase: the host
splits a chunk at phase boundaries and hands each call its phase's step
function, state slice, hyperparameters and RNG key.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import re
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
from numba import njit, types
from numba.core.errors import NumbaIRAssumptionWarning
from numba.core.typing.typeof import typeof_impl
from numba.extending import intrinsic
from numba.np.arrayobj import make_array

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
from .threads import for_pieces, get_threads, on_threads

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
    **CPU_KERNEL_OPTIONS,
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
    #: What it is, for messages ("block loop", "value rosenbrock_value", ...).
    role: str = ""

    def pointer(self) -> FunctionPointer:
        """The compiled function as a first-class function value (address looked up once)."""
        if not hasattr(self, "_pointer"):
            cres = self.dispatcher.overloads[self.dispatcher.signatures[0]]
            self._pointer = FunctionPointer(self.dispatcher, cres.signature)
        return self._pointer


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


class FunctionPointer(types.WrapperAddressProtocol):
    """A compiled math function passed to the block loop as a first-class function, by address.

    Passing the dispatcher itself makes Numba look the address up again at every call
    (``get_compile_result`` and two symbol lookups per function, ~30 us each with the GIL
    held: 120 us per call of the block loop, measured); here it is looked up once.
    """

    def __init__(self, dispatcher: Any, sig: Any) -> None:
        from numba.experimental.function_type import _get_wrapper_address

        self.dispatcher = dispatcher  # keeps the machine code alive
        self._sig = sig
        self._addr = _get_wrapper_address(dispatcher, sig)
        self.numba_type = types.FunctionType(sig)

    def __wrapper_address__(self) -> int:
        return self._addr

    def signature(self) -> Any:
        return self._sig


@typeof_impl.register(FunctionPointer)
def _typeof_pointer(val: FunctionPointer, c: Any) -> Any:
    return val.numba_type  # made once (Numba's own typeof builds a new FunctionType at every call)


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
    c = _compile(_wrapper(kind, fn, ident), math_signature(kind, dtype), MATH_OPTIONS, name,
                 (ident, _probe_args(kind, dtype)))  # fmt: skip
    what = re.sub(r"_?[0-9a-f]{12}$", "", label)  # without a closure's hash
    if fn is _NO_HESSIAN:
        c.role = "no-op Hessian"
    elif what.startswith("full_batch"):  # a landscape without data: its gradient
        c.role = "gradient"
    else:
        c.role = _ROLE_WORDS[kind] + ("" if what in _ROLE_WORDS or what == "w" else f" ({what})")
    return c


_ROLE_WORDS = {"value": "value", "grad": "gradient", "batch_grad": "minibatch gradient", "hess": "Hessian",
               "step": "step"}


# --------------------------------------------------------------------------- the skeleton


@intrinsic
def claim_next(typingctx: Any, counter: Any) -> Any:
    """``counter[0]`` before adding 1 to it, atomically (threads claim blocks with it)."""
    if not (isinstance(counter, types.Array) and counter.dtype == types.int64):
        return None

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        ary = make_array(sig.args[0])(context, builder, args[0])
        return builder.atomic_rmw("add", ary.data, context.get_constant(types.int64, 1), "seq_cst")

    return types.int64(counter), codegen


def _skeleton_functions(ident: int):  # type: ignore[no-untyped-def]
    check_every = CHECK_EVERY

    def run_block(claim, n_blocks, block, X, S, status, stop_step, cnt, lp, hyper, phase_start, phase_lr, lr_sched,
                  seed, gid_base, t0, t1, record_every, rec_x, rec_loss, rec_first,
                  tol2, patience, bound, f_value, f_bgrad, f_hess, f_step, use_hess, lrows, orows):  # fmt: skip
        """Advance blocks of particles from step ``t0`` to ``t1`` under one optimizer phase.

        Every thread of a chunk runs this once: it claims the next block (``claim[0]``, an
        atomic counter shared by the threads) until all ``n_blocks`` are taken, so a thread
        on a busy core simply takes fewer blocks.

        Blocks are ``block`` particles (columns) each; arrays modified in place:
        X (D, N) positions; S (Sphase, D, N) this phase's optimizer state; status (N,) int8;
        stop_step (N,) int64; cnt (N,) int64 steps in a row under grad_tol;
        lp landscape params (dtype of X); hyper float64 (this phase's); phase_start the
        phase's first global step; phase_lr its base learning rate; lr_sched float64 (5,);
        seed uint64 (this phase's RNG key); gid_base int64 global id of column 0; records of
        steps k in (t0, t1] with k % record_every == 0 go to rec_x[:, k // record_every -
        rec_first, :] (N, R, D) and rec_loss (N, R); tol2 and bound have the dtype of X.
        ``f_*`` are compiled math functions (:func:`math_kernel`), called through function
        pointers; ``lrows`` and ``orows`` their scratch rows per particle. Returns the
        skeleton's identity constant times the number of blocks run.
        """
        done = 0
        while True:
            b = claim_next(claim)
            if b >= n_blocks:
                break
            done += 1
            dim, n_all = X.shape
            last = dim - 1
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
                        # squared gradient norm (summed over d in order), bound check and counter, in
                        # D passes over the block: the first starts the sum, the last updates the counter
                        for i in range(n):
                            gi = g[0, i]
                            gn2[i] = gi * gi
                            ev[i] |= not (abs(x[0, i]) <= bnd)
                        for d in range(1, last):
                            for i in range(n):
                                gi = g[d, i]
                                gn2[i] += gi * gi
                                ev[i] |= not (abs(x[d, i]) <= bnd)
                        if last > 0:
                            for i in range(n):
                                gi = g[last, i]
                                acc = gn2[i] + gi * gi
                                ci = c[i] + 1 if acc < tol else 0
                                c[i] = ci
                                ev[i] |= (not (abs(x[last, i]) <= bnd)) | (ci >= patience)
                        else:
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
        return ident * done

    return run_block


class Skeleton:
    """A dtype's compiled block loop, shared by every landscape and optimizer; built on first use.

    ``run_block`` returns :attr:`ident` per block, which the host checks after every call.
    """

    def __init__(self, dtype_name: str) -> None:
        self.dtype_name = dtype_name
        self.dtype = np.dtype(dtype_name)
        self.tag = f"{package_salt()}_{dtype_name}"
        self.ident = identity_code(self.tag)
        self._fns = {"run_block": _skeleton_functions(self.ident)}
        self._made: dict[str, Compiled] = {}

    def _block_sig(self) -> Any:
        f, a1, a2, a3 = _arrays(self.dtype)
        fn = {k: types.FunctionType(math_signature(k, self.dtype)) for k in ("value", "batch_grad", "hess", "step")}
        i8, i64, f64 = (types.Array(t, 1, "C") for t in (types.int8, types.int64, types.float64))
        return I64(i64, I64, I64, a2, a3, i8, i64, i64, a1, f64, I64, types.float64, f64, U64, I64, I64, I64, I64,
                   a3, a2, I64, f, I64, f, fn["value"], fn["batch_grad"], fn["hess"], fn["step"], types.boolean,
                   I64, I64)  # fmt: skip

    def get(self, name: str = "run_block") -> Compiled:
        """The compiled kernel ``name`` (``run_block``)."""
        if name not in self._made:
            # serial (the host spreads blocks over threads, :mod:`.threads`); NRT: it allocates the blocks' arrays
            # (arrays given by the caller instead compile 0.4 s faster but run 4-9% slower: LLVM no longer knows
            # that they all have the block's shape, so every array's strides are loaded and kept apart)
            self._made[name] = _compile(self._fns[name], self._block_sig(), {**MATH_OPTIONS, "_nrt": True},
                                        f"{name}_{self.tag}", None)  # fmt: skip
            self._made[name].role = "block loop"
        return self._made[name]

    def check(self, name: str, got: int, calls: int = 1) -> None:
        """Raise unless ``got`` is the identity a kernel of this skeleton returns (for ``calls`` blocks)."""
        if got != self.ident * calls:
            raise RuntimeError(
                f"descentlab: the {name} kernel returned a foreign identity ({got}, expected {self.ident * calls}): "
                "the Numba cache holds wrong machine code; delete the cache folder (NUMBA_CACHE_DIR) and rerun"
            )


@functools.cache
def skeleton(dtype_name: str) -> Skeleton:
    """The block loop of ``dtype_name`` (one object per process; compiled or loaded on first use)."""
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
        """Signatures of the compiled code behind this entry (``run_chunk``: the block loop; others: the math)."""
        out = []
        for dtype, fns in self.owner.prepared.items():
            if self._name == "run_chunk":
                out.extend(skeleton(dtype).get().dispatcher.signatures)
            else:
                out.extend(fns["value"].signatures)
        return out


class CpuKernels:
    """Kernels of one landscape x optimizer phases on the CPU.

    ``steps[j]``, ``state_slices[j]`` and ``hyper_slices[j]`` describe phase j;
    ``needs_hessian`` makes every step evaluate the landscape Hessian first.
    Nothing is compiled until :meth:`prepare` (or the first call) for a dtype.
    Blocks of ``block`` particles are claimed by the threads of :func:`.threads.on_threads`.
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
        full_gradient: bool = False,
    ) -> None:
        self.math = {"value": value, "grad": grad, "batch_grad": bgrad, "hess": hess}
        #: ``batch_grad`` is the full gradient (a landscape without data): ``evaluate`` uses it,
        #: and the gradient is not compiled a second time under its own signature.
        self.full_gradient = full_gradient
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
                     ", ".join(f"{p.role or p.name} {p.seconds:.1f} s" for p in compiled))  # fmt: skip
        return seconds

    def _roles(self) -> list[str]:
        return ["value", "batch_grad"] if self.full_gradient else ["value", "grad", "batch_grad"]

    def _build(self, name: str) -> tuple[list[Compiled], dict[str, Any]]:
        parts: list[Compiled] = []
        sk = skeleton(name)
        parts.append(sk.get())
        fns: dict[str, Any] = {"skeleton": sk}
        for kind in self._roles():
            c = math_kernel(kind, self.math[kind], name)
            parts.append(c)
            fns[kind] = c.dispatcher
            fns[f"*{kind}"] = c.pointer()
        if self.full_gradient:
            fns["grad"] = _as_grad(fns["batch_grad"])
        c = math_kernel("hess", self.math["hess"] if self.needs_hessian else _NO_HESSIAN, name)
        parts.append(c)
        fns["run_hess"] = c.dispatcher
        fns["*hess"] = c.pointer()
        fns["steps"] = []
        for fn in self.steps:
            c = math_kernel("step", fn, name)
            parts.append(c)
            fns["steps"].append(c.pointer())
        return parts, fns

    def names(self, dtype: Any) -> dict[str, str]:
        """What each role is compiled as for ``dtype`` (the names of the on-disk cache indexes)."""
        name = np.dtype(dtype).name
        self.prepare(name)
        out = {"skeleton.run_block": skeleton(name).get().name}
        for kind in self._roles():
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
        """Advance ``p`` from step ``t0`` to ``t1``: per optimizer phase in the range, the blocks in pieces on threads.

        The block loop's arguments (:func:`_skeleton_functions`'s ``run_block``) come from the
        bundles; each phase gets its slice of the state and of the hyperparameters, its first
        step, base learning rate and RNG key.
        """
        X = p.x
        fns = self._fns(X.dtype)
        sk: Skeleton = fns["skeleton"]
        run_block = sk.get().dispatcher
        dt = X.dtype.type
        n_blocks = (X.shape[1] + self.block - 1) // self.block
        n = np.int64(n_blocks)
        # the block loop's explicit signature: int64 counts and ids, limits in the dtype of X
        c = dataclasses.replace(c, gid_base=np.int64(c.gid_base), tol2=dt(c.tol2), patience=np.int64(c.patience),
                                bound=dt(c.bound))  # fmt: skip
        r = dataclasses.replace(r, first=np.int64(r.first), every=np.int64(r.every))
        for j, a, b in phase_ranges(t0, t1, c.phase_start):
            s0, s1 = self.state_slices[j]
            h0, h1 = self.hyper_slices[j]
            phase = dataclasses.replace(c, hyper=np.ascontiguousarray(c.hyper[h0:h1]),
                                        phase_start=np.int64(c.phase_start[j]), phase_lr=float(c.phase_lr[j]),
                                        seed=np.uint64(c.seed) ^ phase_key(j))  # fmt: skip
            args = (np.int64(self.block),
                    *chunk_arguments(dataclasses.replace(p, state=p.state[s0:s1]), phase, np.int64(a), np.int64(b), r),
                    fns["*value"], fns["*batch_grad"], fns["*hess"], fns["steps"][j], self.needs_hessian,
                    np.int64(c.lrows), np.int64(c.orows))  # fmt: skip

            claim = np.zeros(1, np.int64)
            got = on_threads(min(get_threads(), n_blocks), lambda args=args, claim=claim: run_block(claim, n, *args))
            sk.check("run", got, n_blocks)

    def evaluate(self, X: np.ndarray, lp: np.ndarray, lrows: int, loss: np.ndarray, grad_norm: np.ndarray) -> None:
        """loss (N,) and grad_norm (N,) at X (D, N), modified in place."""
        fns = self._fns(X.dtype)
        evaluate_blocks(X, lp, lrows, loss, grad_norm, fns["value"], fns["grad"])

    def hessian(self, X: np.ndarray, lp: np.ndarray, lrows: int, H: np.ndarray) -> None:
        """H (N, D, D) Hessians at X (D, N), modified in place."""
        hessian_blocks(X, lp, lrows, H, self.hessian_kernel(X.dtype))


def _as_grad(batch_grad: Any) -> Callable[..., Any]:
    """The gradient ``(x, p, w, g, lo, hi)`` of a landscape without data, through its ``batch_grad`` kernel."""

    def grad(x: np.ndarray, p: np.ndarray, w: np.ndarray, g: np.ndarray, lo: Any, hi: Any) -> int:
        return batch_grad(x, p, w, g, lo, hi, np.int64(0), np.uint64(0), np.int64(0))

    return grad


# Evaluation at many points (a run's start and end, the analysis): the compiled math on
# contiguous copies of blocks of columns, in pieces on threads (math kernels release the GIL).
#: Columns evaluated per call, at most (and at most :data:`EVAL_ELEMENTS` numbers of scratch).
EVAL_COLUMNS = 1 << 14
EVAL_ELEMENTS = 1 << 22


def _eval_columns(rows: int) -> int:
    """Columns per call when each needs ``rows`` numbers of scratch."""
    return max(64, min(EVAL_COLUMNS, EVAL_ELEMENTS // max(1, rows)))


def _over_columns(X: np.ndarray, rows: int, body: Callable[[np.ndarray, int, int], None]) -> None:
    """``body(x, lo, hi)`` for contiguous copies ``x`` (D, hi - lo) of blocks of columns of X (D, N), whose
    calls need ``rows`` numbers of scratch per column, in pieces on threads."""
    n_all = X.shape[1]
    step = _eval_columns(rows)

    def piece(b0: int, b1: int) -> int:
        for lo in range(b0 * step, min(b1 * step, n_all), step):
            hi = min(lo + step, n_all)
            body(np.ascontiguousarray(X[:, lo:hi]), lo, hi)
        return 0

    for_pieces((n_all + step - 1) // step, piece)


def evaluate_blocks(X: np.ndarray, lp: np.ndarray, lrows: int, loss: np.ndarray, grad_norm: np.ndarray,
                    f_value: Any, f_grad: Any) -> None:  # fmt: skip
    """loss (N,) and gradient norm (N,) at X (D, N) with the compiled ``f_value`` / ``f_grad``.

    The norm sums the squared coordinates in order 0 .. D-1 in the dtype of X and takes
    the square root (NumPy reduces a C-ordered (D, n) array's first axis row after row).
    """
    z = np.uint64(0)

    def body(x: np.ndarray, lo: int, hi: int) -> None:
        w = np.empty((lrows, hi - lo), X.dtype)
        g = np.empty_like(x)
        f_value(x, lp, w, loss[lo:hi], z, np.uint64(hi - lo))
        f_grad(x, lp, w, g, z, np.uint64(hi - lo))
        with np.errstate(all="ignore"):  # Inf and NaN are outcomes, as in compiled code
            np.multiply(g, g, out=g)
            np.sqrt(np.add.reduce(g, axis=0), out=grad_norm[lo:hi])

    _over_columns(X, lrows + X.shape[0], body)


def hessian_blocks(X: np.ndarray, lp: np.ndarray, lrows: int, H: np.ndarray, f_hess: Any) -> None:
    """H (N, D, D) Hessians at X (D, N) with the compiled ``f_hess``, modified in place."""
    dim = X.shape[0]
    z = np.uint64(0)

    def body(x: np.ndarray, lo: int, hi: int) -> None:
        hb = np.empty((dim, dim, hi - lo), X.dtype)
        f_hess(x, lp, np.empty((lrows, hi - lo), X.dtype), hb, z, np.uint64(hi - lo))
        H[lo:hi] = hb.transpose(2, 0, 1)

    _over_columns(X, lrows + dim * dim, body)
