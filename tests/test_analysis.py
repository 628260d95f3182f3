"""Analysis: attractors, critical points, basins, convergence (issue 5 acceptance)."""

from __future__ import annotations

import json
import math

import h5py
import numpy as np
import pytest

import descentlab
from descentlab.analysis import analysis_path, analyze, analyze_result, compare, read_summary
from descentlab.analysis.attractors import DIVERGED, LEFT_BOUND, NOT_CONVERGED, cluster_points, find_attractors
from descentlab.analysis.basins import (
    basin_entropy,
    boundary_fraction,
    fractions,
    start_point_probabilities,
    wilson,
)
from descentlab.analysis.cli import analyze_command, compare_command
from descentlab.analysis.convergence import ecdf, format_table, steps_to_target
from descentlab.analysis.critical import LandscapeMath, analyze_points, classify
from descentlab.engine.store import write_run
from descentlab.landscapes.registry import get_landscape


def _spec(landscape, res=40, steps=300, lr=0.01, low=None, high=None, stop=None, **land):
    init = {"scheme": "grid", "resolution": res}
    if low is not None:
        init.update(low=low, high=high)
    return {
        "run": {"steps": steps, "record_every": 10},
        "landscape": {"name": landscape, **land},
        "optimizer": {"name": "sgd", "lr": lr},
        "init": init,
        **({"stop": stop} if stop else {}),
    }


