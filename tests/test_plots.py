"""Figures: every plot is a non-empty PNG of the expected size, made headless."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.image as mpimg
import numpy as np
import pytest

import descentlab
from descentlab.analysis import analyze_result, plots
from descentlab.analysis.critical import LandscapeMath
from descentlab.landscapes.registry import get_landscape


def _check_png(path):
    img = mpimg.imread(path)
    w, h = plots.PIXELS
    assert img.shape[:2] == (h, w)
    assert img.shape[2] in (3, 4)
    assert float(np.ptp(img[..., :3])) > 0.1  # not a blank canvas


def test_backend_is_headless():
    assert matplotlib.get_backend().lower() == "agg"


@pytest.fixture(scope="module")
def himmelblau_figures(tmp_path_factory):
    spec = {
        "run": {"steps": 300, "record_every": 10},
        "landscape": {"name": "himmelblau"},
        "optimizer": {"name": "sgd", "lr": 0.01},
        "init": {"scheme": "grid", "resolution": 40},
    }
    return analyze_result(descentlab.simulate(spec), tmp_path_factory.mktemp("plots"), label="h").figures


def test_analysis_figures(himmelblau_figures):
    assert set(himmelblau_figures) == {"contour", "basin_map", "ecdf", "loss_bands", "spectra"}
    for path in himmelblau_figures.values():
        assert path.stat().st_size > 1000
        _check_png(path)


def test_each_plot_function(tmp_path):
    from matplotlib.figure import Figure

    rng = np.random.default_rng(0)
    lm = LandscapeMath(get_landscape("double_well"), {"barrier": 1.0}, 2)
    traj = rng.uniform(-2, 2, (5, 4, 2))
    calls = {
        "c": lambda path, ax=None: plots.contour_trajectories(lm, [-2, -2], [2, 2], traj, np.array([[1.0, 0.0]]),
                                                               ["m"], path, ax=ax),
        "b": lambda path, ax=None: plots.basin_map(rng.integers(-2, 2, (20, 30)), [-2, -2], [2, 2], ["a", "b"],
                                                    path, ax=ax),
        "e": lambda path, ax=None: plots.ecdf([("a", np.array([0, 1, 10, 100]), np.array([0, 0.2, 0.6, 0.9]))],
                                              path, ax=ax, note="targets"),
        "l": lambda path, ax=None: plots.loss_bands(
            [("a", np.arange(5), np.sort(rng.uniform(0, 1, (5, 5)), axis=0), [0.05, 0.25, 0.5, 0.75, 0.95])],
            path, ax=ax),
        "s": lambda path, ax=None: plots.spectra(np.array([[-2.0, 2.0], [1.0, 3.0]]), ["s", "m"], path, ax=ax),
        "i": lambda path, ax=None: plots.index_vs_loss(rng.uniform(0, 1, 50), rng.uniform(0, 1, 50), path,
                                                       highlight=(np.array([0.1]), np.array([0.0])), ax=ax),
    }  # fmt: skip
    for name, call in calls.items():
        fig = call(tmp_path / f"{name}.png")
        assert isinstance(fig, Figure)
        _check_png(tmp_path / f"{name}.png")
        # drawn into a given axes: the figure returned is that axes' figure, nothing is written
        own, axes = plots.new_figure(ncols=2)
        assert call(None, ax=axes[1]) is own
        assert axes[1].has_data() or axes[1].images


def test_importing_and_plotting_keep_the_users_backend(tmp_path: Path) -> None:
    """descentlab never switches matplotlib's backend (a notebook's or a GUI's stays as it was)."""
    import subprocess
    import sys

    code = (
        "import sys, matplotlib; matplotlib.use('pdf'); "
        "import descentlab, descentlab.demo, descentlab.sweeps.analysis, descentlab.analysis.plots as p; "
        "fig, ax = p.new_figure(); ax.plot([0, 1]); p._save(fig, sys.argv[1]); print(matplotlib.get_backend())"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "f.png")], capture_output=True, text=True,
                         check=True)  # fmt: skip
    assert out.stdout.strip() == "pdf"
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_basin_colours_are_stable_across_runs() -> None:
    # the same minimum gets the same colour whatever its attractor index in a run
    known = ["m1", "m2", "m3"]
    grid_a = np.array([[0, 1], [1, 0]])  # run A: m1 is attractor 0, m3 attractor 1
    grid_b = np.array([[1, 0], [0, 1]])  # run B: m3 is attractor 0, m1 attractor 1 (the same cells)
    fa = plots.basin_map(grid_a, [0, 0], [1, 1], ["m1", "m3"], known=known)
    fb = plots.basin_map(grid_b, [0, 0], [1, 1], ["m3", "m1"], known=known)
    ra = fa.axes[0].images[0].to_rgba(grid_a.T)
    rb = fb.axes[0].images[0].to_rgba(grid_b.T)
    np.testing.assert_allclose(ra, rb)
    assert not np.allclose(ra[0, 0], ra[0, 1])  # two minima, two colours
    assert fa.axes[0].get_aspect() == 1.0
