"""Basins when particles settle without meeting grad_tol; convergence targets that never count failures."""

from __future__ import annotations

import numpy as np
import pytest

import descentlab
from descentlab.analysis import analyze_result, compare
from descentlab.analysis.attractors import NOT_SETTLED, find_attractors, recent_movement
from descentlab.engine.store import write_run
from descentlab.landscapes.registry import get_landscape

HIMMELBLAU_MINIMA = dict(get_landscape("himmelblau").minima({}, 2))


def _nearest_minimum(x: np.ndarray) -> np.ndarray:
    names = list(HIMMELBLAU_MINIMA)
    pts = np.array([HIMMELBLAU_MINIMA[n] for n in names])
    d = np.linalg.norm(x[:, None, :] - pts[None], axis=2)
    return np.array(names, dtype=object)[np.argmin(d, axis=1)], d.min(axis=1)


@pytest.mark.parametrize("record_every", [None, 10])
def test_adam_basins_are_the_ones_a_person_would_draw(record_every):
    # the case: Adam lr 0.05, 300 steps, grad_tol never met by most particles (they hover)
    run = {"particles": 2000, "steps": 300, "seed": 3}
    if record_every:
        run["record_every"] = record_every
    spec = {"run": run, "landscape": {"name": "himmelblau"}, "optimizer": {"name": "adam", "lr": 0.05},
            "init": {"scheme": "uniform", "low": -5.0, "high": 5.0}}  # fmt: skip
    r = descentlab.simulate(spec)
    assert np.mean(r.status == 1) < 0.5  # most particles did not meet grad_tol: the case of the issue
    ar = analyze_result(r)
    assert sorted(ar.attractors.names) == sorted(HIMMELBLAU_MINIMA)
    near, dist = _nearest_minimum(r.final_x)
    tol = ar.attractors.tol
    close = dist < 1e-2
    assert close.mean() > 0.9
    lab = ar.labels
    names = np.array(ar.attractors.names, dtype=object)
    # every particle within 1e-2 of a minimum is in that minimum's basin; whoever is labelled is near its minimum
    assert np.all(lab[close] >= 0)
    assert np.all(names[lab[close]] == near[close])
    assert np.all(names[lab[lab >= 0]] == near[lab >= 0]) and np.all(dist[lab >= 0] < 2 * tol)
    assert ar.fraction("not settled") < 0.05
    assert ar.fraction("not settled") == pytest.approx(np.mean(lab == NOT_SETTLED))


def test_grad_tol_zero_gives_the_same_basins():
    base = {"run": {"steps": 300, "record_every": 10}, "landscape": {"name": "himmelblau"},
            "optimizer": {"name": "sgd", "lr": 0.01}, "init": {"scheme": "grid", "resolution": 30}}  # fmt: skip
    ref = analyze_result(descentlab.simulate(base))
    zero = descentlab.simulate({**base, "stop": {"grad_tol": 0.0}})
    assert np.all(zero.status == 0)  # nobody "converges" with grad_tol = 0
    ar = analyze_result(zero)
    assert ar.attractors.n == 4 and sorted(ar.attractors.names) == sorted(HIMMELBLAU_MINIMA)
    a = np.array(ref.attractors.names, dtype=object)[ref.labels]
    b = np.array(ar.attractors.names, dtype=object)[ar.labels]
    assert np.all(ref.labels >= 0) and np.all(ar.labels >= 0)
    assert np.all(a == b)
    # and the same from the start and end only (the movement is unknown: Newton decides)
    only_ends = descentlab.simulate({**base, "run": {"steps": 300}, "stop": {"grad_tol": 0.0}})
    ar2 = analyze_result(only_ends)
    assert np.all(np.array(ar2.attractors.names, dtype=object)[ar2.labels] == a)


