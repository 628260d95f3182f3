"""Engine invariants: determinism across threads, shards and chunks; divergence as an outcome."""

from __future__ import annotations

import os
from pathlib import Path

import numba
import numpy as np
import pytest

import descentlab as dl
from descentlab.core.rng import host_normal, host_uniform
from descentlab.engine.run import Simulation, kernels_for
from descentlab.engine.spec import parse_spec

FIELDS = ("init_x", "final_x", "final_loss", "grad_norm", "status", "stop_step", "trajectory_x", "trajectory_loss")

# Wide box and a large learning rate: some particles converge, some diverge, some leave
# the bound, the rest run all steps - every path of the kernel, in one run.
MIXED = {
    "run": {"particles": 1000, "steps": 300, "record_every": 7, "seed": 11},
    "landscape": {"name": "rosenbrock"},
    "optimizer": {"name": "sgd", "lr": 1e-3, "momentum": 0.9},
    "init": {"scheme": "uniform", "low": -3.0, "high": 3.0},
    # the iterates of a blow-up grow like x**3: those that land within 1e150 overflow
    # to Inf at the next step (diverged), the others jump past the bound first
    "stop": {"grad_tol": 0.3, "patience": 3, "bound": 1e150},
}


def _same(a: dl.Result, b: dl.Result, rows: slice = slice(None)) -> None:
    for name in FIELDS:
        x, y = getattr(a, name)[rows], getattr(b, name)
        assert x.dtype == y.dtype, name
        np.testing.assert_array_equal(x, y, err_msg=name)


@pytest.fixture(scope="module")
def mixed() -> dl.Result:
    res = dl.simulate(MIXED)
    counts = np.bincount(res.status, minlength=4)
    assert np.all(counts > 0), f"the fixture must exercise every status, got {counts}"
    return res


def test_thread_count_does_not_change_results(mixed: dl.Result, monkeypatch: pytest.MonkeyPatch) -> None:
    import descentlab.engine.run as engine_run
    from descentlab.kernels import threads

    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)  # Numba's own setting is followed too
        assert threads.get_threads() == 1
        one = dl.simulate(MIXED)
    finally:
        numba.set_num_threads(before)
    _same(mixed, one)
    with threads.using_threads(1):
        _same(mixed, dl.simulate(MIXED))
    # threads claim blocks in whatever order they come: every run the same bits (small blocks, many claims)
    monkeypatch.setattr(engine_run, "block_for", lambda dim, particles=None: 16)
    assert kernels_for(parse_spec(MIXED)).run_chunk.owner.block == 16
    for _ in range(3):
        _same(mixed, dl.simulate(MIXED))


@pytest.mark.parametrize("a,b", [(0, 1), (3, 300), (255, 257), (901, 1000)])
def test_particle_range_alone_is_bit_identical(mixed: dl.Result, a: int, b: int) -> None:
    part = dl.simulate(MIXED, particles=(a, b))
    _same(mixed, part, slice(a, b))


@pytest.mark.parametrize("chunk", [1, 13, 100])
def test_chunking_does_not_change_results(mixed: dl.Result, chunk: int) -> None:
    _same(mixed, dl.simulate(MIXED, chunk_steps=chunk))


def test_divergence_is_an_outcome(mixed: dl.Result) -> None:
    diverged, ran, converged, out = (mixed.status == k for k in (2, 0, 1, 3))
    assert diverged.any() and ran.any() and converged.any() and out.any()  # every outcome occurs
    assert np.all(np.isfinite(mixed.final_x[diverged])), "diverged particles keep their last finite state"
    assert np.all(mixed.stop_step[diverged] >= 1)
    assert np.all(mixed.stop_step[ran] == -1)
    assert np.all(mixed.grad_norm[converged] < MIXED["stop"]["grad_tol"])
    assert np.all(np.abs(mixed.final_x[out]).max(axis=1) > MIXED["stop"]["bound"])
    # the others went on to the end: with a record at the last step (same run, records every
    # 10 steps: recording does not change results), their last record is their final position
    every10 = dl.simulate({**MIXED, "run": {**MIXED["run"], "record_every": 10}})
    assert every10.record_steps[-1] == MIXED["run"]["steps"]
    np.testing.assert_array_equal(every10.status, mixed.status)
    np.testing.assert_array_equal(every10.final_x, mixed.final_x)
    np.testing.assert_array_equal(every10.trajectory_x[ran, -1], mixed.final_x[ran])


def test_stopped_particles_are_frozen_in_the_records(mixed: dl.Result) -> None:
    steps = mixed.record_steps
    for i in np.flatnonzero(mixed.status != 0)[:50]:
        after = steps >= mixed.stop_step[i]
        np.testing.assert_array_equal(mixed.trajectory_x[i, after], np.broadcast_to(mixed.final_x[i], (after.sum(), 2)))


