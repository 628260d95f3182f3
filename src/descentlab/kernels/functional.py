"""A landscape as compiled callables: value, gradient and Hessian at many points (CPU).

For code that needs a landscape's math without a run - the analysis (Hessians at a
census of end points), notebooks - there is no spec and no optimizer to build::

    from descentlab.kernels.functional import landscape_functions
    f = landscape_functions(landscape, params, dim)   # a Landscape object: registered, formula or model
    f.value(x)       # x (n, D) -> (n,)
    f.grad(x)        # x (n, D) -> (n, D)
    f.hess(x)        # x (n, D) -> (n, D, D), as the landscape's math computes it (not symmetrised)

The calls use the same compiled pieces as a run (:mod:`.cpu`: each math function
compiled once per dtype, evaluated in blocks on threads), so they are cached on disk
like the run kernels and give the same bits as a run's records.
Points are converted to the working dtype (float64 by default).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..landscapes.base import Landscape


@dataclass(frozen=True)
class LandscapeFunctions:
    """A landscape bound to its parameters and dimension, evaluated by compiled CPU kernels.

    ``p``: the packed parameters in ``dtype``; ``rows``: scratch rows of the math.
    """

    landscape: Landscape
    params: Mapping[str, Any]
    dim: int
    dtype: str = "float64"
    p: np.ndarray = field(init=False, repr=False)
    rows: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "p", np.ascontiguousarray(self.landscape.pack(self.params, self.dim), self.dtype))
        object.__setattr__(self, "rows", self.landscape.scratch_rows(self.dim))

    def _soa(self, x: np.ndarray) -> np.ndarray:
        """Points (n, D) as the kernels' (D, n) block in ``dtype``."""
        x = np.asarray(x, dtype=self.dtype).reshape(-1, self.dim)
        return np.ascontiguousarray(x.T)

    def value_and_grad_norm(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(loss (n,), gradient norm (n,)) at points ``x`` (n, D): what a run's evaluation computes."""
        from .cpu import evaluate_blocks, math_kernel

        xs = self._soa(x)
        n = xs.shape[1]
        loss, gn = np.empty(n, self.dtype), np.empty(n, self.dtype)
        if n:
            f_value = math_kernel("value", self.landscape.value, self.dtype).dispatcher
            f_grad = math_kernel("grad", self.landscape.grad, self.dtype).dispatcher
            evaluate_blocks(xs, self.p, self.rows, loss, gn, f_value, f_grad)
        return loss, gn

    def value(self, x: np.ndarray) -> np.ndarray:
        """Loss (n,) at points ``x`` (n, D)."""
        return self.value_and_grad_norm(x)[0]

    def grad(self, x: np.ndarray) -> np.ndarray:
        """Gradients (n, D) at points ``x`` (n, D) (one serial call of the compiled gradient)."""
        from .cpu import math_kernel

        xs = self._soa(x)
        n = xs.shape[1]
        g = np.empty((self.dim, n), self.dtype)
        if n:
            w = np.empty((self.rows, n), self.dtype)
            f_grad = math_kernel("grad", self.landscape.grad, self.dtype).dispatcher
            f_grad(xs, self.p, w, g, np.uint64(0), np.uint64(n))
        return np.ascontiguousarray(g.T)

    def hess(self, x: np.ndarray) -> np.ndarray:
        """Hessians (n, D, D) at points ``x`` (n, D), in blocks on threads."""
        from .cpu import hessian_blocks, math_kernel

        xs = self._soa(x)
        n = xs.shape[1]
        h = np.empty((n, self.dim, self.dim), self.dtype)
        if n:
            hessian_blocks(xs, self.p, self.rows, h, math_kernel("hess", self.landscape.hess, self.dtype).dispatcher)
        return h


def landscape_functions(landscape: Landscape, params: Mapping[str, Any] | None = None, dim: int | None = None,
                        dtype: str = "float64") -> LandscapeFunctions:  # fmt: skip
    """Compiled value / gradient / Hessian of ``landscape`` with ``params`` (defaults overlaid) in ``dim``."""
    return LandscapeFunctions(landscape, landscape.resolve_params(params), landscape.resolve_dim(dim),
                              np.dtype(dtype).name)  # fmt: skip
