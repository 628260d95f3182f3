"""Build (and cache) the kernels of one landscape x optimizer-phases x target.

In-process, kernels are memoised by the identity of the math functions, so a
second run with other hyperparameters, schedule or sizes reuses the same
compiled code. On the CPU the block loop is one per dtype for every
landscape and optimizer, and each math function is compiled once per dtype
(:mod:`.cpu`); across processes Numba's on-disk cache holds them under names
that carry their full identity (:mod:`.identity`).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .._jit import BLOCK, math_function
from ..core.identity import salt_of


@dataclass(frozen=True)
class Kernels:
    """Compiled entry points for one landscape x phases x target."""

    #: ``run_chunk(particles, constants, t0, t1, records)`` (the bundles of :mod:`.common`).
    run_chunk: Callable[..., Any]
    evaluate: Callable[..., Any]
    hessian: Callable[..., Any]
    target: str
    #: ``prepare(dtype, label) -> seconds``: compile (or load) what a run of ``dtype`` needs.
    prepare: Callable[..., float] = lambda dtype, label="": 0.0
    #: ``resident(particles, constants)``: the state kept on the device between chunks (CUDA),
    #: passed to ``run_chunk(..., on_device=...)``; None where the state lives in host memory.
    resident: Callable[..., Any] | None = None


def _source_salt(functions: Sequence[Callable[..., Any]], layout: tuple[Any, ...] = ()) -> str:
    """Deterministic hash (16 hex digits) of math functions, a layout, and the package sources.

    Source text and closure contents only (see :mod:`.identity`), so it is the
    same in every process.
    """
    h = hashlib.sha256()
    for f in functions:
        h.update(salt_of(f, "any", "any").encode())
    h.update(repr(layout).encode())
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
    if target == "cpu":
        from .cpu import CpuKernels, KernelEntry

        k = CpuKernels(value, grad, bgrad, hess, steps, state_slices, hyper_slices, needs_hessian, block,
                       full_gradient=batch_grad is None)  # fmt: skip
        return Kernels(KernelEntry(k, "run_chunk"), KernelEntry(k, "evaluate"), KernelEntry(k, "hessian"), "cpu",
                       k.prepare)  # fmt: skip
    if target == "cuda":
        from .cuda import make_cuda_kernels

        run_chunk, evaluate, hessian, resident = make_cuda_kernels(value, grad, bgrad, hess, steps, state_slices,
                                                                   hyper_slices, needs_hessian)  # fmt: skip
        return Kernels(run_chunk, evaluate, hessian, "cuda", resident=resident)
    raise ValueError(f"run.target: unknown target {target!r}; expected 'cpu' or 'cuda'")
