"""Every registered landscape: derivatives vs finite differences, known critical points,
float32 purity; user formulas vs the built-in Rosenbrock."""

from __future__ import annotations

import ast
import math

import numpy as np
import pytest
from numba import njit

import descentlab
from descentlab.landscapes import LANDSCAPES, get_landscape
from descentlab.landscapes.base import Landscape
from descentlab.landscapes.formula import formula_landscape, generate_source

_COMPILED: dict[tuple[int, int, int], object] = {}


def _kernel(land: Landscape):  # type: ignore[no-untyped-def]
    """One compiled helper per landscape: value, grad and (optionally) Hessian of a block."""
    key = (id(land.value), id(land.grad), id(land.hess))
    if key not in _COMPILED:
        value, grad, hess = land.value, land.grad, land.hess

        @njit(error_model="numpy")
        def run(x, p, w, out, g, h, want_h):  # type: ignore[no-untyped-def]
            n = x.shape[1]
            value(x, p, w, out, 0, n)
            grad(x, p, w, g, 0, n)
            if want_h:
                hess(x, p, w, h, 0, n)

        _COMPILED[key] = run
    return _COMPILED[key]


def evaluate(land: Landscape, pts: np.ndarray, params=None, dtype=np.float64, hessian=True, jit=True):  # type: ignore[no-untyped-def]
    """(f (n,), g (n, D), H (n, D, D)) at points (n, D)."""
    pts = np.atleast_2d(np.asarray(pts, dtype=np.float64))
    n, dim = pts.shape
    prm = land.resolve_params(params)
    p = land.pack(prm, dim).astype(dtype)
    x = np.ascontiguousarray(pts.T.astype(dtype))
    w = np.zeros((land.scratch_rows(dim), n), dtype)
    out = np.zeros(n, dtype)
    g = np.zeros((dim, n), dtype)
    h = np.zeros((dim, dim, n), dtype)
    if jit:
        _kernel(land)(x, p, w, out, g, h, hessian)
    else:
        land.value(x, p, w, out, 0, n)
        land.grad(x, p, w, g, 0, n)
        if hessian:
            land.hess(x, p, w, h, 0, n)
    return out, g.T.copy(), np.moveaxis(h, 2, 0).copy()


def _dims(land: Landscape) -> list[int]:
    return [land.dim] if land.dim is not None else [2, 5]


CASES = [(name, d) for name, land in LANDSCAPES.items() for d in _dims(land)]
IDS = [f"{n}-D{d}" for n, d in CASES]


def _points(land: Landscape, dim: int, m: int = 20, seed: int = 0) -> np.ndarray:
    lo, hi = land.init_box
    return np.random.default_rng(seed).uniform(lo, hi, size=(m, dim))


def _fd(land: Landscape, pts: np.ndarray, step: float = 1e-3):  # type: ignore[no-untyped-def]
    """Fourth-order central differences of value (-> gradient) and gradient (-> Hessian)."""
    m, dim = pts.shape
    offs = np.array([2.0, 1.0, -1.0, -2.0]) * step
    coef = np.array([-1.0, 8.0, -8.0, 1.0]) / (12.0 * step)
    shifted = pts[:, None, None, :] + offs[None, None, :, None] * np.eye(dim)[None, :, None, :]  # (m, D, 4, D)
    f, g, _ = evaluate(land, shifted.reshape(-1, dim), hessian=False)
    f = f.reshape(m, dim, 4)
    g = g.reshape(m, dim, 4, dim)
    fd_g = np.einsum("mdk,k->md", f, coef)
    fd_h = np.einsum("mdkr,k->mrd", g, coef)  # H[r, d] = d g_r / d x_d
    return fd_g, fd_h


