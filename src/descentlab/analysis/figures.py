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
