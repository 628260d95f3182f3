"""Analysis of a run (from the HDF5 file alone): attractors, basins, critical
points, convergence; written to a sidecar file with figures.

``analyze(path, plots_dir=None)`` reads a run file (read-only: the run file is
never written by the analysis) and writes everything into the ``/analysis``
group of the sidecar file ``RUN.h5.analysis`` (:func:`analysis_path`). The
sidecar is built under a temporary name and moved into place with
:func:`os.replace` once whole, so a failed analysis (a full disk, a kill)
leaves the previous analysis, or none, never half of one. Its root attributes
``format = "descentlab.analysis"``, ``complete`` and ``run_fingerprint`` (of the
run file's spec and times) tie it to its run: a sidecar of another run (the
output overwritten since) is ignored. The layout of the group:

====================================  =========  ======================================
path                                  shape      meaning
====================================  =========  ======================================
``/analysis`` attrs ``summary``                  JSON summary (what ``info`` shows)
``/analysis/labels``                  (N,)       attractor of each particle; -1 not
                                                 converged, -2 diverged, -3 left the bound
``/analysis/attractors/*``            (K, ...)   position, name, kind, count, loss,
                                                 extent, known, eigenvalues (K, D),
                                                 classification, sharpness, trace,
                                                 index (number of negative eigenvalues),
                                                 index_fraction, grad_norm, fraction,
                                                 ci_low, ci_high
``/analysis/outcomes/*``              (K+3,)     code, name, count, fraction, ci_low,
                                                 ci_high (attractors + other outcomes)
``/analysis/known/*``                 (P, ...)   the landscape's known minima/saddles:
                                                 name, kind, position, eigenvalues,
                                                 classification, attractor (-1 none)
``/analysis/basin_map``               grid       labels on the grid (grid inits only)
``/analysis/start_points/*``          (S, ...)   x, count, probability (S, K+3), code
                                                 (only when starting points repeat)
``/analysis/convergence/*``                      targets (T,), f_opt, steps_to_target
                                                 (N, T) (-1 never), ecdf_budget,
                                                 ecdf, record_step, loss_quantile
                                                 (Q, R), quantile_level
``/analysis/census/*``                (M,)       loss, index (count of negative eigenvalues),
                                                 index_fraction, sharpness, row (D >= 3)
====================================  =========  ======================================

The core functions in the submodules take NumPy arrays; :func:`analyze_arrays`
runs the whole analysis on arrays (e.g. a :class:`descentlab.Result`).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.status import Status
from . import attractors as _att
from . import basins as _bas
from . import convergence as _conv
from . import critical as _crit
from .attractors import DIVERGED, LEFT_BOUND, NOT_CONVERGED, OUTCOME_CODES, Attractors, find_attractors
from .critical import LandscapeMath, ModelMath, classify

__all__ = [
    "DIVERGED", "LEFT_BOUND", "NOT_CONVERGED", "AnalysisResult", "analysis_path", "analyze", "analyze_arrays",
    "analyze_result", "classify", "compare", "find_attractors", "read_summary",
]  # fmt: skip

ANALYSIS_VERSION = 1
#: The sidecar file of a run's analysis: ``RUN.h5`` -> ``RUN.h5.analysis``.
ANALYSIS_SUFFIX = ".analysis"
ANALYSIS_FORMAT = "descentlab.analysis"
#: Dimension from which the critical-point census is computed by default.
CENSUS_MIN_DIM = 3
#: Refine attractor positions by Newton's method up to this many attractors and dimensions.
REFINE_MAX = (64, 10)


@dataclass
class RunData:
    """What the analysis reads from a run (arrays or lazy h5py datasets for the trajectory)."""

    spec: dict[str, Any]
    init_x: np.ndarray
    final_x: np.ndarray
    final_loss: np.ndarray
    status: np.ndarray
    stop_step: np.ndarray
    record_steps: np.ndarray
    trajectory_loss: Any
    trajectory_x: Any


@dataclass
class AnalysisResult:
    """Results of :func:`analyze` (see the module docstring for the file layout)."""

    summary: dict[str, Any]
    attractors: Attractors
    critical: _crit.CriticalPoints
    known: dict[str, Any]
    outcomes: dict[str, np.ndarray]
    basin_map: np.ndarray | None
    start_points: dict[str, np.ndarray] | None
    convergence: dict[str, Any]
    census: dict[str, np.ndarray] | None
    figures: dict[str, Path] = field(default_factory=dict)

    @property
    def labels(self) -> np.ndarray:
        return self.attractors.labels

    def fraction(self, name: str) -> float:
        """Fraction of particles in the attractor (or outcome) called ``name``."""
        names = self.outcome_names()
        if name not in names:
            raise KeyError(f"no attractor or outcome {name!r}; have {names}")
        return float(self.outcomes["fraction"][names.index(name)])

    def outcome_names(self) -> list[str]:
        return [self.attractors.names[c] if c >= 0 else OUTCOME_CODES[int(c)] for c in self.outcomes["code"]]

    def __repr__(self) -> str:
        return summary_text(self.summary)


def _landscape(spec: Mapping[str, Any]) -> LandscapeMath:
    from ..engine.spec import SpecError, parse_spec
    from ..engine.store import StoreError
    from ..problems.finite_sum import MODEL_LANDSCAPES

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
        reason: Exception = exc
    except (KeyError, TypeError, ValueError) as exc:  # a stored spec this version reads differently
        reason = exc
    # the rest of the spec (optimizer, init, ...) does not parse any more, the landscape does: say why
    logging.getLogger("descentlab").warning(
        "the run's stored spec does not parse (%s: %s); analysing its landscape from the [landscape] table alone",
        type(reason).__name__, reason,
    )  # fmt: skip
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


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return _jsonable(v.tolist())
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, float | np.floating):
        f = float(v)
        return f if math.isfinite(f) else None
    return v


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
                 for p in land.maxima]  # fmt: skip
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
        fin = final_loss[np.isfinite(final_loss) & (status != Status.DIVERGED)]
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
        ok = np.flatnonzero((status != Status.DIVERGED) & np.all(np.isfinite(final_x), axis=1))
        cen = _crit.census(lm, final_x[ok], final_loss[ok], eig_tol=eig_tol)
        cen["row"] = ok[cen["row"]]

    # --- summary
    counts = {"converged": int(np.sum(status == Status.CONVERGED)), **att.outcome_counts()}
    gi = int(min(len(targets) - 1, len(targets) // 2 + 1))
    reached = stt[:, gi]
    glob_tol = 1e-6 * (1.0 + abs(f_opt))
    at_glob = [a for a in range(att.n) if att.losses[a] - f_opt <= max(glob_tol, 1e-3 * abs(att.losses[a]) + glob_tol)]
    log_b = np.log10(np.maximum(budgets, 1))
    area = float(np.trapezoid(frac, log_b) / (log_b[-1] - log_b[0])) if log_b[-1] > log_b[0] else float(frac[-1])
    opt = spec.get("optimizer", {})
    attractor_rows = []
    for a in range(att.n):  # attractor a is row a of the outcomes table (outcomes follow)
        attractor_rows.append({
            "name": att.names[a], "kind": att.kinds[a], "known": att.known[a], "count": int(att.counts[a]),
            "fraction": float(outcomes["fraction"][a]),
            "ci": [float(outcomes["ci_low"][a]), float(outcomes["ci_high"][a])],
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
        ar.figures = make_figures(ar, data, plots_dir, kwargs.get("label") or "run")
    return ar


def read_run(path: str | Path) -> tuple[RunData, Any]:
    """Open a run file; returns (RunData with lazy trajectories, the open h5py file)."""
    import h5py

    f = h5py.File(path, "r")
    if f.attrs.get("format") != "descentlab.run":
        f.close()
        raise ValueError(f"{path}: not a descentlab run file")
    spec = json.loads(f.attrs["spec"])
    complete = bool(f.attrs.get("complete", False))
    if not complete:
        f.close()
        raise ValueError(f"{path}: the run is incomplete; finish it (descentlab run --resume) before analysing")
    data = RunData(
        spec=spec, init_x=f["init/x"][...], final_x=f["final/x"][...], final_loss=f["final/loss"][...],
        status=f["final/status"][...], stop_step=f["final/stop_step"][...], record_steps=f["trajectory/step"][...],
        trajectory_loss=f["trajectory/loss"], trajectory_x=f["trajectory/x"],
    )  # fmt: skip
    return data, f


def analysis_path(path: str | Path) -> Path:
    """The sidecar file that holds the analysis of the run file ``path``."""
    path = Path(path)
    return path.with_name(path.name + ANALYSIS_SUFFIX)


def run_fingerprint(attrs: Mapping[str, Any]) -> str:
    """Identity of a complete run file (its spec and times), stored in its analysis sidecar."""
    import hashlib

    key = json.dumps([str(attrs.get(k, "")) for k in ("spec", "created", "finished", "wall_time", "seed")])
    return hashlib.sha256(key.encode()).hexdigest()


def _sample_trajectories(traj: Any, labels: np.ndarray, k: int = 60) -> np.ndarray:
    n = int(traj.shape[0])
    idx = np.unique(np.linspace(0, n - 1, min(n, k)).astype(np.int64))
    return np.asarray(traj[idx.tolist()] if not isinstance(traj, np.ndarray) else traj[idx], dtype=float)


def make_figures(ar: AnalysisResult, data: RunData, plots_dir: str | Path, stem: str) -> dict[str, Path]:
    """Write the figures of one analysis into ``plots_dir``; returns {name: path}."""
    from . import plots

    out = Path(plots_dir)
    out.mkdir(parents=True, exist_ok=True)
    lm = _landscape(data.spec)
    s = ar.summary
    title = f"{s['landscape']} / {s['optimizer']}"
    figs: dict[str, Path] = {}
    if lm.dim == 2:
        low, high = _init_box(data.spec, lm, np.asarray(data.init_x))
        pad = 0.05 * (high - low)
        tr = _sample_trajectories(data.trajectory_x, ar.labels)
        figs["contour"] = plots.contour_trajectories(
            lm, low - pad, high + pad, tr, ar.attractors.positions[:20], ar.attractors.names[:20],
            out / f"{stem}_contour.png", title,
        )  # fmt: skip
        if ar.basin_map is not None:
            figs["basin_map"] = plots.basin_map(ar.basin_map, low, high, ar.attractors.names,
                                                out / f"{stem}_basin_map.png", title)  # fmt: skip
    c = ar.convergence
    figs["ecdf"] = plots.ecdf([(title, c["ecdf_budget"], c["ecdf"])], out / f"{stem}_ecdf.png", title)
    figs["loss_bands"] = plots.loss_bands([(title, c["record_step"], c["loss_quantile"], c["quantile_level"])],
                                          out / f"{stem}_loss_bands.png", title)  # fmt: skip
    names = list(ar.attractors.names)
    eig = ar.critical.eigenvalues
    unmatched = [i for i, a in enumerate(ar.known["attractor"]) if a < 0]
    if unmatched:
        names += [f"{ar.known['name'][i]} ({ar.known['kind'][i]}, known)" for i in unmatched]
        eig = np.concatenate([eig, ar.known["eigenvalues"][unmatched]], axis=0)
    if names:
        figs["spectra"] = plots.spectra(eig, names, out / f"{stem}_spectra.png", title)
    if ar.census is not None:
        figs["index_vs_loss"] = plots.index_vs_loss(
            ar.census["loss"], ar.census["index_fraction"], out / f"{stem}_index_vs_loss.png", title,
            highlight=(ar.attractors.losses, ar.critical.index_fraction),
        )  # fmt: skip
    return figs


def _write(path: str | Path, ar: AnalysisResult, fingerprint: str) -> Path:
    """Write the analysis of run file ``path`` into its sidecar, atomically; returns the sidecar's path."""
    import h5py

    from ..engine.store import StoreError, disk_full

    side = analysis_path(path)
    if side.exists() and not _is_sidecar(side):
        raise StoreError(f"PATH: {side} exists and is not a descentlab analysis file; not replacing it")
    tmp = side.with_name(f".{side.name}.{os.getpid()}.tmp")
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs.update({"format": ANALYSIS_FORMAT, "complete": False, "run_fingerprint": fingerprint,
                            "run_file": Path(path).name})  # fmt: skip
            _write_group(f, ar)
            f.attrs["complete"] = True
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, side)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError | RuntimeError) and disk_full(exc):
            raise StoreError(f"PATH: disk full while writing the analysis {side}; the run file {path} is "
                             "untouched; free some space and analyse again") from None  # fmt: skip
        if isinstance(exc, OSError):
            raise StoreError(f"PATH: cannot write the analysis {side} ({exc}); the run file is untouched") from None
        raise
    return side