@pytest.mark.parametrize(("name", "dim"), CASES, ids=IDS)
def test_derivatives_match_finite_differences(name: str, dim: int) -> None:
    land = LANDSCAPES[name]
    pts = _points(land, dim)
    f, g, h = evaluate(land, pts)
    assert np.all(np.isfinite(f)) and np.all(np.isfinite(g)) and np.all(np.isfinite(h))
    fd_g, fd_h = _fd(land, pts)
    for k in range(len(pts)):
        gs = 1.0 + np.abs(g[k]).max()
        np.testing.assert_allclose(g[k], fd_g[k], rtol=1e-6, atol=1e-7 * (gs + abs(f[k])), err_msg=f"grad at {pts[k]}")
        hs = 1.0 + np.abs(h[k]).max()
        np.testing.assert_allclose(h[k], fd_h[k], rtol=1e-6, atol=1e-7 * (hs + gs), err_msg=f"Hessian at {pts[k]}")
        np.testing.assert_array_equal(h[k], h[k].T)


@pytest.mark.parametrize("name", sorted(LANDSCAPES))
def test_interpreted_matches_compiled(name: str) -> None:
    """The plain-Python math (what the CUDA simulator runs) equals the compiled math."""
    land = LANDSCAPES[name]
    pts = _points(land, _dims(land)[0], m=3, seed=1)
    for a, b in zip(evaluate(land, pts), evaluate(land, pts, jit=False), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13 * (1 + np.abs(b).max()))


def _known(name: str, dim: int):  # type: ignore[no-untyped-def]
    land = LANDSCAPES[name]
    prm = land.resolve_params(None)
    return land, land.minima(prm, dim), land.saddles(prm, dim)


@pytest.mark.parametrize(("name", "dim"), CASES, ids=IDS)
def test_known_critical_points(name: str, dim: int) -> None:
    land, minima, saddles = _known(name, dim)
    for kind, pts in (("minimum", minima), ("saddle", saddles)):
        for label, pt in pts:
            assert pt.shape == (dim,), (label, pt.shape)
            _, g, h = evaluate(land, pt[None, :])
            g, h = g[0], h[0]
            assert np.abs(g).max() <= 1e-9 * (1.0 + np.abs(h).max()), f"{name} {kind} {label}: grad {g}"
            ev = np.linalg.eigvalsh(h)
            tiny = 1e-9 * (1.0 + np.abs(ev).max())
            if kind == "minimum":
                assert ev.min() > tiny, f"{name} minimum {label}: Hessian eigenvalues {ev}"
            elif np.abs(h).max() == 0.0:
                assert name == "monkey_saddle", f"{name} saddle {label}: degenerate Hessian"
            else:
                assert ev.min() < -tiny and ev.max() > tiny, f"{name} saddle {label}: eigenvalues {ev}"


def test_catalogue_has_critical_points() -> None:
    """Landscapes that should list critical points do (so the test above checks something)."""
    expect = {"himmelblau": (4, 0), "six_hump_camel": (6, 7), "rastrigin": (1, 0), "ackley": (1, 0),
              "beale": (1, 2), "muller_brown": (3, 2), "saddle": (0, 1), "monkey_saddle": (0, 1),
              "double_well": (2, 1), "product": (0, 1), "quadratic": (1, 0), "rosenbrock": (1, 0)}  # fmt: skip
    for name, (n_min, n_sad) in expect.items():
        _, minima, saddles = _known(name, 2)
        assert (len(minima), len(saddles)) == (n_min, n_sad), name
    _, minima, _ = _known("styblinski_tang", 3)
    assert len(minima) == 8 and minima[0][0] == "global"


#: Muller & Brown (1979), Theor. Chim. Acta 53, 75-93, as tabulated with the standard parameters
#: (e.g. https://hunterheidenreich.com/notes/benchmark-problems/muller-brown-1979): points to 3
#: decimals, energies to 2. The second saddle's energy is left out: the sources disagree.
MB_PARAMS = {"A": (-200, -100, -170, 15), "a": (-1, -1, -6.5, 0.7), "b": (0, 0, 11, 0.6), "c": (-10, -10, -6.5, 0.7),
             "x0": (1, 0, -0.5, -1), "y0": (0, 0.5, 1.5, 1)}  # fmt: skip
