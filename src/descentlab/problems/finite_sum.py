"""Finite-sum runs: a model trained on a data set with real minibatches.

A run is finite-sum when ``[landscape] name`` is a model kind (``mlp``,
``linear_regression``, ``logistic_regression``, ``product_model``). It then
needs ``[data]`` (:func:`descentlab.data.datasets.load_dataset`) and may have
``[batch]``::

    [landscape]
    name = "mlp"                 # mlp | linear_regression | logistic_regression | product_model
    hidden = [32]                # hidden widths (mlp)
    activation = "tanh"          # tanh | relu | sigmoid | linear, or one per hidden layer
    loss = "cross_entropy"       # mse | cross_entropy (default: the kind's)
    batch_norm = false

    [data]
    name = "digits"              # see `descentlab landscapes` / DATASETS
    test_fraction = 0.2

    [batch]
    size = 32                    # default: the whole training set (full batch)
    shuffle = true               # a fresh permutation per particle and epoch
    drop_last = false
    # schedule = [{size = 8, epochs = 20}, {size = 256}]   (instead of size)

    [run]
    epochs = 10                  # instead of steps (updates)
    record_every_epochs = 1      # instead of record_every (constant batch size only)

The landscape the kernels see is the model's mean training loss; the step
uses the minibatch gradient of update ``t`` (1-based), drawn with a stateless
permutation of the training set per (particle, epoch)
(:mod:`descentlab.data.batches`). Initial parameters follow the per-layer
schemes of :mod:`descentlab.models.init` (default ``torch_default``).

Metrics (:class:`Metrics`): the test loss at each record, and train/test
accuracy for classifiers, evaluated by the same compiled kernel on the data
packed differently; at initialization, per-layer activation and
back-propagated gradient statistics (:func:`init_stats`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import Field

from ..core.tables import StrictTable, validate_table
from ..data.batches import batches_per_epoch, steps_for_epochs
from ..data.datasets import Dataset, load_dataset
from ..landscapes.base import Landscape
from ..models import Model, ModelSpec, make_model
from ..models.init import parse_model_init

#: ``[landscape] name`` of a finite-sum run -> model kind.
MODEL_LANDSCAPES: dict[str, str] = {
    "mlp": "mlp",
    "linear_regression": "linear",
    "logistic_regression": "logistic",
    "product_model": "product",
}

#: Particles per CPU block for models: a block's parameters, gradients and
#: optimizer state (D x block each) stay in cache for D in the thousands.
MODEL_BLOCK = 32

#: Particles evaluated at once for the per-layer statistics (NumPy, float64).
_STATS_CHUNK = 64


class ModelTable(StrictTable):
    """``[landscape]`` of a model trained on data."""

    name: str = Field(description="mlp, linear_regression, logistic_regression or product_model")
    hidden: list[int] = Field(default_factory=list, description="mlp: widths of the hidden layers")
    activation: str | list[str] = Field(default="tanh", description="mlp: tanh, relu, sigmoid (one, or one per layer)")
    loss: Literal["mse", "cross_entropy"] | None = Field(default=None, description="default: by the data's task")
    batch_norm: bool = Field(default=False, description="mlp: batch normalization after each hidden layer")
    dim: int | None = Field(default=None, description="optional check: the number of parameters")


class BatchPhase(StrictTable):
    """One phase of a batch-size schedule."""

    size: int = Field(gt=0, description="batch size")
    epochs: int | None = Field(default=None, gt=0, description="epochs of this phase (not for the last one)")


class BatchTable(StrictTable):
    """``[batch]``: minibatches of a model run."""

    size: int | None = Field(default=None, gt=0, description="batch size (default: the whole training set)")
    shuffle: bool = Field(default=True, description="a fresh permutation per particle and epoch")
    drop_last: bool = Field(default=False, description="drop the short last batch of an epoch")
    schedule: list[BatchPhase] | None = Field(default=None, description="batch-size phases instead of size")


@dataclass(frozen=True)
class FiniteSum:
    """A validated finite-sum problem: model, data and batch schedule.

    ``sizes`` (P,) batch size per phase of the batch-size schedule, ``epochs``
    (P - 1,) the length in epochs of every phase but the last.
    """

    model: Model
    data: Dataset
    sizes: tuple[int, ...]
    epochs: tuple[int, ...]
    shuffle: bool
    drop_last: bool

    @property
    def n_train(self) -> int:
        return int(self.data.x_train.shape[0])

    def pack(self, which: Literal["train", "test"] = "train", metric: str = "loss") -> np.ndarray:
        """The kernel's landscape parameters (float64): ``which`` data, ``metric`` loss or accuracy."""
        x, y = (self.data.x_train, self.data.y_train) if which == "train" else (self.data.x_test, self.data.y_test)
        return self.model.pack(x, y, batch_sizes=list(self.sizes), batch_epochs=list(self.epochs),
                               shuffle=self.shuffle, drop_last=self.drop_last, metric=metric)  # fmt: skip

    def steps_for_epochs(self, epochs: int) -> int:
        return steps_for_epochs(self.n_train, list(self.sizes), list(self.epochs), self.drop_last, epochs)

    def epoch_of_steps(self, steps: int) -> np.ndarray:
        """Updates in each epoch (E,) int64 of a run of ``steps`` updates (the last may be partial)."""
        out: list[int] = []
        done = 0
        for p, b in enumerate(self.sizes):
            per = batches_per_epoch(self.n_train, b, self.drop_last)
            n_ep = self.epochs[p] if p < len(self.epochs) else math.inf
            k = 0
            while k < n_ep and done < steps:
                take = min(per, steps - done)
                out.append(take)
                done += take
                k += 1
            if done >= steps:
                break
        return np.asarray(out, dtype=np.int64)

    def landscape(self, name: str) -> Landscape:
        m = self.model
        train = self.pack("train")
        rows = m.scratch_rows_for(train)
        return Landscape(
            name=name,
            description=f"{m.kind} model on {self.data.name}",
            dim=m.dim,
            params={},
            value=m.value,
            grad=m.grad,
            hess=m.hess,
            init_box=(-1.0, 1.0),
            pack_fn=lambda params, dim: train,
            scratch_fn=lambda dim: rows,
            batch_grad=m.batch_grad,
            block=MODEL_BLOCK,
        )


