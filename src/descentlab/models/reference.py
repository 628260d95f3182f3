"""Slow, obviously-right NumPy reference of the models, vectorised over particles.

Everything here works on ``params`` (N, D) (one row per particle, the layout
of :attr:`descentlab.models.Model.layout`) and the data set as arrays, with
textbook matrix backpropagation (no autograd). The kernels in
:mod:`descentlab.models.compute` are tested against it; it is also the host-side
tool for per-layer statistics (:func:`activation_stats`).

Conventions as the kernels: MSE is the mean over samples and outputs; cross
entropy is softmax CE (n_out >= 2) or binary CE with logits (n_out == 1), mean
over samples; batch normalization uses the statistics (biased variance, eps
1e-5) of the samples passed in.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..data.batches import batch_of_step, host_permutation
from . import Model
from .compute import BN_EPS


class Layer(NamedTuple):
    """Parameters of one affine layer for all particles: W (N, out, in), b (N, out); gamma, beta (N, out) or None."""

    weight: np.ndarray
    bias: np.ndarray
    gamma: np.ndarray | None
    beta: np.ndarray | None


def unpack(model: Model, params: np.ndarray) -> list[Layer]:
    """The layers of ``params`` (N, D) (views); the product model gives no layers (use params directly)."""
    params = np.atleast_2d(np.asarray(params, dtype=np.float64))
    by_name = {e.name: e for e in model.layout}
    layers = []
    for j in range(model.n_layers):
        we, be = by_name[f"layer{j}.weight"], by_name[f"layer{j}.bias"]
        n = params.shape[0]
        weight = params[:, we.slice].reshape(n, *we.shape)
        bias = params[:, be.slice]
        gamma = beta = None
        if f"bn{j}.gamma" in by_name:
            gamma = params[:, by_name[f"bn{j}.gamma"].slice]
            beta = params[:, by_name[f"bn{j}.beta"].slice]
        layers.append(Layer(weight, bias, gamma, beta))
    return layers


def _act(name: str, z: np.ndarray) -> np.ndarray:
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "sigmoid":
        return 0.5 * (1.0 + np.tanh(0.5 * z))  # = 1 / (1 + exp(-z)), without overflow
    return z


def _act_derivative(name: str, z: np.ndarray) -> np.ndarray:
    """d act / dz at the pre-activation z."""
    if name == "tanh":
        return 1.0 / np.cosh(z) ** 2
    if name == "relu":
        return (z > 0).astype(z.dtype)
    if name == "sigmoid":
        s = _act("sigmoid", z)
        return s * (1.0 - s)
    return np.ones_like(z)


class Forward(NamedTuple):
    """A forward pass: per layer the input h (N, n, in), pre-activation a, normalized xhat, BN 1/std, z = BN(a)."""

    logits: np.ndarray
    inputs: list[np.ndarray]
    pre: list[np.ndarray]
    xhat: list[np.ndarray | None]
    inv_std: list[np.ndarray | None]
    z: list[np.ndarray]


def forward(model: Model, params: np.ndarray, x_data: np.ndarray) -> Forward:
    """Logits (N, n, n_out) of every particle on every sample, and the intermediate values."""
    params = np.atleast_2d(np.asarray(params, dtype=np.float64))
    x = np.asarray(x_data, dtype=np.float64).reshape(len(x_data), -1)
    n_particles = params.shape[0]
    if model.kind == "product":
        logits = (params[:, 0] * params[:, 1])[:, None, None] * x[None, :, :]
        return Forward(logits, [], [], [], [], [])
    h = np.broadcast_to(x, (n_particles, *x.shape))
    inputs, pre, xhats, inv_stds, zs = [], [], [], [], []
    layers = unpack(model, params)
    for j, layer in enumerate(layers):
        inputs.append(h)
        a = np.einsum("Noi,Nsi->Nso", layer.weight, h) + layer.bias[:, None, :]
        pre.append(a)
        if j == len(layers) - 1:
            xhats.append(None)
            inv_stds.append(None)
            zs.append(a)
            return Forward(a, inputs, pre, xhats, inv_stds, zs)
        if layer.gamma is not None and layer.beta is not None:
            mean = a.mean(axis=1, keepdims=True)
            var = a.var(axis=1, keepdims=True)  # biased, as torch's training mode
            inv_std = 1.0 / np.sqrt(var + BN_EPS)
            xhat = (a - mean) * inv_std
            z = layer.gamma[:, None, :] * xhat + layer.beta[:, None, :]
        else:
            xhat, inv_std, z = None, None, a
        xhats.append(xhat)
        inv_stds.append(inv_std)
        zs.append(z)
        h = _act(model.activations[j], z)
    raise AssertionError("unreachable")


def _log_sigmoid(z: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, -z)


def loss(model: Model, params: np.ndarray, x_data: np.ndarray, y_data: np.ndarray) -> np.ndarray:
    """Mean loss (N,) of each particle over the given samples."""
    z = forward(model, params, x_data).logits
    y = np.asarray(y_data)
    if model.loss == "mse":
        return ((z - y.reshape(1, len(y), -1)) ** 2).mean(axis=(1, 2))
    labels = y.reshape(-1).astype(np.int64)
    if model.n_out == 1:
        zz = z[:, :, 0]
        return -(labels * _log_sigmoid(zz) + (1 - labels) * _log_sigmoid(-zz)).mean(axis=1)
    logp = z - np.logaddexp.reduce(z, axis=2, keepdims=True)
    return -np.take_along_axis(logp, labels[None, :, None], axis=2)[:, :, 0].mean(axis=1)


def accuracy(model: Model, params: np.ndarray, x_data: np.ndarray, y_data: np.ndarray) -> np.ndarray:
    """Fraction (N,) of samples whose predicted class (argmax; binary: logit > 0) is the label."""
    z = forward(model, params, x_data).logits
    labels = np.asarray(y_data).reshape(-1).astype(np.int64)
    pred = (z[:, :, 0] > 0).astype(np.int64) if model.n_out == 1 else np.argmax(z, axis=2)
    return (pred == labels[None, :]).mean(axis=1)


def _dloss_dlogits(model: Model, z: np.ndarray, y_data: np.ndarray) -> np.ndarray:
    n = z.shape[1]
    y = np.asarray(y_data)
    if model.loss == "mse":
        return 2.0 * (z - y.reshape(1, n, -1)) / (n * z.shape[2])
    labels = y.reshape(-1).astype(np.int64)
    if model.n_out == 1:
        return (_act("sigmoid", z) - labels[None, :, None]) / n
    soft = np.exp(z - np.logaddexp.reduce(z, axis=2, keepdims=True))
    onehot = np.eye(z.shape[2])[labels]
    return (soft - onehot[None]) / n


def backward(model: Model, params: np.ndarray, x_data: np.ndarray, y_data: np.ndarray) -> tuple[np.ndarray, list]:
    """Gradient (N, D) of :func:`loss`, and per layer dLoss/d(pre-activation) (N, n, out)."""
    params = np.atleast_2d(np.asarray(params, dtype=np.float64))
    fw = forward(model, params, x_data)
    dz = _dloss_dlogits(model, fw.logits, y_data)
    out = np.zeros_like(params)
    if model.kind == "product":
        x = np.asarray(x_data, dtype=np.float64).reshape(-1)
        s = (dz[:, :, 0] * x[None, :]).sum(axis=1)
        out[:, 0] = s * params[:, 1]
        out[:, 1] = s * params[:, 0]
        return out, []
    layers = unpack(model, params)
    by_name = {e.name: e for e in model.layout}
    deltas: list[np.ndarray] = [np.empty(0)] * len(layers)
    da = dz  # dLoss / d(pre-activation) of the top layer
    for j in range(len(layers) - 1, -1, -1):
        deltas[j] = da
        out[:, by_name[f"layer{j}.weight"].slice] = np.einsum("Nso,Nsi->Noi", da, fw.inputs[j]).reshape(len(out), -1)
        out[:, by_name[f"layer{j}.bias"].slice] = da.sum(axis=1)
        if j == 0:
            break
        dh = np.einsum("Nso,Noi->Nsi", da, layers[j].weight)  # dLoss / d(output of layer j - 1)
        below = j - 1
        dzb = dh * _act_derivative(model.activations[below], fw.z[below])
        xhat, inv_std, gamma = fw.xhat[below], fw.inv_std[below], layers[below].gamma
        if xhat is None or inv_std is None or gamma is None:
            da = dzb
            continue
        out[:, by_name[f"bn{below}.gamma"].slice] = (dzb * xhat).sum(axis=1)
        out[:, by_name[f"bn{below}.beta"].slice] = dzb.sum(axis=1)
        # Ioffe & Szegedy (2015), Algorithm 1 backward, with dxhat = dz * gamma:
        dxhat = dzb * gamma[:, None, :]
        n = dxhat.shape[1]
        dvar = (dxhat * xhat).sum(axis=1, keepdims=True) * (-0.5) * inv_std**2
        dmean = -dxhat.sum(axis=1, keepdims=True) * inv_std
        # d var / d a = 2 (a - mean) / n = 2 xhat / (n inv_std); the dmean term from var vanishes (sum xhat = 0)
        da = dxhat * inv_std + dvar * 2.0 * xhat / (n * inv_std) + dmean / n
    return out, deltas


def gradient(model: Model, params: np.ndarray, x_data: np.ndarray, y_data: np.ndarray) -> np.ndarray:
    """Gradient (N, D) of the mean loss over the given samples."""
    return backward(model, params, x_data, y_data)[0]


def batch_indices(
    n: int, t: int, seed: int, particle: int, sizes: list[int], epochs: list[int], shuffle: bool, drop_last: bool
) -> np.ndarray:
    """Sample indices of the minibatch of step ``t`` (1-based) of particle ``particle`` (host-side, slow)."""
    epoch, start, size = batch_of_step(int(t), n, np.asarray(sizes), np.asarray(epochs), bool(drop_last))
    positions = np.arange(start, start + size)
    if not shuffle:
        return positions
    return host_permutation(n, seed, particle, epoch)[positions]


def batch_gradient(
    model: Model,
    params: np.ndarray,
    x_data: np.ndarray,
    y_data: np.ndarray,
    t: int,
    seed: int,
    gids: np.ndarray,
    *,
    sizes: list[int],
    epochs: list[int],
    shuffle: bool,
    drop_last: bool,
) -> np.ndarray:
    """Gradient (N, D) on each particle's minibatch of step t (particle k has global id ``gids[k]``).

    ``epochs`` has one entry per phase (the last is ignored), as ``batch_of_step``.
    """
    params = np.atleast_2d(np.asarray(params, dtype=np.float64))
    x = np.asarray(x_data)
    y = np.asarray(y_data)
    out = np.empty_like(params)
    for k, gid in enumerate(gids):
        idx = batch_indices(len(x), t, seed, int(gid), sizes, epochs, shuffle, drop_last)
        out[k] = gradient(model, params[k : k + 1], x[idx], y[idx])[0]
    return out


class ActivationStats(NamedTuple):
    """Per-layer statistics of one forward/backward pass, each (N, L) for N particles and L affine layers.

    ``act_mean``/``act_var``: mean and variance over samples and units of layer
    l's output (after batch normalization and the activation; the logits for
    the last layer). ``grad_mean``/``grad_var``: the same of the back-propagated
    gradient dloss/d(pre-activation) of layer l (before batch normalization),
    scaled by the number of samples n, i.e. in the units of a per-sample loss.
    ``names`` the layers (``layer0`` ...).
    """

    act_mean: np.ndarray
    act_var: np.ndarray
    grad_mean: np.ndarray
    grad_var: np.ndarray
    names: tuple[str, ...]


def activation_stats(model: Model, params: np.ndarray, x_data: np.ndarray, y_data: np.ndarray) -> ActivationStats:
    """Per-layer activation and gradient statistics (initialization studies, Glorot & Bengio 2010)."""
    if model.kind == "product":
        raise ValueError("activation_stats: the product model has no layers")
    params = np.atleast_2d(np.asarray(params, dtype=np.float64))
    fw = forward(model, params, x_data)
    _, deltas = backward(model, params, x_data, y_data)
    n = fw.logits.shape[1]
    outputs = [*fw.inputs[1:], fw.logits]
    act_mean = np.stack([h.mean(axis=(1, 2)) for h in outputs], axis=1)
    act_var = np.stack([h.var(axis=(1, 2)) for h in outputs], axis=1)
    grad_mean = np.stack([(n * d).mean(axis=(1, 2)) for d in deltas], axis=1)
    grad_var = np.stack([(n * d).var(axis=(1, 2)) for d in deltas], axis=1)
    names = tuple(f"layer{j}" for j in range(model.n_layers))
    return ActivationStats(act_mean, act_var, grad_mean, grad_var, names)
