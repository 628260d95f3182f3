"""Per-layer model initialization: torch.nn.init's formulas, shard independence, biases, validation.

Formulas: https://pytorch.org/docs/stable/nn.init.html. Statistical checks draw
N_PART particles; a layer of m weights gives N_PART * m samples, so the
empirical std of a scheme is within ~1% of its formula.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from descentlab.core.rng import host_normal, host_uniform
from descentlab.models.init import ALIASES, MODEL_INIT_SCHEMES, model_initial_positions, parse_model_init, torch_gain
from descentlab.models.layout import LayerEntry, check_layout

N_PART = 400


def dense_layout(sizes: list[int], batch_norm: bool = False) -> list[LayerEntry]:
    """An MLP layout: per layer a weight (out, in), a bias (out,), optionally BN gamma/beta (hidden layers)."""
    entries: list[LayerEntry] = []
    start = 0

    def add(name: str, kind: str, shape: tuple[int, ...], fan_in: int, fan_out: int) -> None:
        nonlocal start
        size = math.prod(shape)
        entries.append(LayerEntry(name, kind, slice(start, start + size), shape, fan_in, fan_out))  # type: ignore[arg-type]
        start += size

    for j, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        add(f"layer{j}.weight", "weight", (n_out, n_in), n_in, n_out)
        add(f"layer{j}.bias", "bias", (n_out,), n_in, n_out)
        if batch_norm and j < len(sizes) - 2:
            add(f"bn{j}.gamma", "bn_gamma", (n_out,), n_out, n_out)
            add(f"bn{j}.beta", "bn_beta", (n_out,), n_out, n_out)
    return entries


LAYOUT = dense_layout([30, 60, 10])  # fans (30, 60) and (60, 10): different bounds per layer
DIM = LAYOUT[-1].stop


def draw(init: dict, ids: np.ndarray | None = None, layout: list[LayerEntry] = LAYOUT, seed: int = 11) -> np.ndarray:
    ids = np.arange(N_PART) if ids is None else ids
    return model_initial_positions(init, layout, layout[-1].stop, ids, seed)


def values(x: np.ndarray, entry: LayerEntry) -> np.ndarray:
    return x[:, entry.slice].ravel()


def weights(layout: list[LayerEntry] = LAYOUT) -> list[LayerEntry]:
    return [e for e in layout if e.kind == "weight"]


# (init table, expected (family, bound or std) for fans (fan_in, fan_out))
FAN_SCHEMES = [
    ({"scheme": "xavier_uniform"}, lambda fi, fo: ("uniform", math.sqrt(6 / (fi + fo)))),
    ({"scheme": "glorot_uniform", "gain": 2.0}, lambda fi, fo: ("uniform", 2 * math.sqrt(6 / (fi + fo)))),
    ({"scheme": "xavier_normal"}, lambda fi, fo: ("normal", math.sqrt(2 / (fi + fo)))),
    ({"scheme": "xavier_normal", "nonlinearity": "tanh"}, lambda fi, fo: ("normal", 5 / 3 * math.sqrt(2 / (fi + fo)))),
    ({"scheme": "he_uniform"}, lambda fi, fo: ("uniform", math.sqrt(2) * math.sqrt(3 / fi))),
    ({"scheme": "kaiming_uniform", "mode": "fan_out"}, lambda fi, fo: ("uniform", math.sqrt(2) * math.sqrt(3 / fo))),
    ({"scheme": "he_normal"}, lambda fi, fo: ("normal", math.sqrt(2) / math.sqrt(fi))),
    ({"scheme": "kaiming_normal", "gain": 1.5}, lambda fi, fo: ("normal", 1.5 / math.sqrt(fi))),
    ({"scheme": "he_normal", "negative_slope": 0.5}, lambda fi, fo: ("normal", math.sqrt(2 / 1.25) / math.sqrt(fi))),
    ({"scheme": "lecun_uniform"}, lambda fi, fo: ("uniform", math.sqrt(3 / fi))),
    ({"scheme": "lecun_normal"}, lambda fi, fo: ("normal", 1 / math.sqrt(fi))),
    ({"scheme": "torch_default"}, lambda fi, fo: ("uniform", 1 / math.sqrt(fi))),
    ({"scheme": "normal", "std": 0.3}, lambda fi, fo: ("normal", 0.3)),
    ({"scheme": "uniform", "scale": 0.7}, lambda fi, fo: ("uniform", 0.7)),
]


@pytest.mark.parametrize(("init", "expected"), FAN_SCHEMES, ids=lambda v: str(v) if isinstance(v, dict) else "")
def test_weight_distribution_matches_the_formula_per_layer(init: dict, expected) -> None:  # type: ignore[no-untyped-def]
    x = draw(init)
    assert x.shape == (N_PART, DIM) and x.dtype == np.float64
    for entry in weights():
        w = values(x, entry)
        family, size = expected(entry.fan_in, entry.fan_out)
        assert abs(w.mean()) < 4 * size / math.sqrt(w.size)
        if family == "uniform":
            assert np.all(np.abs(w) <= size) and np.abs(w).max() > 0.999 * size
            np.testing.assert_allclose(w.std(), size / math.sqrt(3), rtol=0.01)
        else:
            np.testing.assert_allclose(w.std(), size, rtol=0.01)
            kurtosis = np.mean((w / w.std()) ** 4)
            assert abs(kurtosis - 3.0) < 0.1  # Gaussian, not uniform (1.8)


def test_zeros_and_constant_are_exact() -> None:
    np.testing.assert_array_equal(draw({"scheme": "zeros"}), 0.0)
    x = draw({"scheme": "constant", "value": 0.25})
    for entry in LAYOUT:
        np.testing.assert_array_equal(values(x, entry), 0.25 if entry.kind == "weight" else 0.0)
    scaled = draw({"scheme": "constant", "value": 0.25, "scale_factor": 4.0, "bias": 0.5})
    for entry in LAYOUT:
        np.testing.assert_array_equal(values(scaled, entry), 1.0 if entry.kind == "weight" else 0.5)


def test_normal_mean_and_uniform_low_high() -> None:
    x = draw({"scheme": "normal", "mean": 1.5, "std": 0.2})
    w = np.concatenate([values(x, e) for e in weights()])
    np.testing.assert_allclose([w.mean(), w.std()], [1.5, 0.2], rtol=0.01)
    u = draw({"scheme": "uniform", "low": 2.0, "high": 3.0})
    w = np.concatenate([values(u, e) for e in weights()])
    assert w.min() >= 2.0 and w.max() < 3.0
    np.testing.assert_allclose(w.mean(), 2.5, atol=0.005)


def test_draws_are_the_counter_based_rng_of_each_coordinate() -> None:
    ids = np.array([0, 5, 2**40 + 3, 7])
    z = host_normal(4, ids, 0, DIM)
    u = host_uniform(4, ids, 0, DIM)
    xn = draw({"scheme": "normal"}, ids, seed=4)
    xu = draw({"scheme": "uniform", "low": 0.0, "high": 1.0}, ids, seed=4)
    for entry in weights():
        np.testing.assert_array_equal(xn[:, entry.slice], z[:, entry.slice])
        np.testing.assert_array_equal(xu[:, entry.slice], u[:, entry.slice])


SHARD_INITS = [
    {"scheme": "he_normal", "bias": {"scheme": "normal", "std": 0.1}},
    {"scheme": "torch_default"},
    {"scheme": "xavier_uniform", "scale_factor": 3.0},
]


@pytest.mark.parametrize("init", SHARD_INITS)
def test_shards_draw_the_same_particles(init: dict) -> None:
    full = draw(init, np.arange(300))
    a, b = 120, 257
    np.testing.assert_array_equal(draw(init, np.arange(a, b)), full[a:b])
    picks = np.array([299, 0, 17, 17])
    np.testing.assert_array_equal(draw(init, picks), full[picks])
    other_seed = model_initial_positions(init, LAYOUT, DIM, np.arange(300), 12)
    assert not np.allclose(other_seed, full)


def test_particles_differ_from_each_other() -> None:
    x = draw({"scheme": "xavier_normal"}, np.arange(50))
    assert len({row.tobytes() for row in x}) == 50


def test_scale_factor_multiplies_weights_only() -> None:
    init = {"scheme": "xavier_uniform", "bias": {"scheme": "uniform", "scale": 0.1}}
    base = draw(init)
    big = draw({**init, "scale_factor": 10.0})
    for entry in LAYOUT:
        factor = 10.0 if entry.kind == "weight" else 1.0
        np.testing.assert_allclose(values(big, entry), factor * values(base, entry), rtol=1e-15)


def test_biases_have_their_own_scheme() -> None:
    biases = [e for e in LAYOUT if e.kind == "bias"]
    x = draw({"scheme": "he_normal"})
    for entry in biases:
        np.testing.assert_array_equal(values(x, entry), 0.0)  # default: zeros
    x = draw({"scheme": "he_normal", "bias": -0.3})
    for entry in biases:
        np.testing.assert_array_equal(values(x, entry), -0.3)
    x = draw({"scheme": "zeros", "bias": {"scheme": "normal", "std": 0.05}})
    b = np.concatenate([values(x, e) for e in biases])
    np.testing.assert_allclose(b.std(), 0.05, rtol=0.02)
    for entry in weights():
        np.testing.assert_array_equal(values(x, entry), 0.0)
    # torch_default: nn.Linear's bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)) by default, zeros when asked
    x = draw({"scheme": "torch_default"})
    for entry in biases:
        bound = 1 / math.sqrt(entry.fan_in)
        b = values(x, entry)
        assert np.all(np.abs(b) <= bound) and np.abs(b).max() > 0.99 * bound
        np.testing.assert_allclose(b.std(), bound / math.sqrt(3), rtol=0.03)
    x = draw({"scheme": "torch_default", "bias": "zeros"})
    for entry in biases:
        np.testing.assert_array_equal(values(x, entry), 0.0)
    x = draw({"scheme": "zeros", "bias": "lecun_uniform"})
    for entry in biases:
        assert np.abs(values(x, entry)).max() <= math.sqrt(3 / entry.fan_in)


def test_batch_norm_gamma_one_beta_zero() -> None:
    layout = dense_layout([5, 8, 8, 2], batch_norm=True)
    x = draw({"scheme": "normal", "std": 1.0, "bias": 2.0, "scale_factor": 3.0}, layout=layout)
    kinds = {e.kind for e in layout}
    assert kinds == {"weight", "bias", "bn_gamma", "bn_beta"}
    for entry in layout:
        if entry.kind == "bn_gamma":
            np.testing.assert_array_equal(values(x, entry), 1.0)
        elif entry.kind == "bn_beta":
            np.testing.assert_array_equal(values(x, entry), 0.0)


@pytest.mark.parametrize(("alias", "name"), sorted(ALIASES.items()))
def test_aliases_draw_the_same(alias: str, name: str) -> None:
    np.testing.assert_array_equal(draw({"scheme": alias}, np.arange(20)), draw({"scheme": name}, np.arange(20)))


def test_gains_follow_torch_calculate_gain() -> None:
    assert torch_gain("linear") == 1.0 and torch_gain("sigmoid") == 1.0
    assert torch_gain("tanh") == 5 / 3 and torch_gain("relu") == math.sqrt(2) and torch_gain("selu") == 0.75
    assert torch_gain("leaky_relu") == math.sqrt(2 / (1 + 0.01**2))
    assert parse_model_init({"scheme": "he_uniform"}).weights.params["gain"] == math.sqrt(2)  # kaiming(a=0)
    assert parse_model_init({"scheme": "xavier_uniform", "nonlinearity": "relu"}).weights.params["gain"] == math.sqrt(2)


def test_catalogue_names_every_scheme() -> None:
    expected = {"zeros", "constant", "normal", "uniform", "xavier_uniform", "xavier_normal", "he_uniform",
                "he_normal", "lecun_uniform", "lecun_normal", "torch_default"}  # fmt: skip
    assert set(MODEL_INIT_SCHEMES) == expected
    for name in MODEL_INIT_SCHEMES:
        if name != "constant":
            assert draw({"scheme": name}, np.arange(3)).shape == (3, DIM)


@pytest.mark.parametrize(
    ("init", "message"),
    [
        ({"scheme": "orthogonal"}, "init.scheme: unknown scheme 'orthogonal'"),
        ({}, "init.scheme: unknown scheme None"),
        ({"scheme": "constant"}, "init.value: the constant scheme needs a value"),
        ({"scheme": "normal", "gain": 2.0}, "init.gain: unknown key for scheme 'normal'"),
        ({"scheme": "normal", "std": -1.0}, "init.std: expected a number >= 0, got -1.0"),
        ({"scheme": "uniform", "low": 1.0, "high": 0.0}, "init.low: must be <= init.high"),
        ({"scheme": "uniform", "scale": 1.0, "low": 0.0}, "init.low: give either scale or low/high"),
        ({"scheme": "uniform", "low": [0.0, 1.0]}, "init.low: expected a finite number"),
        ({"scheme": "xavier_uniform", "gain": 0.0}, "init.gain: expected a number > 0, got 0.0"),
        ({"scheme": "xavier_uniform", "gain": 1.0, "nonlinearity": "tanh"}, "init.nonlinearity: give either gain"),
        ({"scheme": "he_normal", "nonlinearity": "swish"}, "init.nonlinearity: expected one of"),
        ({"scheme": "he_normal", "mode": "fan_avg"}, "init.mode: expected 'fan_in' or 'fan_out'"),
        ({"scheme": "he_normal", "nonlinearity": "tanh", "negative_slope": 0.1}, "init.negative_slope: only with"),
        ({"scheme": "xavier_normal", "scale_factor": -1.0}, "init.scale_factor: expected a number >= 0"),
        ({"scheme": "xavier_normal", "scale_factor": float("inf")}, "init.scale_factor: expected a finite number"),
        ({"scheme": "xavier_normal", "bias": "glorious"}, "init.bias.scheme: unknown scheme 'glorious'"),
        ({"scheme": "xavier_normal", "bias": {"scheme": "normal", "gain": 1}}, "init.bias.gain: unknown key"),
        ({"scheme": "xavier_normal", "bias": {"scheme": "constant"}}, "init.bias.value: the constant scheme needs"),
        ({"scheme": "xavier_normal", "bias": [1.0]}, "init.bias: expected 'zeros', a number"),
        ({"scheme": "xavier_normal", "bias": True}, "init.bias: expected 'zeros', a number"),
        ({"scheme": "xavier_normal", "bias": {"scheme": "zeros", "bias": 1}}, "init.bias.bias: unknown key"),
    ],
)
def test_bad_init_names_the_key(init: dict, message: str) -> None:
    with pytest.raises(ValueError) as info:
        draw(init, np.arange(2))
    assert str(info.value).startswith(message)


def test_layout_errors() -> None:
    with pytest.raises(ValueError, match="slice 0:5 holds 5 values, shape"):
        LayerEntry("w", "weight", slice(0, 5), (2, 3), 3, 2)
    with pytest.raises(ValueError, match="kind must be one of"):
        LayerEntry("w", "kernel", slice(0, 6), (2, 3), 3, 2)  # type: ignore[arg-type]
    gap = [LayerEntry("a", "weight", slice(0, 2), (2,), 1, 2), LayerEntry("b", "bias", slice(3, 4), (1,), 1, 1)]
    with pytest.raises(ValueError, match=r"layout leaves coordinates 2:3 uncovered"):
        check_layout(gap, 4)
    with pytest.raises(ValueError, match="layout covers 6 coordinates, the parameter vector has 7"):
        model_initial_positions({"scheme": "zeros"}, [LayerEntry("w", "weight", slice(0, 6), (2, 3), 3, 2)], 7,
                                np.arange(2), 0)  # fmt: skip
    overlap = [LayerEntry("a", "weight", slice(0, 2), (2,), 1, 2), LayerEntry("b", "bias", slice(1, 2), (1,), 1, 1)]
    with pytest.raises(ValueError, match=r"layout entry 'b' \(1:2\) overlaps the previous entry"):
        check_layout(overlap, 2)
    zero_fan = [LayerEntry("w", "weight", slice(0, 2), (2,), 0, 2)]
    with pytest.raises(ValueError, match=r"init\.scheme: he_normal needs fans >= 1, layout entry 'w'"):
        model_initial_positions({"scheme": "he_normal"}, zero_fan, 2, np.arange(2), 0)
    np.testing.assert_array_equal(model_initial_positions({"scheme": "normal", "std": 0.0}, zero_fan, 2,
                                                          np.arange(2), 0), 0.0)  # fmt: skip
