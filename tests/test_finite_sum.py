"""Finite-sum runs end to end: minibatches, initialization, metrics, run files (issue 4).

Every run here uses SGD in float64, so the file compiles one model kernel
(the model math is shared by every architecture and data set).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import h5py
import numba
import numpy as np
import pytest

import descentlab as dl
from descentlab.data.batches import batch_of_step, half_bits, host_permutation, permute, shuffle_keys
from descentlab.engine.spec import SpecError, parse_spec
from descentlab.engine.store import write_run


def _spec(**over: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "run": {"particles": 40, "epochs": 2, "record_every_epochs": 1, "seed": 3},
        "landscape": {"name": "mlp", "hidden": [6], "activation": "tanh"},
        "data": {"name": "blobs", "samples": 120, "seed": 1, "standardize": True},
        "batch": {"size": 16, "shuffle": True},
        "optimizer": {"name": "sgd", "lr": 0.1},
        "stop": {"grad_tol": 0.0},
    }
    for key, val in over.items():
        spec[key] = {**spec.get(key, {}), **val} if isinstance(val, dict) else val
    return spec


# ----------------------------------------------------------------------------- minibatches


@pytest.mark.parametrize("n", [1, 2, 7, 96, 1000])
def test_shuffle_uses_every_sample_once_per_epoch(n: int) -> None:
    for particle in (0, 5):
        for epoch in (0, 1):
            perm = host_permutation(n, 11, particle, epoch)
            np.testing.assert_array_equal(np.sort(perm), np.arange(n))


def test_shuffles_differ_between_epochs_and_particles_and_seeds() -> None:
    base = host_permutation(500, 11, 3, 0)
    for other in (host_permutation(500, 11, 3, 1), host_permutation(500, 11, 4, 0), host_permutation(500, 12, 3, 0)):
        assert np.mean(other == base) < 0.05  # about 1/500 agree by chance
    np.testing.assert_array_equal(host_permutation(500, 11, 3, 0), base)  # a pure function


def test_compiled_permutation_equals_the_host_one() -> None:
    @numba.njit(cache=False)
    def perm(n: int, seed: np.uint64, particle: np.int64, epoch: np.int64) -> np.ndarray:
        k0, k1, k2, k3 = shuffle_keys(seed, particle, epoch)
        h = half_bits(n)
        out = np.empty(n, np.int64)
        for k in range(n):
            out[k] = permute(k, n, h, k0, k1, k2, k3)
        return out

    for n, p, e in ((37, 2, 0), (300, 9, 4)):
        np.testing.assert_array_equal(perm(n, np.uint64(11), p, e), host_permutation(n, 11, p, e))


def test_batch_schedule_walks_epochs_and_phases() -> None:
    sizes, epochs = np.array([8, 32]), np.array([2, 0])
    seen = [batch_of_step(t, 20, sizes, epochs, False) for t in range(1, 9)]
    # phase 0: 20 samples in batches of 8 -> 3 updates per epoch (the last one short), 2 epochs
    assert seen[:6] == [(0, 0, 8), (0, 8, 8), (0, 16, 4), (1, 0, 8), (1, 8, 8), (1, 16, 4)]
    assert seen[6:] == [(2, 0, 20), (3, 0, 20)]  # phase 1: a batch of 32 is the whole set
    assert [batch_of_step(t, 20, np.array([8]), np.array([0]), True) for t in (1, 2, 3)] == [
        (0, 0, 8), (0, 8, 8), (1, 0, 8),
    ]  # fmt: skip


def test_epochs_count_updates_of_the_batch_schedule() -> None:
    rs = parse_spec(_spec(run={"epochs": 5, "record_every_epochs": None},
                          batch={"size": None, "schedule": [{"size": 10, "epochs": 2}, {"size": 48}]}))  # fmt: skip
    # 96 training samples: 10 updates per epoch, then 2
    assert rs.steps == 2 * 10 + 3 * 2
    np.testing.assert_array_equal(rs.finite_sum.epoch_of_steps(rs.steps), [10, 10, 2, 2, 2])


# ----------------------------------------------------------------------------- runs


@pytest.fixture(scope="module")
def blob_run() -> dl.Result:
    return dl.simulate(_spec())


def test_training_lowers_the_loss_and_records_metrics(blob_run: dl.Result) -> None:
    loss = blob_run.trajectory_loss
    assert loss.shape == (40, 3)
    assert np.median(loss[:, -1]) < 0.7 * np.median(loss[:, 0])
    for name in ("test_loss", "train_accuracy", "test_accuracy"):
        assert blob_run.metrics[name].shape == (40, 3)
    acc = blob_run.metrics["train_accuracy"]
    assert np.all((acc >= 0) & (acc <= 1)) and acc[:, -1].mean() > acc[:, 0].mean()


def test_shards_and_threads_do_not_change_a_shuffled_run(blob_run: dl.Result) -> None:
    part = dl.simulate(_spec(), particles=(7, 29))
    np.testing.assert_array_equal(part.trajectory_x, blob_run.trajectory_x[7:29])
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = dl.simulate(_spec())
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(one.trajectory_x, blob_run.trajectory_x)


def test_shuffle_and_fixed_order_differ_and_fixed_order_is_shared() -> None:
    fixed = dl.simulate(_spec(batch={"shuffle": False}, init={"scheme": "constant", "value": 0.1},
                              run={"particles": 3}))  # fmt: skip
    shuffled = dl.simulate(_spec(init={"scheme": "constant", "value": 0.1}, run={"particles": 3}))
    # same start: without shuffling every particle sees the same batches, so the same path
    np.testing.assert_array_equal(fixed.final_x[0], fixed.final_x[1])
    assert not np.array_equal(shuffled.final_x[0], shuffled.final_x[1])


def _hidden_weights(rs: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    w = next(e for e in rs.finite_sum.model.layout if e.name == "layer0.weight")
    b = next(e for e in rs.finite_sum.model.layout if e.name == "layer0.bias")
    return x[..., w.slice].reshape(x.shape[:-1] + w.shape), x[..., b.slice]


def test_constant_init_keeps_hidden_units_identical_xavier_does_not() -> None:
    spec = _spec(init={"scheme": "constant", "value": 0.05, "bias": 0.1}, run={"particles": 4})
    res = dl.simulate(spec)
    w, b = _hidden_weights(parse_spec(spec), res.trajectory_x)  # (n, R, hidden, in), (n, R, hidden)
    assert not np.array_equal(res.trajectory_x[:, 0], res.trajectory_x[:, -1])  # it trained
    np.testing.assert_array_equal(w, np.broadcast_to(w[:, :, :1], w.shape))  # every unit = unit 0
    np.testing.assert_array_equal(b, np.broadcast_to(b[:, :, :1], b.shape))
    xspec = _spec(init={"scheme": "xavier_uniform"}, run={"particles": 4})
    w, _ = _hidden_weights(parse_spec(xspec), dl.simulate(xspec).trajectory_x)
    assert np.all(np.ptp(w[:, -1], axis=1) > 1e-3)


def _variance_per_layer(init: dict[str, Any]) -> np.ndarray:
    spec = _spec(
        run={"particles": 16, "steps": 1, "epochs": None, "record_every_epochs": None},
        landscape={"hidden": [64, 64, 64, 64]},
        data={"name": "linear", "features": 64, "samples": 256, "standardize": True, "test_fraction": 0.0},
        batch={"size": 256},
        init=init,
    )
    spec["run"] = {k: v for k, v in spec["run"].items() if v is not None}
    del spec["landscape"]["activation"]
    spec["landscape"]["activation"] = "tanh"
    spec["landscape"]["loss"] = "mse"
    res = dl.simulate(spec)
    return res.metrics["activation_var"].mean(axis=0)[:4]  # the four tanh layers


def test_xavier_keeps_activation_variance_and_small_init_shrinks_it() -> None:
    # torch.nn.init.calculate_gain("tanh") = 5/3: Xavier with the gain for tanh
    xavier = _variance_per_layer({"scheme": "xavier_normal", "nonlinearity": "tanh"})
    assert xavier.max() / xavier.min() < 2.0, xavier
    small = _variance_per_layer({"scheme": "xavier_normal", "nonlinearity": "tanh", "scale_factor": 0.1})
    assert np.all(np.diff(small) < 0) and small[-1] < 1e-3 * small[0], small


def test_full_batch_gd_on_linear_regression_reaches_least_squares() -> None:
    spec = {
        "run": {"particles": 3, "steps": 3000, "seed": 0},
        "landscape": {"name": "linear_regression"},
        "data": {"name": "linear", "features": 3, "samples": 200, "noise": 0.3, "test_fraction": 0.0, "seed": 4},
        "optimizer": {"name": "sgd", "lr": 0.2},
        "stop": {"grad_tol": 0.0},
    }
    res = dl.simulate(spec)
    data = parse_spec(spec).finite_sum.data
    design = np.hstack([data.x_train, np.ones((data.x_train.shape[0], 1))])
    coef, *_ = np.linalg.lstsq(design, data.y_train, rcond=None)  # (4, 1): w then b
    for x in res.final_x:
        np.testing.assert_allclose(x, coef.ravel(), rtol=1e-8, atol=1e-10)


def test_run_file_holds_data_metrics_and_epochs(tmp_path: Path, blob_run: dl.Result) -> None:
    out = write_run(_spec(), tmp_path / "blobs.h5", progress=False)
    with h5py.File(out) as f:
        np.testing.assert_array_equal(f["trajectory/x"][:], blob_run.trajectory_x)
        np.testing.assert_array_equal(f["metrics/train_loss"][:], blob_run.trajectory_loss)
        for name in ("test_loss", "train_accuracy", "test_accuracy"):
            np.testing.assert_array_equal(f[f"metrics/{name}"][:], blob_run.metrics[name])
        np.testing.assert_array_equal(f["metrics/init_activation_var"][:], blob_run.metrics["init_activation_var"])
        np.testing.assert_array_equal(f["metrics/epoch_updates"][:], [6, 6])
        assert np.all(f["metrics/epoch_wall_time"][:] > 0)
        rebuilt = parse_spec({**_spec(), "data": __import__("json").loads(f["data"].attrs["description"])["config"]})
        np.testing.assert_array_equal(f["data/x_train"][:], rebuilt.finite_sum.data.x_train)


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"data": None}, "data"),
        ({"batch": {"size": 1000}}, "batch.size"),
        ({"batch": {"size": None, "schedule": [{"size": 8}, {"size": 16}]}}, "batch.schedule.0.epochs"),
        ({"run": {"steps": 10}}, "run.epochs"),
        ({"landscape": {"activation": "swish"}}, "landscape.activation"),
        ({"landscape": {"name": "linear_regression", "hidden": []}}, "landscape.name"),
        ({"optimizer": {"name": "newton"}}, "optimizer.name"),
        ({"init": {"scheme": "xavier_unifrom"}}, "init.scheme"),
    ],
)
def test_bad_model_specs_name_the_field(over: dict[str, Any], field: str) -> None:
    spec = _spec(**{k: v for k, v in over.items() if v is not None})
    for k, v in over.items():
        if v is None:
            del spec[k]
    with pytest.raises(SpecError, match=rf"^{field}:"):
        parse_spec(spec)


def test_analytic_landscapes_refuse_data_and_epochs() -> None:
    base = {"run": {"particles": 2}, "landscape": {"name": "himmelblau"}, "optimizer": {"name": "sgd"}}
    with pytest.raises(SpecError, match=r"^data:"):
        parse_spec({**base, "data": {"name": "digits"}})
    with pytest.raises(SpecError, match=r"^run\.epochs:"):
        parse_spec({**base, "run": {"particles": 2, "epochs": 3}})


def test_example_spec_parses() -> None:
    rs = parse_spec(Path(__file__).parent.parent / "examples" / "digits_mlp.toml")
    assert rs.finite_sum.model.dim == 64 * 32 + 32 + 32 * 10 + 10
    assert rs.steps == 10 * 45 and rs.record_every == 45  # 1438 training images, batches of 32


def test_parameter_layout_in_result_and_run_file(tmp_path: Path) -> None:
    """/model/layout and Result.layout: the tensors tile the flat vector, in the model's order."""
    spec = _spec(run={"particles": 6, "epochs": 1, "record_every_epochs": 1, "seed": 3},
                 landscape={"name": "mlp", "hidden": [4, 3], "activation": "tanh"})  # fmt: skip
    res = dl.simulate(spec)
    rows = res.layout
    dim = res.final_x.shape[1]
    assert [r["name"] for r in rows] == [e.name for e in parse_spec(spec).finite_sum.model.layout]
    assert rows[0]["offset"] == 0 and sum(r["size"] for r in rows) == dim
    assert all(a["offset"] + a["size"] == b["offset"] for a, b in itertools.pairwise(rows))
    assert all(int(np.prod(r["shape"])) == r["size"] for r in rows)
    w0 = rows[0]  # the first weight: (hidden, inputs) with the layer's fans
    assert w0["kind"] == "weight" and w0["shape"] == (4, w0["fan_in"]) and w0["fan_out"] == 4
    out = write_run(spec, tmp_path / "m.h5", progress=False)
    with dl.open_run(out) as f:
        assert f.layout == rows
    plain = dl.simulate({"run": {"particles": 2, "steps": 2}, "landscape": {"name": "himmelblau"},
                         "optimizer": {"name": "sgd"}})  # fmt: skip
    assert plain.layout == []


