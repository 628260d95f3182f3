"""Per-layer initialization of model parameter vectors (the ``[init]`` table of a model run).

Every coordinate ``j`` of particle ``i`` is drawn with the counter-based RNG
(:mod:`descentlab.core.rng`) keyed by ``(seed, i, stream 0, draw j)``, so a
particle's parameters are the same whether it runs alone, in a shard or with
any thread count, exactly as :func:`descentlab.engine.init.initial_positions`:
``uniform`` coordinates are ``host_uniform(seed, ids, 0, dim)[:, j]`` and
``normal`` ones ``host_normal(seed, ids, 0, dim)[:, j]``.

Keys of ``[init]``::

    scheme = "xavier_uniform"  # the weights' scheme (table below)
    scale_factor = 1.0         # multiplies every weight (init too small / too large studies)
    bias = "zeros"             # "zeros" (default) | a number | a scheme name | {scheme = ..., ...}
    # ... plus the scheme's own keys (gain, std, ...)

Schemes follow torch.nn.init (https://pytorch.org/docs/stable/nn.init.html);
``fan_in``/``fan_out`` come from the layout (:class:`~descentlab.models.layout.LayerEntry`)::

    zeros                            0
    constant                         value                                    value (required)
    normal                           N(mean, std^2)                           mean (0), std (1)
    uniform                          U(low, high), or U(-scale, scale)        low (-1), high (1) | scale
    xavier_uniform, glorot_uniform   U(-b, b), b = gain sqrt(6/(fan_in+fan_out))  gain (1) | nonlinearity
    xavier_normal, glorot_normal     N(0, s^2), s = gain sqrt(2/(fan_in+fan_out)) gain (1) | nonlinearity
    he_uniform, kaiming_uniform      U(-b, b), b = gain sqrt(3/fan)           gain (sqrt 2) | nonlinearity,
                                                                              negative_slope (0); mode
    he_normal, kaiming_normal        N(0, s^2), s = gain/sqrt(fan)            as he_uniform
    lecun_uniform                    U(-b, b), b = sqrt(3/fan_in)
    lecun_normal                     N(0, s^2), s = 1/sqrt(fan_in)
    torch_default                    U(-b, b), b = 1/sqrt(fan_in)  (nn.Linear)

``fan`` is ``fan_in`` (``mode = "fan_in"``, the default) or ``fan_out``. Instead of
``gain`` a ``nonlinearity`` may be named; its gain is torch.nn.init.calculate_gain's:
linear/sigmoid 1, tanh 5/3, relu sqrt(2), leaky_relu sqrt(2 / (1 + negative_slope^2)),
selu 3/4. He/Kaiming's default is torch's ``kaiming_*_(a=0, nonlinearity="leaky_relu")``:
gain sqrt(2), the ReLU gain.

NOTE: ``torch_default`` is what ``torch.nn.Linear.reset_parameters`` does:
``kaiming_uniform_(weight, a=sqrt(5))`` gives gain sqrt(1/3), so b = 1/sqrt(fan_in);
its bias is U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with the layer's fan_in, and that is
the default bias of this scheme (every other scheme's default bias is zeros).
NOTE: ``lecun_*`` are He with gain 1 (torch has no lecun initializer); lecun_normal
is a plain normal here, not the truncated normal of JAX/Keras.

``scale_factor`` multiplies the weights only (after the scheme, constants and means
included), not biases nor batch-norm parameters. Biases take their own scheme
(``bias``), drawn with the bias entry's fans (the layer's). Batch normalization
parameters are fixed: ``bn_gamma`` = 1, ``bn_beta`` = 0 (as torch.nn.BatchNorm1d).

Bad keys raise ValueError whose message names the key (``init.gain: ...``,
``init.bias.std: ...``).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ..core.rng import standard_normal, uniform_pair
from .layout import LayerEntry, check_layout

_SQRT2 = math.sqrt(2.0)
_XAVIER_KEYS = {"gain": 1.0, "nonlinearity": None, "negative_slope": None}
_HE_KEYS = {"gain": _SQRT2, "nonlinearity": None, "negative_slope": None, "mode": "fan_in"}
NONLINEARITIES = ("linear", "identity", "sigmoid", "tanh", "relu", "leaky_relu", "selu")


class SchemeInfo(NamedTuple):
    """A catalogue entry: the distribution in words and the scheme's keys with defaults."""

    description: str
    defaults: dict[str, Any]


