"""Figures (matplotlib). Each function draws into ``ax`` (a new figure of :data:`FIGSIZE`
when None), writes a PNG at :data:`DPI` when given a ``path``, and returns the
``matplotlib.figure.Figure`` - so in a notebook ``plots.ecdf(curves)`` shows itself and
several plots can share one figure (``fig, axes = new_figure(ncols=2)``; ``ax=axes[0]``).

Figures are made with :func:`new_figure` (``matplotlib.figure.Figure``, not pyplot): they
need no GUI backend and never touch the user's, so importing descentlab in a notebook or
a GUI session leaves matplotlib's backend as it was."""

from __future__ import annotations

import zlib
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
_OUTCOME_NAMES = {-1: "not settled", -2: "diverged", -3: "left the bound"}


def new_figure(figsize: tuple[float, float] = FIGSIZE, nrows: int = 1, ncols: int = 1, **kw: Any) -> tuple[Any, Any]:
    """``(figure, axes)`` like ``pyplot.subplots``, without pyplot (no backend, no global state)."""
    fig = Figure(figsize=figsize, **kw)
    return fig, fig.subplots(nrows, ncols)


def save(fig: Any, path: str | Path) -> Path:
    """Write ``fig`` as a PNG at :data:`DPI`; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, format="png")
    return path


_save = save


def _axes(ax: Any, figsize: tuple[float, float] = FIGSIZE) -> tuple[Any, Any]:
    if ax is None:
        return new_figure(figsize)
    return ax.figure, ax


def _done(fig: Any, path: str | Path | None) -> Any:
    if path is not None:
        save(fig, path)
    return fig


def stable_colour(name: str, known: Sequence[str] = ()) -> Any:
    """The colour of an attractor, the same in every run: a known point's by its index among the
    landscape's known points (``known``, tab10), any other by a hash of its name - its rounded
    position - (Set2)."""
    if name in known:
        return matplotlib.colormaps["tab10"](list(known).index(name) % 10)
    return matplotlib.colormaps["Set2"](zlib.crc32(name.encode()) % 8)


def contour_trajectories(lm: Any, low: Sequence[float], high: Sequence[float], trajectories: np.ndarray,
                         attractors: np.ndarray, names: Sequence[str], path: str | Path | None = None,
                         title: str = "", *, ax: Any = None, end_points: np.ndarray | None = None) -> Any:  # fmt: skip
    """Loss contours of a 2-D landscape with sample trajectories (n, R, 2), their start (white dots)
    and end points (orange), every end point given in ``end_points`` (m, 2) and the attractors (K, 2)."""
    fig, ax = _axes(ax)
    gx = np.linspace(low[0], high[0], 160)
    gy = np.linspace(low[1], high[1], 160)
    mx, my = np.meshgrid(gx, gy)
    z = lm.value(np.column_stack([mx.ravel(), my.ravel()])).reshape(mx.shape)
    finite = np.isfinite(z)
    if np.any(finite):
        zz = np.where(finite, z, np.nanmax(np.where(finite, z, np.nan)))
        low_z = min(0.0, float(zz.min()))  # shift only a landscape that goes below 0
        shift = zz - low_z
        levels = np.unique(np.quantile(np.log1p(shift), np.linspace(0, 1, 25)))
        if levels.size >= 2:
            cs = ax.contourf(mx, my, np.log1p(shift), levels=levels, cmap="viridis")
            fig.colorbar(cs, ax=ax, label="log(1 + loss)" if low_z == 0 else f"log(1 + loss + {-low_z:.3g})",
                         format="%.2g")  # fmt: skip
    for tr in trajectories:
        ok = np.all(np.isfinite(tr), axis=1)
        ax.plot(tr[ok, 0], tr[ok, 1], "-", color="white", lw=0.6, alpha=0.7)
    starts = np.array([tr[np.all(np.isfinite(tr), axis=1)][0] for tr in trajectories
                       if np.any(np.all(np.isfinite(tr), axis=1))]).reshape(-1, 2)  # fmt: skip
    if starts.size:
        ax.plot(starts[:, 0], starts[:, 1], "o", color="white", ms=2.5, mec="k", mew=0.3, ls="",
                label=f"start ({len(starts)} trajectories)")  # fmt: skip
    if end_points is not None and len(end_points):
        ep = np.asarray(end_points)
        ax.plot(ep[:, 0], ep[:, 1], ".", color="tab:orange", ms=3, ls="", zorder=4, label=f"end points ({len(ep)})")
    for i, (p, name) in enumerate(zip(attractors, names, strict=False)):
        ax.plot(p[0], p[1], "*", color="red", mec="k", mew=0.5, ms=11, zorder=5, ls="",
                label="attractors" if i == 0 else None)  # fmt: skip
        ax.annotate(name, (p[0], p[1]), color="white", fontsize=7, xytext=(5, 4), textcoords="offset points",
                    bbox={"boxstyle": "round,pad=0.15", "fc": "black", "alpha": 0.55, "lw": 0})  # fmt: skip
    ax.set_xlim(low[0], high[0])
    ax.set_ylim(low[1], high[1])
    ax.set_xlabel("x[0]")
    ax.set_ylabel("x[1]")
    ax.set_aspect("equal" if 0.33 < (high[1] - low[1]) / max(high[0] - low[0], 1e-300) < 3 else "auto")
    ax.set_title(title or "loss landscape and trajectories", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.12), ncol=3, frameon=False)
    fig.tight_layout()
    return _done(fig, path)


def basin_map(grid: np.ndarray, low: Sequence[float], high: Sequence[float], names: Sequence[str],
              path: str | Path | None = None, title: str = "", *, ax: Any = None,
              known: Sequence[str] = (), xlabel: str = "x[0] (start)",
              ylabel: str = "x[1] (start)") -> Any:  # fmt: skip
    """Basin map of a 2-D grid of starting points: the colour of a cell is the attractor its particle
    reached (``names[label]``; colours by :func:`stable_colour`, so a minimum has the same colour in
    every run) or its outcome (not settled, diverged, left the bound). Axis 0 of ``grid`` is x[0]."""
    grid = np.asarray(grid)
    k = len(names)
    codes = sorted(set(np.unique(grid).tolist()) | set(range(k)))
    colours = [_OUTCOME_COLOURS[c] if c < 0 else stable_colour(names[c], known) for c in codes]
    cmap = ListedColormap(colours)
    bounds = np.array([*codes, codes[-1] + 1], dtype=float) - 0.5
    norm = BoundaryNorm(bounds, cmap.N)
    fig, ax = _axes(ax, (FIGSIZE[0], FIGSIZE[1]))
    ax.imshow(grid.T, origin="lower", extent=(low[0], high[0], low[1], high[1]), cmap=cmap, norm=norm,
              interpolation="nearest", aspect="equal")  # fmt: skip
    from matplotlib.patches import Patch

    n = grid.size
    handles = [Patch(color=colours[i], label=f"{names[c] if c >= 0 else _OUTCOME_NAMES.get(c, str(c))} "
                                             f"({np.sum(grid == c) / n:.1%})")
               for i, c in enumerate(codes) if np.any(grid == c)]  # fmt: skip
    if handles:
        more = len(handles) - 14
        ax.legend(handles=handles[:14], fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0,
                  title=f"outcome (+{more} more)" if more > 0 else "outcome", title_fontsize=7)  # fmt: skip
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title or "basins of attraction", fontsize=9)
    fig.tight_layout()
    return _done(fig, path)


def ecdf(curves: Sequence[tuple[str, np.ndarray, np.ndarray]], path: str | Path | None = None, title: str = "",
         *, ax: Any = None, note: str = "") -> Any:  # fmt: skip
    """ECDFs of steps-to-target: curves of (label, budgets, fraction of (particle, target) pairs).
    ``note``: a line under the title (the targets, the reference, the record interval)."""
    fig, ax = _axes(ax)
    for label, budgets, frac in curves:
        b = np.maximum(np.asarray(budgets, dtype=float), 0.5)
        ax.step(b, frac, where="post", label=label)
    ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("steps (budget)")
    ax.set_ylabel("fraction of (particle, target) pairs reached")
    ax.set_title((title or "steps-to-target ECDF") + (f"\n{note}" if note else ""), fontsize=8)
    if curves:
        ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _done(fig, path)


def loss_bands(bands: Sequence[tuple[str, np.ndarray, np.ndarray, Sequence[float]]], path: str | Path | None = None,
               title: str = "", *, ax: Any = None) -> Any:  # fmt: skip
    """Median loss and quantile bands per run: (label, steps (R,), quantiles (Q, R), levels (Q,)).
    The y axis is logarithmic when every quantile is positive (symmetric-log otherwise)."""
    fig, ax = _axes(ax)
    lowest, any_nonpos = np.inf, False
    level_text = ""
    for i, (label, steps, q, levels) in enumerate(bands):
        colour = f"C{i % 10}"
        q = np.asarray(q, dtype=float)
        lv = list(levels)
        mid = lv.index(0.5) if 0.5 in lv else len(lv) // 2
        for j in range(mid):
            ax.fill_between(steps, q[j], q[-1 - j], color=colour, alpha=0.12 + 0.12 * j, lw=0)
        ax.plot(steps, q[mid], color=colour, label=label)
        level_text = ", ".join(f"{lv[j]:.0%}-{lv[-1 - j]:.0%}" for j in range(mid))
        fin = q[np.isfinite(q)]
        any_nonpos |= bool(np.any(fin <= 0))
        pos = fin[fin > 0]
        if pos.size:
            lowest = min(lowest, float(pos.min()))
    if np.isfinite(lowest) and not any_nonpos:
        ax.set_yscale("log")
    elif np.isfinite(lowest):
        ax.set_yscale("symlog", linthresh=max(lowest, 1e-300))
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    sub = f"line: median over particles; shaded: quantile bands {level_text}" if level_text else ""
    ax.set_title((title or "loss") + (f"\n{sub}" if sub else ""), fontsize=8)
    if bands:
        ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _done(fig, path)


def spectra(eigenvalues: np.ndarray, names: Sequence[str], path: str | Path | None = None, title: str = "",
            *, ax: Any = None) -> Any:  # fmt: skip
    """Hessian eigenvalues of each attractor / critical point (one row of dots each; red negative).

    The x axis is symmetric-logarithmic around zero with its linear part set by the smallest
    nonzero |eigenvalue|, and spans only the eigenvalues' range."""
    eig = np.asarray(eigenvalues, dtype=float).reshape(len(names), -1) if len(names) else np.zeros((0, 1))
    eig = eig[:30]
    fig, ax = _axes(ax)
    for i, row in enumerate(eig):
        ok = np.isfinite(row)
        ax.scatter(row[ok], np.full(int(ok.sum()), i), s=16, c=np.where(row[ok] < 0, "tab:red", "tab:blue"),
                   clip_on=False, zorder=3)  # fmt: skip
    fin = eig[np.isfinite(eig)]
    if not (fin.size and fin.min() > 0):
        ax.axvline(0.0, color="k", lw=0.5)
    lo, hi = (float(fin.min()), float(fin.max())) if fin.size else (0.0, 0.0)
    if fin.size and lo > 0:  # a spectrum of minima: a plain log axis over its range
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        ax.set_xscale("log")
        ax.set_xlim(lo / 1.8, hi * 1.8)
        if hi / lo < 100:  # within two decades: ticks at 1, 2, 5 x 10^k, written plainly
            ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        else:  # decades only, at most about eight labels
            ax.xaxis.set_major_locator(LogLocator(base=10, numticks=8))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("Hessian eigenvalue (log scale)")
    elif fin.size:
        # linear within 1e-3 of the largest |eigenvalue| (smaller ones are 'flat' at this resolution):
        # at most three decades on each side, so the axis is spent on the eigenvalues
        top = float(np.max(np.abs(fin)))
        lin = 10.0 ** np.floor(np.log10(top * 1e-3)) if top > 0 else 1.0
        ax.set_xscale("symlog", linthresh=lin, linscale=0.7)
        ax.set_xlabel(f"Hessian eigenvalue (symmetric log, linear within +-{lin:g}; red < 0)")

        ax.set_xlim(lo * 1.8 if lo < 0 else -0.5 * lin, hi * 1.8 if hi > 0 else 0.5 * lin)
        from matplotlib.ticker import SymmetricalLogLocator

        loc = SymmetricalLogLocator(linthresh=lin, base=10)
        loc.numticks = 6
        ax.xaxis.set_major_locator(loc)
    ax.set_yticks(range(len(eig)))
    ax.set_yticklabels([n[:30] for n in names[:30]], fontsize=7)
    ax.set_ylim(-0.6, max(len(eig) - 0.4, 0.6))
    ax.tick_params(axis="x", labelsize=7)
    ax.set_title(title or "Hessian spectra at the attractors", fontsize=9)
    fig.tight_layout()
    return _done(fig, path)


