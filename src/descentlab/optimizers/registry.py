"""Registry of optimizers: name -> :class:`Optimizer`."""

from __future__ import annotations

from .adam import adam_step, adamw_step
from .base import Optimizer
from .sgd import sgd_step

OPTIMIZERS: dict[str, Optimizer] = {}


def register(opt: Optimizer) -> Optimizer:
    if opt.name in OPTIMIZERS:
        raise ValueError(f"optimizer {opt.name!r} registered twice")
    OPTIMIZERS[opt.name] = opt
    return opt


_ADAM_REF = "https://pytorch.org/docs/stable/generated/torch.optim.Adam.html"
register(
    Optimizer(
        name="sgd",
        description="stochastic gradient descent with momentum, dampening, Nesterov (torch.optim.SGD)",
        hyper={"lr": 1e-3, "momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0, "nesterov": False},
        state=("momentum_buffer",),
        step=sgd_step,
        reference="https://pytorch.org/docs/stable/generated/torch.optim.SGD.html",
    )
)
register(
    Optimizer(
        name="adam",
        description="Adam / AMSGrad with L2 weight decay (torch.optim.Adam)",
        hyper={"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0, "amsgrad": False},
        state=("exp_avg", "exp_avg_sq", "max_exp_avg_sq"),
        step=adam_step,
        reference=_ADAM_REF,
    )
)
register(
    Optimizer(
        name="adamw",
        description="Adam with decoupled weight decay (torch.optim.AdamW)",
        hyper={"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-2, "amsgrad": False},
        state=("exp_avg", "exp_avg_sq", "max_exp_avg_sq"),
        step=adamw_step,
        reference="https://pytorch.org/docs/stable/generated/torch.optim.AdamW.html",
    )
)


def get_optimizer(name: str) -> Optimizer:
    try:
        return OPTIMIZERS[name]
    except KeyError:
        raise KeyError(f"optimizer.name: unknown optimizer {name!r}; known: {sorted(OPTIMIZERS)}") from None
