"""Data sets of finite-sum landscapes: the ``[data]`` table of a run spec.

``load_dataset(cfg) -> Dataset`` builds a data set from a generator name or a
file, splits it into train and test parts and (optionally) standardizes the
features with the training statistics. Everything random comes from one
``numpy.random.default_rng(seed)`` (``data.seed``, default 0), so a data set is
a pure function of its configuration; :attr:`Dataset.description` holds the
resolved configuration (``description["config"]``), from which
``load_dataset`` rebuilds the same arrays.

Keys of ``[data]`` (the same in a Python dict)::

    name = "moons"          # a generator (see DATASETS), "digits", or "file"
    file = "data.npz"       # instead of name: .npz (x, y, optional x_test, y_test),
                            # .h5/.hdf5 (the same names as datasets), .csv (last column y)
    sha256 = "..."          # files only, optional: refuse the file unless it has this hash
                            # (the resolved config always records it)
    samples = 200           # generators and digits (a random subset of the 1797 images)
    test_fraction = 0.2     # share of the samples held out; 0 gives an empty test set
    seed = 0                # data seed (generation and split)
    standardize = false     # zero-mean unit-variance features, train statistics
    task = "classification" # files only: override the inferred task
    # ... plus the generator's own parameters (DATASETS[name].defaults)

Tasks: ``regression`` (``y`` float64 (n, n_out)) and ``classification``
(``y`` int64 (n,) with labels ``0 .. n_classes - 1``). Features are float64
(n, n_in). A file's task is inferred from the dtype of ``y`` (integers:
classification, floats: regression) unless ``task`` is given; a CSV holds
floats only, so a CSV of labels needs ``task = "classification"``.

Bad input raises :class:`ValueError` with a message that names the key, e.g.
``data.samples: expected an integer >= 2, got 0``.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np

Task = Literal["regression", "classification"]
_TASKS = ("regression", "classification")
_ACTIVATIONS = ("tanh", "relu", "sigmoid")
_COMMON = {"test_fraction": 0.2, "seed": 0, "standardize": False}
DIGITS_SAMPLES = 1797


@dataclass(frozen=True, eq=False)
class Dataset:
    """A train/test split of one data set.

    Arrays: ``x_train`` float64 (n_train, n_features), ``x_test`` float64
    (n_test, n_features); ``y_*`` float64 (n, n_outputs) for ``task ==
    "regression"``, int64 (n,) labels in ``0 .. n_classes - 1`` for
    ``"classification"``. ``n_classes`` is None for regression.

    ``description`` is JSON-able: ``config`` (the resolved ``[data]`` table;
    ``load_dataset(description["config"])`` rebuilds these arrays), sizes, and
    for files their path and SHA-256. With ``standardize`` the features were
    mapped to ``(x - feature_mean) / feature_std`` (train statistics; the
    statistics are kept so that other inputs can be mapped the same way).
    ``truth`` holds a generator's hidden parameters (the linear weights, the
    teacher network, the blob centres), in the raw feature units.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    task: Task
    n_classes: int | None
    name: str
    description: dict[str, Any]
    feature_mean: np.ndarray | None = None
    feature_std: np.ndarray | None = None
    truth: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def n_test(self) -> int:
        return int(self.x_test.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def n_outputs(self) -> int:
        """Width of the model output: the classes, or the regression targets."""
        if self.task == "classification":
            return int(self.n_classes or 0)
        return int(self.y_train.shape[1])

    def __repr__(self) -> str:
        kind = f"{self.n_classes} classes" if self.task == "classification" else f"{self.n_outputs} outputs"
        return (f"Dataset({self.name!r}, {self.task}, {self.n_features} features, {kind}, "
                f"train={self.n_train}, test={self.n_test})")  # fmt: skip


class DatasetInfo(NamedTuple):
    """A catalogue entry: what the data set is and its parameters with defaults."""

    description: str
    defaults: dict[str, Any]


# --------------------------------------------------------------------------- validation


def _fail(key: str, msg: str) -> ValueError:
    return ValueError(f"data.{key}: {msg}")


def _get_int(cfg: Mapping[str, Any], key: str, default: int | None, minimum: int) -> int:
    val = cfg.get(key, default)
    if isinstance(val, bool) or not isinstance(val, numbers.Integral) or int(val) < minimum:
        raise _fail(key, f"expected an integer >= {minimum}, got {val!r}")
    return int(val)


def _get_float(
    cfg: Mapping[str, Any], key: str, default: float, *, low: float | None = None, low_open: bool = False,
    high: float | None = None, high_open: bool = False,
) -> float:  # fmt: skip
    val = cfg.get(key, default)
    if isinstance(val, bool) or not isinstance(val, numbers.Real) or not math.isfinite(float(val)):
        raise _fail(key, f"expected a finite number, got {val!r}")
    v = float(val)
    bad_low = low is not None and (v <= low if low_open else v < low)
    bad_high = high is not None and (v >= high if high_open else v > high)
    if bad_low or bad_high:
        lo = "" if low is None else f"{'>' if low_open else '>='} {low:g}"
        hi = "" if high is None else f"{'<' if high_open else '<='} {high:g}"
        raise _fail(key, f"expected a number {' and '.join(s for s in (lo, hi) if s)}, got {val!r}")
    return v


def _get_choice(cfg: Mapping[str, Any], key: str, default: str | None, choices: tuple[str, ...]) -> str:
    val = cfg.get(key, default)
    if val not in choices:
        raise _fail(key, f"expected one of {list(choices)}, got {val!r}")
    return str(val)


def _get_bool(cfg: Mapping[str, Any], key: str, default: bool) -> bool:
    val = cfg.get(key, default)
    if not isinstance(val, bool | np.bool_):
        raise _fail(key, f"expected true or false, got {val!r}")
    return bool(val)


def _get_numbers(cfg: Mapping[str, Any], key: str, default: Any) -> float | list[float]:
    """A number or a non-empty list of numbers (all finite)."""
    val = cfg.get(key, default)
    vals = val if isinstance(val, list | tuple) else [val]
    if not vals or any(isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(float(v))
                       for v in vals):  # fmt: skip
        raise _fail(key, f"expected a finite number or a non-empty list of them, got {val!r}")
    return [float(v) for v in vals] if isinstance(val, list | tuple) else float(val)


# --------------------------------------------------------------------------- generators
# Each takes the resolved parameters, the number of samples and the data RNG and
# returns (x, y, truth). Classification labels are int64 (n,), regression
# targets float64 (n, n_out).

GeneratorResult = tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]