@pytest.fixture(scope="module")
def himmelblau_file(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "himmelblau.h5"
    return write_run(_spec("himmelblau"), out, progress=False)


# ----------------------------------------------------------------------------- acceptance


def test_himmelblau_four_minima_from_file(himmelblau_file, tmp_path):
    ar = analyze(himmelblau_file, tmp_path / "plots")
    land = get_landscape("himmelblau")
    known = {n for n, _ in land.minima({}, 2)}
    assert ar.attractors.n == 4
    assert set(ar.attractors.names) == known
    assert ar.critical.classes == ["minimum"] * 4
    assert np.all(ar.critical.eigenvalues > 0)
    frac = ar.outcomes["fraction"]
    assert math.isclose(frac[:4].sum(), 1.0) and math.isclose(frac.sum(), 1.0)
    assert np.all(ar.outcomes["ci_low"][:4] < frac[:4]) and np.all(frac[:4] < ar.outcomes["ci_high"][:4])
    assert ar.basin_map.shape == (40, 40)
    assert ar.figures["basin_map"].stat().st_size > 0
    # refined positions are the known minima
    for name, pt in land.minima({}, 2):
        np.testing.assert_allclose(ar.attractors.positions[ar.attractors.names.index(name)], pt, atol=1e-6)
    with h5py.File(himmelblau_file, "r") as f:
        assert "analysis" not in f  # the run file is never written by the analysis
    with h5py.File(analysis_path(himmelblau_file), "r") as f:
        g = f["analysis"]
        assert g["labels"].shape == (1600,) and g["labels"].dtype == np.int64
        assert set(np.unique(g["labels"][...])) == {0, 1, 2, 3}
        assert g["attractors/eigenvalues"].shape == (4, 2)
        assert [s.decode() for s in g["attractors/classification"][...]] == ["minimum"] * 4
        assert g["basin_map"].shape == (40, 40)
        assert g["convergence/steps_to_target"].shape[0] == 1600
        summary = json.loads(g.attrs["summary"])
    assert summary["n_attractors"] == 4 and read_summary(himmelblau_file) == summary
    assert 0 < summary["boundary_fraction"] < 0.5 and summary["basin_entropy"] > 0
    # analysing twice replaces /analysis
    analyze(himmelblau_file)
    assert read_summary(himmelblau_file)["n_attractors"] == 4
    assert "himmelblau" in repr(ar) and "minimum" in repr(ar)


def test_double_well_symmetric_grid_half_half():
    r = descentlab.simulate(_spec("double_well", lr=0.1, low=-2.0, high=2.0))
    ar = analyze_result(r)
    assert ar.attractors.n == 2
    assert sorted(ar.attractors.names) == ["x0 = +1", "x0 = -1"]
    assert ar.fraction("x0 = -1") == 0.5 and ar.fraction("x0 = +1") == 0.5
    assert ar.critical.classes == ["minimum", "minimum"]
    known = dict(zip(ar.known["name"], ar.known["classification"], strict=True))
    assert known["origin"] == "saddle (index 1)"


def test_quadratic_one_basin():
    r = descentlab.simulate(_spec("quadratic", res=20, steps=300, lr=0.15))
    ar = analyze_result(r)
    assert ar.attractors.n == 1 and ar.attractors.names == ["origin"]
    assert ar.fraction("origin") == 1.0
    assert ar.critical.classes == ["minimum"]
    np.testing.assert_allclose(ar.critical.eigenvalues[0], [1.0, 10.0], rtol=1e-9)
    assert ar.critical.sharpness[0] == pytest.approx(10.0) and ar.critical.trace[0] == pytest.approx(11.0)
    assert ar.summary["boundary_fraction"] == 0.0 and ar.summary["basin_entropy"] == 0.0


def test_product_saddle_and_manifold():
    r = descentlab.simulate(_spec("product", lr=0.05, low=-2.0, high=2.0))
    ar = analyze_result(r)
    i = ar.known["name"].index("origin")
    assert ar.known["classification"][i] == "saddle (index 1)"
    np.testing.assert_allclose(ar.known["eigenvalues"][i], [-2.0, 2.0], atol=1e-12)
    # the end points on w1 w2 = 1 are one manifold attractor, not hundreds of points
    kinds = ar.attractors.kinds
    assert kinds.count("manifold") == 1 and ar.attractors.n <= 2
    m = kinds.index("manifold")
    assert "w1*w2 = y/x" in ar.attractors.names[m]
    assert ar.attractors.manifolds[m]["relation_residual"] < 1e-4
    assert ar.critical.classes[m].startswith("minimum manifold")
    on = ar.labels == m
    w = r.final_x[on]
    np.testing.assert_allclose(w[:, 0] * w[:, 1], 1.0, atol=1e-4)
    assert ar.fraction(ar.attractors.names[m]) > 0.9


def test_outcomes_keep_their_labels():
    # unstable minimum at (-3.78, -3.28) for lr 0.02 (lr * 133 > 2): oscillates; far starts diverge
    stop = {"bound": 1e300, "grad_tol": 1e-3}
    r = descentlab.simulate(_spec("himmelblau", res=20, steps=60, lr=0.02, low=-6.0, high=6.0, stop=stop))
    ar = analyze_result(r)
    counts = {k: int(np.sum(r.status == k)) for k in range(4)}
    assert all(counts[k] > 0 for k in range(4))
    assert np.sum(ar.labels == NOT_CONVERGED) == counts[0]
    assert np.sum(ar.labels == DIVERGED) == counts[2]
    assert np.sum(ar.labels == LEFT_BOUND) == counts[3]
    assert np.sum(ar.labels >= 0) == counts[1]
    assert ar.outcomes["count"].sum() == r.status.shape[0]
    assert math.isclose(ar.outcomes["fraction"].sum(), 1.0)
    names = ar.outcome_names()
    assert {"not settled", "diverged", "left the bound"} <= set(names)
    assert ar.summary["outcomes"]["diverged"] == counts[2]
    assert "(-3.779, -3.283)" not in ar.attractors.names  # nobody converges to the unstable one


def test_cli_functions_and_compare(himmelblau_file, tmp_path, capsys):
    assert analyze_command(himmelblau_file, tmp_path / "p") == 0
    out = capsys.readouterr().out
    assert "attractors  4" in out and "minimum" in out
    other = write_run(_spec("himmelblau", lr=0.005, steps=300), tmp_path / "slow.h5", progress=False)
    assert compare_command([himmelblau_file, other], tmp_path / "c") == 0
    out = capsys.readouterr().out
    assert "| run |" in out and "slow" in out
    rows, figs = compare([himmelblau_file, other], tmp_path / "c")
    assert len(rows) == 2 and set(figs) == {"ecdf", "loss_bands"}
    assert rows[0]["ECDF area"] > rows[1]["ECDF area"]  # larger steps reach the targets sooner
    assert analyze_command(tmp_path / "missing.h5") == 2
    bad = tmp_path / "bad.h5"
    h5py.File(bad, "w").close()
    assert analyze_command(bad) == 2


# ----------------------------------------------------------------------------- units


def test_cluster_points_tolerance():
    rng = np.random.default_rng(0)
    a = rng.normal([0, 0], 1e-4, (100, 2))
    b = rng.normal([1, 0], 1e-4, (50, 2))
    comp, k = cluster_points(np.vstack([a, b]), tol=0.01)
    assert k == 2 and np.all(comp[:100] == 0) and np.all(comp[100:] == 1)
    comp, k = cluster_points(np.vstack([a, b]), tol=2.0)
    assert k == 1


def test_find_attractors_names_and_chain_manifold():
    t = np.linspace(0.5, 2.0, 400)
    x = np.column_stack([t, 1.0 / t])
    status = np.ones(400, dtype=np.int8)
    att = find_attractors(x, np.zeros(400), status, scale=2.0)
    assert att.n == 1 and att.kinds == ["manifold"]  # undeclared: detected from spread + constant loss
    pts = np.array([[3.0, 2.0]] * 5 + [[9.0, 9.0]] * 3)
    att = find_attractors(pts, np.zeros(8), np.ones(8, np.int8), scale=5.0, known=[("m", np.array([3.0, 2.0]))])
    assert att.names[0] == "m" and att.names[1].startswith("A1") and att.counts.tolist() == [5, 3]


def test_classify():
    assert classify([1.0, 2.0]) == "minimum"
    assert classify([-1.0, -2.0]) == "maximum"
    assert classify([-2.0, 2.0]) == "saddle (index 1)"
    assert classify([-3.0, -2.0, 2.0]) == "saddle (index 2)"
    assert classify([0.0, 0.0]) == "degenerate (index 0, 2 flat)"
    assert classify([1e-12, 4.0]) == "degenerate (index 0, 1 flat)"


def test_analytic_hessian_without_compiling():
    lm = LandscapeMath(get_landscape("monkey_saddle"), {}, 2)
    cp = analyze_points(lm, np.zeros((1, 2)), compiled=False)
    assert cp.classes == ["degenerate (index 0, 2 flat)"]
    lm = LandscapeMath(get_landscape("saddle"), {}, 2)
    cp = analyze_points(lm, np.zeros((1, 2)), compiled=False)
    np.testing.assert_allclose(cp.eigenvalues[0], [-2.0, 2.0])
    assert cp.index[0] == 1 and cp.index_fraction[0] == 0.5  # one of two eigenvalues negative
    assert cp.classes[0] == f"saddle (index {int(cp.index[0])})"


def test_wilson_and_fractions():
    lo, hi = wilson(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    lo, hi = wilson(0, 10)
    assert lo == 0.0 and 0 < hi < 0.35
    fr = fractions(np.array([0, 0, 1, -1, -2, -3]), 2)
    assert fr["code"].tolist() == [0, 1, -1, -2, -3] and fr["count"].tolist() == [2, 1, 1, 1, 1]
    assert fr["fraction"].sum() == pytest.approx(1.0)


def test_boundary_and_basin_entropy():
    one = np.zeros((10, 10), dtype=np.int64)
    assert boundary_fraction(one) == 0.0 and basin_entropy(one) == (0.0, 0.0)
    half = np.zeros((10, 10), dtype=np.int64)
    half[5:] = 1
    assert boundary_fraction(half) == pytest.approx(0.2)
    s_b, s_bb = basin_entropy(half, box=5)
    assert s_b == 0.0  # boxes align with the boundary
    s_b, s_bb = basin_entropy(half, box=4)  # grid trimmed to 8 x 8; boxes of rows 4..7 straddle it (1:3)
    assert s_bb == pytest.approx(-(0.25 * math.log(0.25) + 0.75 * math.log(0.75)))
    assert s_b == pytest.approx(s_bb / 2)
    checker = (np.add.outer(np.arange(10), np.arange(10)) % 2).astype(np.int64)
    assert basin_entropy(checker, box=2) == (pytest.approx(math.log(2)), pytest.approx(math.log(2)))


def test_start_point_probabilities():
    x = np.repeat(np.array([[0.0, 0.0], [1.0, 1.0]]), 4, axis=0)
    labels = np.array([0, 0, 1, -2, 1, 1, 1, 1])
    sp = start_point_probabilities(x, labels, 2)
    assert sp["x"].tolist() == [[0.0, 0.0], [1.0, 1.0]] and sp["count"].tolist() == [4, 4]
    np.testing.assert_allclose(sp["probability"], [[0.5, 0.25, 0, 0.25, 0], [0, 1.0, 0, 0, 0]])
    assert start_point_probabilities(np.arange(8.0).reshape(4, 2), labels[:4], 2) is None


def test_steps_to_target_and_ecdf():
    loss = np.array([[10.0, 1.0, 0.01, 0.01], [10.0, 10.0, 10.0, 10.0], [5.0, 0.5, 0.5, 0.5]])
    rec = np.array([0, 10, 20, 30])
    status = np.array([1, 0, 1], dtype=np.int8)
    stop = np.array([15, -1, 12])
    st = steps_to_target(loss, rec, loss[:, -1], status, stop, 0.0, targets=(1.0, 0.1))
    assert st.tolist() == [[10, 15], [-1, -1], [10, -1]]
    _b, f = ecdf(st, 30)
    assert f[0] == 0.0 and f[-1] == pytest.approx(3 / 6)
    table = format_table([{"run": "a", "x": 1.0, "y": None}])
    assert table.split("\n") == ["| run | x | y |", "|---|---|---|", "| a | 1 | - |"]


def test_census_index_vs_loss():
    from descentlab.analysis.critical import census

    lm = LandscapeMath(get_landscape("double_well"), {"barrier": 1.0}, 3)
    pts = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]])
    c = census(lm, pts, lm.value(pts))
    np.testing.assert_allclose(c["index"], [1, 0, 0])  # negative eigenvalues, as in "saddle (index 1)"
    np.testing.assert_allclose(c["index_fraction"], [1 / 3, 0.0, 0.0])
    np.testing.assert_allclose(c["loss"], [1.0, 0.0, 0.0])
    assert c["row"].tolist() == [0, 1, 2]
