"""Every optimizer's kernel trajectory against the NumPy reference (tests/reference.py).

Each (landscape, optimizer phases, dtype) compiles its own kernel (seconds), so
the cases below reuse a few kernels and vary hyperparameters, which are runtime
values, to exercise every branch.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import pytest

from conftest import assert_close
from descentlab import simulate
from descentlab.engine.run import kernels_for
from descentlab.engine.spec import parse_spec
from descentlab.landscapes.registry import LANDSCAPES
from descentlab.optimizers import OPTIMIZERS
from reference import optimizer_update, simulate_reference


def _land(name: str) -> str:
    """A registered landscape's name; a missing one is an error, never a silent substitute."""
    assert name in LANDSCAPES, f"landscape {name!r} is not registered"
    return name


def _spec(land: str, opt: dict[str, Any], dtype: str = "float64", **kw: Any) -> dict[str, Any]:
    run = {"particles": 256, "steps": 120, "record_every": 5, "dtype": dtype, "seed": 7}
    run.update(kw.pop("run", {}))
    spec: dict[str, Any] = {"run": run, "landscape": {"name": land}, "optimizer": opt}
    spec.update(kw)
    return spec


def _check(spec: dict[str, Any], scale: float = 1.0) -> tuple[Any, dict[str, np.ndarray]]:
    """Kernel vs reference: records, final state, status and stop step."""
    res = simulate(spec)
    ref = simulate_reference(spec)
    dtype = spec["run"].get("dtype", "float64")
    np.testing.assert_array_equal(res.init_x, ref["init_x"])
    np.testing.assert_array_equal(res.record_steps, ref["record_steps"])
    np.testing.assert_array_equal(res.status, ref["status"])
    np.testing.assert_array_equal(res.stop_step, ref["stop_step"])
    assert_close(res.trajectory_x, ref["trajectory_x"], dtype, scale=scale)
    assert_close(res.trajectory_loss, ref["trajectory_loss"], dtype, scale=10.0 * scale)
    assert_close(res.final_x, ref["final_x"], dtype, scale=scale)
    assert np.all(np.isfinite(res.final_x))
    return res, ref


# (landscape, optimizer table, dtypes). Kernels compiled: himmelblau x {sgd, adam, adagrad,
# rmsprop, langevin, newton} x {f64, f32}, himmelblau x {adamw, saddle_free_newton} and
# rosenbrock/quadratic x sgd, double_well x saddle_free_newton in f64 (plus the switch).
BOTH = ("float64", "float32")
F64 = ("float64",)
CASES = [
    ("himmelblau", {"name": "sgd", "lr": 2e-3}, BOTH),
    ("himmelblau", {"name": "sgd", "lr": 2e-3, "momentum": 0.8, "dampening": 0.1, "weight_decay": 0.01}, BOTH),
    ("himmelblau", {"name": "momentum", "lr": 1e-3}, F64),
    ("himmelblau", {"name": "nesterov", "lr": 1e-3, "weight_decay": 0.02}, BOTH),
    ("rosenbrock", {"name": "nesterov", "lr": 2e-4}, F64),
    ("quadratic", {"name": "momentum", "lr": 0.02, "dampening": 0.5}, F64),
    ("himmelblau", {"name": "adam", "lr": 0.05}, BOTH),
    ("himmelblau", {"name": "adam", "lr": 0.05, "betas": [0.8, 0.99], "weight_decay": 0.01, "amsgrad": True}, BOTH),
    ("himmelblau", {"name": "adamw", "lr": 0.05, "weight_decay": 0.1, "amsgrad": True}, F64),
    ("himmelblau", {"name": "adagrad", "lr": 0.2}, BOTH),
    ("himmelblau", {"name": "adagrad", "lr": 0.2, "lr_decay": 0.01, "weight_decay": 0.01,
                    "initial_accumulator_value": 0.5}, BOTH),
    ("himmelblau", {"name": "rmsprop", "lr": 0.01}, BOTH),
    ("himmelblau", {"name": "rmsprop", "lr": 0.01, "alpha": 0.9, "weight_decay": 0.01, "centered": True}, BOTH),
    ("himmelblau", {"name": "rmsprop", "lr": 0.003, "momentum": 0.5}, F64),
    ("himmelblau", {"name": "rmsprop", "lr": 0.003, "momentum": 0.5, "centered": True, "eps": 1e-6}, BOTH),
    ("himmelblau", {"name": "langevin", "lr": 0.01, "noise_std": 1.0}, BOTH),
    ("himmelblau", {"name": "langevin", "lr": 0.003}, F64),
    ("himmelblau", {"name": "newton", "lr": 0.5}, BOTH),
    ("himmelblau", {"name": "newton", "lr": 1.0, "damping": 0.5}, F64),
    ("himmelblau", {"name": "saddle_free_newton", "lr": 0.5}, F64),
    ("double_well", {"name": "saddle_free_newton", "lr": 0.3, "damping": 0.01}, F64),
]  # fmt: skip