def test_particles_still_moving_are_not_settled():
    # Rosenbrock's valley: after 200 small steps most particles still crawl towards (1, 1)
    spec = {"run": {"steps": 200, "record_every": 10}, "landscape": {"name": "rosenbrock"},
            "optimizer": {"name": "sgd", "lr": 1e-3}, "init": {"scheme": "grid", "resolution": 20},
            "stop": {"grad_tol": 0.0}}  # fmt: skip
    r = descentlab.simulate(spec)
    ar = analyze_result(r)
    mv = recent_movement(r.trajectory_x, r.record_steps, r.final_x, 200)
    assert mv is not None
    tol = ar.attractors.tol
    moving = (r.status == 0) & (mv > tol)
    assert moving.mean() > 0.5
    # every particle that still moves and is not within tol of the minimum is "not settled"
    far = np.max(np.abs(r.final_x - 1.0), axis=1) > tol  # (some particles blew up: no norm overflow)
    assert np.all(ar.labels[moving & far] == NOT_SETTLED)
    # and whatever settled, settled at the minimum (1, 1)
    for a in range(ar.attractors.n):
        np.testing.assert_allclose(ar.attractors.positions[a], [1.0, 1.0], atol=tol)


def test_period_two_cycle_is_not_a_basin():
    # lr 0.02 on Himmelblau: the minimum at (3.58, -1.85) is unstable; particles jump between two
    # points, and with an even record interval they look still at every record
    stop = {"bound": 1e300, "grad_tol": 1e-3}
    spec = {"run": {"steps": 60, "record_every": 10}, "landscape": {"name": "himmelblau"},
            "optimizer": {"name": "sgd", "lr": 0.02}, "init": {"scheme": "grid", "resolution": 20, "low": -6.0,
            "high": 6.0}, "stop": stop}  # fmt: skip
    r = descentlab.simulate(spec)
    ar = analyze_result(r)
    for a in range(ar.attractors.n):
        assert ar.critical.grad_norm[a] < 1e-6, ar.attractors.names[a]  # every attractor is a critical point


def test_find_attractors_accept_and_movement_rules():
    x = np.array([[0.0, 0.0], [0.001, 0.0], [5.0, 5.0], [5.001, 5.0], [9.0, 9.0]])
    loss = np.zeros(5)
    status = np.zeros(5, dtype=np.int8)
    # no movement information, no accept: nothing settles
    att = find_attractors(x, loss, status, scale=1.0)
    assert att.n == 0 and np.all(att.labels == NOT_SETTLED)
    # accept says which clusters are at a critical point
    att = find_attractors(x, loss, status, scale=1.0, accept=lambda s: np.linalg.norm(s, axis=1) < 1)
    assert att.n == 1 and list(att.labels) == [0, 0, -1, -1, -1]
    # movement known: the still ones settle, the moving one does not
    mv = np.array([0.0, 0.0, 0.0, 0.0, 1.0])
    att = find_attractors(x, loss, status, scale=1.0, movement=mv)
    assert att.n == 2 and att.labels[4] == NOT_SETTLED
    # include_running: everything that ran counts
    att = find_attractors(x, loss, status, scale=1.0, include_running=True)
    assert att.n == 3


def _product_file(path, lr, steps=20, bound=None, low=-2.0):
    spec = {"run": {"steps": steps, "record_every": 5}, "landscape": {"name": "product"},
            "optimizer": {"name": "sgd", "lr": lr}, "init": {"scheme": "grid", "resolution": 12, "low": low,
            "high": 2.0}}  # fmt: skip
    if bound:
        spec["stop"] = {"bound": bound}
    return write_run(spec, path, progress=False)


def test_compare_shares_one_reference_and_tells_runs_apart(tmp_path):
    # the product loss has no known optimum: each run's own best loss used to be its reference
    paths = [_product_file(tmp_path / f"lr{lr}.h5", lr) for lr in (0.002, 0.01, 0.05)]
    rows, _ = compare(paths)
    refs = {r["f_ref"] for r in rows}
    assert len(refs) == 1
    medians = [r["median loss"] for r in rows]
    assert medians[0] > 2 * medians[2]
    success = [r["success"] for r in rows]
    area = [r["ECDF area"] for r in rows]
    assert success[2] > success[0] and area[0] < area[1] < area[2]
    # "global": particles at attractors whose loss is the shared reference's
    assert rows[2]["global"] > 0.2 and rows[0]["global"] == 0.0
    # alone, the slowest run is measured against its own best loss: a different (kinder) picture
    alone, _ = compare([paths[0]])
    assert alone[0]["f_ref"] > rows[0]["f_ref"] and alone[0]["success"] > rows[0]["success"]