def _is_sidecar(side: Path) -> bool:
    import h5py

    try:
        with h5py.File(side, "r", locking=False) as f:
            return f.attrs.get("format") == ANALYSIS_FORMAT
    except OSError:
        return False


def _write_group(f: Any, ar: AnalysisResult) -> None:
    import h5py

    st = h5py.string_dtype()
    g = f.create_group("analysis")
    g.attrs["summary"] = json.dumps(ar.summary)
    g.attrs["analysis_version"] = ANALYSIS_VERSION
    lab = g.create_dataset("labels", data=ar.labels.astype(np.int64))
    lab.attrs["codes"] = json.dumps({str(k): v for k, v in OUTCOME_CODES.items()})
    att, cp = ar.attractors, ar.critical
    a = g.create_group("attractors")
    k = att.n
    fr = {key: ar.outcomes[key][:k] for key in ("fraction", "ci_low", "ci_high")}
    for name, arr in {
        "position": att.positions, "count": att.counts, "loss": att.losses, "extent": att.extents,
        "eigenvalues": cp.eigenvalues, "sharpness": cp.sharpness, "trace": cp.trace, "index": cp.index,
        "index_fraction": cp.index_fraction, "grad_norm": cp.grad_norm, **fr,
    }.items():  # fmt: skip
        a.create_dataset(name, data=np.asarray(arr))
    for name, lst in {
        "name": att.names,
        "kind": att.kinds,
        "known": att.known,
        "classification": cp.classes,
    }.items():
        a.create_dataset(name, data=np.array(lst, dtype=object), dtype=st)
    o = g.create_group("outcomes")
    for key, arr in ar.outcomes.items():
        o.create_dataset(key, data=arr)
    o.create_dataset("name", data=np.array(ar.outcome_names(), dtype=object), dtype=st)
    kn = g.create_group("known")
    for key, v in ar.known.items():
        if isinstance(v, list):
            kn.create_dataset(key, data=np.array(v, dtype=object), dtype=st)
        else:
            kn.create_dataset(key, data=np.asarray(v))
    if ar.basin_map is not None:
        g.create_dataset("basin_map", data=ar.basin_map)
    if ar.start_points is not None:
        sp = g.create_group("start_points")
        for key, arr in ar.start_points.items():
            sp.create_dataset(key, data=arr)
    cv = g.create_group("convergence")
    for key, v in ar.convergence.items():
        if key == "f_opt":
            cv.attrs["f_opt"] = float(v)
        else:
            cv.create_dataset(key, data=np.asarray(v))
    if ar.census is not None:
        ce = g.create_group("census")
        for key, arr in ar.census.items():
            ce.create_dataset(key, data=arr)


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
            ar.figures = make_figures(ar, data, plots_dir, path.stem)
            ar.summary["figures"] = {k: str(v) for k, v in ar.figures.items()}
    finally:
        f.close()
    if write:
        _write(path, ar, fingerprint)
    return ar