MB_MINIMA = {(-0.558, 1.442): -146.70, (0.623, 0.028): -108.17, (-0.050, 0.467): -80.77}
MB_SADDLES = {(-0.822, 0.624): -40.66, (0.212, 0.293): None}


def _muller_brown(pts: np.ndarray) -> np.ndarray:
    """The published formula, term by term (independent of descentlab's code)."""
    x, y = pts[:, 0], pts[:, 1]
    out = np.zeros(len(pts))
    for A, a, b, c, x0, y0 in zip(*MB_PARAMS.values(), strict=True):
        out += A * np.exp(a * (x - x0) ** 2 + b * (x - x0) * (y - y0) + c * (y - y0) ** 2)
    return out


def test_muller_brown_against_the_literature() -> None:
    land = LANDSCAPES["muller_brown"]
    pts = np.random.default_rng(5).uniform((-1.5, -0.5), (1.0, 2.0), size=(200, 2))
    np.testing.assert_allclose(evaluate(land, pts)[0], _muller_brown(pts), rtol=1e-12, atol=1e-12)
    for known, table in ((_known("muller_brown", 2)[1], MB_MINIMA), (_known("muller_brown", 2)[2], MB_SADDLES)):
        assert len(known) == len(table)
        for (where, energy), (_, pt) in zip(table.items(), known, strict=True):
            np.testing.assert_allclose(pt, where, atol=5e-4 + 1e-12)  # the table's rounding
            f, g, _ = evaluate(land, pt[None])
            assert np.abs(g).max() < 1e-8  # a critical point, to far more digits than the table
            if energy is not None:
                assert abs(f[0] - energy) <= 5e-3 + 1e-12, (where, f[0], energy)


def test_known_values() -> None:
    for _, pt in _known("himmelblau", 2)[1]:
        assert abs(evaluate(LANDSCAPES["himmelblau"], pt[None])[0][0]) < 1e-20
    f = evaluate(LANDSCAPES["six_hump_camel"], np.array([pt for _, pt in _known("six_hump_camel", 2)[1][:2]]))[0]
    np.testing.assert_allclose(f, -1.0316284534898774, rtol=1e-12)
    st = _known("styblinski_tang", 4)[1][0][1]
    np.testing.assert_allclose(st, -2.903534, atol=1e-6)
    np.testing.assert_allclose(evaluate(LANDSCAPES["styblinski_tang"], st[None])[0], -39.16616570377142 * 4, rtol=1e-12)
    np.testing.assert_allclose(evaluate(LANDSCAPES["beale"], np.array([[3.0, 0.5]]))[0], 0.0, atol=1e-30)
    for name in ("rastrigin", "ackley"):
        f, g, _ = evaluate(LANDSCAPES[name], np.zeros((1, 5)))
        assert abs(f[0]) < 1e-14 and np.all(g == 0.0), name  # Ackley: safe form, no NaN at the cone tip


def test_product_origin_hessian() -> None:
    _, _, h = evaluate(LANDSCAPES["product"], np.zeros((1, 2)))
    np.testing.assert_array_equal(np.linalg.eigvalsh(h[0]), [-2.0, 2.0])
    assert LANDSCAPES["product"].minima_manifold == "w1*w2 = y/x"
    # on the curve w1 w2 = y / x the loss and gradient vanish
    f, g, _ = evaluate(LANDSCAPES["product"], np.array([[2.0, 1.5]]), params={"x": 2.0, "y": 6.0})
    assert f[0] == 0.0 and np.all(g == 0.0)


