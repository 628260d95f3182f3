"""Build (and cache) the kernels of one landscape x optimizer-phases x target.

In-process, kernels are memoised by the identity of the math functions, so a
second run with other hyperparameters, schedule or sizes reuses the same
dispatchers (and Numba reuses the compiled signature). Across processes,
Numba's on-disk cache (``cache=True``) keys the kernels by their closure
constants, which include a hash of the math sources (the *salt*).
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import marshal
import sys
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

from .. import __version__
from .._jit import BLOCK, math_function
from .common import make_dispatch


@dataclass(frozen=True)
class Kernels:
    """Compiled entry points for one landscape x phases x target."""

    run_chunk: Callable[..., Any]
    evaluate: Callable[..., Any]
    hessian: Callable[..., Any]
    target: str


#: Modules whose functions end up in kernels (math, adapters, RNG, schedules).
_MATH_MODULES = (
    "descentlab._jit",
    "descentlab.kernels.common",
    "descentlab.kernels.cpu",
    "descentlab.kernels.rng",
    "descentlab.optimizers.schedules",
    "descentlab.data.batches",
)


def _fingerprint(mod: Any) -> bytes:
    """Hash of a module's functions' byte code and its constants, as loaded in this process.

    Byte code rather than the source file: the machine code is compiled from
    what is in memory, so a file edited after import cannot mislabel a kernel.
    """
    h = hashlib.sha256()
    for name, obj in sorted(vars(mod).items()):
        if isinstance(obj, types.FunctionType) and obj.__module__ == mod.__name__:
            h.update(name.encode())
            h.update(marshal.dumps(obj.__code__))
        elif isinstance(obj, int | float | np.generic):
            h.update(f"{name}={obj!r}".encode())
    return h.digest()


def _source_salt(functions: Sequence[Callable[..., Any]], layout: tuple[Any, ...] = ()) -> str:
    """Hash of everything a kernel's machine code depends on.

    It names the math functions themselves (two landscapes may share a module),
    the phase layout, and the byte code of every module involved: the compiled
    kernels capture plain functions, which do not reach Numba's cache key.
    """
    h = hashlib.sha256()
    h.update(__version__.encode())
    h.update(numba.__version__.encode())
    h.update(repr([(f.__module__, f.__qualname__) for f in functions]).encode())
    h.update(repr(layout).encode())
    mods = {sys.modules[f.__module__] for f in functions}
    mods |= {importlib.import_module(m) for m in _MATH_MODULES}
    for mod in sorted(mods, key=lambda m: m.__name__):
        h.update(_fingerprint(mod))
    return h.hexdigest()[:16]


@functools.cache
def full_batch(grad: Callable[..., Any]) -> Callable[..., Any]:
    """The minibatch-gradient signature for a landscape without data.

    The kernels ask every landscape for ``batch_grad(x, p, w, g, lo, hi, t,
    seed, gid0)``: the gradient of update step ``t`` (1-based) for particles
    ``gid0 + lo .. gid0 + hi``. A finite-sum landscape draws its minibatch from
    these; an analytic landscape has one "sample" and returns its gradient.
    """

    @math_function
    def batch_grad(x, p, w, g, lo, hi, t, seed, gid0):  # type: ignore[no-untyped-def]
        grad(x, p, w, g, lo, hi)

    return batch_grad


@functools.cache
def build(
    value: Callable[..., Any],
    grad: Callable[..., Any],
    hess: Callable[..., Any],
    steps: tuple[Callable[..., Any], ...],
    state_slices: tuple[tuple[int, int], ...],
    hyper_slices: tuple[tuple[int, int], ...],
    needs_hessian: bool,
    target: str = "cpu",
    batch_grad: Callable[..., Any] | None = None,
    block: int = BLOCK,
) -> Kernels:
    """Kernels for a landscape (math functions) and optimizer phases.

    ``batch_grad`` is the landscape's minibatch gradient (finite sums); by
    default the full gradient. ``block`` is the CPU kernel's particles per block.
    """
    bgrad = full_batch(grad) if batch_grad is None else batch_grad
    salt = _source_salt(
        [value, grad, bgrad, hess, *steps], (state_slices, hyper_slices, needs_hessian, target, block)
    )
    dispatch = make_dispatch(steps, state_slices, hyper_slices)
    if target == "cpu":
        from .cpu import make_cpu_kernels

        run_chunk, evaluate, hessian = make_cpu_kernels(
            value, grad, bgrad, hess, dispatch, needs_hessian, salt, block
        )
        return Kernels(run_chunk, evaluate, hessian, "cpu")
    if target == "cuda":
        from .cuda import make_cuda_kernels

        run_chunk, evaluate, hessian = make_cuda_kernels(value, grad, bgrad, hess, dispatch, needs_hessian, salt)
        return Kernels(run_chunk, evaluate, hessian, "cuda")
    raise ValueError(f"run.target: unknown target {target!r}; expected 'cpu' or 'cuda'")
