"""kernels.functional: a landscape's compiled value / gradient / Hessian without a run, and the
analysis' Hessian census on a formula landscape above PYTHON_HESSIAN_MAX points (the compiled path)."""

from __future__ import annotations

import numpy as np
import pytest

from descentlab.analysis import critical
from descentlab.analysis.critical import PYTHON_HESSIAN_MAX, LandscapeMath
from descentlab.kernels.functional import landscape_functions
from descentlab.landscapes import get_landscape
from descentlab.landscapes.formula import formula_landscape

ROSEN = "(1-x)**2 + 100*(y-x**2)**2"


def rosenbrock(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Value (n,), gradient (n, 2), Hessian (n, 2, 2) of (1 - x)^2 + 100 (y - x^2)^2 written out by hand."""
    a, b = x[:, 0], x[:, 1]
    f = (1 - a) ** 2 + 100 * (b - a**2) ** 2
    g = np.stack([-2 * (1 - a) - 400 * a * (b - a**2), 200 * (b - a**2)], axis=1)
    h = np.empty((x.shape[0], 2, 2))
    h[:, 0, 0] = 2 - 400 * (b - a**2) + 800 * a**2
    h[:, 0, 1] = h[:, 1, 0] = -400 * a
    h[:, 1, 1] = 200
    return f, g, h


@pytest.fixture(scope="module")
def points() -> np.ndarray:
    return np.random.default_rng(3).uniform(-2, 2, size=(PYTHON_HESSIAN_MAX + 45, 2))


@pytest.mark.parametrize("source", ["registry", "formula"])
def test_landscape_functions_match_the_formulas(source, points):
    land = get_landscape("rosenbrock") if source == "registry" else formula_landscape(ROSEN)
    f = landscape_functions(land, {}, 2)
    want_f, want_g, want_h = rosenbrock(points)
    np.testing.assert_allclose(f.value(points), want_f, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(f.grad(points), want_g, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(f.hess(points), want_h, rtol=1e-12, atol=1e-9)
    loss, gn = f.value_and_grad_norm(points)
    np.testing.assert_array_equal(loss, f.value(points))
    np.testing.assert_allclose(gn, np.linalg.norm(want_g, axis=1), rtol=1e-12, atol=1e-9)
    assert f.value(np.zeros((0, 2))).shape == (0,) and f.hess(np.zeros((0, 2))).shape == (0, 2, 2)


def test_float32_functions_stay_float32(points):
    f = landscape_functions(get_landscape("himmelblau"), None, None, dtype="float32")
    assert f.value(points).dtype == np.float32 and f.hess(points[:5]).dtype == np.float32


def test_formula_census_above_the_python_limit_uses_the_compiled_hessian(points, monkeypatch):
    """More than PYTHON_HESSIAN_MAX points: the compiled path, on the formula landscape object itself
    (before, it rebuilt a spec from the landscape's name, which a formula does not have)."""
    land = formula_landscape(ROSEN)
    lm = LandscapeMath(land, {}, 2)
    called = []
    real = critical._compiled_hessian
    monkeypatch.setattr(critical, "_compiled_hessian", lambda *a: called.append(1) or real(*a))
    minimum = np.array([[1.0, 1.0]])
    pts = np.concatenate([points, minimum])
    cen = critical.census(lm, pts, rosenbrock(pts)[0])
    assert called, "the compiled Hessian was not used"
    assert cen["index"].shape == (pts.shape[0],)
    _, _, h = rosenbrock(pts)
    want_index = np.sum(np.linalg.eigvalsh(h) < 0, axis=1)
    np.testing.assert_array_equal(cen["index"], want_index)
    assert cen["index"][-1] == 0  # the minimum (1, 1): Hessian [[802, -400], [-400, 200]] is positive definite
    np.testing.assert_allclose(cen["sharpness"][-1], np.linalg.eigvalsh(h[-1])[-1], rtol=1e-12)