def reference_params(dtype: str) -> list[Any]:
    """The CASES of one dtype. pytest-xdist runs a file on one worker (``--dist loadfile``),
    so the float32 cases live in test_optimizers_float32.py and the two halves compile in parallel."""
    return [
        pytest.param(_land(land), opt, dtype, id=f"{_land(land)}-{opt['name']}-{j}-{dtype}")
        for j, (land, opt, dts) in enumerate(CASES)
        if dtype in dts
    ]


PARAMS = reference_params("float64")


@pytest.mark.parametrize(("land", "opt", "dtype"), PARAMS)
def test_trajectory_matches_reference(land: str, opt: dict[str, Any], dtype: str) -> None:
    # The Newton methods solve with a Jacobi eigen-decomposition, the reference with
    # LAPACK: rounding differences grow with the Hessian's condition number.
    scale = 100.0 if OPTIMIZERS[opt["name"]].needs_hessian else 1.0
    _check(_spec(land, dict(opt), dtype), scale=scale)


def test_every_optimizer_is_tested_and_documented() -> None:
    tested = {opt["name"] for _, opt, _ in CASES}
    assert set(OPTIMIZERS) <= tested
    for opt in OPTIMIZERS.values():
        assert opt.reference.startswith("https://"), opt.name
        assert opt.description
        assert next(iter(opt.hyper)) == "lr"


def test_aliases_are_sgd_with_momentum() -> None:
    assert OPTIMIZERS["momentum"].step is OPTIMIZERS["sgd"].step
    assert OPTIMIZERS["nesterov"].step is OPTIMIZERS["sgd"].step
    assert OPTIMIZERS["momentum"].hyper["momentum"] == 0.9 and not OPTIMIZERS["momentum"].hyper["nesterov"]
    assert OPTIMIZERS["nesterov"].hyper["momentum"] == 0.9 and OPTIMIZERS["nesterov"].hyper["nesterov"]


def test_learning_rate_change_does_not_recompile() -> None:
    spec = _spec("himmelblau", {"name": "sgd", "lr": 1e-3}, run={"steps": 20, "particles": 64})
    kern = kernels_for(parse_spec(spec))
    before = len(kern.run_chunk.signatures)
    simulate(spec)
    after_first = len(kern.run_chunk.signatures)
    assert after_first == max(before, 1)
    spec2 = _spec("himmelblau", {"name": "sgd", "lr": 3e-3, "momentum": 0.5, "nesterov": True},
                  run={"steps": 20, "particles": 64}, schedule={"name": "cosine"})  # fmt: skip
    assert kernels_for(parse_spec(spec2)) is kern
    simulate(spec2)
    assert len(kern.run_chunk.signatures) == after_first
    if before == 0:
        assert after_first == 1


def test_switch_matches_reference() -> None:
    spec = _spec(
        "himmelblau",
        {
            "name": "switch",
            "phases": [{"name": "sgd", "lr": 2e-3, "momentum": 0.9, "steps": 40}, {"name": "adam", "lr": 0.02}],
        },
    )
    res, _ = _check(spec)
    # the second phase starts afresh: the result differs from adam over the whole run
    adam_only = simulate_reference(_spec("himmelblau", {"name": "adam", "lr": 0.02}))
    assert not np.allclose(res.trajectory_x[:, 10], adam_only["trajectory_x"][:, 10])


