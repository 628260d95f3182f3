"""Critical points of models (finite sums): Hessian-vector products, Lanczos, analysis (issues 4, 5).

Nothing here compiles a kernel: the analysis of a model uses the NumPy backward
pass (descentlab.models.reference) and central differences of its gradient.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from descentlab.analysis import RunData, analyze_arrays
from descentlab.analysis.critical import DENSE_HESSIAN_MAX, ModelMath, analyze_points, classify
from descentlab.engine.spec import parse_spec


def _math(landscape: dict[str, Any], data: dict[str, Any]) -> ModelMath:
    spec = {"run": {"particles": 1, "steps": 1}, "landscape": landscape, "data": data, "optimizer": {"name": "sgd"}}
    rs = parse_spec(spec)
    return ModelMath(rs.landscape, rs.landscape_params, rs.dim, rs.finite_sum)


LINEAR_DATA = {"name": "linear", "features": 3, "samples": 200, "noise": 0.3, "test_fraction": 0.0, "seed": 4}


def _design(lm: ModelMath) -> np.ndarray:
    x = lm.fs.data.x_train
    return np.hstack([x, np.ones((x.shape[0], 1))])


def test_linear_regression_hessian_is_the_normal_matrix() -> None:
    # loss = mean((X w + b - y)^2): H = 2/n [X 1]^T [X 1] everywhere (parameter order w, then b)
    lm = _math({"name": "linear_regression"}, LINEAR_DATA)
    a = _design(lm)
    exact = 2.0 / a.shape[0] * a.T @ a
    points = np.random.default_rng(0).normal(size=(3, lm.dim))
    h = lm.hess(points)
    for hk in h:
        np.testing.assert_allclose(hk, exact, rtol=1e-7, atol=1e-9)
    v = np.random.default_rng(1).normal(size=(5, lm.dim))
    np.testing.assert_allclose(lm.hvp(points[0], v), v @ exact, rtol=1e-7, atol=1e-9)


def test_model_hessian_matches_finite_differences_of_the_loss() -> None:
    lm = _math({"name": "mlp", "hidden": [3], "activation": "tanh", "loss": "cross_entropy"},
               {"name": "blobs", "samples": 60, "seed": 2, "standardize": True})  # fmt: skip
    x0 = np.random.default_rng(3).normal(scale=0.5, size=lm.dim)
    h = lm.hess(x0[None])[0]
    e = 1e-4
    eye = np.eye(lm.dim)
    for i, j in [(0, 0), (1, 4), (lm.dim - 1, 2), (5, lm.dim - 2)]:
        pts = np.array([x0 + e * (eye[i] + eye[j]), x0 + e * (eye[i] - eye[j]),
                        x0 - e * (eye[i] - eye[j]), x0 - e * (eye[i] + eye[j])])  # fmt: skip
        f = lm.value(pts)
        fd = (f[0] - f[1] - f[2] + f[3]) / (4 * e * e)
        assert abs(h[i, j] - fd) <= 1e-5 * max(1.0, abs(fd)), (i, j, h[i, j], fd)


@pytest.fixture(scope="module")
def large_mlp() -> ModelMath:
    # 20-12-1 tanh MLP: 265 parameters, above the dense limit, so the analysis uses Lanczos
    lm = _math({"name": "mlp", "hidden": [12], "activation": "tanh", "loss": "mse"},
               {"name": "linear", "features": 20, "samples": 120, "test_fraction": 0.0, "seed": 5})  # fmt: skip
    assert lm.dim > DENSE_HESSIAN_MAX and not lm.dense
    return lm


def test_lanczos_extremes_and_trace_match_the_dense_spectrum(large_mlp: ModelMath) -> None:
    lm = large_mlp
    x0 = np.random.default_rng(6).normal(scale=0.3, size=lm.dim)
    h = lm.hess(x0[None])[0]
    full = np.linalg.eigvalsh(h)
    ext, trace = lm.extremes(x0, k=3)
    scale = np.max(np.abs(full))
    np.testing.assert_allclose(ext[:3], full[:3], atol=1e-6 * scale)
    np.testing.assert_allclose(ext[3:], full[-3:], atol=1e-6 * scale)
    # Hutchinson with Rademacher probes: variance 2 (|H|_F^2 - sum H_ii^2) / probes
    from descentlab.analysis.critical import TRACE_PROBES

    sd = np.sqrt(2 * (np.sum(h * h) - np.sum(np.diag(h) ** 2)) / TRACE_PROBES)
    assert abs(trace - np.trace(h)) < 5 * sd, (trace, np.trace(h), sd)


def test_partial_spectrum_classification() -> None:
    assert classify([0.1, 0.2, 5, 6], extremes=2) == "minimum"
    assert classify([-3, 0.5, 5, 6], extremes=2) == "saddle (index 1)"
    assert classify([-3, -1, 5, 6], extremes=2) == "saddle (index 2+)"
    assert classify([-3, 0.0, 5, 6], extremes=2) == "degenerate (index 1, 1+ flat)"
    assert classify([-6, -5, -2, -1], extremes=2) == "maximum"


def test_lanczos_analysis_of_points_reports_sharpness(large_mlp: ModelMath) -> None:
    x = np.random.default_rng(7).normal(scale=0.3, size=(2, large_mlp.dim))
    cp = analyze_points(large_mlp, x)
    assert cp.eigenvalues.shape == (2, 8)
    for j in range(2):
        top = np.linalg.eigvalsh(large_mlp.hess(x[j : j + 1])[0])[-1]
        assert cp.sharpness[j] == pytest.approx(top, rel=1e-6)
    np.testing.assert_allclose(cp.losses, large_mlp.value(x))


def test_analysis_of_a_model_run_finds_the_least_squares_minimum() -> None:
    spec = {
        "run": {"particles": 6, "steps": 10, "record_every": 10, "seed": 0},
        "landscape": {"name": "linear_regression"},
        "data": LINEAR_DATA,
        "optimizer": {"name": "sgd", "lr": 0.2},
        "stop": {"grad_tol": 1e-9},
    }
    lm = _math(spec["landscape"], spec["data"])
    a = _design(lm)
    coef = np.linalg.lstsq(a, lm.fs.data.y_train, rcond=None)[0].ravel()
    final = np.repeat(coef[None], 6, axis=0) + 1e-12 * np.arange(6)[:, None]
    status = np.array([1, 1, 1, 1, 0, 2], dtype=np.int8)  # four converged, one still running, one diverged
    loss = lm.value(final)
    # the spec as a run file stores it (resolved), which the analysis parses again
    data = RunData(spec=parse_spec(spec).resolved, init_x=np.zeros((6, lm.dim)), final_x=final, final_loss=loss,
                   status=status,
                   stop_step=np.array([5, 5, 6, 7, -1, 3]), record_steps=np.array([0, 10]),
                   trajectory_loss=np.stack([loss + 1, loss], axis=1),
                   trajectory_x=np.stack([final, final], axis=1))  # fmt: skip
    ar = analyze_arrays(data)
    assert ar.attractors.n == 1
    assert ar.critical.classes == ["minimum"]
    exact = np.linalg.eigvalsh(2.0 / a.shape[0] * a.T @ a)
    np.testing.assert_allclose(ar.critical.eigenvalues[0], exact, rtol=1e-6)
    assert ar.summary["attractors"][0]["sharpness"] == pytest.approx(exact[-1], rel=1e-6)
    # the running particle ended at the minimum: it settled there (only moving particles are "not settled")
    np.testing.assert_array_equal(ar.attractors.labels, [0, 0, 0, 0, 0, -2])


def test_many_model_points_are_capped_not_silently_dropped() -> None:
    from descentlab.analysis import critical

    lm = _math({"name": "linear_regression"}, LINEAR_DATA)
    x = np.random.default_rng(8).normal(size=(critical.MODEL_MAX_POINTS + 3, lm.dim))
    cp = analyze_points(lm, x)
    assert cp.eigenvalues.shape == (x.shape[0], lm.dim)
    assert cp.classes[: critical.MODEL_MAX_POINTS] == ["minimum"] * critical.MODEL_MAX_POINTS
    assert cp.classes[critical.MODEL_MAX_POINTS :] == ["not computed"] * 3
    assert np.all(np.isnan(cp.sharpness[critical.MODEL_MAX_POINTS :]))


def test_attractors_beyond_the_hessian_cap_are_stated_in_the_summary() -> None:
    from descentlab.analysis import critical, summary_text

    spec = {"run": {"particles": 70, "steps": 10, "record_every": 10, "seed": 0},
            "landscape": {"name": "linear_regression"}, "data": LINEAR_DATA, "optimizer": {"name": "sgd", "lr": 0.1},
            "stop": {"grad_tol": 1e-9}}  # fmt: skip
    lm = _math(spec["landscape"], spec["data"])
    n = critical.MODEL_MAX_POINTS + 6
    final = np.random.default_rng(5).normal(size=(n, lm.dim)) * 3  # 70 distinct "attractors"
    loss = lm.value(final)
    data = RunData(spec=parse_spec(spec).resolved, init_x=np.zeros((n, lm.dim)), final_x=final, final_loss=loss,
                   status=np.ones(n, dtype=np.int8), stop_step=np.full(n, 5), record_steps=np.array([0, 10]),
                   trajectory_loss=np.stack([loss + 1, loss], axis=1),
                   trajectory_x=np.stack([final, final], axis=1))  # fmt: skip
    ar = analyze_arrays(data, views=False)
    assert ar.attractors.n == n
    assert ar.summary["hessians_not_computed"] == 6
    assert "MODEL_MAX_POINTS" in ar.summary["hessians_not_computed_reason"]
    assert "6 attractors have no Hessian" in summary_text(ar.summary)
    assert np.sum(np.isnan(ar.critical.sharpness)) == 6 and np.all(np.isfinite(ar.critical.grad_norm))