def test_left_the_bound_is_never_a_success(tmp_path):
    # lr 0.6 on the product loss blows up from most starts; a bound of 10 stops them
    path = _product_file(tmp_path / "blow.h5", 0.6, steps=50, bound=10.0, low=0.5)
    from descentlab.analysis import analyze

    ar = analyze(path, write=False)
    with descentlab.open_run(path) as f:
        status = f.status[...]
    assert np.mean(status == 3) > 0.2
    stt = ar.convergence["steps_to_target"]
    assert np.all(stt[status >= 2] == -1)
    assert ar.summary["success_rate"] <= np.mean(status < 2)
    # every particle out of the bound (the run reported "reached by 100 %"): nothing is a success
    r = descentlab.simulate({"run": {"steps": 20, "record_every": 5}, "landscape": {"name": "product"},
                             "optimizer": {"name": "sgd", "lr": 0.05},
                             "init": {"scheme": "grid", "resolution": 12, "low": -2.0, "high": 2.0}})  # fmt: skip
    r.status[:] = 3
    ar = analyze_result(r)
    assert ar.summary["success_rate"] == 0.0 and ar.summary["ecdf_area"] == 0.0
    assert np.all(ar.convergence["steps_to_target"] == -1) and ar.attractors.n == 0


def test_many_attractors_keep_their_gradient_norm():
    # above PYTHON_HESSIAN_MAX points the compiled Hessian is used; grad_norm and loss used to be NaN there
    from descentlab.analysis.critical import PYTHON_HESSIAN_MAX, LandscapeMath, analyze_points

    lm = LandscapeMath(get_landscape("double_well"), {"barrier": 1.0}, 2)
    x = np.random.default_rng(0).uniform(-2, 2, (PYTHON_HESSIAN_MAX + 10, 2))
    cp = analyze_points(lm, x)
    np.testing.assert_allclose(cp.grad_norm, np.linalg.norm(lm.grad(x), axis=1))
    np.testing.assert_allclose(cp.losses, lm.value(x))
    assert np.all(np.isfinite(cp.eigenvalues))


def test_cli_knobs_of_analyze_and_compare(tmp_path, capsys):
    from descentlab.analysis import read_summary
    from descentlab.cli import main

    path = _product_file(tmp_path / "p.h5", 0.05)
    rc = main(["analyze", str(path), "--targets", "1e-2,1e-4", "--reference", "0", "--rel-tol", "0.02",
               "--include-running"])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    s = read_summary(path)
    assert s["targets"] == [1e-2, 1e-4] and s["f_opt"] == 0.0 and s["reference_kind"] == "given"
    assert s["tolerance"] == pytest.approx(0.02 * get_landscape("product").scale)
    assert "include_running" in s["settle_rule"]
    capsys.readouterr()
    assert main(["analyze", str(path), "--targets", "fast"]) == 2
    err = capsys.readouterr().err
    assert "--targets" in err and "Traceback" not in err
    assert main(["compare", str(path), str(path), "--reference", "1.0"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("|")]
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:]]
    assert len(rows) == 2 and all(r[head.index("f_ref")] == "1" for r in rows)  # the given reference, shared


def test_newton_accepts_degenerate_minima_and_rejects_non_critical_points():
    from descentlab.analysis.critical import newton_critical

    class Quartic:  # f = x^4 + y^2: a degenerate minimum at the origin (Hessian diag(0, 2) there)
        dim = 2

        def grad(self, x):
            return np.column_stack([4 * x[:, 0] ** 3, 2 * x[:, 1]])

        def hess(self, x, compiled=None):
            h = np.zeros((x.shape[0], 2, 2))
            h[:, 0, 0] = 12 * x[:, 0] ** 2
            h[:, 1, 1] = 2.0
            return h

    # from x = 0.04 Newton shrinks x by 2/3 a step: after 20 steps its last step (4e-6) is still above
    # 1e-6 tol, but the gradient is down by (2/3)^60: a critical point
    ok = newton_critical(Quartic(), np.array([[0.04, 0.01], [0.5, 0.0], [0.0, 0.0]]), tol=0.05, iters=20)
    assert ok.tolist() == [True, False, True]  # the second start is 0.5 away: not within tol
