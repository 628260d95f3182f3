"""The built-in demo: particles on Himmelblau under three optimizers.

Writes one run file per optimizer (``DIR/himmelblau_<name>.h5``) and a figure
``DIR/himmelblau_trajectories.png``: the contour of the landscape with a sample
of trajectories and every end point, one panel per optimizer, plus a line per
run with its status counts and which minimum the converged particles reached.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

#: The three optimizers of the demo: (file name, optimizer table).
DEMO_OPTIMIZERS: list[tuple[str, dict[str, Any]]] = [
    ("sgd", {"name": "sgd", "lr": 0.01}),
    ("momentum", {"name": "sgd", "lr": 0.002, "momentum": 0.9}),
    ("adam", {"name": "adam", "lr": 0.05}),
]


def demo_spec(optimizer: dict[str, Any], particles: int = 10_000, steps: int = 500) -> dict[str, Any]:
    return {
        "run": {"particles": particles, "steps": steps, "record_every": max(1, steps // 100), "seed": 2024},
        "landscape": {"name": "himmelblau"},
        "optimizer": dict(optimizer),
        "init": {"scheme": "uniform", "low": -5.0, "high": 5.0},
        "stop": {"grad_tol": 1e-6, "patience": 1, "bound": 1e3},
    }


def _contour_grid(land: Any, lo: float, hi: float, n: int = 241) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    xs = np.linspace(lo, hi, n)
    gx, gy = np.meshgrid(xs, xs)
    pts = np.ascontiguousarray(np.stack([gx.ravel(), gy.ravel()]))
    out = np.empty(pts.shape[1])
    land.value(pts, np.zeros(1), np.zeros((1, pts.shape[1])), out, 0, pts.shape[1])
    return gx, gy, out.reshape(gx.shape)


def run_demo(
    out_dir: str | Path, *, particles: int = 10_000, steps: int = 500, echo: Callable[[str], None] = print
) -> list[Path]:
    """Run the demo into ``out_dir``; returns the paths written (files and figure)."""
    from .analysis.plots import new_figure
    from .core.status import Status
    from .engine.store import open_run, write_run
    from .landscapes import get_landscape

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    land = get_landscape("himmelblau")
    minima = land.minima({}, 2)
    written: list[Path] = []
    from .analysis.pipeline import optimizer_label

    fig, axes = new_figure((5.0 * len(DEMO_OPTIMIZERS) + 1.2, 5.6), 1, len(DEMO_OPTIMIZERS), dpi=110)
    gx, gy, gz = _contour_grid(land, -5.5, 5.5)
    rng = np.random.default_rng(0)
    cs = None
    for ax, (label, opt) in zip(np.atleast_1d(axes), DEMO_OPTIMIZERS, strict=True):
        path = out_dir / f"himmelblau_{label}.h5"
        spec = demo_spec(opt, particles, steps)
        write_run(spec, path, overwrite=True)
        written.append(path)
        with open_run(path) as f:
            counts = f.status_counts() or {}
            fx = f.final_x[...]
            status = f.status[...]
            n = fx.shape[0]
            pick = np.sort(rng.choice(n, size=min(n, 60), replace=False))
            traj = f.trajectory_x[pick, :, :]
        reached = []
        conv = status == Status.CONVERGED
        for name, pt in minima:
            k = int(np.sum(conv & (np.linalg.norm(fx - pt, axis=1) < 1e-3)))
            reached.append(f"{name}: {k}")
        echo(f"{path}: {label:<8} " + ", ".join(f"{k} {v}" for k, v in counts.items() if v)
             + "; converged to " + ", ".join(reached))  # fmt: skip
        cs = ax.contour(gx, gy, np.log1p(gz), levels=30, cmap="viridis", linewidths=0.6)
        for j, tr in enumerate(traj):
            ax.plot(tr[:, 0], tr[:, 1], "-", color="tab:red", lw=0.6, alpha=0.55,
                    label="trajectories (60)" if j == 0 else None)  # fmt: skip
        ax.scatter(traj[:, 0, 0], traj[:, 0, 1], s=6, color="black", zorder=3, label="start (60)")
        for j, (_, pt) in enumerate(minima):
            ax.plot(pt[0], pt[1], "*", ms=16, mfc="none", mec="black", mew=1.3, zorder=6, ls="",
                    label="known minima" if j == 0 else None)  # fmt: skip
        inb = np.all(np.abs(fx) < 5.5, axis=1)
        ax.scatter(fx[inb, 0], fx[inb, 1], s=5, color="tab:orange", zorder=5,
                   label=f"end points (all {int(inb.sum())} in view)")  # fmt: skip
        conv_n = counts.get("converged", 0)
        ax.set_title(f"{optimizer_label(spec)}\n{conv_n}/{n} met grad_tol {spec['stop']['grad_tol']:g}", fontsize=10)
        ax.set_xlim(-5.5, 5.5)
        ax.set_ylim(-5.5, 5.5)
        ax.set_aspect("equal")
        ax.set_xlabel("x[0]")
        ax.set_ylabel("x[1]")
    handles, labels = np.atleast_1d(axes)[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=9, frameon=False)
    fig.suptitle(f"Himmelblau: {particles} particles x {steps} steps per optimizer, uniform starts in [-5, 5]^2 "
                 "(60 trajectories shown)")  # fmt: skip
    fig.subplots_adjust(left=0.05, right=0.9, bottom=0.16, top=0.85, wspace=0.25)
    if cs is not None:
        fig.colorbar(cs, cax=fig.add_axes((0.915, 0.2, 0.01, 0.6)), label="log(1 + loss)")
    fig_path = out_dir / "himmelblau_trajectories.png"
    fig.savefig(fig_path)
    written.append(fig_path)
    echo(f"{fig_path}: figure")

    # the analysis of the three runs: basins per optimizer, then one comparison table
    from .analysis import analyze, compare
    from .analysis.convergence import format_table

    runs = [p for p in written if p.suffix == ".h5"]
    for path in runs:
        res = analyze(path, out_dir / path.stem, progress=None)
        echo(f"{path}: {res!r}")
        written.extend(sorted((out_dir / path.stem).glob("*.png")))
    rows, figs = compare(runs, out_dir)
    echo(format_table(rows))
    written.extend(figs.values())
    return written
