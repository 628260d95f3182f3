"""Views for D > 2 and for models (registered analyses, on by default when D > 2):

- ``pca``: trajectories projected on their top two principal components (of the recorded
  positions of up to :data:`PCA_PARTICLES` particles), with the explained variance.
- ``plane``: the loss on a 2-D plane through the most populated attractor (else the best
  end point), spanned by two random directions; for models the directions are
  filter-normalised (Li et al. 2018, "Visualizing the Loss Landscape of Neural Nets",
  https://arxiv.org/abs/1712.09913: each row of a weight matrix of the direction is scaled
  to the norm of the same row of the weights; biases and batch-norm parameters get 0), for
  other landscapes each direction has the norm of the landscape's scale. :func:`loss_plane`
  also takes the plane through three points (e.g. the start and two end points).
- ``sharpness_path``: the largest Hessian eigenvalue at every record of up to
  :data:`SHARPNESS_PARTICLES` particles (the edge-of-stability picture: compare with
  ``2 / lr`` for gradient descent, Cohen et al. 2021, https://arxiv.org/abs/2103.00065).

A basin map on a 2-D slice of a higher-dimensional landscape needs new runs from a grid on
the slice: :func:`slice_spec` writes that run spec (init scheme ``points``), and
:func:`basin_slice` runs it and labels each grid point by the attractor its particle settled at.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from . import steps as _steps  # noqa: F401  (the core analyses register first: the views read their results)
from .critical import LandscapeMath, ModelMath
from .io import put
from .registry import Analysis, Context, register_analysis

#: Particles whose trajectories enter the PCA at most (evenly strided).
PCA_PARTICLES = 200
#: Grid points per side of the loss plane.
PLANE_RESOLUTION = 41
#: Particles whose sharpness is followed along the trajectory, and records at most.
SHARPNESS_PARTICLES = 8
SHARPNESS_RECORDS = 60


def _wanted(ctx: Context) -> bool:
    v = ctx.options.views
    return bool(v) if v is not None else ctx.dim > 2


def _sample(n: int, k: int) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, min(n, k)).astype(np.int64)) if n else np.zeros(0, dtype=np.int64)


def _read(traj: Any, rows: np.ndarray) -> np.ndarray:
    return np.asarray(traj[rows.tolist()] if not isinstance(traj, np.ndarray) else traj[rows], dtype=np.float64)


# ----------------------------------------------------------------------------- PCA of trajectories


def trajectory_pca(trajectories: np.ndarray, k: int = 2) -> dict[str, np.ndarray]:
    """Principal components of the recorded positions ``trajectories`` (S, R, D).

    Returns ``mean`` (D,), ``components`` (k, D) (rows orthonormal), ``explained`` (k,) the
    fraction of the variance each explains, ``projection`` (S, R, k). Non-finite records are
    left out of the fit and projected as NaN.
    """
    t = np.asarray(trajectories, dtype=np.float64)
    s, r, d = t.shape
    pts = t.reshape(-1, d)
    ok = np.all(np.isfinite(pts), axis=1)
    k = max(1, min(k, d))
    if not np.any(ok):
        return {"mean": np.full(d, np.nan), "components": np.full((k, d), np.nan), "explained": np.full(k, np.nan),
                "projection": np.full((s, r, k), np.nan)}  # fmt: skip
    mean = pts[ok].mean(axis=0)
    _, sv, vt = np.linalg.svd(pts[ok] - mean, full_matrices=False)
    total = float(np.sum(sv**2))
    comp = vt[:k]
    if comp.shape[0] < k:
        comp = np.vstack([comp, np.zeros((k - comp.shape[0], d))])
        sv = np.concatenate([sv, np.zeros(k)])
    proj = np.full((pts.shape[0], k), np.nan)
    proj[ok] = (pts[ok] - mean) @ comp.T
    return {"mean": mean, "components": comp, "explained": (sv[:k] ** 2) / total if total > 0 else np.zeros(k),
            "projection": proj.reshape(s, r, k)}  # fmt: skip


def _pca(ctx: Context) -> dict[str, Any] | None:
    if not _wanted(ctx):
        return None
    rows = _sample(ctx.n, PCA_PARTICLES)
    out = trajectory_pca(_read(ctx.data.trajectory_x, rows))
    out["particle"] = rows
    out["step"] = np.asarray(ctx.data.record_steps, dtype=np.int64)
    att = ctx.results.get("attractors")
    if att is not None and att.n:
        out["attractor_projection"] = (att.positions[:20] - out["mean"]) @ out["components"].T
    return {"pca": out}


def _pca_write(g: Any, r: dict[str, Any]) -> None:
    p = r.get("pca")
    if p is None:
        return
    h = g.require_group("pca")
    put(h, "mean", p["mean"], ("dim",))
    put(h, "components", p["components"], ("pc", "dim"))
    put(h, "explained", p["explained"], ("pc",))
    put(h, "projection", p["projection"], ("sample", "record", "pc"))
    put(h, "particle", p["particle"], ("sample",))
    put(h, "step", p["step"], ("record",))


def _pca_figures(r: dict[str, Any], data: Any, lm: LandscapeMath, out: Path, stem: str, title: str) -> dict[str, Path]:
    p = r.get("pca")
    if p is None:
        return {}
    from . import plots

    fig = plots.pca_trajectories(p["projection"], p["explained"], attractors=p.get("attractor_projection"),
                                 title=title + "\ntrajectories on their top two principal components")  # fmt: skip
    return {"pca": plots.save(fig, out / f"{stem}_pca.png")}


register_analysis(Analysis("pca", _pca, lambda ctx: {"pca_explained": (
    None if ctx.results.get("pca") is None else ctx.results["pca"]["explained"].tolist())}, _pca_write, _pca_figures))


# ----------------------------------------------------------------------------- loss plane


def filter_normalized_direction(model: Any, weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random direction (D,) for ``weights`` (D,) of a model, filter-normalised (Li et al. 2018):
    each row (filter / output unit) of every weight matrix is rescaled to the norm of the same row
    of the weights; biases and batch-normalisation parameters are 0."""
    d = rng.standard_normal(weights.shape[0])
    out = np.zeros_like(d)
    for e in model.layout:
        if str(e.kind) != "weight":
            continue
        w = weights[e.slice].reshape(e.shape)
        v = d[e.slice].reshape(e.shape)
        wn = np.linalg.norm(w.reshape(w.shape[0], -1), axis=1, keepdims=True) if w.ndim > 1 else np.abs(w)[:, None]
        vn = np.linalg.norm(v.reshape(v.shape[0], -1), axis=1, keepdims=True) if v.ndim > 1 else np.abs(v)[:, None]
        scaled = v.reshape(v.shape[0], -1) * (wn / np.where(vn > 0, vn, 1.0))
        out[e.slice] = scaled.ravel()
    return out