def test_quadratic_spectrum_and_rotation() -> None:
    land = LANDSCAPES["quadratic"]
    _, _, h = evaluate(land, np.ones((1, 5)), params={"condition": 100.0, "rotation": 0.3})
    np.testing.assert_allclose(np.linalg.eigvalsh(h[0]), np.logspace(0, 2, 5), rtol=1e-12)
    _, _, h = evaluate(land, np.ones((1, 2)), params={"condition": 10.0, "rotation": math.pi / 2})
    np.testing.assert_allclose(h[0], np.diag([10.0, 1.0]), atol=1e-12)  # a quarter turn swaps the axes
    with pytest.raises(ValueError, match="condition"):
        land.pack({"condition": 0.5, "rotation": 0.0}, 2)


def test_random_landscape_is_seeded() -> None:
    land = LANDSCAPES["random"]
    prm = land.resolve_params(None)
    a, b = land.pack(prm, 3), land.pack(prm, 3)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (2 + 32 * 3 + 2 * 32,)
    assert not np.array_equal(a, land.pack({**prm, "seed": 1}, 3))
    pts = _points(land, 3)
    f0 = evaluate(land, pts)[0]
    f1 = evaluate(land, pts, params={"seed": 1})[0]
    assert not np.allclose(f0, f1)
    # far away the bowl dominates: f ~ 0.5 c |x|^2
    far = np.full((1, 3), 100.0)
    assert abs(evaluate(land, far)[0][0] - 0.5 * 0.1 * 3e4) < 10.0


FLOAT32_CASES = ["rosenbrock", "ackley", "muller_brown", "random", "quadratic", "rastrigin", "six_hump_camel"]


@pytest.mark.parametrize("name", FLOAT32_CASES)
def test_float32_stays_float32(name: str) -> None:
    land = LANDSCAPES[name]
    dim = _dims(land)[0]
    pts = _points(land, dim, m=8, seed=2).astype(np.float32).astype(np.float64)
    f32 = evaluate(land, pts, dtype=np.float32)
    f64 = evaluate(land, pts)
    for a, b in zip(f32, f64, strict=True):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * (1 + np.abs(b).max()))
    # no float64 arithmetic in the float32 machine code (a bare literal would promote)
    run = _kernel(land)
    sig = next(s for s in run.signatures if s[0].dtype.name == "float32")
    ir = run.inspect_llvm(sig)
    for op in ("fadd double", "fmul double", "fsub double", "fdiv double", "fpext float"):
        assert op not in ir, f"{name}: float32 code contains {op!r}"


def test_float32_check_catches_a_bare_literal() -> None:
    """The IR check above is not vacuous: a bare 0.1 shows up as double arithmetic."""
    from descentlab._jit import math_function

    @math_function
    def bad_value(x, p, w, out, lo, hi):  # type: ignore[no-untyped-def]
        for i in range(lo, hi):
            out[i] = 0.1 * x[0, i]

    @njit(error_model="numpy")
    def run(x, p, w, out):  # type: ignore[no-untyped-def]
        bad_value(x, p, w, out, 0, x.shape[1])

    x = np.ones((1, 4), np.float32)
    run(x, np.zeros(1, np.float32), x, np.zeros(4, np.float32))
    assert "fmul double" in run.inspect_llvm(run.signatures[0])


# --------------------------------------------------------------------------- formulas

ROSEN = "(1-x)**2 + 100*(y-x**2)**2"


