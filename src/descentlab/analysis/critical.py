"""Critical points: Hessians, eigenvalues, classification, sharpness, census.

Hessians come from the landscape's own (analytic) math function. For a few
points it is called as plain Python on a ``(D, n)`` block - no compilation, so
an analysis needs nothing but the run file; for many points (a census) the
compiled kernel of :mod:`descentlab.kernels.functional` is used.

Models (finite sums, :class:`ModelMath`) have no Hessian formula: their
Hessian-vector products are central differences of the analytic full-batch
gradient (the NumPy backward pass of :mod:`descentlab.models.reference`),
``Hv = (g(x + h v) - g(x - h v)) / 2h``. Up to :data:`DENSE_HESSIAN_MAX`
parameters the whole Hessian is built from D of them; above, the extreme
eigenvalues come from Lanczos iterations (ARPACK through
``scipy.sparse.linalg.eigsh``, :data:`LANCZOS_K` at each end of the spectrum)
and the trace from Hutchinson's estimator (Rademacher probes) - the usual way
of measuring sharpness of a network (e.g. Ghorbani et al. 2019,
https://arxiv.org/abs/1901.10159; Yao et al. 2020, PyHessian,
https://arxiv.org/abs/1912.07145).

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
#: Models with up to this many parameters get their whole Hessian (D Hessian-vector products).
DENSE_HESSIAN_MAX = 256
#: Eigenvalues computed at each end of the spectrum by Lanczos (larger models).
LANCZOS_K = 4
#: Rademacher probes of Hutchinson's trace estimator (larger models).
TRACE_PROBES = 32
#: Points of a model analysed in one call (the first ones: attractors come most populated
#: first); the rest are "not computed". A model's Hessian costs D gradient pairs, Lanczos a few hundred.
MODEL_MAX_POINTS = 64
#: Relative step of the Hessian-vector product's central difference.
HVP_STEP = 1e-5


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


class ModelMath(LandscapeMath):
    """A finite-sum landscape (model x training set) with NumPy value, gradient and Hessian-vector products.

    ``fs`` is the run's :class:`descentlab.problems.finite_sum.FiniteSum`; the
    loss is the full-batch training loss (batch normalization with full-data
    statistics, as the kernels' value).
    """

    def __init__(self, landscape: Landscape, params: Mapping[str, Any], dim: int, fs: Any) -> None:
        self.fs = fs
        super().__init__(landscape, params, dim)

    def value(self, x: np.ndarray) -> np.ndarray:
        from ..models import reference

        x = np.asarray(x, dtype=np.float64).reshape(-1, self.dim)
        return reference.loss(self.fs.model, x, self.fs.data.x_train, self.fs.data.y_train)

    def grad(self, x: np.ndarray) -> np.ndarray:
        from ..models import reference

        x = np.asarray(x, dtype=np.float64).reshape(-1, self.dim)
        out = np.empty_like(x)
        for a in range(0, x.shape[0], 256):  # bounded memory: (particles, samples, width) activations
            out[a : a + 256] = reference.gradient(self.fs.model, x[a : a + 256], self.fs.data.x_train,
                                                  self.fs.data.y_train)  # fmt: skip
        return out

    def hvp(self, x0: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Hessian-vector products (m, D) at the point ``x0`` (D,) with the vectors ``v`` (m, D)."""
        x0 = np.asarray(x0, dtype=np.float64).reshape(self.dim)
        v = np.atleast_2d(np.asarray(v, dtype=np.float64))
        norm = np.linalg.norm(v, axis=1, keepdims=True)
        safe = np.where(norm > 0, norm, 1.0)
        h = HVP_STEP * (1.0 + np.max(np.abs(x0))) / safe  # a step of HVP_STEP (1 + |x0|) along each v
        g = self.grad(np.concatenate([x0 + h * v, x0 - h * v]))
        m = v.shape[0]
        return np.where(norm > 0, (g[:m] - g[m:]) / (2.0 * h), 0.0)

    def hess(self, x: np.ndarray, compiled: bool | None = None) -> np.ndarray:
        """Hessians (n, D, D) at points ``x`` (n, D) from D Hessian-vector products each, symmetrised."""
        x = np.asarray(x, dtype=np.float64).reshape(-1, self.dim)
        h = np.stack([self.hvp(p, np.eye(self.dim)) for p in x]) if x.size else np.zeros((0, self.dim, self.dim))
        return 0.5 * (h + np.swapaxes(h, 1, 2))

    @property
    def dense(self) -> bool:
        """Whether :func:`analyze_points` builds the whole Hessian (else: Lanczos extremes)."""
        return self.dim <= DENSE_HESSIAN_MAX

    def extremes(self, x0: np.ndarray, k: int = LANCZOS_K, seed: int = 0) -> tuple[np.ndarray, float]:
        """(the ``k`` smallest and ``k`` largest eigenvalues (2k,) ascending, Hutchinson trace) at ``x0`` (D,)."""
        from scipy.sparse.linalg import LinearOperator, eigsh

        d = self.dim
        k = max(1, min(int(k), (d - 1) // 2))
        op = LinearOperator((d, d), matvec=lambda v: self.hvp(x0, v.reshape(1, d))[0],
                            matmat=lambda m: self.hvp(x0, m.T).T, dtype=np.float64)  # fmt: skip
        rng = np.random.default_rng(seed)
        v0 = rng.standard_normal(d)
        low = eigsh(op, k=k, which="SA", v0=v0, tol=1e-8, return_eigenvectors=False)
        high = eigsh(op, k=k, which="LA", v0=v0, tol=1e-8, return_eigenvectors=False)
        probes = rng.choice([-1.0, 1.0], size=(TRACE_PROBES, d))
        trace = float(np.mean(np.sum(probes * self.hvp(x0, probes), axis=1)))
        return np.sort(np.concatenate([low, high])), trace


def _compiled_hessian(lm: LandscapeMath, x: np.ndarray) -> np.ndarray:
    """Hessians (n, D, D) at ``x`` (n, D) by the compiled kernel of the landscape object itself
    (a registered, formula or any other :class:`Landscape`; no spec is rebuilt)."""
    from ..kernels.functional import LandscapeFunctions

    return LandscapeFunctions(lm.landscape, lm.params, lm.dim).hess(x)


def classify(eigenvalues: np.ndarray, eig_tol: float = EIG_TOL, extremes: int | None = None) -> str:
    """Name of the critical point with these Hessian eigenvalues (see module doc).

    ``extremes = k``: ``eigenvalues`` are only the k smallest and the k largest
    (Lanczos); a count that reaches k at its end is a lower bound (``"index 4+"``).
    """
    lam = np.sort(np.asarray(eigenvalues, dtype=np.float64))
    if lam.size == 0 or not np.all(np.isfinite(lam)):
        return "undefined"
    tol = eig_tol * max(1.0, float(np.max(np.abs(lam))))
    if extremes is not None and lam.size == 2 * extremes:
        low = lam[:extremes]
        if low[0] > tol:
            return "minimum"
        if lam[-1] < -tol:
            return "maximum"
        neg = int(np.sum(low < -tol))
        flat = int(np.sum(np.abs(low) <= tol))
        more = "+" if neg + flat == extremes else ""
        if flat:
            return f"degenerate (index {neg}, {flat}{more} flat)"
        return f"saddle (index {neg}{more})"
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
    eigenvalues (K, D) ascending - (K, 2k), the k smallest and k largest, for a
    model above :data:`DENSE_HESSIAN_MAX` parameters -, classes, sharpness (K,)
    = largest eigenvalue, trace (K,), index (K,) = the number of negative
    eigenvalues (as in the classes' "saddle (index k)"; a lower bound when the k
    smallest are all negative; NaN where the Hessian is not finite), losses (K,).
    :attr:`index_fraction` is index / D (Dauphin et al. 2014's alpha)."""

    positions: np.ndarray
    grad_norm: np.ndarray
    losses: np.ndarray
    eigenvalues: np.ndarray
    classes: list[str]
    sharpness: np.ndarray
    trace: np.ndarray
    index: np.ndarray
    #: (K, D, D) unit eigenvectors, column j for eigenvalue j (ascending, as ``eigenvalues``) - None
    #: where only the extremes were computed (models above :data:`DENSE_HESSIAN_MAX` parameters).
    eigenvectors: np.ndarray | None = None

    @property
    def index_fraction(self) -> np.ndarray:
        """(K,) the fraction of negative eigenvalues, index / D."""
        return self.index / max(1, self.positions.shape[1])


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


#: Clusters checked by Newton's method at most (the most populated first); the rest are "not settled".
NEWTON_MAX = 5000


def newton_critical(lm: LandscapeMath, starts: np.ndarray, tol: float, iters: int = 30) -> np.ndarray | None:
    """(m,) bool: whether Newton's method on the gradient from each of ``starts`` (m, D) reaches a
    critical point within ``tol`` (max norm) of its start (its last step shorter than ``1e-6 tol``,
    or - a degenerate point, where Newton converges only linearly - the gradient a millionth of
    the start's after ``iters`` steps, all within ``tol``).

    Vectorised over the points (the landscape's plain-Python Hessian, no compilation); at most
    :data:`NEWTON_MAX` points are tried (the first ones), the rest are False. Models (no cheap
    Hessian) return None: cannot tell.
    """
    if isinstance(lm, ModelMath):
        return None
    x0 = np.asarray(starts, dtype=np.float64).reshape(-1, lm.dim)
    m = x0.shape[0]
    ok = np.zeros(m, dtype=bool)
    if m == 0:
        return ok
    with np.errstate(all="ignore"):  # far from a critical point Newton may overflow: that is a "no"
        return _newton(lm, x0, ok, tol, iters)


def _newton(lm: LandscapeMath, x0: np.ndarray, ok: np.ndarray, tol: float, iters: int) -> np.ndarray:
    m = x0.shape[0]
    live = np.arange(min(m, NEWTON_MAX))
    x = x0[live].copy()
    g0 = np.linalg.norm(lm.grad(x), axis=1) if live.size else np.zeros(0)
    for _ in range(iters):
        if live.size == 0:
            break
        g = lm.grad(x)
        h = lm.hess(x, compiled=False)
        good = np.all(np.isfinite(g), axis=1) & np.all(np.isfinite(h.reshape(len(x), -1)), axis=1)
        dx = np.zeros_like(x)
        if np.any(good):
            dx[good] = np.einsum("nij,nj->ni", np.linalg.pinv(h[good], rcond=1e-12, hermitian=True), g[good])
        x = x - dx
        step = np.max(np.abs(dx), axis=1)
        away = ~good | ~np.all(np.isfinite(x), axis=1) | (np.max(np.abs(x - x0[live]), axis=1) > tol)
        done = ~away & (step <= 1e-6 * tol)
        ok[live[done]] = True
        keep = ~away & ~done
        live, x, g0 = live[keep], x[keep], g0[keep]
    if live.size:
        # a degenerate critical point (a flat direction, x^4) draws Newton in linearly: still within
        # tol after all iterations with the gradient down a millionfold is a critical point too
        ok[live[np.linalg.norm(lm.grad(x), axis=1) <= 1e-6 * g0]] = True
    return ok


def analyze_points(lm: LandscapeMath, x: np.ndarray, eig_tol: float = EIG_TOL,
                   compiled: bool | None = None) -> CriticalPoints:  # fmt: skip
    """Hessian eigenvalues, class, sharpness and index at points ``x`` (K, D)."""
    x = np.asarray(x, dtype=np.float64).reshape(-1, lm.dim)
    k = x.shape[0]
    if isinstance(lm, ModelMath) and k > MODEL_MAX_POINTS:
        return _not_computed(analyze_points(lm, x[:MODEL_MAX_POINTS], eig_tol), x, lm)
    if isinstance(lm, ModelMath) and not lm.dense:
        return _analyze_extremes(lm, x, eig_tol)
    if k == 0:
        z = np.zeros(0)
        return CriticalPoints(x, z, z, np.zeros((0, lm.dim)), [], z, z, z)
    h = lm.hess(x, compiled=compiled)
    ok = np.all(np.isfinite(h.reshape(k, -1)), axis=1)
    lam = np.full((k, lm.dim), np.nan)
    vec = np.full((k, lm.dim, lm.dim), np.nan)
    if np.any(ok):
        lam[ok], vec[ok] = np.linalg.eigh(h[ok])
    # gradient norm and loss at every point (plain Python, one vectorised call each): never NaN for a
    # count of points, only where the landscape itself is not finite
    gn = np.linalg.norm(lm.grad(x), axis=1)
    losses = lm.value(x)
    classes = [classify(row, eig_tol) for row in lam]
    with np.errstate(invalid="ignore"):
        tol = eig_tol * np.maximum(1.0, np.nanmax(np.abs(lam), axis=1, initial=0.0))
        index = np.sum(lam < -tol[:, None], axis=1).astype(np.float64)
    index = np.where(ok, index, np.nan)
    return CriticalPoints(
        positions=x, grad_norm=gn, losses=losses, eigenvalues=lam, classes=classes,
        sharpness=lam[:, -1].copy(), trace=np.sum(lam, axis=1), index=index, eigenvectors=vec,
    )  # fmt: skip


def _not_computed(head: CriticalPoints, x: np.ndarray, lm: ModelMath) -> CriticalPoints:
    """``head`` (the first points) padded to all points ``x``: NaN Hessian quantities and "not computed"
    for the rest (their gradient norm and loss are computed)."""
    k, m = x.shape[0], head.positions.shape[0]

    def pad(a: np.ndarray) -> np.ndarray:
        out = np.full((k, *a.shape[1:]), np.nan)
        out[:m] = a
        return out

    # the gradient and the loss are cheap (one batched backward pass): computed at every point
    return CriticalPoints(
        positions=x, grad_norm=np.linalg.norm(lm.grad(x), axis=1), losses=lm.value(x),
        eigenvalues=pad(head.eigenvalues),
        classes=[*head.classes, *["not computed"] * (k - m)], sharpness=pad(head.sharpness), trace=pad(head.trace),
        index=pad(head.index), eigenvectors=None if head.eigenvectors is None else pad(head.eigenvectors),
    )  # fmt: skip


def _analyze_extremes(lm: ModelMath, x: np.ndarray, eig_tol: float) -> CriticalPoints:
    """:func:`analyze_points` of a large model: Lanczos extremes and a Hutchinson trace per point."""
    k = x.shape[0]
    kk = max(1, min(LANCZOS_K, (lm.dim - 1) // 2))
    lam = np.full((k, 2 * kk), np.nan)
    trace = np.full(k, np.nan)
    for j in range(k):
        if np.all(np.isfinite(x[j])):
            lam[j], trace[j] = lm.extremes(x[j], kk, seed=j)
    classes = [classify(row, eig_tol, extremes=kk) for row in lam]
    with np.errstate(invalid="ignore"):
        tol = eig_tol * np.maximum(1.0, np.nanmax(np.abs(lam), axis=1, initial=0.0))
        index = np.where(np.isfinite(lam[:, 0]), np.sum(lam[:, :kk] < -tol[:, None], axis=1), np.nan)
    gn = np.linalg.norm(lm.grad(x), axis=1) if k else np.zeros(0)
    return CriticalPoints(
        positions=x, grad_norm=gn, losses=lm.value(x) if k else np.zeros(0), eigenvalues=lam, classes=classes,
        sharpness=lam[:, -1].copy(), trace=trace, index=index,
    )  # fmt: skip


def census(lm: LandscapeMath, points: np.ndarray, losses: np.ndarray, max_points: int = 2000,
           eig_tol: float = EIG_TOL) -> dict[str, np.ndarray]:  # fmt: skip
    """Critical-point census: index (number of negative eigenvalues) and its fraction vs loss.

    ``points`` (n, D) end points (and saddles found); at most ``max_points``,
    taken evenly strided. Returns ``{"loss", "index", "index_fraction", "sharpness",
    "row"}`` (row: which input point each entry came from).
    """
    points = np.asarray(points, dtype=np.float64)
    n = points.shape[0]
    if isinstance(lm, ModelMath):
        max_points = min(max_points, MODEL_MAX_POINTS)
    rows = np.arange(n) if n <= max_points else np.linspace(0, n - 1, max_points).astype(np.int64)
    cp = analyze_points(lm, points[rows], eig_tol)
    return {
        "loss": np.asarray(losses, dtype=np.float64)[rows], "index": cp.index,
        "index_fraction": cp.index_fraction, "sharpness": cp.sharpness, "row": rows,
    }  # fmt: skip
