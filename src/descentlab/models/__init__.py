"""Models of finite-sum landscapes (linear, logistic, product, MLP): layouts, packing and math.

A model turns a data set into a landscape: the loss of a parameter vector is
the mean loss over the samples. The host side (this module, plain Python)
validates a :class:`ModelSpec`, describes the flat parameter vector
(:attr:`Model.layout`, used by :mod:`descentlab.models.init`) and packs the
architecture, the data set and the batch schedule into one float vector
(:meth:`Model.pack`). The math (:mod:`descentlab.models.compute`) is one set of
functions for every model, so a new architecture or data set reuses the
compiled kernel.

Example::

    model = make_model(ModelSpec("mlp", hidden=(32,), activation="tanh", loss="cross_entropy"), 64, 10)
    p = model.pack(x, y, batch_sizes=[32], shuffle=True)
    rows = model.scratch_rows(32)           # scratch rows the math needs (or model.scratch_rows_for(p))
    model.value(X, p, w, out, 0, n)         # X (model.dim, n), w (rows, n): see compute.py

Model kinds: ``mlp`` (hidden layers, activations ``tanh``/``relu``/``sigmoid``/
``linear``, optional batch normalization), ``linear`` (an mlp without hidden
layers, MSE), ``logistic`` (an mlp without hidden layers, cross-entropy:
softmax for ``n_out >= 2`` classes, binary with a sigmoid for ``n_out == 1``)
and ``product`` (``yhat = w1 w2 x``, one input, one output, MSE). Loss
conventions follow torch (see :mod:`descentlab.models.compute`).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import compute
from .layout import LayerEntry, check_layout

ACTIVATIONS: dict[str, int] = {
    "linear": compute.ACT_LINEAR,
    "tanh": compute.ACT_TANH,
    "relu": compute.ACT_RELU,
    "sigmoid": compute.ACT_SIGMOID,
}
LOSSES: dict[str, int] = {"mse": compute.LOSS_MSE, "cross_entropy": compute.LOSS_CROSS_ENTROPY}
METRICS: dict[str, int] = {"loss": compute.METRIC_LOSS, "accuracy": compute.METRIC_ACCURACY}
#: Model kinds and their default loss.
MODEL_KINDS: dict[str, str] = {"mlp": "mse", "linear": "mse", "logistic": "cross_entropy", "product": "mse"}
#: The full data set is evaluated in chunks of at least this many samples (scratch permitting).
MIN_CHUNK = 32
#: Header integers must be exact in float32.
MAX_HEADER_INT = 2**24


@dataclass(frozen=True)
class ModelSpec:
    """What model to train (the ``[landscape]`` table of a finite-sum run).

    kind: ``"mlp" | "linear" | "logistic" | "product"``.
    hidden: widths of the hidden layers (mlp only; ``()`` is a linear model).
    activation: one name for every hidden layer, or one per hidden layer.
    loss: ``"mse" | "cross_entropy"``; None takes the kind's default (MODEL_KINDS).
    batch_norm: batch normalization after every hidden affine map (mlp only).
    """

    kind: str = "mlp"
    hidden: tuple[int, ...] = ()
    activation: str | tuple[str, ...] = "tanh"
    loss: str | None = None
    batch_norm: bool = False


@dataclass(frozen=True)
class Model:
    """A resolved model: architecture, parameter layout, packing; math functions shared by all models.

    ``widths`` = (n_in, hidden..., n_out); ``activations`` one name per hidden
    layer; ``layout`` tiles ``[0, dim)`` (per affine layer ``j``:
    ``layer{j}.weight`` (out, in), ``layer{j}.bias`` (out,), and with batch
    normalization ``bn{j}.gamma``, ``bn{j}.beta`` (out,) after a hidden layer).
    The product model's layout is ``w1``, ``w2`` (weights, shape (1,)).
    """

    spec: ModelSpec
    kind: str
    n_in: int
    n_out: int
    widths: tuple[int, ...]
    activations: tuple[str, ...]
    loss: str
    batch_norm: bool
    dim: int
    layout: tuple[LayerEntry, ...]

    # The math functions (descentlab.models.compute): the same objects for every model.
    @property
    def value(self) -> Callable[..., Any]:
        return compute.value

    @property
    def grad(self) -> Callable[..., Any]:
        return compute.grad

    @property
    def batch_grad(self) -> Callable[..., Any]:
        return compute.batch_grad

    @property
    def hess(self) -> Callable[..., Any]:
        return compute.hess

    @property
    def is_classifier(self) -> bool:
        """True for cross-entropy models: targets are class labels, ``metric="accuracy"`` is allowed."""
        return self.loss == "cross_entropy"

    @property
    def n_layers(self) -> int:
        """Affine layers (hidden layers + 1; 1 for the product model)."""
        return len(self.widths) - 1

    def scratch_rows(self, max_batch: int) -> int:
        """Scratch rows for batches of at most ``max_batch`` samples (``max(batch_sizes)`` of :meth:`pack`)."""
        if self.kind == "product":
            return 1
        c = max(int(max_batch), MIN_CHUNK)
        return _scratch_rows(self.widths, self.batch_norm, c)

    def scratch_rows_for(self, p: np.ndarray) -> int:
        """The scratch rows packed vector ``p`` needs (exact; at most :meth:`scratch_rows` of its largest batch)."""
        return int(compute.scratch_layout(np.asarray(p, dtype=np.float64), 0)[4])

    def pack(
        self,
        x_data: np.ndarray,
        y_data: np.ndarray,
        *,
        batch_sizes: Sequence[int] | None = None,
        batch_epochs: Sequence[int] | None = None,
        shuffle: bool = False,
        drop_last: bool = False,
        metric: str = "loss",
        chunk: int | None = None,
    ) -> np.ndarray:
        """The packed vector ``p`` (float64; cast to the kernel dtype by the engine).

        x_data (n, n_in) floats; y_data: regression (n, n_out) floats (or (n,)
        when n_out == 1), classification (n,) integer labels in ``[0, n_out)``
        (``{0, 1}`` when n_out == 1). ``batch_sizes`` (P,) the batch size of
        each phase of the batch-size schedule (default: the full data set);
        ``batch_epochs`` the length in epochs of each phase but the last (P - 1
        entries; P entries are accepted, the last one is ignored). Batch sizes
        above n are clipped to n. ``metric = "accuracy"`` (classifiers) makes
        :func:`value` the fraction of samples classified correctly. ``chunk``:
        samples in scratch at once (default ``min(n, max(max(batch_sizes),
        MIN_CHUNK))``; must be >= every batch size).
        Raises ValueError naming the argument.
        """
        x = np.asarray(x_data, dtype=np.float64)
        if x.ndim == 1 and self.n_in == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[1] != self.n_in:
            raise ValueError(f"x_data: expected shape (n, {self.n_in}), got {np.shape(x_data)}")
        n = x.shape[0]
        if n < 1 or n > MAX_HEADER_INT:
            raise ValueError(f"x_data: expected 1 to {MAX_HEADER_INT} samples, got {n}")
        if not np.all(np.isfinite(x)):
            raise ValueError("x_data: contains NaN or Inf")
        y = self._targets(y_data, n)
        if metric not in METRICS:
            raise ValueError(f"metric: expected one of {list(METRICS)}, got {metric!r}")
        if metric == "accuracy" and not self.is_classifier:
            raise ValueError("metric: 'accuracy' needs a classifier (loss = 'cross_entropy')")
        sizes = [n] if batch_sizes is None else [_int(b, "batch_sizes", 1) for b in batch_sizes]
        if not sizes:
            raise ValueError("batch_sizes: expected at least one batch size")
        if drop_last and max(sizes) > n:
            raise ValueError(f"batch_sizes: a batch of {max(sizes)} > n = {n} samples with drop_last has no batch")
        sizes = [min(b, n) for b in sizes]
        epochs = [] if batch_epochs is None else list(batch_epochs)
        if len(epochs) == len(sizes):
            epochs = epochs[:-1]  # the last phase goes on
        epochs = [_int(e, "batch_epochs", 1) for e in epochs]
        if len(epochs) != len(sizes) - 1:
            raise ValueError(
                f"batch_epochs: expected {len(sizes) - 1} phase lengths for {len(sizes)} batch sizes, got {len(epochs)}"
            )
        epochs.append(0)
        c = min(n, max(max(sizes), MIN_CHUNK)) if chunk is None else _int(chunk, "chunk", 1)
        if c < max(sizes):
            raise ValueError(f"chunk: must be >= the largest batch size {max(sizes)}, got {c}")
        c = min(c, n)
        if self.kind == "product":
            widths = [1, 1]
            acts = [0]
        else:
            widths = list(self.widths)
            acts = [ACTIVATIONS[a] for a in self.activations] + [compute.ACT_LINEAR]
        header = [0] * compute.H_WIDTHS
        header[compute.H_VERSION] = compute.FORMAT_VERSION
        header[compute.H_KIND] = compute.KIND_PRODUCT if self.kind == "product" else compute.KIND_MLP
        header[compute.H_LOSS] = LOSSES[self.loss]
        header[compute.H_METRIC] = METRICS[metric]
        header[compute.H_N] = n
        header[compute.H_N_IN] = self.n_in
        header[compute.H_N_OUT] = self.n_out
        header[compute.H_LAYERS] = len(widths) - 1
        header[compute.H_BN] = int(self.batch_norm)
        header[compute.H_SHUFFLE] = int(bool(shuffle))
        header[compute.H_DROP_LAST] = int(bool(drop_last))
        header[compute.H_CHUNK] = c
        header[compute.H_PHASES] = len(sizes)
        header[compute.H_DIM] = self.dim
        ints = [*header, *widths, *acts, *sizes, *epochs]
        if max(ints) > MAX_HEADER_INT:
            raise ValueError(f"batch_epochs: header values must be <= {MAX_HEADER_INT}, got {max(ints)}")
        return np.concatenate([np.asarray(ints, dtype=np.float64), x.ravel(), y.ravel()])

    def _targets(self, y_data: np.ndarray, n: int) -> np.ndarray:
        y = np.asarray(y_data)
        if self.is_classifier:
            if y.ndim == 2 and y.shape[1] == 1:
                y = y[:, 0]
            if y.shape != (n,):
                raise ValueError(f"y_data: expected ({n},) class labels, got shape {y.shape}")
            yf = y.astype(np.float64)
            classes = 2 if self.n_out == 1 else self.n_out
            if not np.all(np.isfinite(yf)) or np.any(yf != np.round(yf)) or yf.min() < 0 or yf.max() >= classes:
                raise ValueError(f"y_data: expected integer labels in [0, {classes}), got values in "
                                 f"[{yf.min():g}, {yf.max():g}]")  # fmt: skip
            return yf
        yf = y.astype(np.float64)
        if yf.ndim == 1 and self.n_out == 1:
            yf = yf[:, None]
        if yf.shape != (n, self.n_out):
            raise ValueError(f"y_data: expected shape ({n}, {self.n_out}), got {y.shape}")
        if not np.all(np.isfinite(yf)):
            raise ValueError("y_data: contains NaN or Inf")
        return yf


def _int(value: Any, where: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral | float) or value != int(value):
        raise ValueError(f"{where}: expected integers >= {low}, got {value!r}")
    if int(value) < low:
        raise ValueError(f"{where}: expected integers >= {low}, got {value!r}")
    return int(value)


def _scratch_rows(widths: Sequence[int], batch_norm: bool, c: int) -> int:
    """Rows of the scratch layout of compute.py for chunk c (see its module docstring)."""
    hidden = list(widths[1:-1])
    rows = c + compute.N_TMP + c * sum(widths)
    if batch_norm:
        rows += c * sum(hidden) + 2 * sum(hidden)
    return rows + c * max(hidden, default=0)


def _resolve(spec: ModelSpec, n_in: int, n_out: int) -> tuple[str, tuple[int, ...], tuple[str, ...], str, bool]:
    kind = spec.kind
    if kind not in MODEL_KINDS:
        raise ValueError(f"model.kind: expected one of {list(MODEL_KINDS)}, got {kind!r}")
    n_in = _int(n_in, "model.n_in", 1)
    n_out = _int(n_out, "model.n_out", 1)
    hidden = tuple(_int(h, "model.hidden", 1) for h in spec.hidden)
    loss = MODEL_KINDS[kind] if spec.loss is None else spec.loss
    if loss not in LOSSES:
        raise ValueError(f"model.loss: expected one of {list(LOSSES)}, got {loss!r}")
    if kind != "mlp" and hidden:
        raise ValueError(f"model.hidden: a {kind} model has no hidden layers, got {list(hidden)}")
    if kind != "mlp" and spec.batch_norm:
        raise ValueError(f"model.batch_norm: only an mlp with hidden layers has batch normalization, not {kind}")
    if spec.batch_norm and not hidden:
        raise ValueError("model.batch_norm: needs hidden layers (it normalizes hidden pre-activations)")
    if kind == "linear" and loss != "mse":
        raise ValueError(f"model.loss: linear regression uses 'mse', got {loss!r} (a classifier is 'logistic')")
    if kind == "logistic" and loss != "cross_entropy":
        raise ValueError(f"model.loss: logistic regression uses 'cross_entropy', got {loss!r}")
    if kind == "product":
        if loss != "mse":
            raise ValueError(f"model.loss: the product model uses 'mse', got {loss!r}")
        if n_in != 1 or n_out != 1:
            raise ValueError(f"model.kind: the product model needs 1 input and 1 output, got {n_in} and {n_out}")
    acts = (spec.activation,) * len(hidden) if isinstance(spec.activation, str) else tuple(spec.activation)
    if len(acts) != len(hidden):
        raise ValueError(f"model.activation: expected one name or {len(hidden)} names, got {list(acts)}")
    for a in acts:
        if a not in ACTIVATIONS:
            raise ValueError(f"model.activation: expected one of {list(ACTIVATIONS)}, got {a!r}")
    widths = (n_in, *hidden, n_out)
    if max(widths) > MAX_HEADER_INT:
        raise ValueError(f"model.hidden: widths must be <= {MAX_HEADER_INT}")
    return kind, widths, acts, loss, bool(spec.batch_norm)


def _layout(widths: Sequence[int], batch_norm: bool) -> list[LayerEntry]:
    entries: list[LayerEntry] = []
    start = 0

    def add(name: str, kind: Any, shape: tuple[int, ...], fan_in: int, fan_out: int) -> None:
        nonlocal start
        size = math.prod(shape)
        entries.append(LayerEntry(name, kind, slice(start, start + size), shape, fan_in, fan_out))
        start += size

    n_layers = len(widths) - 1
    for j in range(n_layers):
        fan_in, fan_out = widths[j], widths[j + 1]
        add(f"layer{j}.weight", "weight", (fan_out, fan_in), fan_in, fan_out)
        add(f"layer{j}.bias", "bias", (fan_out,), fan_in, fan_out)
        if batch_norm and j < n_layers - 1:
            add(f"bn{j}.gamma", "bn_gamma", (fan_out,), fan_out, fan_out)
            add(f"bn{j}.beta", "bn_beta", (fan_out,), fan_out, fan_out)
    return entries


def make_model(spec: ModelSpec, n_in: int, n_out: int) -> Model:
    """Resolve ``spec`` for data with ``n_in`` features and ``n_out`` outputs (classes; 1 = binary logistic).

    Raises ValueError naming the field (``model.hidden: ...``).
    """
    kind, widths, acts, loss, bn = _resolve(spec, n_in, n_out)
    if kind == "product":
        layout = [
            LayerEntry("w1", "weight", slice(0, 1), (1,), 1, 1),
            LayerEntry("w2", "weight", slice(1, 2), (1,), 1, 1),
        ]
    else:
        layout = _layout(widths, bn)
    dim = layout[-1].stop
    check_layout(layout, dim)
    if dim > MAX_HEADER_INT:
        raise ValueError(f"model.hidden: {dim} parameters, at most {MAX_HEADER_INT}")
    return Model(spec, kind, widths[0], widths[-1], widths, acts, loss, bn, dim, tuple(layout))


__all__ = ["ACTIVATIONS", "LOSSES", "METRICS", "MODEL_KINDS", "Model", "ModelSpec", "make_model"]