def test_records_are_at_the_promised_steps(mixed: dl.Result) -> None:
    re, steps = MIXED["run"]["record_every"], MIXED["run"]["steps"]
    np.testing.assert_array_equal(mixed.record_steps, np.arange(0, steps + 1, re))
    assert mixed.trajectory_x.shape == (1000, len(mixed.record_steps), 2)
    np.testing.assert_array_equal(mixed.trajectory_x[:, 0], mixed.init_x)


def test_learning_rate_change_does_not_recompile() -> None:
    spec = {**MIXED, "optimizer": {"name": "sgd", "lr": 1e-3, "momentum": 0.5}}
    dl.simulate(spec)
    spec2 = {**MIXED, "optimizer": {"name": "sgd", "lr": 2e-4, "momentum": 0.0, "nesterov": False}}
    dl.simulate(spec2)
    kern = kernels_for(parse_spec(spec2))
    assert len(kern.run_chunk.signatures) == 1


def test_counter_rng_is_keyed_by_particle() -> None:
    ids = np.arange(10_000)
    u = host_uniform(5, ids, 0, 3)
    assert u.min() >= 0.0 and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.01 and abs(u.var() - 1 / 12) < 0.005
    np.testing.assert_array_equal(host_uniform(5, ids[4000:4100], 0, 3), u[4000:4100])
    assert not np.array_equal(host_uniform(6, ids[:100], 0, 3), u[:100])
    z = host_normal(5, ids, 1, 4)
    assert abs(z.mean()) < 0.02 and abs(z.std() - 1) < 0.02


def test_simulation_rejects_a_bad_particle_range() -> None:
    with pytest.raises(ValueError, match="particle range"):
        Simulation(parse_spec(MIXED), 10, 5)


def test_float32_stays_float32() -> None:
    spec = {
        "run": {"particles": 500, "steps": 200, "record_every": 50, "seed": 3},
        "landscape": {"name": "himmelblau"},
        "optimizer": {"name": "adam", "lr": 0.02},
        "stop": {"grad_tol": 0.0},
    }
    f64 = dl.simulate(spec)
    f32 = dl.simulate({**spec, "run": {**spec["run"], "dtype": "float32"}})
    for name in ("final_x", "final_loss", "trajectory_x", "trajectory_loss", "init_x"):
        assert getattr(f32, name).dtype == np.float32, name
    np.testing.assert_allclose(f32.final_x, f64.final_x, rtol=1e-3, atol=1e-3)


def test_every_compiled_function_is_named_by_its_identity() -> None:
    # Numba's disk cache and its linker go by names: code compiled from different math
    # (or for another dtype) must never share a name; the same math must (no recompiles).
    def names(land: str, opt: str, dtype: str) -> dict[str, str]:
        spec = {"run": {"particles": 4, "steps": 2}, "landscape": {"name": land}, "optimizer": {"name": opt}}
        return kernels_for(parse_spec(spec)).run_chunk.owner.names(dtype)

    hs, rs = names("himmelblau", "sgd", "float64"), names("rosenbrock", "sgd", "float64")
    ha, hm = names("himmelblau", "adam", "float64"), names("himmelblau", "momentum", "float64")
    h32 = names("himmelblau", "sgd", "float32")
    assert hm == hs  # momentum is sgd's step with other numbers
    assert rs["step0"] == hs["step0"] and all(rs[k] != hs[k] for k in ("value", "batch_grad"))
    assert "grad" not in hs  # a landscape without data: its batch gradient is its gradient, compiled once
    assert ha["step0"] != hs["step0"] and ha["value"] == hs["value"]
    assert all(h32[k] != hs[k] for k in hs)
    skeleton = {k: v for k, v in hs.items() if k.startswith("skeleton")}
    assert skeleton == {k: v for k, v in rs.items() if k.startswith("skeleton")}  # one skeleton for all
    cached = " ".join(p.name for p in Path(os.environ["NUMBA_CACHE_DIR"]).rglob("*.nbi"))
    for name in [*hs.values(), *ha.values(), *h32.values()]:
        assert name in cached, name


def test_non_finite_loss_with_finite_position_is_diverged() -> None:
    # log(x) at x < 0: the loss is NaN while x and the gradient 1/x stay finite
    spec = {
        "run": {"particles": 64, "steps": 20, "record_every": 10, "seed": 2},
        "landscape": {"formula": "log(x) + 0*y"},
        "init": {"scheme": "uniform", "low": -1.0, "high": 1.0},
        "optimizer": {"name": "sgd", "lr": 1e-3},
        "stop": {"grad_tol": 0.0},
    }
    r = dl.simulate(spec)
    nan = ~np.isfinite(r.final_loss)
    assert nan.any() and (~nan).any()
    assert np.all(np.isfinite(r.final_x))
    assert np.all(r.status[nan] == 2) and np.all(r.stop_step[nan] == 20)
    assert np.all(r.status[~nan] == 0)
