"""Sweep analysis: analyse every point (on the executor), basin fractions into the index, figures.

Figures (PNG, under ``DIR/figures`` by default):

* ``sensitivity_<metric>_vs_<x>.png``: a metric (median final loss, success
  rate) against one axis, one line per value of another axis, the other axes
  aggregated (median) - DeepOBS's hyperparameter-sensitivity plot;
* ``heatmap_<metric>_<x>_<y>.png``: the metric over two axes;
* ``basins_vs_<x>.png``: basin fractions against an axis (continuation over a
  parameter, as Attractors.jl does);
* ``ecdf_final_loss.png``: the ECDF of the final loss of every point.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..engine.store import StoreError
from .index import INDEX_NAME, SWEEP_FORMAT, write_sweep_index
from .spec import SweepPlan, expand


def analyze_task(path: str) -> dict[str, Any]:
    """Analyse one run file (writes its analysis); returns the summary. Safe to re-run."""
    from ..analysis import analyze

    return analyze(path).summary


def load_plan(directory: str | Path) -> SweepPlan:
    """The plan of the sweep in ``directory`` (from the spec stored in its index)."""
    import h5py

    index = Path(directory) / INDEX_NAME
    try:
        with h5py.File(index, "r") as f:
            if f.attrs.get("format") != SWEEP_FORMAT:
                raise StoreError(f"PATH: {index} is not a descentlab sweep index")
            spec = json.loads(f.attrs["spec"])
    except OSError as exc:
        raise StoreError(f"PATH: cannot open {index} ({exc})") from None
    return expand(spec)


def complete_points(directory: Path, plan: SweepPlan) -> list[int]:
    import h5py

    out = []
    for p in plan.points:
        try:
            with h5py.File(directory / p.file_name, "r") as f:
                if bool(f.attrs.get("complete", False)):
                    out.append(p.index)
        except OSError:
            continue
    return out


def analyze_sweep(directory: str | Path, plots_dir: str | Path | None = None, *, executor: Any = None,
                  progress: bool | None = None) -> dict[str, Any]:  # fmt: skip
    """Analyse every complete point of a sweep, rewrite the index with basin fractions, draw figures.

    Returns ``{"rows": [...], "figures": {name: path}, "missing": [point indices]}``.
    """
    from .execute import LocalExecutor

    directory = Path(directory)
    plan = load_plan(directory)
    done = complete_points(directory, plan)
    ex = executor or LocalExecutor()
    summaries = ex.map(analyze_task, [str(directory / plan.points[i].file_name) for i in done],
                       keys=[f"descentlab-analyze-{plan.points[i].hash}" for i in done], progress=progress)  # fmt: skip
    by_point: dict[int, dict[str, Any]] = dict(zip(done, summaries, strict=True))
    write_sweep_index(directory, plan)
    from .api import open_sweep

    with open_sweep(directory) as ds:
        data = ds[[v for v in ("loss_quantile", "success_rate", "steps_to_target", "basin_fraction") if v in ds]].load()
    rows = []
    for p in plan.points:
        s = by_point.get(p.index)
        rows.append({"point": p.index, **{k: v for k, v in p.axes.items()},
                     "median_loss": float(data.loss_quantile.sel(quantile=0.5).values[p.index]),
                     "success_rate": float(data.success_rate.values[p.index]),
                     "n_attractors": s["n_attractors"] if s else None})  # fmt: skip
    figures: dict[str, Path] = {}
    out = Path(plots_dir) if plots_dir is not None else directory / "figures"
    with warnings.catch_warnings():  # all-NaN groups (e.g. every particle diverged) are drawn as gaps
        warnings.simplefilter("ignore", RuntimeWarning)
        figures.update(sweep_figures(plan, data, by_point, directory, out))
    return {"rows": rows, "figures": figures, "missing": [p.index for p in plan.points if p.index not in by_point]}


def _varying(plan: SweepPlan) -> list[str]:
    return [k for k, v in plan.axes.items() if len({json.dumps(x) for x in v}) > 1]


def _numeric(values: Sequence[Any]) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def _group(plan: SweepPlan, metric: np.ndarray, keys: Sequence[str]) -> dict[tuple[str, ...], float]:
    """Median of ``metric`` over the points sharing the values of ``keys`` (NaN-aware)."""
    groups: dict[tuple[str, ...], list[float]] = {}
    for p in plan.points:
        groups.setdefault(tuple(json.dumps(p.axes[k]) for k in keys), []).append(float(metric[p.index]))
    return {k: float(np.nanmedian(v)) if np.isfinite(v).any() else float("nan") for k, v in groups.items()}


def sweep_figures(plan: SweepPlan, data: Any, summaries: dict[int, dict[str, Any]], directory: Path,
                  out: Path) -> dict[str, Path]:  # fmt: skip
    import h5py

    from ..analysis.plots import _save, new_figure

    figs: dict[str, Path] = {}
    axes = _varying(plan)
    metrics = {"median_final_loss": data.loss_quantile.sel(quantile=0.5).values,
               "success_rate": data.success_rate.values}  # fmt: skip
    if axes:
        x = next((k for k in axes if _numeric(plan.axes[k])), axes[0])
        others = [k for k in axes if k != x]
        line = others[0] if others else None
        xs = list(dict.fromkeys(json.dumps(v) for v in plan.axes[x]))
        xval = [json.loads(v) for v in xs]
        numeric = _numeric(xval)
        for name, metric in metrics.items():
            g = _group(plan, metric, [x] + ([line] if line else []))
            fig, ax = new_figure()
            lines = list(dict.fromkeys(json.dumps(v) for v in plan.axes[line])) if line else [None]
            for lv in lines:
                ys = [g.get((xv,) + ((lv,) if line else ()), np.nan) for xv in xs]
                ax.plot(xval if numeric else range(len(xs)), ys, marker="o",
                        label=f"{line} = {json.loads(lv)}" if line else name)  # fmt: skip
            if numeric and all(v > 0 for v in xval) and max(xval) / min(xval) > 20:
                ax.set_xscale("log")
            if not numeric:
                ax.set_xticks(range(len(xs)), [str(v) for v in xval])
            if name == "median_final_loss" and np.nanmin(metric) > 0:
                ax.set_yscale("log")
            ax.set_xlabel(x)
            ax.set_ylabel(name.replace("_", " ") + (f" (median over {', '.join(others[1:])})" if others[1:] else ""))
            ax.set_title(f"{name.replace('_', ' ')} vs {x}")
            ax.legend(fontsize=8)
            figs[f"sensitivity_{name}"] = _save(fig, out / f"sensitivity_{name}_vs_{x}.png")
        if line is not None:
            ys_ = list(dict.fromkeys(json.dumps(v) for v in plan.axes[line]))
            metric = metrics["median_final_loss"]
            g = _group(plan, metric, [x, line])
            grid = np.array([[g.get((a, b), np.nan) for a in xs] for b in ys_])
            fig, ax = new_figure()
            show = np.log10(np.where(grid > 0, grid, np.nan)) if np.nanmin(grid) > 0 else grid
            im = ax.imshow(show, aspect="auto", origin="lower", cmap="viridis")
            ax.set_xticks(range(len(xs)), [f"{v:.3g}" if isinstance(v, float) else str(v) for v in xval],
                          rotation=45, fontsize=7)  # fmt: skip
            ax.set_yticks(range(len(ys_)), [str(json.loads(v)) for v in ys_])
            ax.set_xlabel(x)
            ax.set_ylabel(line)
            fig.colorbar(im, ax=ax, label="log10 median final loss" if show is not grid else "median final loss")
            ax.set_title("median final loss")
            fig.tight_layout()
            figs["heatmap"] = _save(fig, out / f"heatmap_median_final_loss_{x}_{line}.png")
        if summaries and "basin_fraction" in data:
            bf = data.basin_fraction.values
            fig, ax = new_figure()
            for j, bname in enumerate(data.basin_name.values):
                g = _group(plan, bf[:, j], [x])
                ax.plot(xval if numeric else range(len(xs)), [g.get((v,), np.nan) for v in xs], marker="o",
                        label=f"attractor {bname}")  # fmt: skip
            if numeric and all(v > 0 for v in xval) and max(xval) / min(xval) > 20:
                ax.set_xscale("log")
            ax.set_xlabel(x)
            ax.set_ylabel("basin fraction" + (" (median over other axes)" if others else ""))
            ax.set_ylim(-0.02, 1.02)
            ax.legend(fontsize=7)
            ax.set_title(f"basin fractions vs {x}")
            figs["basins"] = _save(fig, out / f"basins_vs_{x}.png")
    fig, ax = new_figure()
    for p in plan.points:
        try:
            with h5py.File(directory / p.file_name, "r") as f:
                loss = np.sort(f["final/loss"][...].astype(np.float64))
        except OSError:
            continue
        loss = loss[np.isfinite(loss)]
        if loss.size:
            ax.step(np.maximum(loss, 1e-300), np.arange(1, loss.size + 1) / loss.size, where="post",
                    label=f"{p.index}: {p.label()}" if len(plan) <= 12 else None)  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("final loss")
    ax.set_ylabel("fraction of particles")
    ax.set_title("final-loss ECDF per point")
    if len(plan) <= 12:
        ax.legend(fontsize=6)
    figs["ecdf"] = _save(fig, out / "ecdf_final_loss.png")
    return figs


def format_rows(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return "(no points)"
    cols = list(rows[0])
    cells = [[("-" if r[c] is None else f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c])) for c in cols]
             for r in rows]  # fmt: skip
    width = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, width, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, width, strict=True)) for row in cells]
    return "\n".join(lines)
