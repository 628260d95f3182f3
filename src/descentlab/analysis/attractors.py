"""Attractors: clustering of end points, per-particle labels, naming, manifolds.

End points of converged particles are clustered at a tolerance relative to the
landscape's scale (``tol = rel_tol * scale``): points closer than ``tol`` are
linked (``scipy.spatial.cKDTree.query_pairs``) and the connected components of
that graph (``scipy.sparse.csgraph.connected_components``) are the attractors.
For speed the end points are first snapped to a grid of ``tol / 4`` cells and
only the occupied cells are clustered (a million end points on four minima are
four cells), then the labels are mapped back to the particles.

Which end points are clustered (a particle "settled near" an attractor): a
particle that converged (``grad_tol`` met), and one that ran all its steps but
has stopped moving - its recorded positions over the last :data:`SETTLE_WINDOW`
of the run stay within ``move_tol`` of its end point (known when the run
recorded at least one position inside that window besides the start). A
cluster without a converged member is kept when Newton's method from its
lowest-loss member reaches a critical point within ``tol`` (the ``accept``
callback of :func:`find_attractors`; for a model, which has no cheap Hessian,
when its members have stopped moving), so a ``grad_tol = 0`` run, an Adam run that hovers at
a minimum, or a minibatch run's cloud around a minimum all get their basins.
A particle that still moves, or whose cluster is neither, is "not settled"
(unless its end point lies within ``tol`` of an attractor: then it is counted
there).

Labels: ``k >= 0`` attractor ``k``; the other outcomes keep their own codes
(never dropped): :data:`NOT_SETTLED` (-1, ran all its steps and still moves, or
ended away from any attractor), :data:`DIVERGED` (-2: a non-finite position,
loss or gradient; with the default infinite bound this is also what a
blow-up to +-Inf is), :data:`LEFT_BOUND` (-3: left ``stop.bound``, a finite
bound the user set).

Continuous sets of minima (the product loss's ``w1 w2 = y/x``) are reported as
one attractor of kind ``"manifold"`` instead of hundreds of points: a component
whose extent is much larger than ``tol`` while its loss is constant is a
manifold; when the landscape declares ``minima_manifold``, all such components
at the same loss are merged into one attractor named after the declaration,
and the declared relation is checked on the end points (``relation_residual``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from ..core.status import Status

NOT_SETTLED = -1
#: The former name of :data:`NOT_SETTLED`.
NOT_CONVERGED = NOT_SETTLED
DIVERGED = -2
LEFT_BOUND = -3
#: Label code -> name of the outcome of particles that reached no attractor.
OUTCOME_CODES = {NOT_SETTLED: "not settled", DIVERGED: "diverged", LEFT_BOUND: "left the bound"}
_STATUS_TO_LABEL = {Status.RUNNING: NOT_SETTLED, Status.DIVERGED: DIVERGED, Status.OUT_OF_BOUND: LEFT_BOUND}

#: Default clustering tolerance relative to the landscape's scale.
REL_TOL = 1e-2
#: A component wider than this many tolerances (with constant loss) is a manifold.
MANIFOLD_SPREAD = 10.0
#: The last fraction of a run's steps over which a particle must stay within ``move_tol`` to have settled.
SETTLE_WINDOW = 0.1


def recent_movement(trajectory_x: Any, record_steps: np.ndarray, final_x: np.ndarray, total_steps: int,
                    window: float = SETTLE_WINDOW, chunk: int = 1 << 16) -> np.ndarray | None:  # fmt: skip
    """(N,) largest distance (max norm) between each particle's records in the last ``window`` of the
    run and its end point ``final_x`` (N, D); None when the run recorded nothing inside that window
    but its start (e.g. ``record_every = steps``): the movement is then unknown.

    ``trajectory_x`` (N, R, D) may be an ``h5py`` dataset (read in chunks of particles). Non-finite
    records (a diverged particle) give ``inf``.
    """
    steps = np.asarray(record_steps, dtype=np.int64)
    r = steps.shape[0]
    first = int(np.searchsorted(steps, total_steps - max(1.0, window * total_steps), side="left"))
    first = min(first, r - 2)  # at least the record before the last
    if first <= 0 or r < 3:
        return None
    final_x = np.asarray(final_x, dtype=np.float64)
    n = final_x.shape[0]
    out = np.empty(n)
    for a in range(0, n, chunk):
        b = min(n, a + chunk)
        w = np.asarray(trajectory_x[a:b, first:r], dtype=np.float64)
        with np.errstate(invalid="ignore"):
            d = np.max(np.abs(w - final_x[a:b, None, :]), axis=(1, 2)) if w.size else np.zeros(b - a)
        out[a:b] = np.where(np.isfinite(d), d, np.inf)
    return out


@dataclass
class Attractors:
    """Attractors found in a run and the label of every particle.

    labels (N,) int64; positions (K, D) (for a manifold: its lowest-loss end
    point); names, kinds (``"point"`` | ``"manifold"``); counts (K,); losses (K,)
    (mean end-point loss); extents (K,) (largest coordinate range of the
    members); known (K,) name of the matched known minimum/saddle or ``""``;
    tol the clustering tolerance; manifolds: per manifold attractor a dict with
    its declaration and the relation residual.
    """

    labels: np.ndarray
    positions: np.ndarray
    names: list[str]
    kinds: list[str]
    counts: np.ndarray
    losses: np.ndarray
    extents: np.ndarray
    known: list[str]
    tol: float
    manifolds: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.names)

    def outcome_counts(self) -> dict[str, int]:
        return {name: int(np.sum(self.labels == code)) for code, name in OUTCOME_CODES.items()}


def status_labels(status: np.ndarray) -> np.ndarray:
    """Labels for the particles that reached no attractor (0 for converged ones)."""
    status = np.asarray(status)
    labels = np.zeros(status.shape[0], dtype=np.int64)
    for s, code in _STATUS_TO_LABEL.items():
        labels[status == s] = code
    return labels


def cluster_points(points: np.ndarray, tol: float) -> tuple[np.ndarray, int]:
    """Connected components of the ``tol``-neighbour graph of ``points`` (n, D).

    Returns (component of each point (n,) int64, number of components). Points
    are snapped to a ``tol / 4`` grid first and only occupied cells clustered;
    two points in the same cell are always in the same component.
    """
    points = np.asarray(points, dtype=np.float64)
    n = points.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64), 0
    cell = tol / 4.0
    keys = np.floor(points / cell).astype(np.int64)
    uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    # representative of a cell: the mean of its points
    m = uniq.shape[0]
    counts = np.bincount(inverse, minlength=m).astype(np.float64)
    reps = np.empty((m, points.shape[1]))
    for d in range(points.shape[1]):
        reps[:, d] = np.bincount(inverse, weights=points[:, d], minlength=m) / counts
    if m == 1:
        return np.zeros(n, dtype=np.int64), 1
    # cells whose mean points lie within tol of each other are linked
    pairs = cKDTree(reps).query_pairs(r=tol, output_type="ndarray")
    graph = coo_matrix((np.ones(len(pairs), dtype=np.int8), (pairs[:, 0], pairs[:, 1])), shape=(m, m))
    ncomp, comp = connected_components(graph, directed=False)
    # order components by size (largest first), ties by first cell, so labels are stable
    sizes = np.bincount(comp, weights=counts, minlength=ncomp)
    first = np.full(ncomp, m)
    np.minimum.at(first, comp, np.arange(m))
    order = np.lexsort((first, -sizes))
    rank = np.empty(ncomp, dtype=np.int64)
    rank[order] = np.arange(ncomp)
    return rank[comp][inverse], int(ncomp)


def _fmt_point(x: np.ndarray) -> str:
    if x.shape[0] <= 3:
        return "(" + ", ".join(f"{v:.3f}" for v in x) + ")"
    return f"(D={x.shape[0]}, |x|={np.linalg.norm(x):.3f})"


_RELATION_TOKENS = re.compile(r"^[\sA-Za-z0-9_.*/+\-()=^]+$")


def relation_residual(relation: str, points: np.ndarray, params: Mapping[str, Any]) -> float | None:
    """max |lhs - rhs| of a declared relation ``"lhs = rhs"`` over ``points`` (n, D).

    Coordinates are ``w1..wD`` (also ``x0..`` is not used: ``x``/``y`` are often
    parameter names); parameters by name. Returns None when the relation cannot
    be evaluated (only arithmetic on those names is allowed).
    """
    res = relation_residuals(relation, points, params)
    return float(np.max(res)) if res is not None and res.size else None


def relation_residuals(relation: str, points: np.ndarray, params: Mapping[str, Any]) -> np.ndarray | None:
    """(n,) |lhs - rhs| of a declared relation at each of ``points`` (n, D) (see :func:`relation_residual`)."""
    if "=" not in relation or not _RELATION_TOKENS.match(relation):
        return None
    lhs, _, rhs = relation.partition("=")
    ns: dict[str, Any] = {f"w{k + 1}": points[:, k] for k in range(points.shape[1])}
    ns.update({k: float(v) for k, v in params.items() if isinstance(v, int | float)})
    try:
        left = eval(lhs.replace("^", "**"), {"__builtins__": {}}, ns)
        right = eval(rhs.replace("^", "**"), {"__builtins__": {}}, ns)
    except Exception:
        return None
    res = np.abs(np.asarray(left, dtype=np.float64) - np.asarray(right, dtype=np.float64))
    return np.broadcast_to(res, (points.shape[0],)).copy()


def find_attractors(
    final_x: np.ndarray,
    final_loss: np.ndarray,
    status: np.ndarray,
    *,
    scale: float = 1.0,
    rel_tol: float = REL_TOL,
    known: list[tuple[str, np.ndarray]] | None = None,
    manifold: str | None = None,
    params: Mapping[str, Any] | None = None,
    include_running: bool = False,
    loss_tol: float | None = None,
    movement: np.ndarray | None = None,
    move_tol: float | None = None,
    accept: Callable[[np.ndarray], np.ndarray | None] | None = None,
) -> Attractors:
    """Cluster the end points of settled particles into attractors and label every particle
    (the rule is in the module docstring).

    ``final_x`` (N, D), ``final_loss`` (N,), ``status`` (N,) as in a run file.
    ``known``: named points (minima first, then saddles) an attractor is named
    after when it lies within ``tol``. ``manifold``: the landscape's declared
    ``minima_manifold``. ``include_running``: count every particle that ran all
    its steps as settled, moving or not (the former behaviour for noisy runs).
    ``loss_tol``: loss spread allowed in one manifold (default ``1e-6 + 1e-3 |loss|``).
    ``movement`` (N,): :func:`recent_movement` (None: unknown); a running particle
    moving more than ``move_tol`` (default ``tol``) is not settled. ``accept``:
    given the lowest-loss member (m, D) of each cluster without a converged
    member, says (m,) bool which lie at a critical point, or None when it cannot
    tell (a model); then such a cluster is kept when the movement is known (its
    members have stopped), and not kept otherwise. The critical-point check also
    rejects period-2 cycles that a record interval can hide (a particle that
    jumps between two points looks still at every even record).
    """
    final_x = np.asarray(final_x)
    dim = final_x.shape[1]
    tol = float(rel_tol) * float(scale)
    mtol = tol if move_tol is None else float(move_tol)
    status = np.asarray(status)
    labels = status_labels(status)
    finite = np.all(np.isfinite(final_x), axis=1)
    running = (status == Status.RUNNING) & finite
    cand = ((status == Status.CONVERGED) & finite) | running
    still = np.zeros(final_x.shape[0], dtype=bool)
    if movement is not None and not include_running:
        still = running & ~(np.asarray(movement) <= mtol)
        cand &= ~still
    idx = np.flatnonzero(cand)
    comp, k = cluster_points(final_x[idx].astype(np.float64), tol)
    if k and not include_running:
        conv = np.bincount(comp, weights=(status[idx] == Status.CONVERGED).astype(np.float64), minlength=k) > 0
        ok = conv.copy()
        verdict = None
        if accept is not None and not np.all(conv):
            loss_c = np.asarray(final_loss, dtype=np.float64)[idx]
            loss_c = np.where(np.isfinite(loss_c), loss_c, np.inf)
            best = np.full(k, -1, dtype=np.int64)
            order = np.lexsort((loss_c, comp))  # by component, then loss
            firsts = np.flatnonzero(np.r_[True, comp[order][1:] != comp[order][:-1]])
            best[comp[order][firsts]] = order[firsts]
            ask = np.flatnonzero(~conv)
            verdict = accept(final_x[idx[best[ask]]].astype(np.float64))
            if verdict is not None:
                ok[ask] = np.asarray(verdict, dtype=bool)
        if verdict is None and movement is not None:
            ok[:] = True  # the moving ones were left out: every remaining member has stopped
        idx = idx[ok[comp]]
    pts = final_x[idx].astype(np.float64)
    loss = np.asarray(final_loss, dtype=np.float64)[idx]
    comp, k = cluster_points(pts, tol)

    counts = np.bincount(comp, minlength=k).astype(np.int64)
    mean_loss = np.bincount(comp, weights=loss, minlength=k) / np.maximum(counts, 1)
    lo = np.full((k, dim), np.inf)
    hi = np.full((k, dim), -np.inf)
    for d in range(dim):
        np.minimum.at(lo[:, d], comp, pts[:, d])
        np.maximum.at(hi[:, d], comp, pts[:, d])
    extent = np.max(hi - lo, axis=1) if k else np.zeros(0)
    lmin = np.full(k, np.inf)
    lmax = np.full(k, -np.inf)
    np.minimum.at(lmin, comp, loss)
    np.maximum.at(lmax, comp, loss)
    ltol = (lambda v: 1e-6 + 1e-3 * np.abs(v)) if loss_tol is None else (lambda v: float(loss_tol))
    flat = (lmax - lmin) <= ltol(mean_loss)
    is_manifold = (extent > MANIFOLD_SPREAD * tol) & flat

    # merge manifold components at the same loss into one when the landscape declares a manifold
    group = np.arange(k)
    if manifold is not None and k:
        # components whose lowest-loss member satisfies the declared relation (within tol) lie on the
        # manifold too, however sparse the starting points (a coarse grid gives isolated end points)
        order = np.lexsort((loss, comp))
        firsts = order[np.flatnonzero(np.r_[True, comp[order][1:] != comp[order][:-1]])]
        res = relation_residuals(manifold, pts[firsts], params or {})
        if res is not None:
            is_manifold[comp[firsts]] |= res <= tol
    if manifold is not None and np.any(is_manifold):
        base = int(np.flatnonzero(is_manifold)[np.argmin(mean_loss[is_manifold])])
        same = np.abs(mean_loss - mean_loss[base]) <= ltol(mean_loss[base])
        # isolated points on the declared manifold (same loss, small extent) join it as well
        group[same] = base
        is_manifold[same] = True
    uniq_groups, gidx = np.unique(group, return_inverse=True)
    comp = gidx[comp]
    k2 = uniq_groups.shape[0]
    counts = np.bincount(comp, minlength=k2).astype(np.int64)
    # order attractors by count (largest first) for stable, readable output
    order = np.argsort(-counts, kind="stable")
    rank = np.empty(k2, dtype=np.int64)
    rank[order] = np.arange(k2)
    comp = rank[comp]
    counts = counts[order]
    kinds_g = np.array([bool(is_manifold[g]) for g in uniq_groups], dtype=bool)[order]
    labels[idx] = comp

    positions = np.zeros((k2, dim))
    losses = np.zeros(k2)
    extents = np.zeros(k2)
    for d in range(dim):
        positions[:, d] = np.bincount(comp, weights=pts[:, d], minlength=k2) / np.maximum(counts, 1)
    losses[:] = np.bincount(comp, weights=loss, minlength=k2) / np.maximum(counts, 1)
    names: list[str] = []
    kinds: list[str] = []
    matched: list[str] = []
    manifolds: dict[int, dict[str, Any]] = {}
    known = list(known or [])
    used: set[str] = set()
    lo = np.full((k2, dim), np.inf)
    hi = np.full((k2, dim), -np.inf)
    for d in range(dim):
        np.minimum.at(lo[:, d], comp, pts[:, d])
        np.maximum.at(hi[:, d], comp, pts[:, d])
    if k2:
        extents[:] = np.max(hi - lo, axis=1)
    # running particles left out (moving, or in a cluster that was not kept) whose end point lies
    # within tol of a point attractor count there: they settled near it
    rest = np.flatnonzero(running & (labels == NOT_SETTLED))
    point = np.flatnonzero(~kinds_g)
    if rest.size and point.size:
        dist, j = cKDTree(positions[point]).query(final_x[rest].astype(np.float64), distance_upper_bound=tol)
        near = np.isfinite(dist)
        labels[rest[near]] = point[j[near]]
        counts = np.bincount(labels[labels >= 0], minlength=k2).astype(np.int64)
    for a in range(k2):
        if kinds_g[a]:
            kinds.append("manifold")
            sel = comp == a
            members = pts[sel]
            positions[a] = members[np.argmin(loss[sel])]
            info: dict[str, Any] = {"declared": manifold, "count": int(counts[a]), "extent": extents[a]}
            if manifold is not None:
                info["relation_residual"] = relation_residual(manifold, members, params or {})
            manifolds[a] = info
            names.append(f"manifold {manifold}" if manifold else f"manifold at loss {losses[a]:.4g}")
            matched.append(manifold or "")
            continue
        kinds.append("point")
        name = ""
        if known:
            dists = [float(np.linalg.norm(positions[a] - np.asarray(p, dtype=np.float64))) for _, p in known]
            j = int(np.argmin(dists))
            if dists[j] <= tol and known[j][0] not in used:
                name = known[j][0]
                used.add(name)
        matched.append(name)
        names.append(name or f"A{a} {_fmt_point(positions[a])}")
    return Attractors(
        labels=labels, positions=positions, names=names, kinds=kinds, counts=counts, losses=losses,
        extents=extents, known=matched, tol=tol, manifolds=manifolds,
    )  # fmt: skip
