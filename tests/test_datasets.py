"""Data sets of finite-sum landscapes: generators, splits, scaling, files, validation."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from descentlab.data.datasets import DATASETS, Dataset, load_dataset

GENERATORS = ["linear", "teacher", "blobs", "moons", "spirals", "product"]


def _same(a: Dataset, b: Dataset) -> bool:
    return (
        all(np.array_equal(getattr(a, k), getattr(b, k)) for k in ("x_train", "y_train", "x_test", "y_test"))
        and a.task == b.task
    )


@pytest.mark.parametrize("name", GENERATORS)
def test_generator_shapes_dtypes_and_labels(name: str) -> None:
    cfg = {"name": name} if name != "product" else {"name": name, "samples": 10}
    ds = load_dataset(cfg)
    n = ds.description["config"]["samples"]
    assert ds.n_train + ds.n_test == n
    assert ds.n_test == round(0.2 * n)
    assert ds.x_train.dtype == np.float64 and ds.x_train.ndim == 2
    assert ds.x_test.shape == (ds.n_test, ds.n_features)
    assert np.all(np.isfinite(ds.x_train))
    if ds.task == "classification":
        assert ds.y_train.dtype == np.int64 and ds.y_train.shape == (ds.n_train,)
        assert ds.y_test.shape == (ds.n_test,)
        labels = np.concatenate([ds.y_train, ds.y_test])
        assert labels.min() == 0 and labels.max() == ds.n_classes - 1
        assert set(np.unique(labels)) == set(range(ds.n_classes))
        assert ds.n_outputs == ds.n_classes
    else:
        assert ds.n_classes is None
        assert ds.y_train.dtype == np.float64 and ds.y_train.shape == (ds.n_train, ds.n_outputs)
    json.dumps(ds.description)  # JSON-able
    assert name in repr(ds)


@pytest.mark.parametrize("name", GENERATORS)
def test_reproducible_from_seed_and_seeds_differ(name: str) -> None:
    cfg = {"name": name, "samples": 50, "seed": 7}
    if name == "product":
        cfg["noise"] = 0.1
    a, b = load_dataset(cfg), load_dataset(dict(cfg))
    assert _same(a, b)
    c = load_dataset({**cfg, "seed": 8})
    assert not np.array_equal(np.concatenate([a.x_train, a.x_test]), np.concatenate([c.x_train, c.x_test])) or (
        not np.array_equal(np.concatenate([a.y_train, a.y_test]), np.concatenate([c.y_train, c.y_test]))
    )


@pytest.mark.parametrize("name", [*GENERATORS, "digits"])
def test_description_config_regenerates_the_data(name: str) -> None:
    if name == "digits":
        pytest.importorskip("sklearn")
    cfg = {"name": name, "seed": 3, "standardize": name != "product", "test_fraction": 0.25}
    ds = load_dataset(cfg)
    again = load_dataset(json.loads(json.dumps(ds.description["config"])))
    assert _same(ds, again)


def test_test_fraction_zero_gives_an_empty_test_set() -> None:
    ds = load_dataset({"name": "moons", "samples": 100, "test_fraction": 0})
    assert ds.n_train == 100 and ds.n_test == 0
    assert ds.x_test.shape == (0, 2) and ds.y_test.shape == (0,)
    reg = load_dataset({"name": "linear", "samples": 30, "features": 3, "outputs": 2, "test_fraction": 0.0})
    assert reg.x_test.shape == (0, 3) and reg.y_test.shape == (0, 2)


@pytest.mark.parametrize(("fraction", "n_test"), [(0.1, 10), (0.25, 25), (0.5, 50), (0.99, 99)])
def test_split_sizes_and_disjointness(fraction: float, n_test: int) -> None:
    ds = load_dataset({"name": "linear", "samples": 100, "test_fraction": fraction, "noise": 0.0})
    assert ds.n_test == n_test and ds.n_train == 100 - n_test
    rows = {tuple(r) for r in np.concatenate([ds.x_train, ds.x_test])}
    assert len(rows) == 100  # every sample once, none in both parts


def test_standardize_uses_train_statistics() -> None:
    cfg = {"name": "blobs", "samples": 400, "features": 3, "seed": 5}
    raw = load_dataset(cfg)
    ds = load_dataset({**cfg, "standardize": True})
    np.testing.assert_allclose(ds.x_train.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(ds.x_train.std(axis=0), 1.0, rtol=1e-12)
    mean, std = raw.x_train.mean(axis=0), raw.x_train.std(axis=0)
    np.testing.assert_allclose(ds.feature_mean, mean)
    np.testing.assert_allclose(ds.feature_std, std)
    np.testing.assert_allclose(ds.x_test, (raw.x_test - mean) / std, rtol=1e-12)
    assert not np.allclose(ds.x_test.mean(axis=0), 0.0, atol=1e-12)  # test statistics were not used
    np.testing.assert_array_equal(ds.y_train, raw.y_train)
    assert raw.feature_mean is None


def test_standardize_leaves_constant_features_finite() -> None:
    ds = load_dataset({"name": "product", "samples": 8, "standardize": True})
    np.testing.assert_array_equal(ds.x_train, 0.0)


def test_moons_two_balanced_classes_on_the_half_circles() -> None:
    ds = load_dataset({"name": "moons", "samples": 501, "noise": 0.0, "test_fraction": 0})
    counts = np.bincount(ds.y_train)
    assert counts.tolist() == [250, 251]
    outer, inner = ds.x_train[ds.y_train == 0], ds.x_train[ds.y_train == 1]
    np.testing.assert_allclose(np.hypot(outer[:, 0], outer[:, 1]), 1.0, atol=1e-12)
    assert np.all(outer[:, 1] >= -1e-12)
    np.testing.assert_allclose(np.hypot(inner[:, 0] - 1.0, inner[:, 1] - 0.5), 1.0, atol=1e-12)
    noisy = load_dataset({"name": "moons", "samples": 2000, "noise": 0.1})
    frac = np.concatenate([noisy.y_train, noisy.y_test]).mean()
    assert frac == 0.5
    assert 0.4 < noisy.y_train.mean() < 0.6  # the random split keeps them roughly balanced


def test_blobs_centres_and_counts() -> None:
    ds = load_dataset({"name": "blobs", "samples": 3001, "classes": 3, "features": 4, "std": 0.5, "test_fraction": 0})
    assert np.bincount(ds.y_train).tolist() == [1001, 1000, 1000]
    centers = ds.truth["centers"]
    assert centers.shape == (3, 4) and np.all(np.abs(centers) <= 10.0)
    for k in range(3):
        pts = ds.x_train[ds.y_train == k]
        np.testing.assert_allclose(pts.mean(axis=0), centers[k], atol=0.1)
        np.testing.assert_allclose(pts.std(axis=0), 0.5, rtol=0.1)


def test_linear_targets_follow_the_true_weights() -> None:
    ds = load_dataset({"name": "linear", "samples": 60, "features": 4, "outputs": 2, "noise": 0.0})
    w, b = ds.truth["weights"], ds.truth["bias"]
    assert w.shape == (4, 2) and b.shape == (2,)
    np.testing.assert_allclose(ds.y_train, ds.x_train @ w + b, rtol=1e-12, atol=1e-12)
    noisy = load_dataset({"name": "linear", "samples": 4000, "features": 2, "noise": 0.3, "test_fraction": 0})
    resid = noisy.y_train - noisy.x_train @ noisy.truth["weights"] - noisy.truth["bias"]
    assert abs(resid.std() - 0.3) < 0.02


def test_teacher_targets_are_the_teacher_network() -> None:
    ds = load_dataset({"name": "teacher", "samples": 50, "features": 3, "hidden": [5, 4], "activation": "relu",
                       "outputs": 2, "noise": 0.0})  # fmt: skip
    t = ds.truth
    assert t["w0"].shape == (3, 5) and t["w1"].shape == (5, 4) and t["w2"].shape == (4, 2)
    h = np.maximum(ds.x_train @ t["w0"] + t["b0"], 0.0)
    h = np.maximum(h @ t["w1"] + t["b1"], 0.0)
    np.testing.assert_allclose(ds.y_train, h @ t["w2"] + t["b2"], rtol=1e-12, atol=1e-12)


def test_spirals_arms_and_radius() -> None:
    ds = load_dataset({"name": "spirals", "samples": 300, "classes": 3, "noise": 0.0, "turns": 1.5})
    assert ds.n_classes == 3 and ds.n_features == 2
    r = np.hypot(ds.x_train[:, 0], ds.x_train[:, 1])
    assert np.all(r > 0) and np.all(r <= 1 + 1e-12)
    assert np.bincount(np.concatenate([ds.y_train, ds.y_test])).tolist() == [100, 100, 100]


def test_product_defaults_give_minima_w1_w2_equal_one() -> None:
    ds = load_dataset({"name": "product"})
    assert ds.n_train == 1 and ds.n_test == 0  # one sample: round(0.2) = 0 held out
    np.testing.assert_array_equal(ds.x_train, [[1.0]])
    np.testing.assert_array_equal(ds.y_train, [[1.0]])
    many = load_dataset({"name": "product", "x": [1.0, 2.0, -0.5], "test_fraction": 0})
    np.testing.assert_array_equal(many.y_train, many.x_train)  # y = x: w1 w2 = 1 fits every sample
    np.testing.assert_array_equal(np.sort(many.x_train.ravel()), [-0.5, 1.0, 2.0])
    given = load_dataset({"name": "product", "x": 2.0, "y": 3.0, "samples": 4, "test_fraction": 0})
    np.testing.assert_array_equal(given.x_train, 2.0)
    np.testing.assert_array_equal(given.y_train, 3.0)


def test_digits_bundled_with_scikit_learn() -> None:
    pytest.importorskip("sklearn")
    ds = load_dataset({"name": "digits", "test_fraction": 0})
    assert ds.x_train.shape == (1797, 64) and ds.y_train.shape == (1797,)
    assert ds.n_classes == 10 and ds.task == "classification"
    assert ds.x_train.min() == 0.0 and ds.x_train.max() == 1.0
    assert set(np.unique(ds.y_train)) == set(range(10))
    split = load_dataset({"name": "digits"})
    assert split.n_train + split.n_test == 1797 and split.n_test == 359
    sub = load_dataset({"name": "digits", "samples": 300, "seed": 1})
    assert sub.n_train + sub.n_test == 300


def test_digits_without_scikit_learn_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"pip install scikit-learn.*descentlab\[data\]"):
        load_dataset({"name": "digits"})


# --------------------------------------------------------------------------- files


def test_npz_round_trip_with_and_without_test_arrays(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 3)), rng.integers(0, 4, size=40)
    path = tmp_path / "d.npz"
    np.savez(path, x=x, y=y)
    ds = load_dataset({"file": str(path), "test_fraction": 0.25, "seed": 2})
    assert ds.task == "classification" and ds.n_classes == 4  # integer y
    assert ds.n_train == 30 and ds.n_test == 10
    got = np.concatenate([ds.x_train, ds.x_test])
    order = np.lexsort(got.T)
    np.testing.assert_array_equal(got[order], x[np.lexsort(x.T)])
    assert len(ds.description["sha256"]) == 64 and ds.name == "d.npz"
    again = load_dataset(ds.description["config"])
    assert _same(ds, again)

    xt, yt = rng.normal(size=(7, 3)), rng.integers(0, 3, size=7).astype(float)
    path2 = tmp_path / "r.npz"
    np.savez(path2, x=x, y=y.astype(float), x_test=xt, y_test=yt)
    reg = load_dataset({"name": "file", "file": str(path2)})
    assert reg.task == "regression" and reg.n_classes is None
    np.testing.assert_array_equal(reg.x_train, x)  # given test arrays: no split
    np.testing.assert_array_equal(reg.y_test, yt[:, None])
    cls = load_dataset({"file": str(path2), "task": "classification"})
    assert cls.y_train.dtype == np.int64 and cls.n_classes == 4


def test_h5_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(25, 2)), rng.normal(size=(25, 2))
    path = tmp_path / "d.h5"
    with h5py.File(path, "w") as fh:
        fh["x"], fh["y"] = x, y
    ds = load_dataset({"file": str(path), "test_fraction": 0})
    np.testing.assert_array_equal(ds.x_train, x)
    np.testing.assert_array_equal(ds.y_train, y)
    assert ds.task == "regression" and ds.n_outputs == 2


@pytest.mark.parametrize("header", [True, False])
def test_csv_round_trip_last_column_is_y(tmp_path: Path, header: bool) -> None:
    x = np.arange(12.0).reshape(6, 2) / 4
    y = np.array([0, 1, 2, 0, 1, 2])
    path = tmp_path / "d.csv"
    np.savetxt(path, np.column_stack([x, y]), delimiter=",", header="a,b,label" if header else "", comments="")
    ds = load_dataset({"file": str(path), "test_fraction": 0})
    assert ds.task == "regression"  # a CSV holds floats
    np.testing.assert_array_equal(ds.x_train, x)
    np.testing.assert_array_equal(ds.y_train, y[:, None].astype(float))
    cls = load_dataset({"file": str(path), "test_fraction": 0, "task": "classification"})
    np.testing.assert_array_equal(cls.y_train, y)
    assert cls.n_classes == 3


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^data\.file: cannot read .*missing\.npz"):
        load_dataset({"file": str(tmp_path / "missing.npz")})
    (tmp_path / "d.txt").write_text("1,2\n")
    with pytest.raises(ValueError, match=r"^data\.file: expected a \.npz, \.h5/\.hdf5 or \.csv file"):
        load_dataset({"file": str(tmp_path / "d.txt")})
    np.savez(tmp_path / "nox.npz", y=np.zeros(3))
    with pytest.raises(ValueError, match=r"^data\.file: nox\.npz has no array 'x'"):
        load_dataset({"file": str(tmp_path / "nox.npz")})
    np.savez(tmp_path / "len.npz", x=np.zeros((3, 2)), y=np.zeros(4))
    with pytest.raises(ValueError, match=r"^data\.file: x has 3 samples but y has 4"):
        load_dataset({"file": str(tmp_path / "len.npz")})
    np.savez(tmp_path / "nan.npz", x=np.array([[np.nan], [1.0]]), y=np.zeros(2))
    with pytest.raises(ValueError, match=r"^data\.file: x contains NaN or Inf"):
        load_dataset({"file": str(tmp_path / "nan.npz")})
    np.savez(tmp_path / "lab.npz", x=np.zeros((2, 1)), y=np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match=r"^data\.file: y: class labels must be integers"):
        load_dataset({"file": str(tmp_path / "lab.npz"), "task": "classification"})
    with pytest.raises(ValueError, match=r"^data\.task: expected one of \['regression', 'classification'\]"):
        load_dataset({"file": str(tmp_path / "lab.npz"), "task": "ranking"})
    with pytest.raises(ValueError, match=r"^data\.file: give either a data set name or a file"):
        load_dataset({"name": "moons", "file": str(tmp_path / "lab.npz")})


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"name": "moons", "samples": 0}, "data.samples: expected an integer >= 2, got 0"),
        ({"name": "moons", "samples": 2.5}, "data.samples: expected an integer >= 2, got 2.5"),
        ({"name": "moons", "samples": True}, "data.samples: expected an integer >= 2, got True"),
        ({"name": "moons", "noise": -0.1}, "data.noise: expected a number >= 0, got -0.1"),
        ({"name": "moons", "std": 1.0}, "data.std: unknown key; data (moons) takes"),
        ({"name": "moons", "test_fraction": 1.0}, "data.test_fraction: expected a number >= 0 and < 1, got 1.0"),
        ({"name": "moons", "seed": -1}, "data.seed: expected an integer >= 0, got -1"),
        ({"name": "moons", "standardize": "yes"}, "data.standardize: expected true or false, got 'yes'"),
        ({"name": "moons", "task": "regression"}, "data.task: unknown key"),
        ({"name": "nope"}, "data.name: unknown data set 'nope'"),
        ({}, "data.name: expected a data set name"),
        ({"name": "blobs", "classes": 1}, "data.classes: expected an integer >= 2, got 1"),
        ({"name": "blobs", "samples": 4, "classes": 5}, "data.samples: expected at least one sample per class"),
        ({"name": "blobs", "center_box": [1, 0]}, "data.center_box: expected [low, high] with low < high"),
        ({"name": "teacher", "hidden": [4, 0]}, "data.hidden: expected a list of layer widths"),
        ({"name": "teacher", "activation": "gelu"}, "data.activation: expected one of ['tanh', 'relu', 'sigmoid']"),
        ({"name": "spirals", "turns": 0}, "data.turns: expected a number > 0, got 0"),
        ({"name": "linear", "noise": float("nan")}, "data.noise: expected a finite number, got nan"),
        ({"name": "product", "x": [1.0, 2.0], "y": [1.0]}, "data.y: expected 2 targets (one per x), got 1"),
        ({"name": "product", "x": [1.0, 2.0], "samples": 3}, "data.samples: x/y give 2 samples"),
        ({"name": "product", "samples": 2, "test_fraction": 0.9}, "data.test_fraction: leaves no training sample"),
        ({"name": "digits", "samples": 5000}, "data.samples: digits has 1797 samples"),
    ],
)
def test_bad_config_names_the_key(cfg: dict, message: str) -> None:
    with pytest.raises(ValueError) as info:
        load_dataset(cfg)
    assert str(info.value).startswith(message)


def test_catalogue_lists_every_data_set_with_loadable_defaults() -> None:
    assert set(DATASETS) == {*GENERATORS, "digits", "file"}
    for name in GENERATORS:
        description, defaults = DATASETS[name]
        assert description and "samples" in defaults
        ds = load_dataset({"name": name, **{k: v for k, v in defaults.items() if v is not None}})
        assert ds.n_train >= 1
