"""The core analyses, registered in this order: attractors (with their Hessians), known
critical points, basins, convergence, census. Each is an :class:`~.registry.Analysis`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.status import Status
from . import attractors as _att
from . import basins as _bas
from . import convergence as _conv
from . import critical as _crit
from .attractors import OUTCOME_CODES, find_attractors, recent_movement
from .io import put
from .registry import Analysis, Context, register_analysis

#: Dimension from which the critical-point census is computed by default.
CENSUS_MIN_DIM = 3
#: Refine attractor positions by Newton's method up to this many attractors and dimensions.
REFINE_MAX = (64, 10)


def total_steps(spec: dict[str, Any], record_steps: np.ndarray) -> int:
    rec = np.asarray(record_steps)
    return int(spec.get("run", {}).get("steps", rec[-1] if rec.size else 1))


def _known_points(ctx: Context) -> list[tuple[str, np.ndarray, str]]:
    land, params, dim = ctx.lm.landscape, ctx.lm.params, ctx.dim
    pts = [(nm, np.asarray(p, dtype=float), "minimum") for nm, p in land.minima(params, dim)]
    pts += [(nm, np.asarray(p, dtype=float), "saddle") for nm, p in land.saddles(params, dim)]
    pts += [(f"max {np.round(p, 3).tolist()}", np.asarray(p, dtype=float), "maximum")
            for p in land.maxima]  # fmt: skip
    return pts


# ----------------------------------------------------------------------------- attractors


def _attractors(ctx: Context) -> dict[str, Any]:
    o, lm = ctx.options, ctx.lm
    land = lm.landscape
    data = ctx.data
    movement = None
    if not o.include_running:
        movement = recent_movement(data.trajectory_x, data.record_steps, ctx.final_x,
                                   total_steps(ctx.spec, data.record_steps))  # fmt: skip
    tol = float(o.rel_tol) * float(land.scale)
    att = find_attractors(
        ctx.final_x, ctx.final_loss, ctx.status, scale=land.scale, rel_tol=o.rel_tol,
        known=[(nm, p) for nm, p, _ in _known_points(ctx)], manifold=land.minima_manifold, params=lm.params,
        include_running=o.include_running, movement=movement, move_tol=o.move_tol,
        accept=lambda starts: _crit.newton_critical(lm, starts, tol),
    )  # fmt: skip
    pos = att.positions.copy()
    if att.n <= REFINE_MAX[0] and ctx.dim <= REFINE_MAX[1]:
        for a in range(att.n):
            if att.kinds[a] == "point":  # Newton may go as far as the cluster reaches (members still arriving)
                pos[a] = _crit.refine(lm, pos[a], att.tol + float(att.extents[a]))
    crit = _crit.analyze_points(lm, pos, o.eig_tol)
    classes = list(crit.classes)
    for a in range(att.n):
        if att.kinds[a] == "manifold":
            lam = crit.eigenvalues[a]
            etol = o.eig_tol * max(1.0, float(np.nanmax(np.abs(lam))) if lam.size else 1.0)
            flat = int(np.sum(np.abs(lam) <= etol))
            if np.all(lam >= -etol):
                # a continuous set of minima: its Hessian is flat along the set
                classes[a] = f"minimum manifold ({max(flat, 1)} flat)"
            else:
                classes[a] = f"manifold: {classes[a]}"
    crit.classes = classes
    att.positions = pos
    return {"attractors": att, "critical": crit, "movement": movement}


def _attractors_summary(ctx: Context) -> dict[str, Any]:
    att, crit = ctx.results["attractors"], ctx.results["critical"]
    outcomes = ctx.results["outcomes"]
    dim = ctx.dim
    rows = []
    for a in range(att.n):
        rows.append({
            "name": att.names[a], "kind": att.kinds[a], "known": att.known[a], "count": int(att.counts[a]),
            "fraction": float(outcomes["fraction"][a]),
            "ci": [float(outcomes["ci_low"][a]), float(outcomes["ci_high"][a])],
            "position": att.positions[a].tolist() if dim <= 10 else None, "loss": float(att.losses[a]),
            "eigenvalues": crit.eigenvalues[a].tolist() if dim <= 10 else None,
            "classification": crit.classes[a], "sharpness": float(crit.sharpness[a]), "trace": float(crit.trace[a]),
            "grad_norm": float(crit.grad_norm[a]),
            **({"manifold": att.manifolds[a]} if a in att.manifolds else {}),
        })  # fmt: skip
    not_computed = sum(c == "not computed" for c in crit.classes)
    mv = ctx.results.get("movement")
    if ctx.options.include_running:
        settle = "every particle that ran all its steps counts (include_running)"
    else:
        moved = (f" and moved less than {ctx.options.move_tol or att.tol:.3g} over the last "
                 f"{_att.SETTLE_WINDOW:.0%} of the steps" if mv is not None else "; movement not recorded")  # fmt: skip
        settle = "converged, or ran all steps near a critical point (Newton within the tolerance)" + moved
    return {
        "tolerance": att.tol,
        "n_attractors": att.n,
        "settle_rule": settle,
        "hessians_not_computed": int(not_computed),
        "hessians_not_computed_reason": (
            f"Hessians of a model are computed at its {_crit.MODEL_MAX_POINTS} most populated attractors only "
            "(descentlab.analysis.critical.MODEL_MAX_POINTS)" if not_computed else None),
        "attractors": rows,
    }  # fmt: skip


def _attractors_write(g: Any, r: dict[str, Any]) -> None:
    att, cp = r["attractors"], r["critical"]
    put(g, "labels", att.labels.astype(np.int64), ("particle",),
        attrs={"codes": {str(k): v for k, v in OUTCOME_CODES.items()}})  # fmt: skip
    a = g.require_group("attractors")
    k = att.n
    fr = {key: r["outcomes"][key][:k] for key in ("fraction", "ci_low", "ci_high")}
    for name, arr in {"count": att.counts, "loss": att.losses, "extent": att.extents, "sharpness": cp.sharpness,
                      "trace": cp.trace, "index": cp.index, "index_fraction": cp.index_fraction,
                      "grad_norm": cp.grad_norm, **fr}.items():  # fmt: skip
        put(a, name, np.asarray(arr), ("attractor",))
    put(a, "position", att.positions, ("attractor", "dim"))
    put(a, "eigenvalues", cp.eigenvalues, ("attractor", "eigen"))
    if cp.eigenvectors is not None and cp.positions.shape[1] <= EIGENVECTORS_MAX_DIM:
        put(a, "eigenvectors", cp.eigenvectors, ("attractor", "dim", "eigen"),
            attrs={"note": "column j (eigen = j) is the unit eigenvector of eigenvalues[:, j]"})  # fmt: skip
    for name, lst in {"name": att.names, "kind": att.kinds, "known": att.known, "classification": cp.classes}.items():
        put(a, name, lst, ("attractor",))


#: Hessian eigenvectors of the attractors are stored up to this dimension ((K, D, D) values).
EIGENVECTORS_MAX_DIM = 256

register_analysis(Analysis("attractors", _attractors, _attractors_summary, _attractors_write))


# ----------------------------------------------------------------------------- known critical points


def _known(ctx: Context) -> dict[str, Any]:
    pts = _known_points(ctx)
    att = ctx.results["attractors"]
    kcp = _crit.analyze_points(ctx.lm, np.array([p for _, p, _ in pts]).reshape(-1, ctx.dim), ctx.options.eig_tol)
    k_att = np.array([att.names.index(nm) if nm in att.names else -1 for nm, _, _ in pts], dtype=np.int64)
    return {"known": {
        "name": [nm for nm, _, _ in pts], "kind": [k for _, _, k in pts], "position": kcp.positions,
        "eigenvalues": kcp.eigenvalues, "classification": kcp.classes, "attractor": k_att, "loss": kcp.losses,
    }}  # fmt: skip


def _known_summary(ctx: Context) -> dict[str, Any]:
    known = ctx.results["known"]
    return {"known": [
        {"name": nm, "kind": k, "classification": c, "eigenvalues": e.tolist() if ctx.dim <= 10 else None,
         "attractor": int(ka)}
        for nm, k, c, e, ka in zip(known["name"], known["kind"], known["classification"], known["eigenvalues"],
                                   known["attractor"], strict=True)
    ]}  # fmt: skip


def _known_write(g: Any, r: dict[str, Any]) -> None:
    kn = g.require_group("known")
    dims = {"position": ("point", "dim"), "eigenvalues": ("point", "eigen")}
    for key, v in r["known"].items():
        put(kn, key, v, dims.get(key, ("point",)))


register_analysis(Analysis("known", _known, _known_summary, _known_write))


# ----------------------------------------------------------------------------- basins


def _basins(ctx: Context) -> dict[str, Any]:
    att = ctx.results["attractors"]
    outcomes = _bas.fractions(att.labels, att.n)
    init = ctx.spec.get("init", {})
    grid = None
    extra: dict[str, Any] = {"boundary_fraction": None, "basin_entropy": None, "boundary_basin_entropy": None}
    if init.get("scheme") == "grid":
        res = np.broadcast_to(np.asarray(init.get("resolution", 64), dtype=np.int64), (ctx.dim,))
        if int(np.prod(res)) == ctx.n:
            grid = _bas.basin_map(att.labels, res)
            s_b, s_bb = _bas.basin_entropy(grid)
            extra = {"boundary_fraction": _bas.boundary_fraction(grid), "basin_entropy": s_b,
                     "boundary_basin_entropy": s_bb}  # fmt: skip
    # a grid's points are distinct by construction; other schemes may repeat points (seeds of noisy runs)
    starts = None if grid is not None else _bas.start_point_probabilities(np.asarray(ctx.data.init_x), att.labels,
                                                                         att.n)  # fmt: skip
    return {"outcomes": outcomes, "basin_map": grid, "start_points": starts, "basin_stats": extra}


def _basins_summary(ctx: Context) -> dict[str, Any]:
    r = ctx.results
    att = r["attractors"]
    return {
        "outcomes": {"converged": int(np.sum(ctx.status == Status.CONVERGED)), **att.outcome_counts()},
        "basin_map": r["basin_map"] is not None,
        **r["basin_stats"],
        "start_points": None if r["start_points"] is None else int(r["start_points"]["x"].shape[0]),
    }


def _basins_write(g: Any, r: dict[str, Any]) -> None:
    o = g.require_group("outcomes")
    for key, arr in r["outcomes"].items():
        put(o, key, arr, ("outcome",))
    att = r["attractors"]
    names = [att.names[c] if c >= 0 else OUTCOME_CODES[int(c)] for c in r["outcomes"]["code"]]
    put(o, "name", names, ("outcome",))
    if r["basin_map"] is not None:
        grid = r["basin_map"]
        put(g, "basin_map", grid, tuple(f"x{k}" for k in range(grid.ndim)))
    if r["start_points"] is not None:
        sp = g.require_group("start_points")
        dims = {"x": ("start", "dim"), "count": ("start",), "probability": ("start", "outcome"), "code": ("outcome",)}
        for key, arr in r["start_points"].items():
            put(sp, key, arr, dims[key])


register_analysis(Analysis("basins", _basins, _basins_summary, _basins_write))


# ----------------------------------------------------------------------------- convergence


def reference_loss(ctx: Context) -> tuple[float, str]:
    """(f_ref, how it was chosen) of the convergence targets ``f - f_ref <= delta``."""
    if ctx.options.reference is not None:
        return float(ctx.options.reference), "given"
    kmin = [ctx.lm.value(p[None])[0] for nm, p, kind in _known_points(ctx) if kind == "minimum"]
    if kmin and np.all(np.isfinite(kmin)):
        return float(min(kmin)), "known optimum"
    return best_loss(ctx.status, ctx.final_loss), "lowest end-point loss"


def best_loss(status: np.ndarray, final_loss: np.ndarray) -> float:
    """The lowest final loss of the particles that neither diverged nor left the bound (NaN if none)."""
    ok = np.isfinite(final_loss) & ((status == Status.RUNNING) | (status == Status.CONVERGED))
    return float(np.min(final_loss[ok])) if np.any(ok) else float("nan")


def convergence(data: Any, status: np.ndarray, final_loss: np.ndarray, f_ref: float, kind: str,
                targets: Any) -> dict[str, Any]:  # fmt: skip
    """Steps-to-target, ECDF and loss bands of a run against the reference ``f_ref``."""
    rec = np.asarray(data.record_steps, dtype=np.int64)
    stt = _conv.steps_to_target(data.trajectory_loss, rec, final_loss, status, data.stop_step, f_ref, targets)
    total = total_steps(data.spec, rec)
    budgets, frac = _conv.ecdf(stt, total)
    qs = _conv.loss_bands(data.trajectory_loss, records=rec.shape[0])
    return {"targets": np.asarray(targets, dtype=float), "f_opt": f_ref, "reference_kind": kind,
            "steps_to_target": stt, "ecdf_budget": budgets, "ecdf": frac, "record_step": rec,
            "loss_quantile": qs, "quantile_level": np.asarray(_conv.QUANTILES),
            "record_every": int(rec[1] - rec[0]) if rec.size > 1 else total}  # fmt: skip


def _convergence(ctx: Context) -> dict[str, Any]:
    f_ref, kind = reference_loss(ctx)
    return {"convergence": convergence(ctx.data, ctx.status, ctx.final_loss, f_ref, kind, ctx.options.targets)}


def convergence_summary(conv: dict[str, Any], status: np.ndarray, final_loss: np.ndarray,
                        att: Any = None) -> dict[str, Any]:  # fmt: skip
    """The summary keys of a convergence result (success at the middle target, ECDF area, ...)."""
    targets = list(conv["targets"])
    f_ref = float(conv["f_opt"])
    stt, budgets, frac = conv["steps_to_target"], conv["ecdf_budget"], conv["ecdf"]
    n = int(stt.shape[0])
    gi = int(min(len(targets) - 1, len(targets) // 2 + 1))
    reached = stt[:, gi]
    log_b = np.log10(np.maximum(budgets, 1))
    area = float(np.trapezoid(frac, log_b) / (log_b[-1] - log_b[0])) if log_b[-1] > log_b[0] else float(frac[-1])
    out = {
        "f_opt": f_ref,
        "reference_kind": conv["reference_kind"],
        "best_final_loss": best_loss(status, final_loss),
        "median_final_loss": float(np.nanmedian(final_loss)) if n else None,
        "targets": targets,
        "ecdf_target": float(targets[gi]),
        "record_every": conv.get("record_every"),
        "success_rate": float(np.mean(reached >= 0)) if n else 0.0,
        "median_steps_to_target": float(np.median(reached[reached >= 0])) if np.any(reached >= 0) else None,
        "ecdf_area": area,
    }
    if att is not None:
        glob_tol = 1e-6 * (1.0 + abs(f_ref))
        at_glob = [a for a in range(att.n)
                   if att.losses[a] - f_ref <= max(glob_tol, 1e-3 * abs(att.losses[a]) + glob_tol)]  # fmt: skip
        out["global_fraction"] = float(np.sum(att.counts[at_glob]) / n) if n else 0.0
    return out


def _convergence_write(g: Any, r: dict[str, Any]) -> None:
    cv = g.require_group("convergence")
    c = r["convergence"]
    cv.attrs["f_opt"] = float(c["f_opt"])
    cv.attrs["reference_kind"] = c["reference_kind"]
    cv.attrs["record_every"] = int(c["record_every"])
    dims = {"targets": ("target",), "steps_to_target": ("particle", "target"), "ecdf_budget": ("budget",),
            "ecdf": ("budget",), "record_step": ("record",), "loss_quantile": ("quantile", "record"),
            "quantile_level": ("quantile",)}  # fmt: skip
    for key, d in dims.items():
        put(cv, key, np.asarray(c[key]), d)


register_analysis(Analysis(
    "convergence", _convergence,
    lambda ctx: convergence_summary(ctx.results["convergence"], ctx.status, ctx.final_loss,
                                    ctx.results["attractors"]),
    _convergence_write,
))  # fmt: skip


# ----------------------------------------------------------------------------- census


def _census(ctx: Context) -> dict[str, Any] | None:
    want = ctx.options.census
    if not (want or (want is None and ctx.dim >= CENSUS_MIN_DIM)):
        return None
    # critical points only: end points of particles that settled at an attractor (never the ones
    # still moving, diverged or out of the bound)
    labels = ctx.results["attractors"].labels
    ok = np.flatnonzero((labels >= 0) & np.all(np.isfinite(ctx.final_x), axis=1))
    cen = _crit.census(ctx.lm, ctx.final_x[ok], ctx.final_loss[ok], eig_tol=ctx.options.eig_tol)
    cen["row"] = ok[cen["row"]]
    return {"census": cen}


def _census_summary(ctx: Context) -> dict[str, Any]:
    cen = ctx.results.get("census")
    return {"census": None if cen is None else int(cen["loss"].shape[0])}


def _census_write(g: Any, r: dict[str, Any]) -> None:
    if r.get("census") is None:
        return
    ce = g.require_group("census")
    ce.attrs["note"] = "end points of particles that settled at an attractor (labels >= 0), at most 2000"
    for key, arr in r["census"].items():
        put(ce, key, arr, ("entry",))


register_analysis(Analysis("census", _census, _census_summary, _census_write))
