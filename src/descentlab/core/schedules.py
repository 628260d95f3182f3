"""Learning-rate schedules as a runtime vector (no recompilation per schedule).

``sched = [kind, a, b, warmup_steps, warmup_start_factor]``; the learning rate of
step ``k`` (0-based, global) is ``base_lr * warmup(k) * main(k)`` with the closed
forms of torch.optim.lr_scheduler:

=========== ==== ============================ =========================================
kind        code a, b                         main(k)
=========== ==== ============================ =========================================
constant    0    -                            1
step        1    step_size, gamma             gamma ** (k // step_size)      (StepLR)
exponential 2    gamma, -                     gamma ** k                     (ExponentialLR)
cosine      3    T_max, eta_min / base_lr     r + (1 - r)(1 + cos(pi k / T_max)) / 2  (CosineAnnealingLR)
=========== ==== ============================ =========================================

warmup(k) = start + (1 - start) * min(k, W) / W  for W > 0 (LinearLR), else 1.

Unlike torch's (periodic) CosineAnnealingLR, the cosine is held at ``eta_min``
after ``T_max`` (k is clamped to T_max); with the default ``T_max = run.steps``
the two agree over the whole run. A warm-up combines with the main schedule as
torch's ``ChainedScheduler([LinearLR, ...])`` does (the factors multiply).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from .._jit import math_function

SCHEDULES = {"constant": 0, "step": 1, "exponential": 2, "cosine": 3}
SCHEDULE_PARAMS: dict[str, dict[str, Any]] = {
    "constant": {},
    "step": {"step_size": 100, "gamma": 0.1},
    "exponential": {"gamma": 0.99},
    "cosine": {"T_max": None, "eta_min": 0.0},
}


@math_function
def schedule_factor(sched, k):
    """Multiplier of the base learning rate at global step ``k`` (float64)."""
    kind = sched[0]
    main = 1.0
    # math.pow (the C library's pow), not ``**`` with an integer exponent: Numba compiles that
    # as repeated multiplication, which rounds differently from the interpreter's pow (the CUDA
    # simulator, the references) and takes twice as long to compile
    if kind == 1.0:
        main = math.pow(sched[2], float(k // int(sched[1])))
    elif kind == 2.0:
        main = math.pow(sched[1], float(k))
    elif kind == 3.0:
        kk = float(k) if float(k) < sched[1] else sched[1]
        main = sched[2] + (1.0 - sched[2]) * 0.5 * (1.0 + math.cos(math.pi * kk / sched[1]))
    warm = 1.0
    if sched[3] > 0.0 and k < sched[3]:
        warm = sched[4] + (1.0 - sched[4]) * k / sched[3]
    return warm * main


def pack_schedule(spec: Mapping[str, Any] | None, base_lr: float, total_steps: int) -> np.ndarray:
    """float64[5] for :func:`schedule_factor` from a ``[schedule]`` table."""
    spec = dict(spec or {})
    name = spec.pop("name", "constant")
    warm = float(spec.pop("warmup_steps", 0))
    start = float(spec.pop("warmup_start_factor", 1.0 / 3.0))
    if name not in SCHEDULES:
        raise KeyError(f"schedule.name: unknown schedule {name!r}; known: {sorted(SCHEDULES)}")
    params = dict(SCHEDULE_PARAMS[name])
    unknown = sorted(set(spec) - set(params))
    if unknown:
        raise KeyError(f"schedule.{unknown[0]}: not a parameter of the {name!r} schedule")
    params.update(spec)
    a = b = 0.0
    if name == "step":
        a, b = float(params["step_size"]), float(params["gamma"])
        if a < 1:
            raise ValueError("schedule.step_size: must be >= 1")
    elif name == "exponential":
        a = float(params["gamma"])
    elif name == "cosine":
        a = float(params["T_max"] if params["T_max"] is not None else total_steps)
        b = float(params["eta_min"]) / base_lr if base_lr else 0.0
        if a <= 0:
            raise ValueError("schedule.T_max: must be > 0")
    return np.array([SCHEDULES[name], a, b, warm, start], dtype=np.float64)