@pytest.mark.parametrize("schedule", [
    {"name": "step", "step_size": 30, "gamma": 0.5},
    {"name": "exponential", "gamma": 0.98, "warmup_steps": 10},
    {"name": "cosine", "T_max": 80, "eta_min": 1e-4, "warmup_steps": 5, "warmup_start_factor": 0.1},
])  # fmt: skip
def test_schedules_match_reference(schedule: dict[str, Any]) -> None:
    _check(_spec("himmelblau", {"name": "adam", "lr": 0.05}, schedule=schedule))


def _diverging_spec(**stop: Any) -> dict[str, Any]:
    return _spec(
        "rosenbrock",
        {"name": "sgd", "lr": 1e-3},
        init={"scheme": "uniform", "low": -4.0, "high": 4.0},
        run={"particles": 512},
        stop=stop,
    )


def _check_divergence(spec: dict[str, Any]) -> None:
    with np.errstate(all="raise"):  # nothing in the host code may trip on NaN/Inf
        res = simulate(spec)
    ref = simulate_reference(spec)
    div = res.status == 2
    assert div.any() and (res.status == 0).any()
    assert np.all(res.stop_step[div] >= 1)
    assert np.all(res.stop_step[res.status == 0] == -1)
    assert np.all(np.isfinite(res.final_x))
    np.testing.assert_array_equal(res.status, ref["status"])
    np.testing.assert_array_equal(res.stop_step, ref["stop_step"])
    assert_close(res.final_x, ref["final_x"], "float64")
    assert_close(res.trajectory_x, ref["trajectory_x"], "float64")
    # frozen from the stop step on
    for i in np.flatnonzero(div):
        after = res.record_steps >= res.stop_step[i]
        np.testing.assert_array_equal(res.trajectory_x[i, after], np.broadcast_to(res.final_x[i], (after.sum(), 2)))


def test_divergence_is_flagged_and_frozen_at_last_finite_state() -> None:
    # a huge finite bound: overflow to +-inf is also caught by the bound check
    _check_divergence(_diverging_spec(bound=1e300))


def test_divergence_to_infinity_without_bound() -> None:
    # overflow to +-inf (not NaN) at the end of a sub-block must be flagged with bound = inf too
    _check_divergence(_diverging_spec())


def test_leaving_the_bound_matches_reference() -> None:
    res, _ = _check(_diverging_spec(bound=20.0))
    assert (res.status == 3).any() and (res.status == 0).any()


def test_convergence_status_and_stop_step_match_reference() -> None:
    spec = _spec("himmelblau", {"name": "sgd", "lr": 1e-2}, stop={"grad_tol": 1e-3, "patience": 3}, run={"steps": 200})
    res, _ = _check(spec)
    conv = res.status == 1
    assert conv.sum() > 10
    assert np.all(res.stop_step[conv] >= 2)
    assert np.all(res.grad_norm[conv] < 1e-2)


def test_gradient_descent_decreases_loss_on_a_convex_bowl() -> None:
    land = _land("quadratic")
    spec = _spec(land, {"name": "sgd", "lr": 0.02 if land == "quadratic" else 1e-3}, run={"steps": 200})
    if land == "himmelblau":
        spec["init"] = {"scheme": "uniform", "low": [2.8, 1.8], "high": [3.2, 2.2]}
    res = simulate(spec)
    loss = res.trajectory_loss
    assert np.all(np.diff(loss, axis=1) <= 0)
    assert np.all(loss[:, -1] < loss[:, 0])
    ref = simulate_reference(spec)
    assert_close(res.trajectory_x, ref["trajectory_x"], "float64")


def test_langevin_noise_is_keyed_by_particle_not_block() -> None:
    spec = _spec("himmelblau", {"name": "langevin", "lr": 0.01, "noise_std": 1.0}, run={"particles": 600, "steps": 40})
    whole = simulate(spec)
    part = simulate(spec, particles=(300, 600), chunk_steps=7)
    np.testing.assert_array_equal(whole.final_x[300:], part.final_x)
    # no noise -> plain gradient descent
    zero = simulate_reference(
        _spec("himmelblau", {"name": "langevin", "lr": 0.01, "noise_std": 0.0}, run={"steps": 40})
    )
    gd = simulate_reference(_spec("himmelblau", {"name": "sgd", "lr": 0.01}, run={"steps": 40}))
    np.testing.assert_array_equal(zero["final_x"], gd["final_x"])


