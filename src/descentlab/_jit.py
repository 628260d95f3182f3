"""The one place where compile options live.

Landscape and optimizer math is written once as plain Python functions on
scalars and array rows and registered with :func:`math_function`. Such a
function stays callable from the interpreter (the NumPy references and the
CUDA simulator use that), and Numba compiles it for whichever target calls it:
``njit`` kernels on the CPU, ``cuda.jit`` kernels on the GPU
(``register_jitable`` overloads on the *generic* target).

Rules for math functions (checked by review, enforced by the tests):

* only ``math`` functions, arithmetic, loops and indexing - no NumPy
  allocation, so the same source is a CUDA device function;
* constants go through :func:`real` so that float32 kernels stay float32
  (a bare ``2.0`` or ``2`` promotes a float32 expression to float64);
* loops over particles are the innermost loops, over ``range(lo, hi)``, so
  that the CPU block kernel vectorises across particles.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import types
from numba.extending import overload, register_jitable

#: Options of every CPU kernel.  ``error_model="numpy"`` lets LLVM vectorise
#: ``/`` (the Python error model inserts a zero-division branch); ``fastmath``
#: stays off because NaN/Inf is an outcome here, not something to assume away.
#: Serial code that releases the GIL: the host spreads blocks of particles over
#: threads (:mod:`descentlab.kernels.threads`), no ``parallel=True``.
CPU_KERNEL_OPTIONS: dict[str, Any] = {
    "error_model": "numpy",
    "fastmath": False,
    "cache": True,
    "nogil": True,
}

#: Particles per block of the CPU kernel: the step loop runs outside, a loop over the
#: block's particles inside, which LLVM vectorises. Each step calls the landscape and the
#: optimizer through function pointers, so few dimensions want long blocks to spread
#: the calls' cost (Rosenbrock + Adam, D = 2, 2 cores, M particle-steps/s: 256 -> 245,
#: 1024 -> 260, 2048 -> 278; D = 100: 256 best); see :func:`block_for`.
BLOCK = 256


def block_for(dim: int, particles: int | None = None) -> int:
    """Particles per CPU block for dimension ``dim`` (the data of a block stays in L2).

    With ``particles``, blocks are halved (down to :data:`BLOCK`) until every thread
    gets at least 8 of them, so that few particles still spread evenly over the
    threads (N = 1e4 in blocks of 2048 is 5 blocks for 2 threads).
    """
    block = 2048 if dim <= 2 else 1024 if dim <= 8 else BLOCK
    if particles is not None:
        import numba

        threads = int(numba.config.NUMBA_NUM_THREADS)
        while block > BLOCK and particles < 8 * threads * block:
            block //= 2
    return block

#: Steps between status checks in the vectorised path (see kernels/cpu.py): each check
#: snapshots and settles the block, and a flagged particle replays at most this many
#: steps once. Measured (Rosenbrock + Adam, N = 1e5, 2 threads, M particle-steps/s,
#: f64 / f32): 16 -> 563 / 1121, 32 -> 610 / 1204, 64 -> 603 / 1314. Results do not
#: depend on it (the replay is exact).
CHECK_EVERY = 64


def math_function(fn=None, *, inline: str = "never"):  # type: ignore[no-untyped-def]
    """Register plain-Python math so every Numba target can call it.

    Compiled as a function of its own (``inline="never"``) and called: Numba's
    IR-level inlining (``"always"``) typed a function's body once per level it
    was inlined through (Adam's step: 6.0 s to compile, 1.9 s called), and the
    particle loops vectorise all the same, because the CPU adapter calls the
    math with unsigned particle bounds (see :mod:`descentlab.kernels.cpu`).

    A function made in a closure gets a qualified name that carries a hash of
    what its closure holds: Numba links called functions by name (weak,
    one-definition symbols), so two closures of one name compiled in different
    processes would otherwise bind each other's code once both are loaded.
    """
    if fn is None:
        return lambda f: math_function(f, inline=inline)
    if fn.__closure__:
        from .core.identity import closure_name

        fn.__qualname__ = fn.__name__ = closure_name(fn)
    return register_jitable(inline=inline)(fn)


def real(value, like):  # type: ignore[no-untyped-def]
    """``value`` as the floating type of ``like`` (an array or a scalar).

    In the interpreter it returns ``value`` unchanged (NumPy 2 keeps Python
    floats "weak", so float32 arithmetic stays float32). In compiled code it
    is a cast that LLVM folds into a constant.
    """
    return value


@overload(real, target="generic")
def _real_overload(value, like):  # type: ignore[no-untyped-def]
    dtype = like.dtype if isinstance(like, types.Array) else like
    if dtype == types.float32:
        return lambda value, like: np.float32(value)
    return lambda value, like: np.float64(value)


# Elementary functions for single-source code that also runs on NumPy arrays in the interpreter
# (the counter-based RNG draws the initial positions of millions of particles at once): NumPy's
# ufuncs there, ``math`` in compiled code. Numba's CUDA target has no scalar ``np.sqrt``/``np.log``
# /``np.cos`` (only ``math``'s); on the CPU both lower to the same LLVM intrinsics.


def sqrt(x):  # type: ignore[no-untyped-def]
    """``np.sqrt`` in the interpreter, ``math.sqrt`` compiled."""
    return np.sqrt(x)


def log(x):  # type: ignore[no-untyped-def]
    """``np.log`` in the interpreter, ``math.log`` compiled."""
    return np.log(x)


def cos(x):  # type: ignore[no-untyped-def]
    """``np.cos`` in the interpreter, ``math.cos`` compiled."""
    return np.cos(x)


@overload(sqrt, target="generic")
def _sqrt_overload(x):  # type: ignore[no-untyped-def]
    return lambda x: math.sqrt(x)


@overload(log, target="generic")
def _log_overload(x):  # type: ignore[no-untyped-def]
    return lambda x: math.log(x)


@overload(cos, target="generic")
def _cos_overload(x):  # type: ignore[no-untyped-def]
    return lambda x: math.cos(x)