def _linear(p: Mapping[str, Any], n: int, rng: np.random.Generator) -> GeneratorResult:
    """y = x W* + b* + noise; x ~ N(0, I), entries of W*, b* ~ N(0, weight_scale^2), noise ~ N(0, noise^2)."""
    x = rng.standard_normal((n, p["features"]))
    w = p["weight_scale"] * rng.standard_normal((p["features"], p["outputs"]))
    b = p["weight_scale"] * rng.standard_normal(p["outputs"])
    y = x @ w + b + p["noise"] * rng.standard_normal((n, p["outputs"]))
    return x, y, {"weights": w, "bias": b}


def _activate(name: str, z: np.ndarray) -> np.ndarray:
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.maximum(z, 0.0)
    return 1.0 / (1.0 + np.exp(-z))


def _teacher(p: Mapping[str, Any], n: int, rng: np.random.Generator) -> GeneratorResult:
    """A random teacher MLP: x ~ N(0, I); layer weights ~ N(0, 1/fan_in) (LeCun normal),
    biases ~ N(0, 0.1^2); ``activation`` after every hidden layer, linear output; plus
    Gaussian noise of std ``noise`` on the targets."""
    widths = [p["features"], *p["hidden"], p["outputs"]]
    truth: dict[str, np.ndarray] = {}
    layers = []
    for j, (fan_in, fan_out) in enumerate(itertools.pairwise(widths)):
        w = rng.standard_normal((fan_in, fan_out)) / math.sqrt(fan_in)
        b = 0.1 * rng.standard_normal(fan_out)
        truth[f"w{j}"], truth[f"b{j}"] = w, b
        layers.append((w, b))
    x = rng.standard_normal((n, p["features"]))
    h = x
    for j, (w, b) in enumerate(layers):
        h = h @ w + b
        if j < len(layers) - 1:
            h = _activate(p["activation"], h)
    y = h + p["noise"] * rng.standard_normal((n, p["outputs"]))
    return x, y, truth


