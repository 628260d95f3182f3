"""Figures (matplotlib). Each function writes one PNG of :data:`FIGSIZE` at :data:`DPI`
(640 x 480 pixels) and returns its path.

Figures are made with :func:`new_figure` (``matplotlib.figure.Figure``, not pyplot): they
need no GUI backend and never touch the user's, so importing descentlab in a notebook or
a GUI session leaves matplotlib's backend as it was."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure

FIGSIZE = (6.4, 4.8)
DPI = 100
#: Pixel size of every figure (width, height).
PIXELS = (int(FIGSIZE[0] * DPI), int(FIGSIZE[1] * DPI))
_OUTCOME_COLOURS = {-1: "#bbbbbb", -2: "#000000", -3: "#7f3f00"}


def new_figure(figsize: tuple[float, float] = FIGSIZE, nrows: int = 1, ncols: int = 1, **kw: Any) -> tuple[Any, Any]:
    """``(figure, axes)`` like ``pyplot.subplots``, without pyplot (no backend, no global state)."""
    fig = Figure(figsize=figsize, **kw)
    return fig, fig.subplots(nrows, ncols)


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, format="png")
    return path


def contour_trajectories(lm: Any, low: Sequence[float], high: Sequence[float], trajectories: np.ndarray,
                         attractors: np.ndarray, names: Sequence[str], path: str | Path,
                         title: str = "") -> Path:  # fmt: skip
    """Loss contours of a 2-D landscape, sample trajectories (n, R, 2) and attractors (K, 2)."""
    fig, ax = new_figure()
    gx = np.linspace(low[0], high[0], 120)
    gy = np.linspace(low[1], high[1], 120)
    mx, my = np.meshgrid(gx, gy)
    z = lm.value(np.column_stack([mx.ravel(), my.ravel()])).reshape(mx.shape)
    finite = np.isfinite(z)
    if np.any(finite):
        zz = np.where(finite, z, np.nanmax(np.where(finite, z, np.nan)))
        shift = zz - zz.min()
        levels = np.unique(np.quantile(np.log1p(shift), np.linspace(0, 1, 25)))
        if levels.size >= 2:
            cs = ax.contourf(mx, my, np.log1p(shift), levels=levels, cmap="viridis")
            fig.colorbar(cs, ax=ax, label="log(1 + loss - min)")
    for tr in trajectories:
        ok = np.all(np.isfinite(tr), axis=1)
        ax.plot(tr[ok, 0], tr[ok, 1], "-", color="white", lw=0.6, alpha=0.7)
        if ok.any():
            ax.plot(tr[ok][0, 0], tr[ok][0, 1], ".", color="white", ms=2)
    for p, name in zip(attractors, names, strict=False):
        ax.plot(p[0], p[1], "r*", ms=10)
        ax.annotate(name, (p[0], p[1]), color="red", fontsize=7, xytext=(4, 4), textcoords="offset points")
    ax.set_xlim(low[0], high[0])
    ax.set_ylim(low[1], high[1])
    ax.set_xlabel("x[0]")
    ax.set_ylabel("x[1]")
    ax.set_title(title or "loss landscape and trajectories")
    return _save(fig, path)


def basin_map(grid: np.ndarray, low: Sequence[float], high: Sequence[float], names: Sequence[str],
              path: str | Path, title: str = "") -> Path:  # fmt: skip
    """Basin map of a 2-D grid initialisation: colour = attractor label (axis 0 is x[0])."""
    grid = np.asarray(grid)
    k = len(names)
    codes = sorted(set(np.unique(grid).tolist()) | set(range(k)))
    base = matplotlib.colormaps["tab20"]
    colours = [_OUTCOME_COLOURS.get(c, base(c % 20)) for c in codes]
    cmap = ListedColormap(colours)
    bounds = np.array([*codes, codes[-1] + 1], dtype=float) - 0.5
    norm = BoundaryNorm(bounds, cmap.N)
    fig, ax = new_figure()
    ax.imshow(grid.T, origin="lower", extent=(low[0], high[0], low[1], high[1]), cmap=cmap, norm=norm,
              interpolation="nearest", aspect="auto")  # fmt: skip
    from matplotlib.patches import Patch

    labels = {-1: "not converged", -2: "diverged", -3: "left the bound"}
    handles = [Patch(color=colours[i], label=names[c] if 0 <= c < k else labels.get(c, str(c)))
               for i, c in enumerate(codes) if np.any(grid == c)]  # fmt: skip
    if handles:
        ax.legend(handles=handles[:12], fontsize=7, loc="upper right", framealpha=0.8)
    ax.set_xlabel("x[0] (start)")
    ax.set_ylabel("x[1] (start)")
    ax.set_title(title or "basins of attraction")
    return _save(fig, path)


def ecdf(curves: Sequence[tuple[str, np.ndarray, np.ndarray]], path: str | Path, title: str = "") -> Path:
    """ECDFs of steps-to-target: curves of (label, budgets, fraction)."""
    fig, ax = new_figure()
    for label, budgets, frac in curves:
        b = np.maximum(np.asarray(budgets, dtype=float), 0.5)
        ax.step(b, frac, where="post", label=label)
    ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("steps")
    ax.set_ylabel("fraction of (particle, target) pairs reached")
    ax.set_title(title or "steps-to-target ECDF")
    if curves:
        ax.legend(fontsize=8)
    return _save(fig, path)


def loss_bands(bands: Sequence[tuple[str, np.ndarray, np.ndarray, Sequence[float]]], path: str | Path,
               title: str = "") -> Path:  # fmt: skip
    """Median loss and quantile bands per run: (label, steps (R,), quantiles (Q, R), levels (Q,))."""
    fig, ax = new_figure()
    floor = np.inf
    for i, (label, steps, q, levels) in enumerate(bands):
        colour = f"C{i % 10}"
        q = np.asarray(q, dtype=float)
        lv = list(levels)
        mid = lv.index(0.5) if 0.5 in lv else len(lv) // 2
        for j in range(mid):
            ax.fill_between(steps, q[j], q[-1 - j], color=colour, alpha=0.15 + 0.15 * j, lw=0)
        ax.plot(steps, q[mid], color=colour, label=f"{label} (median)")
        pos = q[np.isfinite(q) & (q > 0)]
        if pos.size:
            floor = min(floor, float(pos.min()))
    if np.isfinite(floor):
        ax.set_yscale("symlog", linthresh=max(floor, 1e-12))
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title or "loss: median and quantile bands")
    if bands:
        ax.legend(fontsize=8)
    return _save(fig, path)


def spectra(eigenvalues: np.ndarray, names: Sequence[str], path: str | Path, title: str = "") -> Path:
    """Hessian eigenvalues of each attractor / critical point (one row of dots each)."""
    eig = np.asarray(eigenvalues, dtype=float).reshape(len(names), -1) if len(names) else np.zeros((0, 1))
    fig, ax = new_figure()
    for i, row in enumerate(eig[:30]):
        ax.scatter(row, np.full(row.shape, i), s=12, c=np.where(row < 0, "tab:red", "tab:blue"))
    ax.axvline(0.0, color="k", lw=0.5)
    ax.set_yticks(range(min(30, len(names))))
    ax.set_yticklabels([n[:28] for n in names[:30]], fontsize=7)
    ax.set_xscale("symlog", linthresh=1e-3)
    ax.set_xlabel("Hessian eigenvalue")
    ax.set_title(title or "Hessian spectra at the attractors")
    fig.subplots_adjust(left=0.3)
    return _save(fig, path)


def index_vs_loss(loss: np.ndarray, index: np.ndarray, path: str | Path, title: str = "",
                  highlight: tuple[np.ndarray, np.ndarray] | None = None) -> Path:  # fmt: skip
    """Critical-point census: index (fraction of negative eigenvalues) against loss."""
    fig, ax = new_figure()
    ax.scatter(loss, index, s=6, alpha=0.5, label="end points")
    if highlight is not None and len(highlight[0]):
        ax.scatter(highlight[0], highlight[1], s=40, marker="*", color="tab:red", label="attractors / saddles")
    ax.set_xlabel("loss")
    ax.set_ylabel("index (fraction of negative eigenvalues)")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title(title or "critical-point census")
    ax.legend(fontsize=8)
    return _save(fig, path)