def test_layer_statistics_at_every_record(tmp_path: Path) -> None:
    """Result.layer_statistics and the 'layers' analysis: per-layer statistics at each record; at record 0
    they are the initialization statistics, and the weight-gradient norms match finite differences."""
    from descentlab.analysis import analysis_path, analyze
    from descentlab.models import reference

    spec = _spec(run={"particles": 5, "epochs": 3, "record_every_epochs": 1, "seed": 3},
                 landscape={"name": "mlp", "hidden": [4], "activation": "tanh"})  # fmt: skip
    res = dl.simulate(spec)
    st = res.layer_statistics()
    n, r = res.trajectory_x.shape[:2]
    assert set(st) == {"activation_mean", "activation_var", "gradient_mean", "gradient_var", "weight_grad_norm"}
    assert all(v.shape == (n, r, 2) for v in st.values())  # two affine layers
    for name in ("activation_mean", "activation_var", "gradient_mean", "gradient_var"):
        np.testing.assert_allclose(st[name][:, 0], res.metrics[f"init_{name}"], rtol=1e-12, atol=1e-15)
    assert not np.allclose(st["activation_var"][:, 0], st["activation_var"][:, -1])  # training changed them
    fs = parse_spec(spec).finite_sum
    x = res.trajectory_x[2, 1].astype(np.float64)
    f = lambda p: float(reference.loss(fs.model, p[None], fs.data.x_train, fs.data.y_train)[0])  # noqa: E731
    for j, e in enumerate(e for e in fs.model.layout if e.kind == "weight"):
        g = np.empty(e.slice.stop - e.slice.start)
        for k, c in enumerate(range(e.slice.start, e.slice.stop)):
            h = np.zeros_like(x)
            h[c] = 1e-6
            g[k] = (f(x + h) - f(x - h)) / 2e-6
        assert abs(st["weight_grad_norm"][2, 1, j] - np.linalg.norm(g)) <= 1e-6 * (1 + np.linalg.norm(g))
    path = write_run(spec, tmp_path / "m.h5", progress=False)
    analyze(path)
    with h5py.File(analysis_path(path), "r") as fh:
        g = fh["analysis/layers"]
        rows = g["particle"][...]
        np.testing.assert_allclose(g["weight_grad_norm"][...], st["weight_grad_norm"][rows], rtol=1e-10)
