"""Learning-rate schedules: the packed runtime vector against torch's closed forms."""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np
import pytest

from descentlab.core.schedules import pack_schedule, schedule_factor

BASE_LR = 0.1
TOTAL = 300


def closed_form(cfg: dict[str, Any], k: int) -> float:
    """lr(k) / base_lr from torch.optim.lr_scheduler's documented closed forms."""
    name = cfg.get("name", "constant")
    if name == "step":  # StepLR: lr = base * gamma ** floor(k / step_size)
        main = cfg.get("gamma", 0.1) ** math.floor(k / cfg.get("step_size", 100))
    elif name == "exponential":  # ExponentialLR: lr = base * gamma ** k
        main = cfg.get("gamma", 0.99) ** k
    elif name == "cosine":  # CosineAnnealingLR, held at eta_min after T_max
        t_max = cfg.get("T_max") or TOTAL
        eta_min = cfg.get("eta_min", 0.0)
        lr = eta_min + (BASE_LR - eta_min) * (1 + math.cos(math.pi * min(k, t_max) / t_max)) / 2
        main = lr / BASE_LR
    else:
        main = 1.0
    w = cfg.get("warmup_steps", 0)
    s = cfg.get("warmup_start_factor", 1 / 3)
    # LinearLR(start_factor=s, end_factor=1, total_iters=w)
    warm = s + (1 - s) * min(k, w) / w if w else 1.0
    return warm * main


CONFIGS = [
    {"name": "constant"},
    {"name": "constant", "warmup_steps": 20},
    {"name": "step"},
    {"name": "step", "step_size": 7, "gamma": 0.5},
    {"name": "exponential"},
    {"name": "exponential", "gamma": 0.95, "warmup_steps": 10, "warmup_start_factor": 0.01},
    {"name": "cosine"},
    {"name": "cosine", "T_max": 50, "eta_min": 1e-3},
    {"name": "cosine", "T_max": 120, "eta_min": 0.01, "warmup_steps": 15, "warmup_start_factor": 0.2},
]


@numba.njit(cache=False)
def _compiled_factor(sched, k):  # type: ignore[no-untyped-def]
    return schedule_factor(sched, k)


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: "-".join(f"{v}" for v in c.values()))
def test_schedule_factor_matches_closed_form(cfg: dict[str, Any]) -> None:
    sched = pack_schedule(cfg, BASE_LR, TOTAL)
    got = np.array([schedule_factor(sched, k) for k in range(TOTAL + 50)])
    want = np.array([closed_form(cfg, k) for k in range(TOTAL + 50)])
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-300)
    assert got[0] == pytest.approx(cfg.get("warmup_start_factor", 1 / 3) if cfg.get("warmup_steps") else 1.0)


@pytest.mark.parametrize("cfg", [CONFIGS[3], CONFIGS[5], CONFIGS[8]], ids=["step", "exp-warm", "cos-warm"])
def test_compiled_schedule_factor_equals_interpreted(cfg: dict[str, Any]) -> None:
    sched = pack_schedule(cfg, BASE_LR, TOTAL)
    for k in range(0, TOTAL + 50, 7):
        assert _compiled_factor(sched, k) == pytest.approx(schedule_factor(sched, k), rel=1e-15)


def test_pack_schedule_errors() -> None:
    with pytest.raises(KeyError, match="unknown schedule"):
        pack_schedule({"name": "cyclic"}, BASE_LR, TOTAL)
    with pytest.raises(KeyError, match=r"schedule\.gamma"):
        pack_schedule({"name": "cosine", "gamma": 0.5}, BASE_LR, TOTAL)
    with pytest.raises(ValueError, match="step_size"):
        pack_schedule({"name": "step", "step_size": 0}, BASE_LR, TOTAL)
    with pytest.raises(ValueError, match="T_max"):
        pack_schedule({"name": "cosine", "T_max": 0}, BASE_LR, TOTAL)


def test_default_cosine_spans_the_run() -> None:
    sched = pack_schedule({"name": "cosine"}, BASE_LR, TOTAL)
    assert schedule_factor(sched, 0) == 1.0
    assert schedule_factor(sched, TOTAL // 2) == pytest.approx(0.5, rel=1e-12)
    assert schedule_factor(sched, TOTAL) == pytest.approx(0.0, abs=1e-15)


def _torch_lrs(make, steps: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    torch = pytest.importorskip("torch")
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=BASE_LR)
    sched = make(torch.optim.lr_scheduler, opt)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return np.array(out)


TORCH_CASES = [
    ({"name": "step", "step_size": 7, "gamma": 0.5}, lambda s, o: s.StepLR(o, step_size=7, gamma=0.5)),
    ({"name": "exponential", "gamma": 0.97}, lambda s, o: s.ExponentialLR(o, gamma=0.97)),
    ({"name": "cosine", "T_max": 80, "eta_min": 1e-3}, lambda s, o: s.CosineAnnealingLR(o, T_max=80, eta_min=1e-3)),
    (
        {"name": "constant", "warmup_steps": 25, "warmup_start_factor": 0.1},
        lambda s, o: s.LinearLR(o, start_factor=0.1, total_iters=25),
    ),
    (
        {"name": "exponential", "gamma": 0.98, "warmup_steps": 10, "warmup_start_factor": 0.25},
        lambda s, o: s.ChainedScheduler(
            [s.LinearLR(o, start_factor=0.25, total_iters=10), s.ExponentialLR(o, gamma=0.98)]
        ),
    ),
]


@pytest.mark.parametrize(("cfg", "make"), TORCH_CASES, ids=["StepLR", "ExponentialLR", "Cosine", "LinearLR", "Chained"])
def test_schedule_matches_torch_lr_scheduler(cfg: dict[str, Any], make: Any) -> None:
    steps = 81 if cfg["name"] == "cosine" else 150  # torch's cosine is periodic after T_max; ours holds eta_min
    want = _torch_lrs(make, steps)
    sched = pack_schedule(cfg, BASE_LR, TOTAL)
    got = np.array([BASE_LR * schedule_factor(sched, k) for k in range(steps)])
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-15)