def _err(field_name: str, msg: str) -> ValueError:
    return ValueError(f"{field_name}: {msg}")


def parse_finite_sum(
    land_table: Mapping[str, Any],
    data_table: Mapping[str, Any] | None,
    batch_table: Mapping[str, Any],
) -> tuple[FiniteSum, Landscape, dict[str, Any]]:
    """Validate the model, data and batch tables; returns (problem, landscape, resolved landscape table).

    Raises :class:`~descentlab.core.tables.SpecError` or ValueError ``"field: message"``.
    """
    mt: ModelTable = validate_table(ModelTable, land_table, "landscape")
    if data_table is None:
        raise _err("data", f"a {mt.name} landscape is trained on a data set; add a [data] table (e.g. name = 'digits')")
    try:
        data = load_dataset(data_table)
    except ImportError as exc:
        raise _err("data.name", str(exc)) from None
    bt: BatchTable = validate_table(BatchTable, batch_table, "batch")
    kind = MODEL_LANDSCAPES[mt.name]
    n_out = data.n_classes if data.task == "classification" else data.y_train.shape[1]
    assert n_out is not None
    if data.task == "classification" and n_out == 2 and kind == "logistic":
        n_out = 1  # binary logistic regression: one logit
    loss = mt.loss
    if data.task == "classification" and (loss or "cross_entropy") != "cross_entropy" and kind == "mlp":
        raise _err("landscape.loss", f"the data set {data.name!r} has class labels: use 'cross_entropy'")
    if data.task == "classification" and kind == "mlp" and loss is None:
        loss = "cross_entropy"
    if data.task == "regression" and loss == "cross_entropy":
        raise _err("landscape.loss", f"the data set {data.name!r} has real-valued targets: use 'mse'")
    if data.task == "classification" and kind in ("linear", "product"):
        raise _err("landscape.name", f"{mt.name} needs real-valued targets; {data.name!r} has class labels")
    if data.task == "regression" and kind == "logistic":
        raise _err("landscape.name", f"logistic_regression needs class labels; {data.name!r} is a regression set")
    activation = mt.activation if isinstance(mt.activation, str) else tuple(mt.activation)
    spec = ModelSpec(kind, tuple(mt.hidden), activation, loss, mt.batch_norm)
    try:
        model = make_model(spec, data.x_train.shape[1], int(n_out))
    except ValueError as exc:
        msg = str(exc).replace("model.kind", "landscape.name").replace("model.", "landscape.")
        raise ValueError(msg) from None
    if mt.dim is not None and mt.dim != model.dim:
        raise _err("landscape.dim", f"the model has {model.dim} parameters, not {mt.dim} (leave dim out)")
    n = data.x_train.shape[0]
    if bt.schedule is not None:
        if bt.size is not None:
            raise _err("batch.size", "give either batch.size or batch.schedule, not both")
        if not bt.schedule:
            raise _err("batch.schedule", "expected at least one phase {size = ..., epochs = ...}")
        for j, ph in enumerate(bt.schedule[:-1]):
            if ph.epochs is None:
                raise _err(f"batch.schedule.{j}.epochs", "every phase but the last needs its length in epochs")
        if bt.schedule[-1].epochs is not None:
            last = len(bt.schedule) - 1
            raise _err(f"batch.schedule.{last}.epochs", "the last phase runs to the end; give it no epochs")
        sizes = tuple(ph.size for ph in bt.schedule)
        epochs = tuple(int(ph.epochs) for ph in bt.schedule[:-1])  # type: ignore[arg-type]
        where = "batch.schedule"
    else:
        sizes = (n if bt.size is None else bt.size,)
        epochs = ()
        where = "batch.size"
    if max(sizes) > n:
        raise _err(where, f"a batch of {max(sizes)} is larger than the training set ({n} samples)")
    fs = FiniteSum(model, data, sizes, epochs, bt.shuffle, bt.drop_last)
    resolved = {"name": mt.name, "hidden": list(model.widths[1:-1]), "activation": list(model.activations),
                "loss": model.loss, "batch_norm": model.batch_norm, "dim": model.dim}  # fmt: skip
    return fs, fs.landscape(mt.name), resolved


