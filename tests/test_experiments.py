"""Experiments: statistics helpers against known values, measurement tools against dense references,
every registered experiment at a tiny size, verdict functions on synthetic data, the CLI."""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path

import numpy as np
import pytest

from descentlab.experiments import experiments
from descentlab.experiments._measure import escape, sharpness
from descentlab.experiments._toml import dumps
from descentlab.experiments.base import depends
from descentlab.experiments.runner import sweep_spec
from descentlab.experiments.stats import bootstrap, bootstrap_diff, wilson

# ----------------------------------------------------------------------------- statistics


def test_wilson_known_values() -> None:
    # Wilson (1927) / Newcombe (1998) table: 81 of 263 -> (0.2553, 0.3662); 0 of 10 -> (0, 0.2775)
    lo, hi = wilson(81, 263)
    assert lo == pytest.approx(0.2553, abs=5e-5) and hi == pytest.approx(0.3662, abs=5e-5)
    lo, hi = wilson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=5e-5)
    lo, hi = wilson(10, 10)
    assert hi == 1.0 and lo == pytest.approx(1 - 0.2775, abs=5e-5)
    assert all(math.isnan(v) for v in wilson(0, 0))
    with pytest.raises(ValueError):
        wilson(11, 10)


def test_bootstrap_covers_the_mean_and_shrinks() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(5.0, 2.0, 400)
    est, lo, hi = bootstrap(x, np.mean)
    assert est == pytest.approx(x.mean())
    # the normal-theory interval of the mean: +-1.96 s / sqrt(n) = +-0.196
    assert hi - lo == pytest.approx(2 * 1.96 * x.std() / 20, rel=0.15)
    assert lo < 5.0 < hi
    _, lo2, hi2 = bootstrap(x[:40], np.mean)
    assert hi2 - lo2 > 2 * (hi - lo)
    d, dlo, dhi = bootstrap_diff(x + 1.0, x, np.mean)
    assert d == pytest.approx(1.0) and dlo < 1.0 < dhi
    d, dlo, dhi = bootstrap_diff(rng.normal(3, 1, 300), rng.normal(0, 1, 300), np.median)
    assert dlo > 2.5 and dhi < 3.5
    # never reached (+inf): inf - finite = inf, inf - inf = 0 (a tie), no nan
    never = np.full(50, np.inf)
    assert bootstrap_diff(never, np.arange(50.0)) == (np.inf, np.inf, np.inf)
    assert bootstrap_diff(never, never) == (0.0, 0.0, 0.0)
    half = np.r_[np.full(30, np.inf), np.arange(20.0)]
    d, dlo, dhi = bootstrap_diff(half, np.arange(50.0))
    assert d == np.inf and not math.isnan(dlo) and dhi == np.inf


def test_depends() -> None:
    assert depends({"a": True, "b": True}, "x") == "supported"
    assert depends({"a": False, "b": False}, "x") == "not supported"
    assert depends({"a": True, "b": False}, "the landscape") == "depends on the landscape (holds for a; not for b)"


def test_toml_round_trip() -> None:
    spec = {"run": {"particles": 10, "seed": 1}, "optimizer": {"name": "switch", "phases": [
        {"name": "sgd", "lr": 0.1, "steps": 5}, {"name": "adam", "lr": 1e-3, "betas": [0.9, 0.99]}]},
        "landscape": {"name": "mlp", "hidden": [8, 8], "batch_norm": True},
        "stop": {"bound": math.inf}, "sweep": {"zip": [{"optimizer.lr": [0.1, 0.2], "a b": ["-", "x\"y"]}]}}
    assert tomllib.loads(dumps(spec)) == spec


def test_sweep_spec_reproduces_points() -> None:
    from descentlab.sweeps.spec import expand

    base = {"run": {"particles": 2, "steps": 3}, "landscape": {"name": "himmelblau"},
            "optimizer": {"name": "sgd", "lr": 0.01, "momentum": 0.9}}
    pts = [{"optimizer.lr": 0.1}, {"optimizer": {"name": "adam", "lr": 0.2}}, {"landscape.name": "quadratic"}]
    plan = expand(sweep_spec(base, pts))
    got = [(p.spec["landscape"]["name"], p.spec["optimizer"]) for p in plan.points]
    assert got == [("himmelblau", {"name": "sgd", "lr": 0.1, "momentum": 0.9}),
                   ("himmelblau", {"name": "adam", "lr": 0.2}),
                   ("quadratic", {"name": "sgd", "lr": 0.01, "momentum": 0.9})]


