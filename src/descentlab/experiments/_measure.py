"""Measurements the experiments need beyond the run files: sharpness, saddle escape, per-layer statistics.

Each works on plain callables or arrays, so it can be checked against a dense
NumPy reference (``tests/test_experiments.py``):

* :func:`sharpness`: the largest Hessian eigenvalue by Lanczos
  (``scipy.sparse.linalg.eigsh`` on Hessian-vector products) and the trace by
  Hutchinson's estimator (Rademacher probes);
* :func:`escape`: the first record at which a trajectory leaves a ball around a
  point, and its unit direction there;
* :func:`layer_stats` / :func:`layer_grad_norms`: per-layer activation mean and
  variance and gradient norms of a model at any parameters (not only at
  initialization), from the NumPy reference model;
* :func:`problem`: the value / gradient / Hessian-vector product of a run spec's
  landscape (analytic, or a model's full-batch training loss).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..analysis.saddle import escape  # noqa: F401  (re-exported: the experiments use it from here)


@dataclass
class Problem:
    """A spec's landscape as NumPy functions over points (n, D).

    ``hvp(x0 (D,), v (m, D)) -> (m, D)``; ``fs`` the finite-sum problem of a model run (else None).
    """

    dim: int
    value: Callable[[np.ndarray], np.ndarray]
    grad: Callable[[np.ndarray], np.ndarray]
    hvp: Callable[[np.ndarray, np.ndarray], np.ndarray]
    hess: Callable[[np.ndarray], np.ndarray]
    fs: Any = None


def problem(spec: Mapping[str, Any]) -> Problem:
    """The landscape of a run spec (dict) as a :class:`Problem`."""
    from ..analysis.critical import LandscapeMath, ModelMath
    from ..engine.spec import parse_spec

    rs = parse_spec(dict(spec))
    if rs.finite_sum is not None:
        mm = ModelMath(rs.landscape, rs.landscape_params, rs.dim, rs.finite_sum)
        return Problem(rs.dim, mm.value, mm.grad, mm.hvp, mm.hess, rs.finite_sum)
    lm = LandscapeMath(rs.landscape, rs.landscape_params, rs.dim)

    def hvp(x0: np.ndarray, v: np.ndarray) -> np.ndarray:
        h = lm.hess(np.asarray(x0, dtype=np.float64).reshape(1, -1))[0]
        return np.atleast_2d(v) @ h.T

    return Problem(rs.dim, lm.value, lm.grad, hvp, lm.hess)


def sharpness(hvp: Callable[[np.ndarray, np.ndarray], np.ndarray], x0: np.ndarray, dim: int,
              probes: int = 32, seed: int = 0) -> tuple[float, float]:  # fmt: skip
    """(largest Hessian eigenvalue, Hutchinson trace estimate) at ``x0`` (D,) from Hessian-vector products.

    Lanczos (ARPACK ``eigsh``, ``which="LA"``) for D > 2; dense for D <= 2.
    The trace is the mean of ``z.Hz`` over ``probes`` Rademacher vectors ``z``
    (exact for a diagonal Hessian; variance from the off-diagonal entries).
    """
    from scipy.sparse.linalg import LinearOperator, eigsh

    x0 = np.asarray(x0, dtype=np.float64).reshape(dim)
    rng = np.random.default_rng(seed)
    if dim <= 2:
        h = hvp(x0, np.eye(dim))
        h = 0.5 * (h + h.T)
        return float(np.linalg.eigvalsh(h)[-1]), float(np.trace(h))
    op = LinearOperator((dim, dim), matvec=lambda v: hvp(x0, v.reshape(1, dim))[0],
                        matmat=lambda m: hvp(x0, m.T).T, dtype=np.float64)  # fmt: skip
    top = eigsh(op, k=1, which="LA", v0=rng.standard_normal(dim), tol=1e-6, return_eigenvectors=False)
    z = rng.choice([-1.0, 1.0], size=(probes, dim))
    trace = float(np.mean(np.sum(z * hvp(x0, z), axis=1)))
    return float(top[0]), trace


def layer_stats(fs: Any, params: np.ndarray) -> dict[str, np.ndarray]:
    """Per-layer statistics over the training set at parameters ``params`` (n, D), each (n, L):
    ``activation_mean``, ``activation_var``, ``gradient_mean``, ``gradient_var``, ``weight_grad_norm``
    (:func:`descentlab.problems.finite_sum.layer_stats_at`)."""
    from ..problems.finite_sum import layer_stats_at

    return layer_stats_at(fs, np.atleast_2d(np.asarray(params, dtype=np.float64)))


def layer_grad_norms(fs: Any, params: np.ndarray) -> np.ndarray:
    """(n, L) Euclidean norm of the full-batch loss gradient w.r.t. each layer's weight matrix."""
    return layer_stats(fs, params)["weight_grad_norm"]