def test_jacobi_eigh_matches_lapack() -> None:
    from descentlab.optimizers.linalg import eig_rows, jacobi_eigh

    rng = np.random.default_rng(0)
    for dim in (1, 2, 3, 6):
        n = 5
        a = rng.normal(size=(n, dim, dim))
        a = a + np.swapaxes(a, 1, 2)
        a[0] = np.diag(np.arange(dim, dtype=float))  # already diagonal
        ws = np.zeros((eig_rows(dim), n))
        ws[: dim * dim] = a.reshape(n, dim * dim).T
        jacobi_eigh(ws, dim, 0, n)
        lam = np.array([np.diag(ws[: dim * dim, i].reshape(dim, dim)) for i in range(n)])
        vec = np.array([ws[dim * dim : 2 * dim * dim, i].reshape(dim, dim) for i in range(n)])
        np.testing.assert_allclose(np.sort(lam, axis=1), np.linalg.eigvalsh(a), rtol=1e-12, atol=1e-12)
        recon = np.einsum("nik,nk,njk->nij", vec, lam, vec)
        np.testing.assert_allclose(recon, a, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(
            np.einsum("nki,nkj->nij", vec, vec), np.broadcast_to(np.eye(dim), a.shape), atol=1e-12
        )


def test_reference_newton_solves_a_quadratic_in_one_step() -> None:
    h = np.array([[[2.0, 0.5], [0.5, 1.0]]])
    x = np.array([[1.0, -2.0]])
    g = x @ h[0]  # gradient of 0.5 x^T h x
    new, _ = optimizer_update("newton", x, g, {}, {"damping": 0.0}, 1.0, 1, hess=h)
    np.testing.assert_allclose(new, 0.0, atol=1e-15)
    new, _ = optimizer_update("saddle_free_newton", x, g, {}, {"damping": 0.0}, 1.0, 1, hess=h)
    np.testing.assert_allclose(new, 0.0, atol=1e-15)
    # on the concave -0.5 x^T h x, Newton jumps to the maximum, saddle-free Newton runs away from it
    new, _ = optimizer_update("newton", x, -g, {}, {"damping": 0.0}, 1.0, 1, hess=-h)
    np.testing.assert_allclose(new, 0.0, atol=1e-15)
    new, _ = optimizer_update("saddle_free_newton", x, -g, {}, {"damping": 0.0}, 1.0, 1, hess=-h)
    np.testing.assert_allclose(new, 2 * x, atol=1e-15)


# --------------------------------------------------------------------------- torch


TORCH_CASES = [
    ("sgd", {"lr": 2e-3, "momentum": 0.8, "dampening": 0.1, "weight_decay": 0.01}),
    ("sgd", {"lr": 1e-3, "momentum": 0.9, "nesterov": True}),
    ("adam", {"lr": 0.05, "betas": (0.8, 0.99), "weight_decay": 0.01, "amsgrad": True}),
    ("adamw", {"lr": 0.05, "weight_decay": 0.1}),
    ("adagrad", {"lr": 0.2, "lr_decay": 0.01, "weight_decay": 0.01, "initial_accumulator_value": 0.5}),
    ("rmsprop", {"lr": 0.003, "alpha": 0.9, "momentum": 0.5, "centered": True, "weight_decay": 0.01}),
    ("rmsprop", {"lr": 0.01}),
]
TORCH_CLASS = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "adagrad": "Adagrad", "rmsprop": "RMSprop"}


@pytest.mark.parametrize(("name", "hyper"), TORCH_CASES, ids=[f"{n}-{j}" for j, (n, _) in enumerate(TORCH_CASES)])
def test_trajectory_matches_torch_optim(name: str, hyper: dict[str, Any]) -> None:
    torch = pytest.importorskip("torch")
    steps, n = 100, 6
    spec = _spec("himmelblau", {"name": name, **{k: list(v) if isinstance(v, tuple) else v for k, v in hyper.items()}},
                 run={"particles": n, "steps": steps, "record_every": 1}, stop={"grad_tol": 0.0})  # fmt: skip
    res = simulate(spec)
    traj = np.empty((n, steps + 1, 2))
    for i in range(n):
        p = torch.tensor(res.init_x[i], dtype=torch.float64, requires_grad=True)
        opt = getattr(torch.optim, TORCH_CLASS[name])([p], **hyper, foreach=False)
        traj[i, 0] = p.detach().numpy()
        for k in range(steps):
            opt.zero_grad()
            a, b = p[0], p[1]
            loss = (a * a + b - 11) ** 2 + (a + b * b - 7) ** 2
            loss.backward()
            opt.step()
            traj[i, k + 1] = p.detach().numpy()
    # same rule, operation order differs by rounding (torch divides where descentlab multiplies, lerp, ...)
    np.testing.assert_allclose(res.trajectory_x, traj, rtol=1e-9, atol=1e-9)