# ----------------------------------------------------------------------------- measurements


def test_sharpness_against_dense_eigenvalues() -> None:
    rng = np.random.default_rng(0)
    d = 40
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    ev = np.linspace(-3.0, 7.5, d)
    h = q @ np.diag(ev) @ q.T
    top, trace = sharpness(lambda x0, v: np.atleast_2d(v) @ h.T, np.zeros(d), d, probes=400)
    assert top == pytest.approx(7.5, rel=1e-6)
    assert trace == pytest.approx(np.trace(h), abs=0.15 * np.linalg.norm(h))  # Hutchinson: sd ~ |H|_F sqrt(2/p)
    hd = np.diag(ev[:2])
    top2, trace2 = sharpness(lambda x0, v: np.atleast_2d(v) @ hd, np.zeros(2), 2)
    assert top2 == pytest.approx(ev[1]) and trace2 == pytest.approx(ev[:2].sum())


def test_escape_against_a_loop() -> None:
    rng = np.random.default_rng(1)
    x = np.cumsum(rng.normal(0, 0.1, size=(50, 30, 3)), axis=1)
    x[3] = 0.0  # never leaves
    x[4, 7:] = np.nan  # diverges: outside from record 7
    steps_rec = np.arange(30) * 5
    center = np.array([0.05, 0.0, -0.02])
    s, dirs = escape(x, steps_rec, center, 0.5)
    for i in range(50):
        r = [np.linalg.norm(x[i, j] - center) if np.all(np.isfinite(x[i, j])) else np.inf for j in range(30)]
        first = next((j for j in range(30) if r[j] > 0.5), None)
        if first is None:
            assert s[i] == -1 and np.isnan(dirs[i]).all()
        else:
            assert s[i] == steps_rec[first]
            if np.isfinite(r[first]):
                np.testing.assert_allclose(dirs[i], (x[i, first] - center) / r[first])
    assert s[3] == -1 and s[4] <= 35


def test_layer_tools_against_numpy() -> None:
    from descentlab.engine.spec import parse_spec
    from descentlab.experiments._measure import layer_grad_norms, unit_spread
    from descentlab.models.reference import loss

    spec = {"run": {"particles": 3, "steps": 1}, "landscape": {"name": "mlp", "hidden": [5], "loss": "mse"},
            "data": {"name": "teacher", "samples": 30}, "optimizer": {"name": "sgd"}}
    fs = parse_spec(spec).finite_sum
    rng = np.random.default_rng(2)
    p = rng.normal(size=(2, fs.model.dim))
    gn = layer_grad_norms(fs, p)
    # finite differences of the loss w.r.t. the first weight matrix
    w0 = fs.model.layout[0].slice
    g = np.zeros(w0.stop - w0.start)
    for k in range(g.size):
        e = np.zeros(fs.model.dim)
        e[w0.start + k] = 1e-6
        g[k] = (loss(fs.model, p[:1] + e, fs.data.x_train, fs.data.y_train)[0]
                - loss(fs.model, p[:1] - e, fs.data.x_train, fs.data.y_train)[0]) / 2e-6
    assert gn[0, 0] == pytest.approx(np.linalg.norm(g), rel=1e-5)
    same = p[:1].copy()
    w = same[0, w0].reshape(5, -1)
    w[:] = w[0]
    same[0, w0] = w.ravel()
    b = fs.model.layout[1].slice
    same[0, b] = 0.3
    assert unit_spread(fs, same)[0] == pytest.approx(0.0, abs=1e-12)
    assert unit_spread(fs, p)[0] > 0.1


# ----------------------------------------------------------------------------- experiments

NAMES = list(experiments())


