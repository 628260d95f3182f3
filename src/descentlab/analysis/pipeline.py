"""The analysis pipeline: from run data to an :class:`AnalysisResult`; analyse a file; compare runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import attractors as _att
from . import basins as _bas
from . import convergence as _conv
from . import critical as _crit
from .attractors import find_attractors
from .critical import LandscapeMath, ModelMath
from .io import ANALYSIS_VERSION, _open_sidecar, _write, read_run, read_summary, run_fingerprint
from .result import AnalysisResult, RunData
from .summary import _jsonable

#: Dimension from which the critical-point census is computed by default.
CENSUS_MIN_DIM = 3
#: Refine attractor positions by Newton's method up to this many attractors and dimensions.
REFINE_MAX = (64, 10)


def _landscape(spec: Mapping[str, Any]) -> LandscapeMath:
    from ..engine.finite_sum import MODEL_LANDSCAPES
    from ..engine.spec import SpecError, parse_spec
    from ..engine.store import StoreError

    try:
        rs = parse_spec(spec, memory_check=False)
        if rs.finite_sum is not None:
            return ModelMath(rs.landscape, rs.landscape_params, rs.dim, rs.finite_sum)
        return LandscapeMath(rs.landscape, rs.landscape_params, rs.dim)
    except SpecError as exc:
        land = spec.get("landscape", {}) if isinstance(spec, Mapping) else {}
        # the landscape itself (a formula, a model and its data) cannot be rebuilt: refuse, naming why
        if str(exc).startswith(("landscape", "data")) or "formula" in land or land.get("name") in MODEL_LANDSCAPES:
            raise StoreError(f"PATH: the run's spec cannot be rebuilt for the analysis: {exc}") from None
        return _fallback_landscape(spec)
    except Exception:
        return _fallback_landscape(spec)


def _fallback_landscape(spec: Mapping[str, Any]) -> LandscapeMath:
    """An analytic landscape from the stored spec alone (when the rest of it does not parse any more)."""
    from ..landscapes.registry import get_landscape

    ls = dict(spec["landscape"])
    land = get_landscape(ls.pop("name"))
    dim = land.resolve_dim(ls.pop("dim", None))
    return LandscapeMath(land, land.resolve_params({k: v for k, v in ls.items() if k in land.params}), dim)


def _noisy(spec: Mapping[str, Any]) -> bool:
    """Whether the optimizer injects noise (then particles never 'converge')."""
    opt = spec.get("optimizer", {})
    phases = opt.get("phases", [opt]) if isinstance(opt, Mapping) else list(opt)
    return any(float(p.get("noise_std", 0.0) or 0.0) > 0 for p in phases if isinstance(p, Mapping))


def _init_box(spec: Mapping[str, Any], lm: LandscapeMath, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    init = spec.get("init", {})
    lo, hi = lm.landscape.init_box
    low = np.broadcast_to(np.asarray(init.get("low", lo), dtype=float), (lm.dim,)).copy()
    high = np.broadcast_to(np.asarray(init.get("high", hi), dtype=float), (lm.dim,)).copy()
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))) and x.size:
        low, high = np.nanmin(x, axis=0), np.nanmax(x, axis=0)
    return low, high


def analyze_arrays(
    data: RunData,
    *,
    rel_tol: float = _att.REL_TOL,
    eig_tol: float = _crit.EIG_TOL,
    targets: Sequence[float] = _conv.TARGETS,
    include_running: bool | None = None,
    census: bool | None = None,
    label: str = "",
) -> AnalysisResult:
    """The whole analysis on in-memory arrays (nothing is written)."""
    spec = data.spec
    lm = _landscape(spec)
    land, params, dim = lm.landscape, lm.params, lm.dim
    n = int(np.asarray(data.status).shape[0])
    status = np.asarray(data.status)
    final_x = np.asarray(data.final_x)
    final_loss = np.asarray(data.final_loss, dtype=np.float64)
    known_min = [(nm, np.asarray(p, dtype=float)) for nm, p in land.minima(params, dim)]
    known_sad = [(nm, np.asarray(p, dtype=float)) for nm, p in land.saddles(params, dim)]
    known_max = [(f"max {np.round(p, 3).tolist()}", np.asarray(p, dtype=float))
                 for p in land.extra.get("maxima", [])]  # fmt: skip
    if include_running is None:
        include_running = _noisy(spec)

    # --- attractors
    att = find_attractors(
        final_x, final_loss, status, scale=land.scale, rel_tol=rel_tol, known=known_min + known_sad + known_max,
        manifold=land.minima_manifold, params=params, include_running=include_running,
    )  # fmt: skip
    pos = att.positions.copy()
    if att.n <= REFINE_MAX[0] and dim <= REFINE_MAX[1]:
        for a in range(att.n):
            if att.kinds[a] == "point":
                pos[a] = _crit.refine(lm, pos[a], att.tol)
    crit = _crit.analyze_points(lm, pos, eig_tol)
    classes = list(crit.classes)
    for a in range(att.n):
        if att.kinds[a] == "manifold":
            lam = crit.eigenvalues[a]
            tol = eig_tol * max(1.0, float(np.nanmax(np.abs(lam))) if lam.size else 1.0)
            flat = int(np.sum(np.abs(lam) <= tol))
            if np.all(lam >= -tol):
                # a continuous set of minima: its Hessian is flat along the set
                classes[a] = f"minimum manifold ({max(flat, 1)} flat)"
            else:
                classes[a] = f"manifold: {classes[a]}"
    crit.classes = classes
    att.positions = pos

    # --- known critical points
    known_all = [(nm, p, "minimum") for nm, p in known_min] + [(nm, p, "saddle") for nm, p in known_sad]
    known_all += [(nm, p, "maximum") for nm, p in known_max]
    kcp = _crit.analyze_points(lm, np.array([p for _, p, _ in known_all]).reshape(-1, dim), eig_tol)
    k_att = np.array([att.names.index(nm) if nm in att.names else -1 for nm, _, _ in known_all], dtype=np.int64)
    known = {
        "name": [nm for nm, _, _ in known_all], "kind": [k for _, _, k in known_all], "position": kcp.positions,
        "eigenvalues": kcp.eigenvalues, "classification": kcp.classes, "attractor": k_att, "loss": kcp.losses,
    }  # fmt: skip

    # --- basins
    outcomes = _bas.fractions(att.labels, att.n)
    init = spec.get("init", {})
    grid = None
    bf = s_b = s_bb = None
    if init.get("scheme") == "grid":
        res = np.broadcast_to(np.asarray(init.get("resolution", 64), dtype=np.int64), (dim,))
        if int(np.prod(res)) == n:
            grid = _bas.basin_map(att.labels, res)
            bf = _bas.boundary_fraction(grid)
            s_b, s_bb = _bas.basin_entropy(grid)
    # a grid's points are distinct by construction; other schemes may repeat points (seeds of noisy runs)
    starts = None if grid is not None else _bas.start_point_probabilities(np.asarray(data.init_x), att.labels, att.n)

    # --- convergence
    kmin = [lm.value(p[None])[0] for _, p in known_min]
    if kmin and np.all(np.isfinite(kmin)):
        f_opt = float(min(kmin))
    else:
        fin = final_loss[np.isfinite(final_loss) & (status != 2)]
        f_opt = float(fin.min()) if fin.size else 0.0
    rec = np.asarray(data.record_steps, dtype=np.int64)
    stt = _conv.steps_to_target(data.trajectory_loss, rec, final_loss, status, data.stop_step, f_opt, targets)
    total = int(spec.get("run", {}).get("steps", rec[-1] if rec.size else 1))
    budgets, frac = _conv.ecdf(stt, total)
    qs = _conv.loss_bands(data.trajectory_loss, records=rec.shape[0])
    conv = {"targets": np.asarray(targets, dtype=float), "f_opt": f_opt, "steps_to_target": stt,
            "ecdf_budget": budgets, "ecdf": frac, "record_step": rec, "loss_quantile": qs,
            "quantile_level": np.asarray(_conv.QUANTILES)}  # fmt: skip

    # --- census
    cen = None
    if census or (census is None and dim >= CENSUS_MIN_DIM):
        ok = np.flatnonzero((status != 2) & np.all(np.isfinite(final_x), axis=1))
        cen = _crit.census(lm, final_x[ok], final_loss[ok], eig_tol=eig_tol)
        cen["row"] = ok[cen["row"]]

    # --- summary
    counts = {"converged": int(np.sum(status == 1)), **att.outcome_counts()}
    gi = int(min(len(targets) - 1, len(targets) // 2 + 1))
    reached = stt[:, gi]
    glob_tol = 1e-6 * (1.0 + abs(f_opt))
    at_glob = [a for a in range(att.n) if att.losses[a] - f_opt <= max(glob_tol, 1e-3 * abs(att.losses[a]) + glob_tol)]
    log_b = np.log10(np.maximum(budgets, 1))
    area = float(np.trapezoid(frac, log_b) / (log_b[-1] - log_b[0])) if log_b[-1] > log_b[0] else float(frac[-1])
    opt = spec.get("optimizer", {})
    attractor_rows = []
    for a in range(att.n):
        j = a
        attractor_rows.append({
            "name": att.names[a], "kind": att.kinds[a], "known": att.known[a], "count": int(att.counts[a]),
            "fraction": float(outcomes["fraction"][j]),
            "ci": [float(outcomes["ci_low"][j]), float(outcomes["ci_high"][j])],
            "position": pos[a].tolist() if dim <= 10 else None, "loss": float(att.losses[a]),
            "eigenvalues": crit.eigenvalues[a].tolist() if dim <= 10 else None,
            "classification": classes[a], "sharpness": float(crit.sharpness[a]), "trace": float(crit.trace[a]),
            **({"manifold": att.manifolds[a]} if a in att.manifolds else {}),
        })  # fmt: skip
    summary = {
        "analysis_version": ANALYSIS_VERSION,
        "label": label,
        "landscape": land.name,
        "dim": dim,
        "optimizer": opt.get("name", "?") if isinstance(opt, Mapping) else "?",
        "particles": n,
        "tolerance": att.tol,
        "n_attractors": att.n,
        "outcomes": {"converged": counts["converged"], **att.outcome_counts()},
        "attractors": attractor_rows,
        "known": [
            {
                "name": nm,
                "kind": k,
                "classification": c,
                "eigenvalues": e.tolist() if dim <= 10 else None,
                "attractor": int(ka),
            }
            for nm, k, c, e, ka in zip(
                known["name"], known["kind"], known["classification"], known["eigenvalues"], k_att, strict=True
            )
        ],
        "basin_map": grid is not None,
        "boundary_fraction": bf,
        "basin_entropy": s_b,
        "boundary_basin_entropy": s_bb,
        "start_points": None if starts is None else int(starts["x"].shape[0]),
        "f_opt": f_opt,
        "global_fraction": float(np.sum(att.counts[at_glob]) / n) if n else 0.0,
        "median_final_loss": float(np.nanmedian(final_loss)) if n else None,
        "ecdf_target": float(targets[gi]),
        "success_rate": float(np.mean(reached >= 0)) if n else 0.0,
        "median_steps_to_target": float(np.median(reached[reached >= 0])) if np.any(reached >= 0) else None,
        "ecdf_area": area,
        "census": None if cen is None else int(cen["loss"].shape[0]),
    }
    return AnalysisResult(
        summary=_jsonable(summary), attractors=att, critical=crit, known=known, outcomes=outcomes,
        basin_map=grid, start_points=starts, convergence=conv, census=cen,
    )  # fmt: skip


def analyze_result(result: Any, plots_dir: str | Path | None = None, **kwargs: Any) -> AnalysisResult:
    """:func:`analyze_arrays` on an in-memory :class:`descentlab.Result` (and its figures)."""
    data = RunData(
        spec=result.spec, init_x=result.init_x, final_x=result.final_x, final_loss=result.final_loss,
        status=result.status, stop_step=result.stop_step, record_steps=result.record_steps,
        trajectory_loss=result.trajectory_loss, trajectory_x=result.trajectory_x,
    )  # fmt: skip
    ar = analyze_arrays(data, **kwargs)
    if plots_dir is not None:
        from .figures import make_figures

        ar.figures = make_figures(ar, data, plots_dir, kwargs.get("label") or "run")
    return ar


def analyze(path: str | Path, plots_dir: str | Path | None = None, *, write: bool = True,
            **kwargs: Any) -> AnalysisResult:  # fmt: skip
    """Analyse the run file ``path`` (opened read-only): write the sidecar
    :func:`analysis_path` (unless ``write=False``) and, with ``plots_dir``, the
    figures; returns the :class:`AnalysisResult`.

    Keyword arguments go to :func:`analyze_arrays` (``rel_tol``, ``eig_tol``,
    ``targets``, ``include_running``, ``census``).
    """
    path = Path(path)
    kwargs.setdefault("label", path.stem)
    data, f = read_run(path)
    try:
        fingerprint = run_fingerprint(f.attrs)
        ar = analyze_arrays(data, **kwargs)
        ar.summary["path"] = str(path)
        if plots_dir is not None:
            from .figures import make_figures

            ar.figures = make_figures(ar, data, plots_dir, path.stem)
            ar.summary["figures"] = {k: str(v) for k, v in ar.figures.items()}
    finally:
        f.close()
    if write:
        _write(path, ar, fingerprint)
    return ar


def compare(paths: Sequence[str | Path], plots_dir: str | Path | None = None,
            analyse_missing: bool = True) -> tuple[list[dict[str, Any]], dict[str, Path]]:  # fmt: skip
    """Comparison table across run files (analysing in memory those not analysed yet:
    nothing is written into or beside them) and, with ``plots_dir``, overlaid ECDF
    and loss-band figures. Returns (rows, figures)."""
    from . import plots

    summaries, curves, bands = [], [], []
    for p in paths:
        s = read_summary(p)
        cv: Mapping[str, Any] | None = None
        if s is not None and not (analyse_missing and s.get("analysis_version") != ANALYSIS_VERSION):
            f = _open_sidecar(p)
            if f is not None:
                with f:
                    g = f["analysis/convergence"]
                    cv = {k: g[k][...] for k in ("ecdf_budget", "ecdf", "record_step", "loss_quantile",
                                                  "quantile_level")}  # fmt: skip
        if cv is None:  # not analysed (or an old analysis): analyse in memory; compare writes nothing
            ar = analyze(p, write=False)
            s, cv = ar.summary, ar.convergence
        assert s is not None
        s = dict(s)
        s["label"] = Path(p).stem
        summaries.append(s)
        lab = f"{Path(p).stem} ({s.get('optimizer')})"
        curves.append((lab, np.asarray(cv["ecdf_budget"]), np.asarray(cv["ecdf"])))
        bands.append((lab, np.asarray(cv["record_step"]), np.asarray(cv["loss_quantile"]),
                      np.asarray(cv["quantile_level"]).tolist()))  # fmt: skip
    rows = _conv.comparison_table(summaries)
    figs: dict[str, Path] = {}
    if plots_dir is not None:
        out = Path(plots_dir)
        figs["ecdf"] = plots.ecdf(curves, out / "compare_ecdf.png", "steps-to-target ECDF")
        figs["loss_bands"] = plots.loss_bands(bands, out / "compare_loss_bands.png", "loss: median and quantile bands")
    return rows, figs