def test_defaults_are_torch_defaults() -> None:
    torch = pytest.importorskip("torch")
    for name, cls in TORCH_CLASS.items():
        sig = inspect.signature(getattr(torch.optim, cls).__init__).parameters
        for key, val in OPTIMIZERS[name].hyper.items():
            default = sig[key].default
            default = tuple(default) if isinstance(default, tuple | list) else default
            assert val == pytest.approx(default) if not isinstance(val, tuple) else val == default, (name, key)


# --------------------------------------------------------------------------- hyperparameters by name


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_packed_hyperparameters_follow_the_layout_by_name(name):
    """``h[k]`` holds the hyperparameter that the step module's ``HYPER[k]`` names, whatever the
    order of ``Optimizer.hyper``: a reordered registry entry packs the same vector."""
    import dataclasses

    opt = OPTIMIZERS[name]
    assert opt.layout, f"{name}: no layout"
    assert sorted(opt.layout) == sorted(opt.packed_names())
    # distinct values, so that any two swapped slots would show
    values: dict[str, object] = {}
    for j, (key, default) in enumerate(opt.hyper.items()):
        values[key] = tuple(0.1 * j + 0.01 * k for k in range(len(default))) if isinstance(default, tuple) else 0.1 * j
    expect = [values[n.partition("[")[0]][int(n[n.index("[") + 1 : -1])] if "[" in n else values[n]
              for n in opt.layout]  # fmt: skip
    assert opt.pack(values).tolist() == expect
    reordered = dataclasses.replace(opt, hyper=dict(reversed(list(opt.hyper.items()))))
    assert reordered.pack(values).tolist() == expect


def test_a_layout_that_misnames_a_hyperparameter_is_refused():
    import dataclasses

    adam = OPTIMIZERS["adam"]
    with pytest.raises(ValueError, match="layout"):
        dataclasses.replace(adam, layout=("betas[0]", "betas[1]", "eps", "weight_decay"))
    with pytest.raises(ValueError, match="layout"):
        dataclasses.replace(adam, layout=("beta1", "betas[1]", "eps", "weight_decay", "amsgrad"))


def test_index_constants_name_their_slots():
    from descentlab.optimizers import adam, rmsprop, sgd
    from descentlab.optimizers.base import hyper_indices

    assert adam.HYPER[adam.EPS] == "eps" and adam.HYPER[adam.AMSGRAD] == "amsgrad"
    assert sgd.HYPER[sgd.NESTEROV] == "nesterov" and rmsprop.HYPER[rmsprop.CENTERED] == "centered"
    with pytest.raises(ValueError, match="not in the layout"):
        hyper_indices(("a", "b"), "c")


@pytest.mark.parametrize("dim", [1, 3])
def test_status_checks_in_one_two_and_more_passes_match_the_reference(dim: int) -> None:
    """The kernel sums the squared gradient, checks the bound and counts steps under grad_tol in D
    passes over a block (the first starts the sum, the last updates the counter; D = 1 is both):
    statuses, stop steps and records equal the reference loop's for D = 1 and D = 3 (checked: dropping the
    bound check from the last pass fails the D = 3 case)."""
    spec = _spec("quadratic", {"name": "sgd", "lr": 0.1}, run={"particles": 300, "steps": 200},
                 landscape={"name": _land("quadratic"), "dim": dim},
                 init={"scheme": "uniform", "low": -4.0, "high": 4.0},
                 stop={"grad_tol": 1e-2, "patience": 3, "bound": 3.9})  # fmt: skip
    res, _ = _check(spec)
    counts = np.bincount(res.status, minlength=4)
    assert counts[1] > 0 and counts[3] > 0, counts  # some converged, some started outside the bound
