"""The figures of one analysis."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .pipeline import _init_box, _landscape
from .result import AnalysisResult, RunData


def _sample_trajectories(traj: Any, labels: np.ndarray, k: int = 60) -> np.ndarray:
    n = int(traj.shape[0])
    idx = np.unique(np.linspace(0, n - 1, min(n, k)).astype(np.int64))
    return np.asarray(traj[idx.tolist()] if not isinstance(traj, np.ndarray) else traj[idx], dtype=float)


def run_title(summary: dict[str, Any], spec: dict[str, Any]) -> str:
    """``landscape (D) / optimizer with its hyperparameters / particles x steps``: what a figure shows."""
    steps = spec.get("run", {}).get("steps", "?")
    return (f"{summary['landscape']} (D={summary['dim']}) / {summary['optimizer']} / "
            f"{summary['particles']} particles x {steps} steps")  # fmt: skip


def ecdf_note(conv: dict[str, Any], total: int) -> str:
    """The line under an ECDF: its targets, reference and step resolution."""
    t = ", ".join(f"{x:.0e}" for x in conv["targets"])
    every = int(conv.get("record_every") or total)
    res = (f"steps resolved to record_every = {every}" if every < total
           else "only start and end recorded: a target counts at the last step")  # fmt: skip
    return f"targets f - f_ref <= {{{t}}}\nf_ref = {float(conv['f_opt']):.6g} ({conv['reference_kind']}); {res}"


def make_figures(ar: AnalysisResult, data: RunData, plots_dir: str | Path, stem: str) -> dict[str, Path]:
    """Write the figures of one analysis into ``plots_dir`` (PNG); returns {name: path}."""
    from . import plots
    from .registry import ANALYSES
    from .steps import total_steps

    out = Path(plots_dir)
    out.mkdir(parents=True, exist_ok=True)
    lm = _landscape(data.spec)
    s = ar.summary
    title = run_title(s, data.spec)
    total = total_steps(data.spec, data.record_steps)
    rec = np.asarray(data.record_steps)
    straight = rec.shape[0] <= 2
    figs: dict[str, Path] = {}
    if lm.dim == 2:
        low, high = _init_box(data.spec, lm, np.asarray(data.init_x))
        pad = 0.05 * (high - low)
        tr = _sample_trajectories(data.trajectory_x, ar.labels)
        fx = np.asarray(data.final_x, dtype=float)
        inside = np.all(np.isfinite(fx) & (fx >= low - pad) & (fx <= high + pad), axis=1)
        ends = fx[inside][:: max(1, int(inside.sum()) // 2000)]
        note = " (only start and end recorded: straight lines)" if straight else ""
        fig = plots.contour_trajectories(
            lm, low - pad, high + pad, tr, ar.attractors.positions[:20], ar.attractors.names[:20],
            title=title + "\ntrajectories" + note, end_points=ends,
        )  # fmt: skip
        figs["contour"] = plots.save(fig, out / f"{stem}_contour.png")
        if ar.basin_map is not None:
            known = [nm for nm, _, _ in _known_points_of(lm)]
            fig = plots.basin_map(ar.basin_map, low, high, ar.attractors.names, title=title + "\nbasins of attraction",
                                  known=known)  # fmt: skip
            figs["basin_map"] = plots.save(fig, out / f"{stem}_basin_map.png")
    c = ar.convergence
    fig = plots.ecdf([(s["optimizer"], c["ecdf_budget"], c["ecdf"])], title=title, note=ecdf_note(c, total))
    figs["ecdf"] = plots.save(fig, out / f"{stem}_ecdf.png")
    fig = plots.loss_bands([(s["optimizer"], c["record_step"], c["loss_quantile"], c["quantile_level"])],
                           title=title)  # fmt: skip
    figs["loss_bands"] = plots.save(fig, out / f"{stem}_loss_bands.png")
    names = list(ar.attractors.names)
    eig = ar.critical.eigenvalues
    unmatched = [i for i, a in enumerate(ar.known["attractor"]) if a < 0]
    if unmatched and eig.shape[1] == np.asarray(ar.known["eigenvalues"]).shape[1]:
        names += [f"{ar.known['name'][i]} ({ar.known['kind'][i]}, known)" for i in unmatched]
        eig = np.concatenate([eig, ar.known["eigenvalues"][unmatched]], axis=0)
    if names:
        sub = "Hessian spectra of the attractors" + (" and of known points not reached" if unmatched else "")
        fig = plots.spectra(eig, names, title=title + "\n" + sub)
        figs["spectra"] = plots.save(fig, out / f"{stem}_spectra.png")
    if ar.census is not None:
        fig = plots.index_vs_loss(ar.census["loss"], ar.census["index_fraction"], title=title,
                                  highlight=(ar.attractors.losses, ar.critical.index_fraction))  # fmt: skip
        figs["index_vs_loss"] = plots.save(fig, out / f"{stem}_index_vs_loss.png")
    for an in ANALYSES.values():
        if an.figures is not None:
            figs.update(an.figures(ar.results, data, lm, out, stem, title))

    return figs


def _known_points_of(lm: Any) -> list[tuple[str, np.ndarray, str]]:
    land = lm.landscape
    pts = [(nm, p, "minimum") for nm, p in land.minima(lm.params, lm.dim)]
    return pts + [(nm, p, "saddle") for nm, p in land.saddles(lm.params, lm.dim)]