def test_formula_matches_rosenbrock() -> None:
    land = formula_landscape(ROSEN)
    assert land.dim == 2 and land.spec_entry == {"formula": ROSEN}
    assert formula_landscape(ROSEN) is land  # memoised: kernels are reused
    pts = _points(LANDSCAPES["rosenbrock"], 2, m=50)
    for a, b in zip(evaluate(land, pts), evaluate(LANDSCAPES["rosenbrock"], pts), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    for a, b in zip(evaluate(land, pts[:3], jit=False), evaluate(land, pts[:3]), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-14)


def test_formula_derivatives_and_variable_order() -> None:
    land = formula_landscape("exp(-x2^2/2)*sin(pi*x10) + sqrt(x1**2 + 1) + x10*x1/(1 + x2**2)**3 + 0.25*E*x1")
    assert land.variables == ("x1", "x2", "x10")
    pts = _points(land, 3)
    f, g, h = evaluate(land, pts)
    fd_g, fd_h = _fd(land, pts)
    np.testing.assert_allclose(g, fd_g, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(h, fd_h, rtol=1e-6, atol=1e-7)
    x1, x2, x10 = pts.T
    ref = np.exp(-(x2**2) / 2) * np.sin(np.pi * x10) + np.sqrt(x1**2 + 1)
    ref += x10 * x1 / (1 + x2**2) ** 3 + 0.25 * np.e * x1
    np.testing.assert_allclose(f, ref, rtol=1e-13)


def test_formula_source_wraps_every_constant() -> None:
    src, names = generate_source("3*x**2 - 0.5*y + exp(-x*y/7) + pi + x**2.5")
    assert names == ["x", "y"]
    tree = ast.parse(src)
    allowed: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "real":
            allowed |= {id(c) for c in ast.walk(node.args[0])}
        if isinstance(node, ast.Subscript):  # indices x[0, i], h[1, 0, i]
            allowed |= {id(c) for c in ast.walk(node.slice)}
    for fn in (n for n in tree.body if isinstance(n, ast.FunctionDef)):
        for node in ast.walk(fn):
            if isinstance(node, ast.Constant) and type(node.value) in (int, float):
                assert id(node) in allowed, f"bare constant {node.value!r} in generated {fn.name}"


@pytest.mark.parametrize(
    ("formula", "message"),
    [
        ("x +", "cannot parse"),
        ("", "empty"),
        ("3 + 4", "no variables"),
        ("foo(x) + y", "unknown function"),
        ("sqrt(-1)*x", "real"),
        ("log(-2)*x", "real"),
        ("x/0", "real"),
        ("__import__('os').system('true')", "not allowed"),
        ("x.subs(x, 1)", "not allowed"),
        ("lambda x: x", "not allowed"),
        ("x, y", "scalar"),
        ("sin + x", "without arguments"),
    ],
)
def test_bad_formula_raises(formula: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        formula_landscape(formula)


def test_formula_module_written_to_cache(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DESCENTLAB_CACHE", str(tmp_path))
    land = formula_landscape("x**2 + 3*y**2 + 0.125*x*y  ")
    files = list((tmp_path / "formulas").glob("f_*.py"))
    assert len(files) == 1 and land.value.__module__.startswith("descentlab_formula_")
    assert "x**2 + 3*y**2" in files[0].read_text()


def test_formula_simulation_equals_builtin() -> None:
    """Same run through the formula and the built-in Rosenbrock. The init box keeps
    lr * max|Hessian| < 2 (stable SGD), so the two roundings cannot be blown up."""
    base = {"run": {"particles": 256, "steps": 50}, "optimizer": {"name": "sgd", "lr": 1e-3},
            "init": {"scheme": "uniform", "low": -1.0, "high": 1.0}}  # fmt: skip
    a = descentlab.simulate({**base, "landscape": {"formula": ROSEN}})
    b = descentlab.simulate({**base, "landscape": {"name": "rosenbrock"}})
    assert a.spec["landscape"]["formula"] == ROSEN
    np.testing.assert_array_equal(a.status, b.status)
    assert np.all(np.isfinite(a.final_x)) and np.abs(a.final_x).max() < 2.0
    np.testing.assert_allclose(a.final_x, b.final_x, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(a.final_loss, b.final_loss, rtol=1e-12, atol=1e-12)


def test_registry_lookup() -> None:
    assert get_landscape("muller_brown").dim == 2
    with pytest.raises(KeyError, match="unknown landscape"):
        get_landscape("nope")