def index_vs_loss(loss: np.ndarray, index: np.ndarray, path: str | Path | None = None, title: str = "",
                  highlight: tuple[np.ndarray, np.ndarray] | None = None, *, ax: Any = None) -> Any:  # fmt: skip
    """Critical-point census: index fraction (fraction of negative Hessian eigenvalues) against loss,
    at the end points of particles that settled at an attractor; ``highlight`` (losses, index
    fractions) of the attractors."""
    fig, ax = _axes(ax)
    loss = np.asarray(loss, dtype=float)
    ax.scatter(loss, index, s=6, alpha=0.5, label=f"settled end points ({len(loss)})")
    if highlight is not None and len(highlight[0]):
        ax.scatter(highlight[0], highlight[1], s=40, marker="*", color="tab:red", label="attractors")
    fin = loss[np.isfinite(loss)]
    if fin.size and fin.min() > 0 and fin.max() / fin.min() > 100:
        ax.set_xscale("log")
    ax.set_xlabel("loss")
    ax.set_ylabel("index fraction (negative eigenvalues / D)")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title(title or "critical-point census", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _done(fig, path)


def pca_trajectories(projection: np.ndarray, explained: np.ndarray, path: str | Path | None = None, title: str = "",
                     *, ax: Any = None, attractors: np.ndarray | None = None) -> Any:  # fmt: skip
    """Trajectories (S, R, 2) projected on their top two principal components (``explained`` (2,)
    fractions of the variance), starts in black, ends in orange, attractors (K, 2) as stars."""
    fig, ax = _axes(ax)
    p = np.asarray(projection, dtype=float)
    for j, tr in enumerate(p):
        ok = np.all(np.isfinite(tr), axis=1)
        ax.plot(tr[ok, 0], tr[ok, 1], "-", color="tab:red", lw=0.6, alpha=0.5, label="trajectories" if j == 0 else None)
    first = np.array([tr[np.all(np.isfinite(tr), axis=1)][0] for tr in p if np.any(np.all(np.isfinite(tr), axis=1))])
    last = np.array([tr[np.all(np.isfinite(tr), axis=1)][-1] for tr in p if np.any(np.all(np.isfinite(tr), axis=1))])
    if first.size:
        ax.plot(first[:, 0], first[:, 1], "o", color="black", ms=2.5, ls="", label=f"start ({len(first)})")
        ax.plot(last[:, 0], last[:, 1], "o", color="tab:orange", ms=3, ls="", label="end")
    if attractors is not None and len(attractors):
        a = np.asarray(attractors)
        ax.plot(a[:, 0], a[:, 1], "*", color="red", mec="k", ms=11, ls="", label="attractors")
    ex = np.asarray(explained, dtype=float)
    ax.set_xlabel(f"PC1 ({ex[0]:.1%} of the variance)")
    ax.set_ylabel(f"PC2 ({ex[1]:.1%} of the variance)" if ex.size > 1 else "PC2")
    ax.set_title(title or "trajectories on their principal components", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _done(fig, path)


def loss_plane(alpha: np.ndarray, beta: np.ndarray, loss: np.ndarray, path: str | Path | None = None,
               title: str = "", *, ax: Any = None, end_points: np.ndarray | None = None) -> Any:  # fmt: skip
    """Loss on a 2-D plane (``loss`` (A, B), axis 0 alpha) with filled log contours; ``end_points``
    (m, 2) their coordinates on the plane (projections)."""
    fig, ax = _axes(ax)
    z = np.asarray(loss, dtype=float)
    fin = np.isfinite(z)
    if np.any(fin):
        zz = np.where(fin, z, np.nanmax(np.where(fin, z, np.nan)))
        lo = float(zz.min())
        shifted = zz - lo
        floor = max(1e-300, 1e-4 * float(shifted.max()))  # four decades below the highest: the bottom colour
        v = np.log10(np.maximum(shifted, floor))
        levels = np.linspace(float(v.min()), float(v.max()), 25)
        if levels[-1] > levels[0]:
            cs = ax.contourf(alpha, beta, v.T, levels=levels, cmap="viridis")
            fig.colorbar(cs, ax=ax, label="log10(loss)" if lo == 0 else f"log10(loss - {lo:.4g})", format="%.2g")
    ax.plot(0, 0, "*", color="red", mec="k", ms=12, ls="", label="center (main attractor)")
    if end_points is not None and len(end_points):
        e = np.asarray(end_points)
        inside = np.all(np.isfinite(e), axis=1) & (np.abs(e[:, 0]) <= np.max(np.abs(alpha))) & (
            np.abs(e[:, 1]) <= np.max(np.abs(beta)))  # fmt: skip
        ax.plot(e[inside, 0], e[inside, 1], ".", color="tab:orange", ms=3, ls="",
                label=f"end points projected ({int(inside.sum())})")  # fmt: skip
    ax.set_xlabel("alpha (along direction 1)")
    ax.set_ylabel("beta (along direction 2)")
    ax.set_aspect("equal")
    ax.set_title(title or "loss on a plane", fontsize=8)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.12), ncol=2, frameon=False)
    fig.tight_layout()
    return _done(fig, path)