@pytest.mark.parametrize("name", NAMES)
def test_experiment_tiny(name: str, tmp_path: Path) -> None:
    from descentlab.experiments.base import ExperimentResult

    exp = experiments()[name]
    res = exp.run("tiny", tmp_path)
    folder = tmp_path / name
    assert res.figures and all((folder / f).stat().st_size > 5000 for f in res.figures)
    assert res.table and (folder / "table.csv").read_text().count("\n") == len(res.table) + 1
    assert res.runs >= 1 and res.specs
    from descentlab.experiments.base import _relative_paths

    for key in res.specs:  # what ran, with the experiment's own files named relative to the spec folder
        ran = _relative_paths(json.loads(json.dumps(res.specs[key])), folder, folder / "specs")
        assert tomllib.loads((folder / "specs" / f"{key}.toml").read_text()) == ran
    v = res.verdict
    assert v.outcome in ("supported", "not supported") or v.outcome.startswith("depends on ")
    assert v.criterion and v.statistic
    lo, hi = v.interval
    if not math.isnan(v.value):
        assert lo <= v.value <= hi or math.isnan(lo)
    # the verdict's numbers are the ones measured: recomputing it from the stored measurements agrees
    again = ExperimentResult.from_json((folder / "result.json").read_text())
    assert again.verdict == v
    assert exp.verdict_from(res.measured) == v


def test_critical_points_verdict_synthetic() -> None:
    exp = experiments()["critical-points"]
    good = {"grad_at_origin": 0.0, "eigenvalues": [-2.0, 2.0], "on_curve": 500, "converged": 500, "taylor_slope": 4.0}
    assert exp.verdict_from(good).outcome == "supported"
    assert exp.verdict_from({**good, "eigenvalues": [1.0, 3.0]}).outcome == "not supported"
    assert exp.verdict_from({**good, "on_curve": 300}).outcome == "not supported"
    assert exp.verdict_from({**good, "taylor_slope": 2.0}).outcome == "not supported"


def test_learning_rate_verdict_synthetic() -> None:
    exp = experiments()["learning-rate"]
    good = {"lrs": [1e-3, 1e-2, 1e-1], "particles": 100, "diverged": [0, 0, 95],
            "median_steps": [math.inf, 100.0, math.inf], "median_steps_low": [math.inf, 90.0, math.inf],
            "median_steps_high": [math.inf, 110.0, math.inf]}
    assert exp.verdict_from({"settings": {"a": good, "b": good}}).outcome == "supported"
    no_div = {**good, "diverged": [0, 0, 3]}
    assert exp.verdict_from({"settings": {"a": no_div, "b": no_div}}).outcome == "not supported"
    fast_small = {**good, "median_steps": [100.0, 100.0, math.inf], "median_steps_low": [95.0, 90.0, math.inf]}
    v = exp.verdict_from({"settings": {"a": good, "b": fast_small}})
    assert v.outcome == "depends on the landscape (holds for a; not for b)"


def test_init_distance_verdict_synthetic() -> None:
    exp = experiments()["init-distance"]
    pos = {"rho": 0.9, "rho_low": 0.85, "rho_high": 0.93, "reached": 300, "particles": 300}
    flat = {"rho": 0.02, "rho_low": -0.1, "rho_high": 0.12, "reached": 300, "particles": 300}
    assert exp.verdict_from({"pairs": {"q/gd": pos, "q/adam": pos}}).outcome == "supported"
    assert exp.verdict_from({"pairs": {"q/gd": flat, "q/adam": flat}}).outcome == "not supported"
    assert exp.verdict_from({"pairs": {"q/gd": pos, "q/adam": flat}}).outcome.startswith("depends on")


def test_convex_single_basin_verdict_synthetic() -> None:
    exp = experiments()["convex-single-basin"]
    one = {"particles": 500, "clusters": 1, "largest": 500, "control": False}
    ctrl = {"particles": 500, "clusters": 4, "largest": 130, "control": True}
    assert exp.verdict_from({"landscapes": {"q": one, "h": ctrl}}).outcome == "supported"
    two = {"particles": 500, "clusters": 2, "largest": 260, "control": False}
    assert exp.verdict_from({"landscapes": {"q": two, "h": ctrl}}).outcome == "not supported"


