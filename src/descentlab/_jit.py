"""The one place where compile options live (STYLE.md §4).

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

from typing import Any

import numpy as np
from numba import types
from numba.extending import overload, register_jitable

#: Options of every CPU kernel.  ``error_model="numpy"`` lets LLVM vectorise
#: ``/`` (the Python error model inserts a zero-division branch); ``fastmath``
#: stays off because NaN/Inf is an outcome here, not something to assume away.
CPU_KERNEL_OPTIONS: dict[str, Any] = {
    "parallel": True,
    "error_model": "numpy",
    "fastmath": False,
    "cache": True,
    "nogil": True,
}

#: Particles per block of the CPU kernel (measured best of 64..512 on Rosenbrock+Adam,
#: 2 cores): the step loop runs outside, a loop
#: over the block's particles inside, which LLVM vectorises.
BLOCK = 256

#: Steps between status checks in the vectorised path (see kernels/cpu.py).
CHECK_EVERY = 16


def math_function(fn=None, *, inline: str = "always"):  # type: ignore[no-untyped-def]
    """Register plain-Python math so every Numba target can call it.

    ``inline="always"`` inlines at the Numba IR level: measured, LLVM does not
    vectorise the particle loops of a math function compiled on its own and
    called from the kernel (190 vs 560 M particle-steps/s per core).
    """
    if fn is None:
        return lambda f: register_jitable(inline=inline)(f)
    return register_jitable(inline=inline)(fn)


def block_function(fn):  # type: ignore[no-untyped-def]
    """A serial CPU helper of a kernel, compiled as its own function with the kernel options.

    Registered (not ``njit``-decorated) so that a cached kernel that calls it
    captures a plain function: a Numba dispatcher in a closure pickles with a
    per-process id, which made every new process miss the on-disk cache.
    """
    opts = {k: v for k, v in CPU_KERNEL_OPTIONS.items() if k in ("error_model", "fastmath")}
    return register_jitable(inline="never", **opts)(fn)


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