def _blobs(p: Mapping[str, Any], n: int, rng: np.random.Generator) -> GeneratorResult:
    """Isotropic Gaussian blobs, as sklearn.datasets.make_blobs: centres uniform in
    ``center_box`` (per feature), ``n // classes`` samples per class (the first
    ``n % classes`` classes one more), std ``std``, shuffled."""
    k, d = p["classes"], p["features"]
    lo, hi = p["center_box"]
    centers = rng.uniform(lo, hi, size=(k, d))
    counts = np.full(k, n // k)
    counts[: n % k] += 1
    x = np.concatenate([c + p["std"] * rng.standard_normal((m, d)) for c, m in zip(centers, counts, strict=True)])
    y = np.repeat(np.arange(k, dtype=np.int64), counts)
    order = rng.permutation(n)
    return x[order], y[order], {"centers": centers}


def _moons(p: Mapping[str, Any], n: int, rng: np.random.Generator) -> GeneratorResult:
    """Two interleaving half circles, as sklearn.datasets.make_moons: ``n // 2`` points
    on the outer moon (label 0), the rest on the inner one (label 1), shuffled, plus
    Gaussian noise of std ``noise``."""
    n_out = n // 2
    n_in = n - n_out
    t_out = np.linspace(0.0, math.pi, n_out)
    t_in = np.linspace(0.0, math.pi, n_in)
    x = np.concatenate([
        np.stack([np.cos(t_out), np.sin(t_out)], axis=1),
        np.stack([1.0 - np.cos(t_in), 1.0 - np.sin(t_in) - 0.5], axis=1),
    ])  # fmt: skip
    y = np.concatenate([np.zeros(n_out, dtype=np.int64), np.ones(n_in, dtype=np.int64)])
    order = rng.permutation(n)
    x, y = x[order], y[order]
    return x + p["noise"] * rng.standard_normal(x.shape), y, {}


def _spirals(p: Mapping[str, Any], n: int, rng: np.random.Generator) -> GeneratorResult:
    """``classes`` interleaved spiral arms in the plane: arm k has points at radius
    r = t, angle 2 pi (turns t + k / classes) for t evenly spaced in (0, 1], plus
    Gaussian noise of std ``noise`` on the coordinates; shuffled. Samples are split
    over the arms as in blobs."""
    k = p["classes"]
    counts = np.full(k, n // k)
    counts[: n % k] += 1
    xs, ys = [], []
    for arm, m in enumerate(counts):
        t = np.arange(1, m + 1) / m
        angle = 2.0 * math.pi * (p["turns"] * t + arm / k)
        xs.append(np.stack([t * np.cos(angle), t * np.sin(angle)], axis=1))
        ys.append(np.full(m, arm, dtype=np.int64))
    x, y = np.concatenate(xs), np.concatenate(ys)
    order = rng.permutation(n)
    x, y = x[order], y[order]
    return x + p["noise"] * rng.standard_normal(x.shape), y, {}


def _product(p: Mapping[str, Any], n: int, rng: np.random.Generator) -> GeneratorResult:
    """Data of the product model y_hat = w1 w2 x: inputs ``x`` (a number, repeated
    ``samples`` times, or a list), targets ``y`` (default: y = x, so the minima are
    w1 w2 = 1), plus Gaussian noise of std ``noise`` on the targets."""
    x = np.broadcast_to(np.asarray(p["x"], dtype=np.float64), (n,))
    y = x if p["y"] is None else np.broadcast_to(np.asarray(p["y"], dtype=np.float64), (n,))
    y = y + p["noise"] * rng.standard_normal(n) if p["noise"] > 0 else y.copy()
    return x.reshape(n, 1).copy(), y.reshape(n, 1), {}


class _Generator(NamedTuple):
    description: str
    defaults: dict[str, Any]
    task: Task
    min_samples: int
    make: Callable[[Mapping[str, Any], int, np.random.Generator], GeneratorResult] | None


_GENERATORS: dict[str, _Generator] = {
    "linear": _Generator(
        "linear regression data: y = x W* + b* + noise, x ~ N(0, I), W*, b* ~ N(0, weight_scale^2)",
        {"samples": 200, "features": 2, "outputs": 1, "noise": 0.1, "weight_scale": 1.0},
        task="regression",
        min_samples=2,
        make=_linear,
    ),
    "teacher": _Generator(
        "regression on a random teacher MLP (LeCun-normal weights, hidden widths, activation) plus noise",
        {"samples": 500, "features": 2, "hidden": [16], "activation": "tanh", "outputs": 1, "noise": 0.1},
        task="regression",
        min_samples=2,
        make=_teacher,
    ),
    "blobs": _Generator(
        "isotropic Gaussian blobs (as sklearn make_blobs), one class per blob",
        {"samples": 300, "classes": 3, "features": 2, "std": 1.0, "center_box": [-10.0, 10.0]},
        task="classification",
        min_samples=2,
        make=_blobs,
    ),
    "moons": _Generator(
        "two interleaving half circles (as sklearn make_moons), 2 classes, 2 features",
        {"samples": 200, "noise": 0.1},
        task="classification",
        min_samples=2,
        make=_moons,
    ),
    "spirals": _Generator(
        "interleaved spiral arms in the plane, one class per arm",
        {"samples": 300, "classes": 2, "noise": 0.1, "turns": 1.0},
        task="classification",
        min_samples=2,
        make=_spirals,
    ),
    "product": _Generator(
        "data of the product model y_hat = w1 w2 x: inputs x, targets y (default y = x: minima w1 w2 = 1)",
        {"samples": 1, "x": 1.0, "y": None, "noise": 0.0},
        task="regression",
        min_samples=1,
        make=_product,
    ),
    "digits": _Generator(
        "scikit-learn's bundled 8x8 handwritten digits (1797 x 64, 10 classes, scaled to [0, 1]; no download;"
        " needs scikit-learn: pip install 'descentlab[data]')",
        {"samples": None},
        task="classification",
        min_samples=2,
        make=None,
    ),
}

#: Catalogue for the CLI: name -> (description, parameter defaults). ``test_fraction``,
#: ``seed`` and ``standardize`` apply to every entry.
DATASETS: dict[str, DatasetInfo] = {
    **{name: DatasetInfo(g.description, dict(g.defaults)) for name, g in _GENERATORS.items()},
    "file": DatasetInfo(
        "user data: .npz (arrays x, y, optional x_test, y_test), .h5/.hdf5 (datasets x, y, optional"
        " x_test, y_test) or .csv (last column y; a header line is allowed)",
        {"file": None, "task": None, "sha256": None},
    ),
}


def _resolve_generator(name: str, cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Check a generator's own keys; returns them with defaults filled in."""
    gen = _GENERATORS[name]
    p: dict[str, Any] = {}
    if name == "digits":
        val = cfg.get("samples")
        if val is not None:
            p["samples"] = _get_int(cfg, "samples", None, 2)
            if p["samples"] > DIGITS_SAMPLES:
                raise _fail("samples", f"digits has {DIGITS_SAMPLES} samples, got {val!r}")
        else:
            p["samples"] = None
        return p
    p["samples"] = _get_int(cfg, "samples", gen.defaults["samples"], gen.min_samples)
    d = gen.defaults
    if "features" in d:
        p["features"] = _get_int(cfg, "features", d["features"], 1)
    if "outputs" in d:
        p["outputs"] = _get_int(cfg, "outputs", d["outputs"], 1)
    if "classes" in d:
        p["classes"] = _get_int(cfg, "classes", d["classes"], 2)
        if p["classes"] > p["samples"]:
            raise _fail("samples", f"expected at least one sample per class ({p['classes']}), got {p['samples']}")
    if "noise" in d:
        p["noise"] = _get_float(cfg, "noise", d["noise"], low=0.0)
    if name == "linear":
        p["weight_scale"] = _get_float(cfg, "weight_scale", d["weight_scale"], low=0.0)
    elif name == "teacher":
        hidden = cfg.get("hidden", d["hidden"])
        if isinstance(hidden, numbers.Integral) and not isinstance(hidden, bool):
            hidden = [hidden]
        if not isinstance(hidden, list | tuple) or any(
            isinstance(h, bool) or not isinstance(h, numbers.Integral) or int(h) < 1 for h in hidden
        ):
            raise _fail("hidden", f"expected a list of layer widths (integers >= 1), got {hidden!r}")
        p["hidden"] = [int(h) for h in hidden]
        p["activation"] = _get_choice(cfg, "activation", d["activation"], _ACTIVATIONS)
    elif name == "blobs":
        p["std"] = _get_float(cfg, "std", d["std"], low=0.0)
        box = cfg.get("center_box", d["center_box"])
        ok = (
            isinstance(box, list | tuple)
            and len(box) == 2
            and all(not isinstance(v, bool) and isinstance(v, numbers.Real) and math.isfinite(float(v)) for v in box)
        )
        if not ok or float(box[0]) >= float(box[1]):
            raise _fail("center_box", f"expected [low, high] with low < high, got {box!r}")
        p["center_box"] = [float(box[0]), float(box[1])]
    elif name == "spirals":
        p["turns"] = _get_float(cfg, "turns", d["turns"], low=0.0, low_open=True)
    elif name == "product":
        x = _get_numbers(cfg, "x", d["x"])
        y = None if cfg.get("y") is None else _get_numbers(cfg, "y", None)
        n = len(x) if isinstance(x, list) else None
        if isinstance(y, list):
            if n is not None and len(y) != n:
                raise _fail("y", f"expected {n} targets (one per x), got {len(y)}")
            n = len(y)
        if n is not None:
            if "samples" in cfg and cfg["samples"] != n:
                raise _fail("samples", f"x/y give {n} samples, got samples = {cfg['samples']!r}")
            p["samples"] = n
        p["x"], p["y"] = x, y
    return p


# --------------------------------------------------------------------------- files


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_csv(path: Path) -> dict[str, np.ndarray]:
    with open(path, encoding="utf-8") as fh:
        first = fh.readline()
    try:
        [float(v) for v in first.strip().split(",")]
        skip = 0
    except ValueError:
        skip = 1  # a header line
    table = np.loadtxt(path, delimiter=",", skiprows=skip, ndmin=2, dtype=np.float64)
    if table.shape[1] < 2:
        raise _fail("file", f"a CSV needs at least two columns (features, then y), got {table.shape[1]}")
    return {"x": table[:, :-1], "y": table[:, -1]}


def _read_file(path: Path) -> tuple[dict[str, np.ndarray], str]:
    suffix = path.suffix.lower()
    names = ("x", "y", "x_test", "y_test")
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: np.asarray(npz[k]) for k in names if k in npz.files}
        fmt = "npz"
    elif suffix in (".h5", ".hdf5"):
        import h5py

        from ..core.hdf5 import foreign_storage

        with h5py.File(path, "r") as fh:
            foreign = foreign_storage(fh)
            if foreign:  # it would copy other local files into the run file
                raise _fail("file", f"{path.name}: refused: {foreign}")
            arrays = {k: np.asarray(fh[k][()]) for k in names if k in fh and isinstance(fh[k], h5py.Dataset)}
        fmt = "hdf5"
    elif suffix == ".csv":
        arrays = _read_csv(path)
        fmt = "csv"
    else:
        raise _fail("file", f"expected a .npz, .h5/.hdf5 or .csv file, got {str(path)!r}")
    for key in ("x", "y"):
        if key not in arrays:
            raise _fail("file", f"{path.name} has no array {key!r} (expected x, y, optional x_test, y_test)")
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise _fail("file", f"{path.name} has only one of x_test, y_test; give both or neither")
    return arrays, fmt


def _features(x: np.ndarray, what: str) -> np.ndarray:
    if x.dtype.kind not in "biuf":
        raise _fail("file", f"{what} must be numeric, got dtype {x.dtype}")
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 0:
        raise _fail("file", f"{what} must be an array of samples, got a scalar")
    x = x.reshape(x.shape[0], -1)
    if not np.all(np.isfinite(x)):
        raise _fail("file", f"{what} contains NaN or Inf")
    return np.ascontiguousarray(x)


def _targets(y: np.ndarray, task: Task, what: str) -> np.ndarray:
    if y.dtype.kind not in "biuf":
        raise _fail("file", f"{what} must be numeric, got dtype {y.dtype}")
    if y.ndim == 0:
        raise _fail("file", f"{what} must be an array of samples, got a scalar")
    if task == "regression":
        yf = np.asarray(y, dtype=np.float64).reshape(y.shape[0], -1)
        if not np.all(np.isfinite(yf)):
            raise _fail("file", f"{what} contains NaN or Inf")
        return np.ascontiguousarray(yf)
    if y.ndim > 2 or (y.ndim == 2 and y.shape[1] != 1):
        raise _fail("file", f"{what}: classification needs one label per sample, got shape {y.shape}")
    yf = np.asarray(y, dtype=np.float64).ravel()
    if not np.all(np.isfinite(yf)) or np.any(yf != np.round(yf)) or np.any(yf < 0):
        raise _fail("file", f"{what}: class labels must be integers 0, 1, ..., C-1")
    return yf.astype(np.int64)


# --------------------------------------------------------------------------- split, scale


def _split(
    x: np.ndarray, y: np.ndarray, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Random split: the first ``round(fraction * n)`` of a permutation are the test set."""
    n = x.shape[0]
    n_test = math.floor(fraction * n + 0.5)
    if n - n_test < 1:
        raise _fail("test_fraction", f"leaves no training sample ({n} samples, test_fraction = {fraction:g})")
    order = rng.permutation(n)
    test, train = np.sort(order[:n_test]), np.sort(order[n_test:])
    return x[train], y[train], x[test], y[test]


def _standardize(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)  # a constant feature is only centred
    return (x_train - mean) / std, (x_test - mean) / std, mean, std


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


# --------------------------------------------------------------------------- entry point


def load_dataset(cfg: Mapping[str, Any]) -> Dataset:
    """Build the data set of a ``[data]`` table (see the module docstring for the keys).

    Raises ValueError (message ``data.<key>: ...``) on bad input, ImportError
    with an install hint for ``digits`` without scikit-learn.
    """
    if not isinstance(cfg, Mapping):
        raise ValueError(f"data: expected a table, got {type(cfg).__name__}")
    name = cfg.get("name")
    path = cfg.get("file")
    if path is not None and name not in (None, "file"):
        raise _fail("file", f"give either a data set name or a file, not both (name = {name!r})")
    if path is None and name in (None, "file"):
        raise _fail("name", f"expected a data set name {sorted(DATASETS)} or data.file = PATH")
    if path is None and name not in _GENERATORS:
        raise _fail("name", f"unknown data set {name!r}; known: {sorted(DATASETS)}")
    kind = "file" if path is not None else str(name)
    allowed = {"name", *_COMMON, *DATASETS[kind].defaults}
    unknown = sorted(set(cfg) - allowed)
    if unknown:
        raise _fail(unknown[0], f"unknown key; data ({kind}) takes {sorted(allowed)}")
    fraction = _get_float(cfg, "test_fraction", _COMMON["test_fraction"], low=0.0, high=1.0, high_open=True)
    seed = _get_int(cfg, "seed", _COMMON["seed"], 0)
    standardize = _get_bool(cfg, "standardize", _COMMON["standardize"])
    rng = np.random.default_rng(seed)
    config: dict[str, Any] = {"name": kind}
    info: dict[str, Any] = {"rng": "numpy.random.default_rng(seed) (PCG64)", "numpy_version": np.__version__}
    truth: dict[str, np.ndarray] = {}

    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    if kind == "file":
        if not isinstance(path, str | Path):
            raise _fail("file", f"expected a path, got {path!r}")
        file_path = Path(path).expanduser().resolve()
        task_opt = cfg.get("task")
        if task_opt is not None:
            task_opt = _get_choice(cfg, "task", None, _TASKS)
        given = cfg.get("sha256")
        if given is not None and not isinstance(given, str):
            raise _fail("sha256", f"expected a hex string, got {given!r}")
        try:
            digest = _sha256(file_path)
            if given is not None and given != digest:
                raise _fail("sha256", f"{str(file_path)!r} has changed (its sha256 is {digest[:16]}..., the spec "
                                      f"says {given[:16]}...)")  # fmt: skip
            arrays, fmt = _read_file(file_path)
            info.update(format=fmt, sha256=digest)
        except OSError as exc:
            raise _fail("file", f"cannot read {str(path)!r} ({exc.strerror or exc})") from None
        except ValueError as exc:
            if str(exc).startswith("data."):
                raise
            raise _fail("file", f"cannot read {str(path)!r} ({exc})") from None
        y_kind = arrays["y"].dtype.kind
        task: Task = task_opt or ("classification" if y_kind in "biu" else "regression")  # type: ignore[assignment]
        x = _features(arrays["x"], "x")
        y = _targets(arrays["y"], task, "y")
        if x.shape[0] != y.shape[0]:
            raise _fail("file", f"x has {x.shape[0]} samples but y has {y.shape[0]}")
        if "x_test" in arrays:
            x_test = _features(arrays["x_test"], "x_test")
            y_test = _targets(arrays["y_test"], task, "y_test")
            if x_test.shape[0] != y_test.shape[0]:
                raise _fail("file", f"x_test has {x_test.shape[0]} samples but y_test has {y_test.shape[0]}")
            if x_test.shape[1] != x.shape[1]:
                raise _fail("file", f"x has {x.shape[1]} features but x_test has {x_test.shape[1]}")
            if task == "regression" and y_test.shape[1] != y.shape[1]:
                raise _fail("file", f"y has {y.shape[1]} outputs but y_test has {y_test.shape[1]}")
            info["split"] = "from the file (x_test, y_test); test_fraction not used"
        config.update(file=str(file_path), task=task, sha256=digest)
    elif kind == "digits":
        params = _resolve_generator(kind, cfg)
        try:
            from sklearn import __version__ as sklearn_version
            from sklearn.datasets import load_digits
        except ImportError:
            raise ImportError(
                "data.name = 'digits' needs scikit-learn (the data set ships inside it, no download): "
                "pip install scikit-learn  (or pip install 'descentlab[data]')"
            ) from None
        images, labels = load_digits(return_X_y=True)
        x = np.asarray(images, dtype=np.float64) / 16.0
        y = np.asarray(labels, dtype=np.int64)
        if params["samples"] is not None:
            keep = np.sort(rng.permutation(x.shape[0])[: params["samples"]])
            x, y = x[keep], y[keep]
        task = "classification"
        config.update(params)
        info["source"] = f"sklearn.datasets.load_digits (scikit-learn {sklearn_version}), pixels / 16"
    else:
        gen = _GENERATORS[kind]
        params = _resolve_generator(kind, cfg)
        assert gen.make is not None
        x, y, truth = gen.make(params, params["samples"], rng)
        x = np.ascontiguousarray(x, dtype=np.float64)
        y = np.ascontiguousarray(y, dtype=np.int64 if gen.task == "classification" else np.float64)
        task = gen.task
        config.update(params)

    if x_test is None or y_test is None:
        x_train, y_train, x_test, y_test = _split(x, y, fraction, rng)
    else:
        x_train, y_train = x, y
    mean = std = None
    if standardize:
        x_train, x_test, mean, std = _standardize(x_train, x_test)
    n_classes = None
    if task == "classification":
        n_classes = int(max(y_train.max(initial=-1), y_test.max(initial=-1)) + 1)
        if kind == "digits":
            n_classes = 10
        elif kind in ("blobs", "spirals"):
            n_classes = int(config["classes"])
        elif kind == "moons":
            n_classes = 2
    config.update(test_fraction=fraction, seed=seed, standardize=standardize)
    description = {
        "config": {k: _jsonable(v) for k, v in config.items()},
        "task": task,
        "n_classes": n_classes,
        "n_train": int(x_train.shape[0]),
        "n_test": int(x_test.shape[0]),
        "n_features": int(x_train.shape[1]),
        **info,
    }
    return Dataset(
        x_train=np.ascontiguousarray(x_train),
        y_train=np.ascontiguousarray(y_train),
        x_test=np.ascontiguousarray(x_test),
        y_test=np.ascontiguousarray(y_test),
        task=task,
        n_classes=n_classes,
        name=kind if kind != "file" else Path(str(path)).name,
        description=description,
        feature_mean=mean,
        feature_std=std,
        truth=truth,
    )