def _open_sidecar(path: str | Path) -> Any:
    """The open (h5py) sidecar of run file ``path`` if it holds a whole analysis of this run, else None."""
    import h5py

    side = analysis_path(path)
    if not side.exists():
        return None
    try:
        with h5py.File(path, "r", locking=False) as run:
            fingerprint = run_fingerprint(run.attrs)
        f = h5py.File(side, "r", locking=False)
    except OSError:
        return None
    ok = (f.attrs.get("format") == ANALYSIS_FORMAT and bool(f.attrs.get("complete", False))
          and f.attrs.get("run_fingerprint") == fingerprint and "analysis" in f)  # fmt: skip
    if not ok:
        f.close()
        return None
    return f


def read_summary(path: str | Path) -> dict[str, Any] | None:
    """The analysis summary of a run file (from its sidecar), or None if it has no whole analysis of this run."""
    f = _open_sidecar(path)
    if f is None:
        return None
    with f:
        return json.loads(f["analysis"].attrs["summary"])


def summary_text(summary: Mapping[str, Any]) -> str:
    """A readable multi-line summary of an analysis (what ``info`` and ``analyze`` print)."""
    s = summary
    oc = s.get("outcomes", {})
    n = max(1, int(s.get("particles", 1)))
    lines = [
        f"analysis of {s.get('label') or s.get('path', 'run')}: {s.get('landscape')} (D={s.get('dim')}), "
        f"{s.get('optimizer')}, {s.get('particles')} particles; tolerance {s.get('tolerance', 0):.3g}",
        "  outcomes    " + ", ".join(f"{k}: {v} ({v / n:.1%})" for k, v in oc.items()),
        f"  attractors  {s.get('n_attractors')}",
    ]
    for r in s.get("attractors", [])[:20]:
        ci = r.get("ci") or [float("nan")] * 2
        eig = r.get("eigenvalues")
        eig_s = "[" + ", ".join(f"{e:.4g}" for e in eig) + "]" if eig is not None else f"sharpness {r['sharpness']:.4g}"
        lines.append(f"    {r['name']:<28} {r['fraction']:.4f} [{ci[0]:.4f}, {ci[1]:.4f}]  loss {r['loss']:.4g}  "
                     f"{r['classification']}  eig {eig_s}")  # fmt: skip
        if "manifold" in r:
            m = r["manifold"]
            lines.append(f"      manifold: {m.get('declared')}, {m.get('count')} end points, extent "
                         f"{m.get('extent', 0):.3g}, relation residual {m.get('relation_residual')}")  # fmt: skip
    if len(s.get("attractors", [])) > 20:
        lines.append(f"    ... {len(s['attractors']) - 20} more")
    for kp in s.get("known", []):
        eig = kp.get("eigenvalues")
        lines.append(f"  known {kp['kind']:<8} {kp['name']:<24} {kp['classification']}"
                     + (f"  eig [{', '.join(f'{e:.4g}' for e in eig)}]" if eig is not None else "")
                     + ("" if kp.get("attractor", -1) < 0 else "  (reached)"))  # fmt: skip
    if s.get("basin_map"):
        lines.append(f"  basins      boundary fraction {s['boundary_fraction']:.4f}, basin entropy "
                     f"{s['basin_entropy']:.4f}, boundary basin entropy {s['boundary_basin_entropy']:.4f}")  # fmt: skip
    if s.get("start_points"):
        lines.append(f"  start points {s['start_points']} distinct (outcome probabilities per point stored)")
    med = s.get("median_steps_to_target")
    lines.append(f"  convergence f_opt {s.get('f_opt'):.6g}; target f - f_opt <= {s.get('ecdf_target'):.0e}: "
                 f"reached by {s.get('success_rate', 0):.1%}, median steps {med if med is not None else '-'}, "
                 f"ECDF area {s.get('ecdf_area', 0):.3f}")  # fmt: skip
    if s.get("census"):
        lines.append(f"  census      {s['census']} end points (index vs loss)")
    for k, v in (s.get("figures") or {}).items():
        lines.append(f"  figure      {k}: {v}")
    return "\n".join(lines)


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
