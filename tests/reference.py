"""Slow, obviously-right NumPy reference of optimizers, schedules and the run loop.

Written from the *documented* algorithms (torch.optim's algorithm boxes, the
closed forms of torch.optim.lr_scheduler, the canonical per-particle loop in
the docstring of :mod:`descentlab.kernels.common`), not from the kernels.
Arrays are particles x dims, ``(N, D)``, in the run dtype: a float32 run is
computed in float32 (every constant is cast to the dtype before it meets an
array, as the kernels' ``real`` does). The landscape's math functions are plain
Python and are called here on NumPy arrays.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from descentlab.core.rng import host_normal
from descentlab.core.status import Status
from descentlab.engine.init import initial_positions
from descentlab.engine.spec import RunSpec, parse_spec

RUNNING, CONVERGED, DIVERGED, OUT_OF_BOUND = Status.RUNNING, Status.CONVERGED, Status.DIVERGED, Status.OUT_OF_BOUND


# --------------------------------------------------------------------------- schedules


def lr_factor(schedule: Mapping[str, Any] | None, k: int, base_lr: float, total_steps: int) -> float:
    """Multiplier of the base learning rate at 0-based global step ``k``.

    Closed forms of torch.optim.lr_scheduler (``_get_closed_form_lr``): StepLR,
    ExponentialLR, CosineAnnealingLR (held at ``eta_min`` after ``T_max``, as
    descentlab documents), times a LinearLR warm-up from ``warmup_start_factor``
    to 1 over ``warmup_steps``.
    """
    sched = dict(schedule or {})
    name = sched.get("name", "constant")
    if name == "constant":
        main = 1.0
    elif name == "step":
        main = sched.get("gamma", 0.1) ** (k // sched.get("step_size", 100))
    elif name == "exponential":
        main = sched.get("gamma", 0.99) ** k
    elif name == "cosine":
        t_max = sched.get("T_max") or total_steps
        eta_min = sched.get("eta_min", 0.0)
        kk = min(k, t_max)
        lr = eta_min + (base_lr - eta_min) * (1.0 + math.cos(math.pi * kk / t_max)) / 2.0
        main = lr / base_lr
    else:
        raise KeyError(name)
    warm_steps = sched.get("warmup_steps", 0)
    start = sched.get("warmup_start_factor", 1.0 / 3.0)
    warm = 1.0
    if warm_steps > 0:
        warm = start + (1.0 - start) * min(k, warm_steps) / warm_steps
    return warm * main


# --------------------------------------------------------------------------- optimizers


def initial_state(name: str, hyper: Mapping[str, Any], n: int, dim: int, dtype: np.dtype) -> dict[str, np.ndarray]:
    """State of a freshly constructed optimizer (torch's ``state`` per parameter)."""
    z = np.zeros((n, dim), dtype)
    if name in ("sgd", "momentum", "nesterov"):
        return {"momentum_buffer": z}
    if name in ("adam", "adamw"):
        return {"exp_avg": z, "exp_avg_sq": z.copy(), "max_exp_avg_sq": z.copy()}
    if name == "adagrad":
        return {"sum": np.full((n, dim), hyper["initial_accumulator_value"], dtype)}
    if name == "rmsprop":
        return {"square_avg": z, "momentum_buffer": z.copy(), "grad_avg": z.copy()}
    return {}


def optimizer_update(
    name: str,
    x: np.ndarray,
    g: np.ndarray,
    state: Mapping[str, np.ndarray],
    hyper: Mapping[str, Any],
    lr: float,
    t: int,
    *,
    hess: np.ndarray | None = None,
    seed: int = 0,
    ids: np.ndarray | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One documented update of particles ``x`` (N, D) with gradients ``g``.

    Returns the new positions and the new state (the inputs are not modified).
    ``t`` is the 1-based step count of this optimizer, ``hess`` (N, D, D) the
    Hessians for the Newton methods, ``ids`` the global particle ids (Langevin).
    """
    dt = x.dtype.type
    st = {k: v.copy() for k, v in state.items()}
    rate = dt(lr)
    if name in ("sgd", "momentum", "nesterov"):
        # torch.optim.SGD
        mu, damp, wd = hyper["momentum"], hyper["dampening"], hyper["weight_decay"]
        if wd != 0:
            g = g + dt(wd) * x
        if mu != 0:
            if t == 1:
                buf = g.copy()
            else:
                buf = dt(mu) * st["momentum_buffer"] + dt(1.0 - damp) * g
            st["momentum_buffer"] = buf
            g = g + dt(mu) * buf if hyper["nesterov"] else buf
        return x - rate * g, st
    if name in ("adam", "adamw"):
        # torch.optim.Adam / AdamW (single-tensor form)
        b1, b2 = hyper["betas"]
        eps, wd = hyper["eps"], hyper["weight_decay"]
        if name == "adamw":
            x = x * dt(1.0 - lr * wd)
        elif wd != 0:
            g = g + dt(wd) * x
        m = dt(b1) * st["exp_avg"] + dt(1.0 - b1) * g
        v = dt(b2) * st["exp_avg_sq"] + dt(1.0 - b2) * g * g
        st["exp_avg"], st["exp_avg_sq"] = m, v
        bc1 = 1.0 - b1**t
        bc2 = 1.0 - b2**t
        if hyper["amsgrad"]:
            st["max_exp_avg_sq"] = np.maximum(st["max_exp_avg_sq"], v)
            v = st["max_exp_avg_sq"]
        # denom = sqrt(v) / sqrt(bc2) + eps, with the division as a product by
        # the reciprocal (documented in descentlab.optimizers.adam)
        denom = np.sqrt(v) * dt(1.0 / math.sqrt(bc2)) + dt(eps)
        return x - dt(lr / bc1) * m / denom, st
    if name == "adagrad":
        # torch.optim.Adagrad
        clr = lr / (1.0 + (t - 1) * hyper["lr_decay"])
        if hyper["weight_decay"] != 0:
            g = g + dt(hyper["weight_decay"]) * x
        st["sum"] = st["sum"] + g * g
        return x - dt(clr) * g / (np.sqrt(st["sum"]) + dt(hyper["eps"])), st
    if name == "rmsprop":
        # torch.optim.RMSprop
        alpha, eps, wd, mu = hyper["alpha"], hyper["eps"], hyper["weight_decay"], hyper["momentum"]
        if wd != 0:
            g = g + dt(wd) * x
        v = dt(alpha) * st["square_avg"] + dt(1.0 - alpha) * g * g
        st["square_avg"] = v
        v_tilde = v
        if hyper["centered"]:
            ga = dt(alpha) * st["grad_avg"] + dt(1.0 - alpha) * g
            st["grad_avg"] = ga
            v_tilde = v - ga * ga
        if mu > 0:
            buf = dt(mu) * st["momentum_buffer"] + g / (np.sqrt(v_tilde) + dt(eps))
            st["momentum_buffer"] = buf
            return x - rate * buf, st
        return x - rate * g / (np.sqrt(v_tilde) + dt(eps)), st
    if name == "langevin":
        assert ids is not None
        xi = host_normal(seed, ids, t, x.shape[1]).astype(x.dtype)
        return x - rate * (g + dt(hyper["noise_std"]) * xi), st
    if name in ("newton", "saddle_free_newton"):
        assert hess is not None
        h64 = hess.astype(np.float64)
        g64 = g.astype(np.float64)
        damping = hyper["damping"]
        with np.errstate(all="ignore"):
            if name == "newton":
                eye = np.eye(x.shape[1])
                step = np.empty_like(g64)
                for i in range(len(x)):  # singular systems give Inf/NaN, as in the kernel
                    try:
                        step[i] = np.linalg.solve(h64[i] + damping * eye, g64[i])
                    except np.linalg.LinAlgError:
                        step[i] = np.nan
            else:
                finite = np.all(np.isfinite(h64), axis=(1, 2))
                step = np.full_like(g64, np.nan)
                lam, vec = np.linalg.eigh(np.where(finite[:, None, None], h64, 0.0))
                y = np.einsum("nrk,nr->nk", vec, g64) / (np.abs(lam) + damping)
                step[finite] = np.einsum("nrk,nk->nr", vec, y)[finite]
        return x - rate * step.astype(x.dtype), st
    raise KeyError(f"no reference for optimizer {name!r}")


# --------------------------------------------------------------------------- landscape math


def _call(fn: Any, x: np.ndarray, params: np.ndarray, rows: int, out_shape: tuple[int, ...]) -> np.ndarray:
    """Call a landscape math function on all particles of ``x`` (N, D) at once.

    The particle axis is passed as a trailing axis of length N behind a dummy
    column (``lo, hi = 0, 1``), so every ``x[d, i]`` is a NumPy row and the
    function's scalar arithmetic runs elementwise, in the dtype of ``x``.
    """
    n = x.shape[0]
    xt = np.ascontiguousarray(x.T)[:, None, :]
    w = np.zeros((rows, 1, n), x.dtype)
    out = np.zeros((*out_shape, 1, n), x.dtype)
    with np.errstate(all="ignore"):
        fn(xt, params, w, out, 0, 1)
    return out[..., 0, :]


def landscape_value(spec: RunSpec, x: np.ndarray, params: np.ndarray) -> np.ndarray:
    return _call(spec.landscape.value, x, params, spec.landscape.scratch_rows(spec.dim), ())


def landscape_grad(spec: RunSpec, x: np.ndarray, params: np.ndarray) -> np.ndarray:
    return _call(spec.landscape.grad, x, params, spec.landscape.scratch_rows(spec.dim), (spec.dim,)).T


def landscape_hess(spec: RunSpec, x: np.ndarray, params: np.ndarray) -> np.ndarray:
    h = _call(spec.landscape.hess, x, params, spec.landscape.scratch_rows(spec.dim), (spec.dim, spec.dim))
    return np.moveaxis(h, -1, 0)


# --------------------------------------------------------------------------- the run loop


def simulate_reference(spec_dict: Mapping[str, Any], init_x: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The canonical per-particle loop of :mod:`descentlab.kernels.common`, in NumPy.

    Returns a dict with the fields of :class:`descentlab.Result` that the
    kernels compute: init_x, final_x, final_loss, status, stop_step,
    record_steps, trajectory_x, trajectory_loss.
    """
    spec = parse_spec(spec_dict)
    dt = np.dtype(spec.dtype)
    n, dim = spec.particles, spec.dim
    ids = np.arange(n, dtype=np.int64)
    if init_x is None:
        init_x = initial_positions(spec.init, dim, ids, spec.seed, spec.landscape.init_box)
    x = np.asarray(init_x).astype(dt)
    params = spec.landscape.pack(spec.landscape_params, dim).astype(dt)
    tol2 = dt.type(float(spec.grad_tol) ** 2)
    bound = dt.type(spec.bound)
    schedule = spec.resolved["schedule"]
    base_lr = float(spec.phases[0].hyper["lr"])
    needs_h = any(ph.optimizer.needs_hessian for ph in spec.phases)

    status = np.zeros(n, np.int8)
    stop = np.full(n, -1, np.int64)
    cnt = np.zeros(n, np.int64)
    rec_steps = [0]
    rec_x = [x.copy()]
    rec_loss = [landscape_value(spec, x, params)]
    phase = -1
    state: dict[str, np.ndarray] = {}
    for k in range(spec.steps):
        j = max(q for q, ph in enumerate(spec.phases) if k >= ph.start)
        ph = spec.phases[j]
        if j != phase:  # a new phase starts with a freshly constructed optimizer
            phase = j
            state = initial_state(ph.optimizer.name, ph.hyper, n, dim, dt)
        t = k - ph.start + 1
        lr = float(ph.hyper["lr"]) * lr_factor(schedule, k, base_lr, spec.steps)

        run = status == RUNNING
        out = run & ~np.all(np.abs(x) <= bound, axis=1)
        status[out], stop[out] = OUT_OF_BOUND, k
        run &= ~out
        g = landscape_grad(spec, x, params)
        gn2 = g[:, 0] * g[:, 0]
        for d in range(1, dim):
            gn2 = gn2 + g[:, d] * g[:, d]
        cnt[run] = np.where(gn2[run] < tol2, cnt[run] + 1, 0)
        conv = run & (cnt >= spec.patience)
        status[conv], stop[conv] = CONVERGED, k
        run &= ~conv
        hess = landscape_hess(spec, x, params) if needs_h else None
        with np.errstate(all="ignore"):
            new_x, new_state = optimizer_update(
                ph.optimizer.name, x, g, state, ph.hyper, lr, t, hess=hess, seed=spec.seed, ids=ids
            )
        finite = np.all(np.isfinite(new_x), axis=1)
        div = run & ~finite
        status[div], stop[div] = DIVERGED, k + 1
        take = run & finite
        x = np.where(take[:, None], new_x, x)
        state = {key: np.where(take[:, None], new_state[key], val) for key, val in state.items()}
        if (k + 1) % spec.record_every == 0:
            rec_steps.append(k + 1)
            rec_x.append(x.copy())
            rec_loss.append(landscape_value(spec, x, params))
    out = (status == RUNNING) & ~np.all(np.abs(x) <= bound, axis=1)
    status[out], stop[out] = OUT_OF_BOUND, spec.steps
    return {
        "init_x": np.asarray(init_x).astype(dt),
        "final_x": x,
        "final_loss": landscape_value(spec, x, params),
        "status": status,
        "stop_step": stop,
        "record_steps": np.array(rec_steps),
        "trajectory_x": np.stack(rec_x, axis=1),
        "trajectory_loss": np.stack(rec_loss, axis=1),
    }
