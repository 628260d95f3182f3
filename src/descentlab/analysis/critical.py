"""Critical points: Hessians, eigenvalues, classification, sharpness, census.

Hessians come from the landscape's own (analytic) math function. For a few
points it is called as plain Python on a ``(D, n)`` block - no compilation, so
an analysis needs nothing but the run file; for many points (a census) the
compiled kernel of :mod:`descentlab.kernels` is used.

Classification of a symmetric Hessian with eigenvalues ``lam`` and tolerance
``tol = eig_tol * max(1, max |lam|)``: ``"minimum"`` (all > tol), ``"maximum"``
(all < -tol), ``"saddle (index k)"`` (k < -tol, the rest > tol), otherwise
``"degenerate (index k, m flat)"`` with m eigenvalues within tol of zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..landscapes.base import Landscape

#: Relative eigenvalue tolerance of the classification.
EIG_TOL = 1e-6
#: Above this many points the compiled Hessian kernel is used instead of plain Python.
PYTHON_HESSIAN_MAX = 256


@dataclass
class LandscapeMath:
    """A landscape's math bound to its parameters and dimension (plain Python calls)."""

    landscape: Landscape
    params: Mapping[str, Any]
    dim: int

    def __post_init__(self) -> None:
        self.p = self.landscape.pack(self.params, self.dim)
        self.rows = self.landscape.scratch_rows(self.dim)

    def value(self, x: np.ndarray) -> np.ndarray:
        """Loss at points ``x`` (n, D)."""
        xs = np.ascontiguousarray(np.asarray(x, dtype=np.float64).T)
        n = xs.shape[1]
        out = np.empty(n)
        self.landscape.value(xs, self.p, np.zeros((self.rows, n)), out, 0, n)
        return out

    def grad(self, x: np.ndarray) -> np.ndarray:
        """Gradients (n, D) at points ``x`` (n, D)."""
        xs = np.ascontiguousarray(np.asarray(x, dtype=np.float64).T)
        n = xs.shape[1]
        g = np.empty((self.dim, n))
        self.landscape.grad(xs, self.p, np.zeros((self.rows, n)), g, 0, n)
        return g.T.copy()

    def hess(self, x: np.ndarray, compiled: bool | None = None) -> np.ndarray:
        """Hessians (n, D, D) at points ``x`` (n, D), symmetrised."""
        x = np.asarray(x, dtype=np.float64).reshape(-1, self.dim)
        n = x.shape[0]
        if compiled is None:
            compiled = n > PYTHON_HESSIAN_MAX
        if compiled:
            h = _compiled_hessian(self, x)
        else:
            xs = np.ascontiguousarray(x.T)
            hb = np.empty((self.dim, self.dim, n))
            self.landscape.hess(xs, self.p, np.zeros((self.rows, n)), hb, 0, n)
            h = np.moveaxis(hb, 2, 0)
        return 0.5 * (h + np.swapaxes(h, 1, 2))


def _compiled_hessian(lm: LandscapeMath, x: np.ndarray) -> np.ndarray:
    from ..engine.run import kernels_for
    from ..engine.spec import parse_spec

    spec = {
        "run": {"particles": 1, "steps": 1},
        "landscape": {"name": lm.landscape.name, "dim": lm.dim, **dict(lm.params)},
        "optimizer": {"name": "sgd"},
    }
    rs = parse_spec(spec)
    kern = kernels_for(rs)
    h = np.empty((x.shape[0], lm.dim, lm.dim))
    kern.hessian(np.ascontiguousarray(x.T), lm.p.astype(np.float64), lm.rows, h)
    return h


def classify(eigenvalues: np.ndarray, eig_tol: float = EIG_TOL) -> str:
    """Name of the critical point with these Hessian eigenvalues (see module doc)."""
    lam = np.asarray(eigenvalues, dtype=np.float64)
    if lam.size == 0 or not np.all(np.isfinite(lam)):
        return "undefined"
    tol = eig_tol * max(1.0, float(np.max(np.abs(lam))))
    neg = int(np.sum(lam < -tol))
    pos = int(np.sum(lam > tol))
    flat = lam.size - neg - pos
    if flat:
        return f"degenerate (index {neg}, {flat} flat)"
    if neg == 0:
        return "minimum"
    if pos == 0:
        return "maximum"
    return f"saddle (index {neg})"


