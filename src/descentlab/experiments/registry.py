"""The registry of experiments, in the order the report lists them."""

from __future__ import annotations

from .base import Experiment

_MODULES: tuple[str, ...] = (
    "critical_points",
    "convex_single_basin",
    "multiple_minima",
    "learning_rate",
    "init_distance",
    "momentum_vs_adam",
    "saddle_escape",
    "momentum_then_adam",
    "minimum_ratio",
    "symmetric_init",
    "init_scale",
    "xavier_variance",
    "batch_schedule",
    "shuffle",
    "batch_size",
    "loss_function",
    "batch_norm",
)


def experiments() -> dict[str, Experiment]:
    """Every registered experiment by name (registry order)."""
    import importlib

    out: dict[str, Experiment] = {}
    for mod in _MODULES:
        cls = importlib.import_module(f"descentlab.experiments.{mod}").EXPERIMENT
        exp = cls()
        out[exp.name] = exp
    return out


def get(name: str) -> Experiment:
    exps = experiments()
    if name not in exps:
        raise KeyError(f"NAME: no experiment {name!r} (known: {', '.join(exps)})")
    return exps[name]