#: Weight schemes: name -> (description, keys with defaults; None = optional / derived).
MODEL_INIT_SCHEMES: dict[str, SchemeInfo] = {
    "zeros": SchemeInfo("all zeros", {}),
    "constant": SchemeInfo("every weight = value", {"value": None}),
    "normal": SchemeInfo("N(mean, std^2)", {"mean": 0.0, "std": 1.0}),
    "uniform": SchemeInfo("U(low, high), or U(-scale, scale)", {"low": -1.0, "high": 1.0, "scale": None}),
    "xavier_uniform": SchemeInfo("U(-b, b), b = gain sqrt(6/(fan_in+fan_out)) (Glorot 2010)", dict(_XAVIER_KEYS)),
    "xavier_normal": SchemeInfo("N(0, s^2), s = gain sqrt(2/(fan_in+fan_out)) (Glorot 2010)", dict(_XAVIER_KEYS)),
    "he_uniform": SchemeInfo("U(-b, b), b = gain sqrt(3/fan), gain sqrt(2) (He et al. 2015)", dict(_HE_KEYS)),
    "he_normal": SchemeInfo("N(0, s^2), s = gain/sqrt(fan), gain sqrt(2) (He et al. 2015)", dict(_HE_KEYS)),
    "lecun_uniform": SchemeInfo("U(-b, b), b = sqrt(3/fan_in)", {}),
    "lecun_normal": SchemeInfo("N(0, s^2), s = 1/sqrt(fan_in) (LeCun et al. 1998)", {}),
    "torch_default": SchemeInfo("as torch.nn.Linear: weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in))", {}),
}
#: Other names of the same schemes.
ALIASES = {
    "glorot_uniform": "xavier_uniform",
    "glorot_normal": "xavier_normal",
    "kaiming_uniform": "he_uniform",
    "kaiming_normal": "he_normal",
}
_TOP_KEYS = ("scheme", "scale_factor", "bias")