def unit_spread(fs: Any, params: np.ndarray, layer: int = 0) -> np.ndarray:
    """(n,) spread between the hidden units of weight layer ``layer``: the largest distance of a unit's
    incoming weights (and bias) from the mean unit. Zero when every unit is identical."""
    ents = [e for e in fs.model.layout if e.kind in ("weight", "bias")]
    w = [e for e in ents if e.kind == "weight"][layer]
    b = [e for e in ents if e.kind == "bias"][layer]
    p = np.atleast_2d(np.asarray(params, dtype=np.float64))
    n = p.shape[0]
    out_units = fs.model.widths[layer + 1]
    wm = p[:, w.slice].reshape(n, *w.shape)
    if wm.shape[1] != out_units:  # stored (in, out)
        wm = np.swapaxes(wm, 1, 2)
    units = np.concatenate([wm, p[:, b.slice].reshape(n, out_units, 1)], axis=2)  # (n, units, in+1)
    dev = units - units.mean(axis=1, keepdims=True)
    return np.max(np.linalg.norm(dev, axis=2), axis=1)


def clusters(points: np.ndarray, tol: float) -> np.ndarray:
    """(n,) int64 cluster labels of ``points`` (n, D): greedy leader clustering, a point joins the first
    leader within ``tol`` (Euclidean), else leads a new cluster. Labels are sorted by cluster size
    (0 = the largest). Non-finite points get -1."""
    x = np.asarray(points, dtype=np.float64)
    labels = np.full(x.shape[0], -1, dtype=np.int64)
    leaders: list[np.ndarray] = []
    for i in np.nonzero(np.all(np.isfinite(x), axis=1))[0]:
        for j, c in enumerate(leaders):
            if np.linalg.norm(x[i] - c) <= tol:
                labels[i] = j
                break
        else:
            leaders.append(x[i])
            labels[i] = len(leaders) - 1
    if leaders:
        sizes = np.bincount(labels[labels >= 0], minlength=len(leaders))
        order = np.argsort(-sizes, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        labels[labels >= 0] = rank[labels[labels >= 0]]
    return labels


def steps_to(trajectory_loss: np.ndarray, record_steps: np.ndarray, target: float) -> np.ndarray:
    """(N,) float: the first record step at which the loss is <= ``target``; ``inf`` if never (or diverged)."""
    loss = np.asarray(trajectory_loss, dtype=np.float64)
    hit = loss <= target
    first = np.argmax(hit, axis=1)
    return np.where(hit.any(axis=1), np.asarray(record_steps, dtype=np.float64)[first], np.inf)


def epochs_at(fs: Any, steps: np.ndarray) -> np.ndarray:
    """Epoch (float: completed epochs plus the fraction of the current one) at each update count ``steps``."""
    steps = np.asarray(steps, dtype=np.float64)
    per = fs.epoch_of_steps(int(np.max(steps)) + 1 if steps.size else 1)
    ends = np.concatenate([[0], np.cumsum(per)]).astype(np.float64)
    k = np.clip(np.searchsorted(ends, steps, side="right") - 1, 0, per.size - 1)
    return k + (steps - ends[k]) / per[k]


def tail_noise(trajectory_loss: np.ndarray, fraction: float = 0.25) -> np.ndarray:
    """(N,) standard deviation of each particle's recorded loss over the last ``fraction`` of its records."""
    tl = np.asarray(trajectory_loss, dtype=np.float64)
    k = max(2, round(fraction * tl.shape[1]))
    return np.std(tl[:, -k:], axis=1)


def diverged(res: Any) -> np.ndarray:
    """(N,) bool: non-finite, beyond the bound, or a final loss above twice the initial one (the loss blew up;
    a loss that wanders a little above its start on a plateau is not divergence)."""
    fl = np.asarray(res.final_loss, dtype=np.float64)
    return (np.asarray(res.status) >= 2) | ~np.isfinite(fl) | (fl > 2.0 * np.asarray(res.trajectory_loss)[:, 0])