def plane_directions(lm: LandscapeMath, center: np.ndarray, seed: int = 0) -> tuple[np.ndarray, str]:
    """Two directions (2, D) for a loss plane through ``center`` and how they were made."""
    rng = np.random.default_rng(seed)
    if isinstance(lm, ModelMath):
        dirs = np.stack([filter_normalized_direction(lm.fs.model, center, rng) for _ in range(2)])
        if np.all(np.linalg.norm(dirs, axis=1) > 0):
            return dirs, "random, filter-normalised (Li et al. 2018)"
    q, _ = np.linalg.qr(rng.standard_normal((lm.dim, 2)))
    return q.T * float(lm.landscape.scale), f"random orthogonal, norm {lm.landscape.scale:g} (landscape scale)"


def loss_plane(lm: LandscapeMath, center: np.ndarray, directions: np.ndarray, span: float = 1.0,
               resolution: int = PLANE_RESOLUTION) -> dict[str, np.ndarray]:  # fmt: skip
    """Loss on the plane ``center + a d0 + b d1`` for a, b in [-span, span]: returns ``alpha`` (G,),
    ``beta`` (G,), ``loss`` (G, G) (axis 0 alpha), ``center`` (D,), ``directions`` (2, D)."""
    a = np.linspace(-span, span, resolution)
    ga, gb = np.meshgrid(a, a, indexing="ij")
    pts = center[None, :] + ga.reshape(-1, 1) * directions[0] + gb.reshape(-1, 1) * directions[1]
    return {"alpha": a, "beta": a.copy(), "loss": lm.value(pts).reshape(ga.shape), "center": np.asarray(center),
            "directions": np.asarray(directions)}  # fmt: skip