def torch_gain(nonlinearity: str, negative_slope: float = 0.01) -> float:
    """``torch.nn.init.calculate_gain(nonlinearity, negative_slope)``."""
    if nonlinearity in ("linear", "identity", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3.0
    if nonlinearity == "relu":
        return _SQRT2
    if nonlinearity == "leaky_relu":
        return math.sqrt(2.0 / (1.0 + negative_slope**2))
    if nonlinearity == "selu":
        return 0.75
    raise ValueError(f"unknown nonlinearity {nonlinearity!r}; known: {list(NONLINEARITIES)}")


@dataclass(frozen=True)
class Distribution:
    """What one tensor is drawn from: ``constant`` (a), ``normal`` (mean a, std b), ``uniform`` (low a, high b)."""

    family: str
    a: float
    b: float = 0.0


@dataclass(frozen=True)
class Scheme:
    """A validated scheme: its canonical name and resolved keys."""

    name: str
    params: dict[str, Any]

    def distribution(self, entry: LayerEntry, where: str) -> Distribution:
        """The distribution of ``entry``'s values under this scheme (fans from the entry)."""
        p, name = self.params, self.name
        if name == "zeros":
            return Distribution("constant", 0.0)
        if name == "constant":
            return Distribution("constant", p["value"])
        if name == "normal":
            return Distribution("normal", p["mean"], p["std"])
        if name == "uniform":
            return Distribution("uniform", p["low"], p["high"])
        fan_in, fan_out = entry.fan_in, entry.fan_out
        if fan_in < 1 or (name.startswith("xavier") and fan_out < 1) or (p.get("mode") == "fan_out" and fan_out < 1):
            raise ValueError(f"{where}: {name} needs fans >= 1, layout entry {entry.name!r} has "
                             f"fan_in={fan_in}, fan_out={fan_out}")  # fmt: skip
        if name == "xavier_uniform":
            return _symmetric_uniform(p["gain"] * math.sqrt(6.0 / (fan_in + fan_out)))
        if name == "xavier_normal":
            return Distribution("normal", 0.0, p["gain"] * math.sqrt(2.0 / (fan_in + fan_out)))
        fan = fan_out if p.get("mode") == "fan_out" else fan_in
        if name == "he_uniform":
            return _symmetric_uniform(p["gain"] * math.sqrt(3.0 / fan))
        if name == "he_normal":
            return Distribution("normal", 0.0, p["gain"] / math.sqrt(fan))
        if name == "lecun_uniform":
            return _symmetric_uniform(math.sqrt(3.0 / fan_in))
        if name == "lecun_normal":
            return Distribution("normal", 0.0, 1.0 / math.sqrt(fan_in))
        if name == "torch_default":
            return _symmetric_uniform(1.0 / math.sqrt(fan_in))
        raise AssertionError(name)  # parse_scheme admits only the names above


def _symmetric_uniform(bound: float) -> Distribution:
    return Distribution("uniform", -bound, bound)


# --------------------------------------------------------------------------- validation


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise ValueError(f"{where}: expected a finite number, got {value!r}")
    return float(value)


def _gain(given: Mapping[str, Any], scheme: str, prefix: str) -> float:
    """The gain of a Xavier/He scheme from ``gain`` or ``nonlinearity`` (+ ``negative_slope``)."""
    he = scheme.startswith("he")
    if "gain" in given:
        for key in ("nonlinearity", "negative_slope"):
            if key in given:
                raise ValueError(f"{prefix}.{key}: give either gain or nonlinearity, not both")
        gain = _number(given["gain"], f"{prefix}.gain")
        if gain <= 0:
            raise ValueError(f"{prefix}.gain: expected a number > 0, got {given['gain']!r}")
        return gain
    nonlinearity = given.get("nonlinearity", "leaky_relu" if he else "linear")
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(f"{prefix}.nonlinearity: expected one of {list(NONLINEARITIES)}, got {nonlinearity!r}")
    if "negative_slope" in given and nonlinearity != "leaky_relu":
        raise ValueError(f"{prefix}.negative_slope: only with nonlinearity = 'leaky_relu'")
    # torch: kaiming_*_(a=0) for He, calculate_gain's default 0.01 otherwise
    slope = _number(given.get("negative_slope", 0.0 if he else 0.01), f"{prefix}.negative_slope")
    return torch_gain(str(nonlinearity), slope)


def parse_scheme(given: Mapping[str, Any], prefix: str = "init", extra_keys: Sequence[str] = ()) -> Scheme:
    """Validate a scheme table (``scheme`` plus its keys); ``extra_keys`` are handled by the caller.

    Keys whose value is None count as absent. Raises ValueError naming ``<prefix>.<key>``.
    """
    given = {k: v for k, v in given.items() if v is not None}
    raw = given.get("scheme")
    if not isinstance(raw, str) or ALIASES.get(raw, raw) not in MODEL_INIT_SCHEMES:
        known = sorted([*MODEL_INIT_SCHEMES, *ALIASES])
        raise ValueError(f"{prefix}.scheme: unknown scheme {raw!r}; known: {known}")
    name = ALIASES.get(raw, raw)
    defaults = MODEL_INIT_SCHEMES[name].defaults
    allowed = {"scheme", *defaults, *extra_keys}
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise ValueError(f"{prefix}.{unknown[0]}: unknown key for scheme {raw!r}; it takes {sorted(allowed)}")
    p: dict[str, Any] = {}
    if name == "constant":
        if "value" not in given:
            raise ValueError(f"{prefix}.value: the constant scheme needs a value")
        p["value"] = _number(given["value"], f"{prefix}.value")
    elif name == "normal":
        p["mean"] = _number(given.get("mean", defaults["mean"]), f"{prefix}.mean")
        p["std"] = _number(given.get("std", defaults["std"]), f"{prefix}.std")
        if p["std"] < 0:
            raise ValueError(f"{prefix}.std: expected a number >= 0, got {given['std']!r}")
    elif name == "uniform":
        if "scale" in given:
            for key in ("low", "high"):
                if key in given:
                    raise ValueError(f"{prefix}.{key}: give either scale or low/high, not both")
            scale = _number(given["scale"], f"{prefix}.scale")
            if scale < 0:
                raise ValueError(f"{prefix}.scale: expected a number >= 0, got {given['scale']!r}")
            p["low"], p["high"] = -scale, scale
        else:
            p["low"] = _number(given.get("low", defaults["low"]), f"{prefix}.low")
            p["high"] = _number(given.get("high", defaults["high"]), f"{prefix}.high")
            if p["low"] > p["high"]:
                raise ValueError(f"{prefix}.low: must be <= {prefix}.high (low={p['low']:g}, high={p['high']:g})")
    elif name in ("xavier_uniform", "xavier_normal", "he_uniform", "he_normal"):
        p["gain"] = _gain(given, name, prefix)
        if name.startswith("he"):
            mode = given.get("mode", "fan_in")
            if mode not in ("fan_in", "fan_out"):
                raise ValueError(f"{prefix}.mode: expected 'fan_in' or 'fan_out', got {mode!r}")
            p["mode"] = mode
    return Scheme(name, p)


@dataclass(frozen=True)
class ModelInit:
    """A validated ``[init]`` table: the weights' scheme, their multiplier, the biases' scheme."""

    weights: Scheme
    scale_factor: float
    bias: Scheme


def parse_model_init(init: Mapping[str, Any]) -> ModelInit:
    """Validate an ``[init]`` table of a model run; raises ValueError naming ``init.<key>``."""
    if not isinstance(init, Mapping):
        raise ValueError(f"init: expected a table, got {type(init).__name__}")
    weights = parse_scheme(init, "init", extra_keys=("scale_factor", "bias"))
    raw_factor = init.get("scale_factor")
    factor = 1.0 if raw_factor is None else _number(raw_factor, "init.scale_factor")
    if factor < 0:
        raise ValueError(f"init.scale_factor: expected a number >= 0, got {raw_factor!r}")
    raw_bias = init.get("bias")
    if raw_bias is None:
        bias = Scheme("torch_default", {}) if weights.name == "torch_default" else Scheme("zeros", {})
    elif isinstance(raw_bias, str):
        bias = parse_scheme({"scheme": raw_bias}, "init.bias")
    elif isinstance(raw_bias, Mapping):
        bias = parse_scheme(raw_bias, "init.bias")
    elif isinstance(raw_bias, numbers.Real) and not isinstance(raw_bias, bool):
        bias = Scheme("constant", {"value": _number(raw_bias, "init.bias")})
    else:
        raise ValueError(f"init.bias: expected 'zeros', a number, a scheme name or a table, got {raw_bias!r}")
    return ModelInit(weights, factor, bias)


# --------------------------------------------------------------------------- drawing


def _uniforms(seed: int, ids: np.ndarray, start: int, stop: int) -> np.ndarray:
    """``host_uniform(seed, ids, 0, dim)[:, start:stop]`` without drawing the other columns."""
    pid = np.asarray(ids, dtype=np.uint64)[:, None]
    draw = np.arange(start, stop, dtype=np.uint64)[None, :]
    with np.errstate(over="ignore"):
        u0, _ = uniform_pair(np.uint64(seed), pid, np.uint64(0), draw)
    return np.asarray(u0, dtype=np.float64)


def _normals(seed: int, ids: np.ndarray, start: int, stop: int) -> np.ndarray:
    """``host_normal(seed, ids, 0, dim)[:, start:stop]`` without drawing the other columns."""
    pid = np.asarray(ids, dtype=np.uint64)[:, None]
    draw = np.arange(start, stop, dtype=np.uint64)[None, :]
    with np.errstate(over="ignore"):
        z = standard_normal(np.uint64(seed), pid, np.uint64(0), draw)
    return np.asarray(z, dtype=np.float64)


def model_initial_positions(
    init: Mapping[str, Any], layout: Sequence[LayerEntry], dim: int, ids: np.ndarray, seed: int
) -> np.ndarray:
    """Initial parameter vectors (len(ids), dim) float64 of the particles with global ids ``ids``.

    ``layout`` must tile ``[0, dim)`` (see :func:`~descentlab.models.layout.check_layout`).
    Weights follow ``init.scheme`` times ``init.scale_factor``; biases ``init.bias``;
    ``bn_gamma`` = 1 and ``bn_beta`` = 0. Coordinate ``j`` of particle ``i`` is a function
    of ``(seed, i, j)`` only (stream 0 of the counter-based RNG).
    """
    spec = parse_model_init(init)
    check_layout(layout, dim)
    ids = np.asarray(ids, dtype=np.int64)
    if ids.ndim != 1:
        raise ValueError(f"ids: expected a 1-D array of particle ids, got shape {ids.shape}")
    out = np.empty((ids.shape[0], dim), dtype=np.float64)
    for entry in layout:
        cols = out[:, entry.start : entry.stop]
        if entry.kind == "bn_gamma":
            cols[:] = 1.0
            continue
        if entry.kind == "bn_beta":
            cols[:] = 0.0
            continue
        scheme, where = (spec.weights, "init.scheme") if entry.kind == "weight" else (spec.bias, "init.bias")
        dist = scheme.distribution(entry, where)
        factor = spec.scale_factor if entry.kind == "weight" else 1.0
        if dist.family == "constant":
            cols[:] = factor * dist.a
        elif dist.family == "normal":
            cols[:] = factor * (dist.a + dist.b * _normals(seed, ids, entry.start, entry.stop))
        else:
            cols[:] = factor * (dist.a + (dist.b - dist.a) * _uniforms(seed, ids, entry.start, entry.stop))
    return out
