"""Views for D > 2 and for models: PCA of trajectories, loss planes, sharpness along the path, basin slices."""

from __future__ import annotations

import numpy as np
import pytest

import descentlab
from descentlab.analysis import analysis_path, analyze
from descentlab.analysis.critical import LandscapeMath
from descentlab.analysis.views import (
    basin_slice,
    filter_normalized_direction,
    largest_eigenvalue,
    loss_plane,
    plane_through,
    trajectory_pca,
)
from descentlab.engine.store import write_run
from descentlab.landscapes.registry import get_landscape


def test_pca_of_trajectories_on_a_line_and_a_plane():
    rng = np.random.default_rng(0)
    u = np.array([1.0, 2.0, 2.0]) / 3.0
    t = rng.normal(size=(20, 1, 1)) + np.linspace(0, 1, 7)[None, :, None]
    traj = t * u[None, None, :] + 5.0
    p = trajectory_pca(traj)
    assert p["explained"][0] == pytest.approx(1.0)
    assert abs(p["components"][0] @ u) == pytest.approx(1.0)
    # the projection reproduces the positions: x = mean + proj @ components
    back = p["mean"] + p["projection"] @ p["components"]
    np.testing.assert_allclose(back, traj, atol=1e-12)
    v = np.array([0.0, 0.0, 1.0])
    traj2 = traj + 0.3 * rng.normal(size=(20, 7, 1)) * v
    assert trajectory_pca(traj2)["explained"].sum() == pytest.approx(1.0, abs=1e-9)


def test_loss_plane_and_plane_through_three_points():
    lm = LandscapeMath(get_landscape("quadratic"), get_landscape("quadratic").resolve_params({}), 3)
    c = np.array([0.5, -0.2, 0.1])
    d = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    p = loss_plane(lm, c, d, span=1.0, resolution=5)
    for i, a in enumerate(p["alpha"]):
        for j, b in enumerate(p["beta"]):
            assert p["loss"][i, j] == pytest.approx(lm.value((c + a * d[0] + b * d[1])[None])[0])
    p0, p1, p2 = np.zeros(3), np.array([1.0, 0, 0]), np.array([1.0, 1.0, 0])
    center, dirs = plane_through(p0, p1, p2)
    np.testing.assert_allclose(center + dirs[0], p1)
    assert dirs[0] @ dirs[1] == pytest.approx(0.0)
    # p2 lies on the plane: p2 = center + a d0 + b d1 for some a, b
    ab = np.linalg.lstsq(dirs.T, p2 - center, rcond=None)[0]
    np.testing.assert_allclose(center + ab @ dirs, p2, atol=1e-12)


def test_filter_normalized_direction_matches_row_norms():
    from descentlab.engine.spec import parse_spec

    rs = parse_spec({"run": {"particles": 1, "steps": 1}, "landscape": {"name": "mlp", "hidden": [4]},
                     "data": {"name": "teacher", "samples": 20, "features": 3}, "optimizer": {"name": "sgd"}},
                    memory_check=False)  # fmt: skip
    model = rs.finite_sum.model
    w = np.random.default_rng(1).normal(size=model.dim)
    d = filter_normalized_direction(model, w, np.random.default_rng(2))
    for e in model.layout:
        if e.kind == "weight":
            rows_w = np.linalg.norm(w[e.slice].reshape(e.shape), axis=1)
            rows_d = np.linalg.norm(d[e.slice].reshape(e.shape), axis=1)
            np.testing.assert_allclose(rows_d, rows_w)
        else:
            assert np.all(d[e.slice] == 0)


def test_largest_eigenvalue_of_the_quadratic_bowl():
    land = get_landscape("quadratic")
    lm = LandscapeMath(land, land.resolve_params({}), 2)
    x = np.random.default_rng(3).normal(size=(5, 2))
    np.testing.assert_allclose(largest_eigenvalue(lm, x), 10.0)  # condition 10, constant Hessian


@pytest.fixture(scope="module")
def dw3_file(tmp_path_factory):
    spec = {"run": {"particles": 300, "steps": 200, "record_every": 20, "seed": 1},
            "landscape": {"name": "double_well", "dim": 3}, "optimizer": {"name": "sgd", "lr": 0.1},
            "init": {"scheme": "uniform", "low": -2.0, "high": 2.0}}  # fmt: skip
    return write_run(spec, tmp_path_factory.mktemp("v") / "dw3.h5", progress=False)


def test_views_of_a_three_dimensional_run(dw3_file, tmp_path):
    import h5py

    ar = analyze(dw3_file, tmp_path / "plots")
    for name in ("pca", "plane", "sharpness_path"):
        assert name in ar.figures and ar.figures[name].stat().st_size > 1000
    with h5py.File(analysis_path(dw3_file), "r") as f:
        g = f["analysis"]
        assert g["pca/projection"].shape[1:] == (11, 2)
        assert g["plane/loss"].shape == (41, 41)
        sh = g["sharpness_path/sharpness"][...]
        # the double well's Hessian at its minima (+-1, 0, 0) has eigenvalues 1, 1, 8 (barrier 1): the largest, 8
        assert sh[:, -1] == pytest.approx(np.full(sh.shape[0], 8.0), rel=1e-3)
        assert g["sharpness_path"].attrs["stability_limit"] == pytest.approx(2 / 0.1)