def plane_through(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(center, directions (2, D)) of the plane through three points: center ``p0``, ``d0 = p1 - p0``,
    ``d1`` the part of ``p2 - p0`` orthogonal to ``d0`` rescaled to the length of ``d0``."""
    d0 = np.asarray(p1, dtype=float) - p0
    d1 = np.asarray(p2, dtype=float) - p0
    n0 = float(d0 @ d0)
    if n0 > 0:
        d1 = d1 - (d1 @ d0) / n0 * d0
    n1 = np.linalg.norm(d1)
    if n1 > 0:
        d1 = d1 * (np.sqrt(n0) / n1)
    return np.asarray(p0, dtype=float), np.stack([d0, d1])


def _plane(ctx: Context) -> dict[str, Any] | None:
    if not _wanted(ctx):
        return None
    att = ctx.results.get("attractors")
    if att is not None and att.n:
        center = att.positions[0]
    else:
        fin = np.isfinite(ctx.final_loss) & np.all(np.isfinite(ctx.final_x), axis=1)
        if not np.any(fin):
            return None
        center = ctx.final_x[np.flatnonzero(fin)[np.argmin(ctx.final_loss[fin])]]
    center = np.asarray(center, dtype=np.float64)
    dirs, kind = plane_directions(ctx.lm, center)
    res = PLANE_RESOLUTION if not isinstance(ctx.lm, ModelMath) else 25
    out = loss_plane(ctx.lm, center, dirs, resolution=res)
    out["kind"] = kind
    # where the end points of a sample lie on the plane (their projection), for the figure
    rows = _sample(ctx.n, 200)
    x = ctx.final_x[rows].astype(np.float64) - center
    gram = dirs @ dirs.T
    with np.errstate(all="ignore"):
        out["end_points"] = np.linalg.solve(gram, dirs @ x.T).T
    return {"plane": out}


def _plane_write(g: Any, r: dict[str, Any]) -> None:
    p = r.get("plane")
    if p is None:
        return
    h = g.require_group("plane")
    h.attrs["directions_kind"] = p["kind"]
    put(h, "alpha", p["alpha"], ("alpha",))
    put(h, "beta", p["beta"], ("beta",))
    put(h, "loss", p["loss"], ("alpha", "beta"))
    put(h, "center", p["center"], ("dim",))
    put(h, "directions", p["directions"], ("direction", "dim"))


def _plane_figures(r: dict[str, Any], data: Any, lm: LandscapeMath, out: Path, stem: str,
                   title: str) -> dict[str, Path]:  # fmt: skip
    p = r.get("plane")
    if p is None:
        return {}
    from . import plots

    sub = f"loss on a plane through the main attractor; directions {p['kind']}"
    fig = plots.loss_plane(p["alpha"], p["beta"], p["loss"], end_points=p.get("end_points"), title=f"{title}\n{sub}")
    return {"plane": plots.save(fig, out / f"{stem}_plane.png")}


register_analysis(Analysis("plane", _plane, None, _plane_write, _plane_figures))


# ----------------------------------------------------------------------------- sharpness along the trajectory


def largest_eigenvalue(lm: LandscapeMath, x: np.ndarray) -> np.ndarray:
    """(n,) largest Hessian eigenvalue at each of ``x`` (n, D) (NaN where not finite): the sharpness
    of :func:`sharpness_and_trace`."""
    return sharpness_and_trace(lm, x)[0]


def _stability_limit(spec: Mapping[str, Any]) -> float | None:
    """2 / lr for plain gradient descent, 2 (1 + m) / lr with heavy-ball momentum m (None otherwise)."""
    opt = spec.get("optimizer", {})
    if not isinstance(opt, Mapping) or opt.get("name") != "sgd" or not isinstance(opt.get("lr"), int | float):
        return None
    if opt.get("nesterov"):
        return None
    m = float(opt.get("momentum", 0.0) or 0.0)
    return 2.0 * (1.0 + m) / float(opt["lr"]) if opt["lr"] > 0 else None


def _sharpness(ctx: Context) -> dict[str, Any] | None:
    if not _wanted(ctx):
        return None
    rec = np.asarray(ctx.data.record_steps, dtype=np.int64)
    cols = _sample(rec.shape[0], SHARPNESS_RECORDS if not isinstance(ctx.lm, ModelMath) else SHARPNESS_RECORDS // 3)
    k = SHARPNESS_PARTICLES if not isinstance(ctx.lm, ModelMath) else min(SHARPNESS_PARTICLES, 4)
    rows = _sample(ctx.n, k)
    traj = _read(ctx.data.trajectory_x, rows)[:, cols]
    s, r, d = traj.shape
    sharp, trace = (a.reshape(s, r) for a in sharpness_and_trace(ctx.lm, traj.reshape(-1, d)))
    return {"sharpness_path": {"particle": rows, "step": rec[cols], "sharpness": sharp, "trace": trace,
                               "limit": _stability_limit(ctx.spec)}}  # fmt: skip


def _sharpness_write(g: Any, r: dict[str, Any]) -> None:
    p = r.get("sharpness_path")
    if p is None:
        return
    h = g.require_group("sharpness_path")
    if p["limit"] is not None:
        h.attrs["stability_limit"] = float(p["limit"])
    put(h, "particle", p["particle"], ("sample",))
    put(h, "step", p["step"], ("record",))
    put(h, "sharpness", p["sharpness"], ("sample", "record"))
    put(h, "trace", p["trace"], ("sample", "record"))


def _sharpness_figures(r: dict[str, Any], data: Any, lm: LandscapeMath, out: Path, stem: str,
                       title: str) -> dict[str, Path]:  # fmt: skip
    p = r.get("sharpness_path")
    if p is None:
        return {}
    from . import plots

    sub = f"largest Hessian eigenvalue along {len(p['particle'])} trajectories"
    fig = plots.sharpness_path(p["step"], p["sharpness"], limit=p["limit"], title=f"{title}\n{sub}")
    return {"sharpness_path": plots.save(fig, out / f"{stem}_sharpness_path.png")}


register_analysis(Analysis("sharpness_path", _sharpness, None, _sharpness_write, _sharpness_figures))


# ----------------------------------------------------------------------------- basin map on a 2-D slice


def slice_points(center: np.ndarray, directions: np.ndarray, span: float = 1.0, resolution: int = 64) -> np.ndarray:
    """Starting points (G*G, D) of a grid on the plane ``center + a d0 + b d1``, a, b in [-span, span]
    (C order: axis 0 is a)."""
    a = np.linspace(-span, span, resolution)
    ga, gb = np.meshgrid(a, a, indexing="ij")
    return center[None, :] + ga.reshape(-1, 1) * directions[0] + gb.reshape(-1, 1) * directions[1]


def slice_spec(spec: Mapping[str, Any], points_file: str | Path) -> dict[str, Any]:
    """The run spec of ``spec`` with its particles started from the points in ``points_file`` (.npy,
    (N, D)): the same landscape, optimizer, steps and stop rule."""
    out = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in spec.items()}
    out["init"] = {"scheme": "points", "file": str(points_file)}
    out["run"] = {k: v for k, v in dict(spec.get("run", {})).items() if k != "particles"}
    return out


def basin_slice(spec: Mapping[str, Any], center: np.ndarray, directions: np.ndarray, workdir: str | Path,
                span: float = 1.0, resolution: int = 64, **analysis: Any) -> dict[str, Any]:  # fmt: skip
    """Basin map on a 2-D slice of a D-dimensional landscape (as Attractors.jl's basins on a grid of a
    plane): runs ``spec`` in memory from a ``resolution`` x ``resolution`` grid on the plane through
    ``center`` along ``directions`` (2, D) and analyses it. Returns ``{"grid" (G, G) labels, "alpha",
    "beta", "names", "analysis"}``; compiles the run's kernels like any run."""
    from ..engine.run import simulate
    from .pipeline import analyze_result

    pts = slice_points(np.asarray(center, dtype=float), np.asarray(directions, dtype=float), span, resolution)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    f = workdir / "slice_points.npy"
    np.save(f, pts)
    res = simulate(slice_spec(spec, f), progress=False)
    ar = analyze_result(res, **analysis)
    a = np.linspace(-span, span, resolution)
    return {"grid": ar.labels.reshape(resolution, resolution), "alpha": a, "beta": a.copy(),
            "names": list(ar.attractors.names), "analysis": ar}  # fmt: skip


# ----------------------------------------------------------------------------- sharpness at every end point

#: Hessian entries (particles x D x D) held at once when the end points' Hessians are dense.
END_HESSIAN_BLOCK = 1 << 22
#: End points of a model whose sharpness and trace are computed (the first ones; the others NaN).
END_MODEL_MAX_POINTS = 256


def sharpness_and_trace(lm: LandscapeMath, x: np.ndarray, max_points: int | None = None) -> tuple[np.ndarray, ...]:
    """(sharpness (n,), trace (n,)) - the largest Hessian eigenvalue and the Hessian's trace - at each
    of ``x`` (n, D); NaN where a coordinate or the Hessian is not finite. Dense Hessians (exact, in
    blocks) up to :data:`~descentlab.analysis.critical.DENSE_HESSIAN_MAX` parameters; above, Lanczos
    for the eigenvalue and a Hutchinson estimate of the trace. ``max_points``: only the first ones
    (the others NaN)."""
    x = np.asarray(x, dtype=np.float64).reshape(-1, lm.dim)
    n, d = x.shape
    sharp, trace = np.full(n, np.nan), np.full(n, np.nan)
    ok = np.flatnonzero(np.all(np.isfinite(x), axis=1))[: max_points if max_points is not None else n]
    if isinstance(lm, ModelMath) and not lm.dense:
        for j in ok:
            lam, tr = lm.extremes(x[j], 1, seed=int(j))
            sharp[j], trace[j] = lam[-1], tr
        return sharp, trace
    step = max(1, END_HESSIAN_BLOCK // max(1, d * d))
    for a in range(0, ok.size, step):
        idx = ok[a : a + step]
        h = lm.hess(x[idx], compiled=None)
        good = np.all(np.isfinite(h.reshape(idx.size, -1)), axis=1)
        if np.any(good):
            sharp[idx[good]] = np.linalg.eigvalsh(h[good])[:, -1]
            trace[idx[good]] = np.trace(h[good], axis1=1, axis2=2)
    return sharp, trace


def _end_points(ctx: Context) -> dict[str, Any]:
    cap = END_MODEL_MAX_POINTS if isinstance(ctx.lm, ModelMath) else None  # a model's Hessians are costly
    sharp, trace = sharpness_and_trace(ctx.lm, ctx.final_x, cap)
    skipped = int(np.sum(np.all(np.isfinite(ctx.final_x), axis=1)) - np.sum(np.isfinite(sharp)))
    return {"end_points": {"sharpness": sharp, "trace": trace, "not_computed": skipped, "cap": cap}}


def _end_points_summary(ctx: Context) -> dict[str, Any]:
    e = ctx.results["end_points"]
    s = e["sharpness"][np.isfinite(e["sharpness"])]
    out: dict[str, Any] = {"end_sharpness_quantiles": {f"q{q}": float(np.quantile(s, q / 100)) for q in (10, 50, 90)}
                           if s.size else None}  # fmt: skip
    if e["not_computed"]:
        out["end_sharpness_not_computed"] = (
            f"{e['not_computed']} end points: a model's Hessians are computed at its first {e['cap']} end points "
            "only (descentlab.analysis.views.END_MODEL_MAX_POINTS)")  # fmt: skip
    return out


def _end_points_write(g: Any, r: dict[str, Any]) -> None:
    e = r["end_points"]
    h = g.require_group("end_points")
    put(h, "sharpness", e["sharpness"], ("particle",), attrs={"note": "largest Hessian eigenvalue at the end point"})
    note = "trace of the Hessian at the end point (Hutchinson estimate above 256 parameters)"
    put(h, "trace", e["trace"], ("particle",), attrs={"note": note})


register_analysis(Analysis("end_points", _end_points, _end_points_summary, _end_points_write))