def sharpness_path(steps: np.ndarray, sharpness: np.ndarray, path: str | Path | None = None, title: str = "",
                   *, ax: Any = None, limit: float | None = None) -> Any:  # fmt: skip
    """Largest Hessian eigenvalue (S, R) along S trajectories at the record ``steps`` (R,), their
    median in black, and the stability limit of gradient descent ``limit`` (2 / lr) dashed."""
    fig, ax = _axes(ax)
    sh = np.asarray(sharpness, dtype=float)
    for j, row in enumerate(sh):
        ax.plot(steps, row, "-", color="tab:blue", lw=0.7, alpha=0.5, label="particles" if j == 0 else None)
    if sh.size:
        with np.errstate(all="ignore"):
            ax.plot(steps, np.nanmedian(sh, axis=0), "-", color="black", lw=1.5, label="median")
    if limit is not None:
        ax.axhline(limit, color="tab:red", ls="--", lw=1, label=f"2 / lr (x (1 + momentum)) = {limit:.4g}")
    fin = sh[np.isfinite(sh)]
    if fin.size and fin.min() > 0 and fin.max() / fin.min() > 50:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("sharpness (largest Hessian eigenvalue)")
    ax.set_title(title or "sharpness along the trajectories", fontsize=8)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _done(fig, path)