def test_basin_map_on_a_slice_of_a_three_dimensional_landscape(tmp_path):
    spec = {"run": {"steps": 200, "record_every": 20}, "landscape": {"name": "double_well", "dim": 3},
            "optimizer": {"name": "sgd", "lr": 0.1}}  # fmt: skip
    # the plane x2 = 0.3 through (0, 0, 0.3) along x0 and x1: the sign of x0 decides the basin
    out = basin_slice(spec, np.array([0.0, 0.0, 0.3]), np.array([[1.5, 0, 0], [0, 1.5, 0]]), tmp_path,
                      resolution=12)  # fmt: skip
    grid, names = out["grid"], out["names"]
    a = out["alpha"]
    assert grid.shape == (12, 12) and np.all(grid >= 0)
    left = {names[k] for k in np.unique(grid[a < 0])}
    right = {names[k] for k in np.unique(grid[a > 0])}
    assert len(left) == 1 and len(right) == 1 and left != right
    r = descentlab.simulate({**spec, "run": {"particles": 1, "steps": 200}, "init": {"scheme": "points",
                             "points": [[-1.0, 0.5, 0.3]]}}, progress=False)  # fmt: skip
    assert r.final_x[0, 0] == pytest.approx(-1.0, abs=1e-3)


def test_views_in_the_analysis_dataset(dw3_file):
    ar = analyze(dw3_file, write=False)
    ds = ar.to_xarray()
    assert ds["plane_loss"].dims == ("alpha", "beta") and ds["pca_projection"].shape[1:] == (11, 2)
    np.testing.assert_allclose(ds["sharpness_path"].values, ar.sharpness_path["sharpness"])


def test_a_registered_analysis_runs_is_summarised_written_and_drawn(dw3_file, tmp_path):
    import h5py

    from descentlab.analysis import plots
    from descentlab.analysis.io import put
    from descentlab.analysis.registry import ANALYSES, Analysis, register_analysis

    def compute(ctx):
        return {"final_spread": float(np.nanstd(ctx.final_loss))}

    def figures(results, data, lm, out, stem, title):
        fig, ax = plots.new_figure()
        ax.bar([0], [results["final_spread"]])
        return {"spread": plots.save(fig, out / f"{stem}_spread.png")}

    register_analysis(Analysis("final_spread", compute,
                               summarize=lambda ctx: {"final_spread": ctx.results["final_spread"]},
                               write=lambda g, r: put(g, "final_spread", np.array([r["final_spread"]]), ("one",)),
                               figures=figures))  # fmt: skip
    try:
        ar = analyze(dw3_file, tmp_path / "p")
        with descentlab.open_run(dw3_file) as f:
            expected = float(np.nanstd(f.final_loss[...]))
        assert ar.summary["final_spread"] == pytest.approx(expected)
        assert ar.final_spread == pytest.approx(expected)
        assert ar.figures["spread"].exists()
        with h5py.File(analysis_path(dw3_file), "r") as f:
            assert f["analysis/final_spread"][0] == pytest.approx(expected)
    finally:
        del ANALYSES["final_spread"]


def _fd_hessian(lm: LandscapeMath, x: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Central differences of the analytic gradient: an obviously-right Hessian at x (D,)."""
    d = x.shape[0]
    out = np.empty((d, d))
    for j in range(d):
        e = np.zeros(d)
        e[j] = h
        out[:, j] = (lm.grad((x + e)[None])[0] - lm.grad((x - e)[None])[0]) / (2 * h)
    return 0.5 * (out + out.T)


def test_sharpness_and_trace_at_every_end_point_and_eigenvectors(tmp_path):
    """/analysis/end_points: sharpness and trace at every particle's end point; attractors keep their
    Hessian eigenvectors: both against finite differences of the gradient."""
    import h5py

    spec = {"run": {"particles": 300, "steps": 120, "seed": 2}, "landscape": {"name": "himmelblau"},
            "optimizer": {"name": "adam", "lr": 0.05}, "stop": {"grad_tol": 0.0}}  # fmt: skip
    path = write_run(spec, tmp_path / "h.h5", progress=False)
    analyze(path)
    lm = LandscapeMath(get_landscape("himmelblau"), {}, 2)
    with h5py.File(path, "r") as f:
        final = f["final/x"][...]
    with h5py.File(analysis_path(path), "r") as f:
        sharp = f["analysis/end_points/sharpness"][...]
        trace = f["analysis/end_points/trace"][...]
        lam = f["analysis/attractors/eigenvalues"][...]
        vec = f["analysis/attractors/eigenvectors"][...]
        pos = f["analysis/attractors/position"][...]
    assert sharp.shape == trace.shape == (300,) and np.all(np.isfinite(sharp))
    for j in (0, 7, 150, 299):  # every particle has its own numbers, not its attractor's
        w = np.linalg.eigvalsh(_fd_hessian(lm, final[j]))
        assert abs(sharp[j] - w[-1]) <= 1e-5 * (1 + abs(w[-1])) and abs(trace[j] - w.sum()) <= 1e-5 * (1 + abs(w.sum()))
    assert vec.shape == (pos.shape[0], 2, 2)
    for a in range(pos.shape[0]):
        h = _fd_hessian(lm, pos[a])
        for k in range(2):
            v = vec[a, :, k]
            assert abs(np.linalg.norm(v) - 1) < 1e-12
            np.testing.assert_allclose(h @ v, lam[a, k] * v, atol=1e-5 * (1 + abs(lam[a, k])))
