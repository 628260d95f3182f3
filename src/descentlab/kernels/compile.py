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
import inspect
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numba

from .. import __version__
from .common import make_dispatch


@dataclass(frozen=True)
class Kernels:
    """Compiled entry points for one landscape x phases x target."""

    run_chunk: Callable[..., Any]
    evaluate: Callable[..., Any]
    hessian: Callable[..., Any]
    target: str


def _source_salt(functions: Sequence[Callable[..., Any]]) -> str:
    h = hashlib.sha256()
    h.update(__version__.encode())
    h.update(numba.__version__.encode())
    import importlib

    pkg = __name__.rsplit(".", 1)[0]
    mods = {sys.modules[f.__module__] for f in functions}
    mods |= {importlib.import_module(f"{pkg}.{m}") for m in ("cpu", "common", "rng")}
    mods |= {importlib.import_module("descentlab._jit"), importlib.import_module("descentlab.optimizers.schedules")}
    for mod in sorted(mods, key=lambda m: m.__name__):
        try:
            h.update(inspect.getsource(mod).encode())
        except (OSError, TypeError):
            h.update(mod.__name__.encode())
    return h.hexdigest()[:16]


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
) -> Kernels:
    """Kernels for a landscape (three math functions) and optimizer phases."""
    salt = _source_salt([value, grad, hess, *steps])
    dispatch = make_dispatch(steps, state_slices, hyper_slices)
    if target == "cpu":
        from .cpu import make_cpu_kernels

        run_chunk, evaluate, hessian = make_cpu_kernels(value, grad, hess, dispatch, needs_hessian, salt)
        return Kernels(run_chunk, evaluate, hessian, "cpu")
    if target == "cuda":
        from .cuda import make_cuda_kernels

        run_chunk, evaluate, hessian = make_cuda_kernels(value, grad, hess, dispatch, needs_hessian, salt)
        return Kernels(run_chunk, evaluate, hessian, "cuda")
    raise ValueError(f"run.target: unknown target {target!r}; expected 'cpu' or 'cuda'")