@dataclass
class CriticalPoints:
    """Hessian analysis at a set of points: positions (K, D), gradient norms (K,),
    eigenvalues (K, D) ascending, classes, sharpness (K,) = largest eigenvalue,
    trace (K,), index (K,) = fraction of negative eigenvalues, losses (K,)."""

    positions: np.ndarray
    grad_norm: np.ndarray
    losses: np.ndarray
    eigenvalues: np.ndarray
    classes: list[str]
    sharpness: np.ndarray
    trace: np.ndarray
    index: np.ndarray


def refine(lm: LandscapeMath, x0: np.ndarray, tol: float, iters: int = 30) -> np.ndarray:
    """Newton iterations on the gradient from ``x0`` (D,); returns x0 if they leave ``tol``."""
    x = np.asarray(x0, dtype=np.float64).copy()
    for _ in range(iters):
        g = lm.grad(x[None])[0]
        if not np.all(np.isfinite(g)) or np.linalg.norm(g) < 1e-13:
            break
        h = lm.hess(x[None], compiled=False)[0]
        dx = np.linalg.lstsq(h, g, rcond=None)[0]
        x = x - dx
        if not np.all(np.isfinite(x)) or np.linalg.norm(x - x0) > tol:
            return np.asarray(x0, dtype=np.float64).copy()
    return x


def analyze_points(lm: LandscapeMath, x: np.ndarray, eig_tol: float = EIG_TOL,
                   compiled: bool | None = None) -> CriticalPoints:  # fmt: skip
    """Hessian eigenvalues, class, sharpness and index at points ``x`` (K, D)."""
    x = np.asarray(x, dtype=np.float64).reshape(-1, lm.dim)
    k = x.shape[0]
    if k == 0:
        z = np.zeros(0)
        return CriticalPoints(x, z, z, np.zeros((0, lm.dim)), [], z, z, z)
    h = lm.hess(x, compiled=compiled)
    ok = np.all(np.isfinite(h.reshape(k, -1)), axis=1)
    lam = np.full((k, lm.dim), np.nan)
    if np.any(ok):
        lam[ok] = np.linalg.eigvalsh(h[ok])
    if compiled or (compiled is None and k > PYTHON_HESSIAN_MAX):
        gn = np.full(k, np.nan)
        losses = np.full(k, np.nan)
    else:
        gn = np.linalg.norm(lm.grad(x), axis=1)
        losses = lm.value(x)
    classes = [classify(row, eig_tol) for row in lam]
    with np.errstate(invalid="ignore"):
        tol = eig_tol * np.maximum(1.0, np.nanmax(np.abs(lam), axis=1, initial=0.0))
        index = np.sum(lam < -tol[:, None], axis=1) / lm.dim
    index = np.where(ok, index, np.nan)
    return CriticalPoints(
        positions=x, grad_norm=gn, losses=losses, eigenvalues=lam, classes=classes,
        sharpness=lam[:, -1].copy(), trace=np.sum(lam, axis=1), index=index,
    )  # fmt: skip


def census(lm: LandscapeMath, points: np.ndarray, losses: np.ndarray, max_points: int = 2000,
           eig_tol: float = EIG_TOL) -> dict[str, np.ndarray]:  # fmt: skip
    """Critical-point census: index (fraction of negative eigenvalues) vs loss.

    ``points`` (n, D) end points (and saddles found); at most ``max_points``,
    taken evenly strided. Returns ``{"loss", "index", "sharpness", "row"}``
    (row: which input point each entry came from).
    """
    points = np.asarray(points, dtype=np.float64)
    n = points.shape[0]
    rows = np.arange(n) if n <= max_points else np.linspace(0, n - 1, max_points).astype(np.int64)
    cp = analyze_points(lm, points[rows], eig_tol)
    return {
        "loss": np.asarray(losses, dtype=np.float64)[rows], "index": cp.index,
        "sharpness": cp.sharpness, "row": rows,
    }  # fmt: skip