def parse_init(init: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a model run's ``[init]`` (per-layer schemes; default ``torch_default``)."""
    out = {k: v for k, v in init.items() if v is not None}
    out.setdefault("scheme", "torch_default")
    if out["scheme"] == "points":
        return out
    parse_model_init(out)
    return out


def initial_positions(fs: FiniteSum, init: Mapping[str, Any], ids: np.ndarray, seed: int) -> np.ndarray:
    """Initial parameters (len(ids), D) float64 of particles ``ids``."""
    from ..models.init import model_initial_positions

    return model_initial_positions(init, fs.model.layout, fs.model.dim, ids, seed)


@dataclass
class Metrics:
    """Evaluators of a finite-sum run's metrics with the compiled kernels.

    ``names``: ``test_loss`` (if there is a test set), ``train_accuracy`` and
    ``test_accuracy`` (classifiers). :meth:`at` gives each as (n, R).
    """

    fs: FiniteSum
    evaluate: Any
    dtype: np.dtype

    def __post_init__(self) -> None:
        fs = self.fs
        self.packs: dict[str, np.ndarray] = {}
        has_test = fs.data.x_test.shape[0] > 0
        if has_test:
            self.packs["test_loss"] = fs.pack("test", "loss")
        if fs.model.is_classifier:
            self.packs["train_accuracy"] = fs.pack("train", "accuracy")
            if has_test:
                self.packs["test_accuracy"] = fs.pack("test", "accuracy")
        self.rows = {k: self.fs.model.scratch_rows_for(p) for k, p in self.packs.items()}
        self.packs = {k: p.astype(self.dtype) for k, p in self.packs.items()}

    @property
    def names(self) -> list[str]:
        return list(self.packs)

    def at(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Metrics at recorded positions ``x`` (n, R, D): each (n, R), dtype of the run."""
        n, r, _ = x.shape
        out = {k: np.empty((n, r), self.dtype) for k in self.packs}
        gn = np.empty(n, self.dtype)
        for j in range(r):
            xj = np.ascontiguousarray(x[:, j, :].T)
            for k, p in self.packs.items():
                val = np.empty(n, self.dtype)
                self.evaluate(xj, p, self.rows[k], val, gn)
                out[k][:, j] = val
        return out


def init_stats(fs: FiniteSum, init_x: np.ndarray) -> dict[str, np.ndarray]:
    """Per-layer statistics at initialization over the training set, per particle.

    Returns ``activation_mean``, ``activation_var`` (outputs of each affine
    layer after its activation; the last layer's are the logits) and
    ``gradient_mean``, ``gradient_var`` (the loss gradient back-propagated to
    each layer's pre-activation, scaled by the number of samples), each (n, L)
    float64 (Glorot & Bengio 2010). Empty for the product model.
    """
    from ..models.reference import activation_stats

    if fs.model.kind == "product":
        return {}
    parts: dict[str, list[np.ndarray]] = {"activation_mean": [], "activation_var": [],
                                          "gradient_mean": [], "gradient_var": []}  # fmt: skip
    x = np.asarray(init_x, dtype=np.float64)
    for a in range(0, x.shape[0], _STATS_CHUNK):
        st = activation_stats(fs.model, x[a : a + _STATS_CHUNK], fs.data.x_train, fs.data.y_train)
        parts["activation_mean"].append(st.act_mean)
        parts["activation_var"].append(st.act_var)
        parts["gradient_mean"].append(st.grad_mean)
        parts["gradient_var"].append(st.grad_var)
    return {k: np.concatenate(v, axis=0) for k, v in parts.items()}


def layer_stats_at(fs: FiniteSum, positions: np.ndarray) -> dict[str, np.ndarray]:
    """:func:`init_stats` at any positions ``positions`` (..., D) - e.g. a trajectory (n, R, D) - plus
    ``weight_grad_norm``: the norm of the full-batch loss gradient w.r.t. each layer's weight matrix
    (vanishing / exploding gradients); each (..., L). Empty for the product model."""
    from ..models.reference import gradient

    if fs.model.kind == "product":
        return {}
    x = np.asarray(positions, dtype=np.float64)
    lead, d = x.shape[:-1], x.shape[-1]
    flat = x.reshape(-1, d)
    out = {k: v.reshape(*lead, -1) for k, v in init_stats(fs, flat).items()}
    weights = [e.slice for e in fs.model.layout if e.kind == "weight"]
    parts = [gradient(fs.model, flat[a : a + _STATS_CHUNK], fs.data.x_train, fs.data.y_train)
             for a in range(0, flat.shape[0], _STATS_CHUNK)]  # fmt: skip
    g = np.concatenate(parts) if parts else np.zeros((0, d))
    out["weight_grad_norm"] = np.stack([np.linalg.norm(g[:, s], axis=1) for s in weights], axis=1).reshape(*lead, -1)
    return out