def test_batch_size_verdict_synthetic() -> None:
    exp = experiments()["batch-size"]
    b = {"1": {"sharpness": 1.0, "test_acc": 0.8, "train_acc": 0.9, "time_per_update": 1e-5}}
    assert exp.verdict_from({"rho": 0.8, "rho_low": 0.7, "rho_high": 0.9, "batches": b}).outcome == "supported"
    v = exp.verdict_from({"rho": -0.8, "rho_low": -0.9, "rho_high": -0.7, "batches": b})
    assert v.outcome == "not supported" and "opposite" in v.details


def test_saddle_escape_verdict_synthetic() -> None:
    from descentlab.experiments.saddle_escape import EXPECTED

    exp = experiments()["saddle-escape"]
    n = 400

    def rec(near: bool, man: bool, cos: float = 0.999) -> dict:
        return {"n": n, "near_escaped": n if near else 0, "manifold_escaped": n if man else 0, "near_step": 30.0,
                "near_cos": cos}

    ok = {k: rec(*v) for k, v in EXPECTED.items()}
    assert exp.verdict_from({"optimizers": ok}).outcome == "supported"
    newton_escapes = {**ok, "newton": rec(True, False)}
    assert exp.verdict_from({"optimizers": newton_escapes}).outcome == "depends on the optimizer (holds for gd, " \
        "momentum, adam, langevin, saddle-free newton; not for newton)"
    wrong_dir = {**ok, "gd": rec(True, False, cos=0.3)}
    assert "not for gd" in exp.verdict_from({"optimizers": wrong_dir}).outcome


def test_shuffle_verdict_synthetic() -> None:
    exp = experiments()["shuffle"]

    def order(diff: tuple[float, float, float]) -> dict:
        return {"loss_diff": list(diff), "noise": {"fixed": 0.01, "reshuffled": 0.01},
                "acc": {"fixed": 0.9, "reshuffled": 0.9}}

    helps = order((0.05, 0.03, 0.07))
    hurts = order((-0.02, -0.03, -0.01))
    r, s = "random order, lr 0.1", "sorted by class, lr 0.1"
    assert exp.verdict_from({"orders": {r: helps, s: helps}}).outcome == "supported"
    assert exp.verdict_from({"orders": {r: hurts, s: hurts}}).outcome == "not supported"
    v = exp.verdict_from({"orders": {r: hurts, s: helps}})
    assert v.outcome == ("depends on the stored order of the data and the learning rate (holds for sorted by class, "
                         "lr 0.1; not for random order, lr 0.1)")


# ----------------------------------------------------------------------------- report and CLI


def test_report_and_cli(tmp_path: Path) -> None:
    from descentlab.cli import main

    assert main(["experiment", "list"]) == 0
    assert main(["experiment", "run", "no-such-experiment", "-o", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()
    out = tmp_path / "rep"
    assert main(["experiment", "run", "critical-points", "--size", "tiny", "-o", str(out)]) == 0
    md = (out / "report.md").read_text()
    res = json.loads((out / "critical-points" / "result.json").read_text())
    assert f"critical-points/{res['figures'][0]}" in md
    assert res["verdict"]["outcome"] in md and "descentlab sweep critical-points/specs/gd.toml" in md
    html = (out / "report.html").read_text()
    assert "<img src='critical-points/landscape.png'" in html and "<table>" in html


@pytest.mark.slow
def test_experiment_on_dask(tmp_path: Path) -> None:
    """The same grid on a Dask LocalCluster (through the sweep layer's run files) gives the same verdict."""
    from descentlab.experiments.runner import Runner

    exp = experiments()["critical-points"]
    local = exp.run("tiny", tmp_path / "local")
    remote = exp.run("tiny", tmp_path / "dask", Runner(dask="local"))
    assert remote.verdict == local.verdict and remote.measured == local.measured
    assert list((tmp_path / "dask" / "critical-points" / "runs" / "gd").glob("point*.h5"))
