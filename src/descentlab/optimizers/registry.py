"""Registry of optimizers: name -> :class:`Optimizer`."""

from __future__ import annotations

from . import adagrad, adam, langevin, newton, rmsprop, sgd
from .adagrad import adagrad_step
from .adam import adam_step, adamw_step
from .base import Optimizer
from .langevin import langevin_step
from .linalg import eig_rows
from .newton import newton_step, saddle_free_newton_step
from .rmsprop import rmsprop_step
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
        layout=sgd.HYPER,
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
        layout=adam.HYPER,
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
        layout=adam.HYPER,
        reference="https://pytorch.org/docs/stable/generated/torch.optim.AdamW.html",
    )
)

_SGD_REF = "https://pytorch.org/docs/stable/generated/torch.optim.SGD.html"
register(
    Optimizer(
        name="momentum",
        description="heavy-ball momentum: sgd with momentum = 0.9 by default (torch.optim.SGD)",
        hyper={"lr": 1e-3, "momentum": 0.9, "dampening": 0.0, "weight_decay": 0.0, "nesterov": False},
        state=("momentum_buffer",),
        step=sgd_step,
        layout=sgd.HYPER,
        reference=_SGD_REF,
    )
)
register(
    Optimizer(
        name="nesterov",
        description="Nesterov momentum: sgd with momentum = 0.9, nesterov = true by default (torch.optim.SGD)",
        hyper={"lr": 1e-3, "momentum": 0.9, "dampening": 0.0, "weight_decay": 0.0, "nesterov": True},
        state=("momentum_buffer",),
        step=sgd_step,
        layout=sgd.HYPER,
        reference=_SGD_REF,
    )
)
register(
    Optimizer(
        name="adagrad",
        description="Adagrad with learning-rate decay and L2 weight decay (torch.optim.Adagrad)",
        hyper={"lr": 1e-2, "lr_decay": 0.0, "weight_decay": 0.0, "initial_accumulator_value": 0.0, "eps": 1e-10},
        state=("sum",),
        step=adagrad_step,
        layout=adagrad.HYPER,
        init_fill=lambda hyper: float(hyper["initial_accumulator_value"]),
        reference="https://pytorch.org/docs/stable/generated/torch.optim.Adagrad.html",
    )
)
register(
    Optimizer(
        name="rmsprop",
        description="RMSprop, plain or centered, with momentum and L2 weight decay (torch.optim.RMSprop)",
        hyper={"lr": 1e-2, "alpha": 0.99, "eps": 1e-8, "weight_decay": 0.0, "momentum": 0.0, "centered": False},
        state=("square_avg", "momentum_buffer", "grad_avg"),
        step=rmsprop_step,
        layout=rmsprop.HYPER,
        reference="https://pytorch.org/docs/stable/generated/torch.optim.RMSprop.html",
    )
)
register(
    Optimizer(
        name="langevin",
        description="gradient descent with Gaussian gradient noise: x -= lr (g + noise_std xi), xi ~ N(0, 1)",
        hyper={"lr": 1e-3, "noise_std": 0.1},
        state=(),
        step=langevin_step,
        layout=langevin.HYPER,
        reference="https://en.wikipedia.org/wiki/Stochastic_gradient_Langevin_dynamics",
    )
)
register(
    Optimizer(
        name="newton",
        description="damped Newton: x -= lr (H + damping I)^-1 g (per-particle Jacobi eigen-solve)",
        hyper={"lr": 1.0, "damping": 0.0},
        state=(),
        step=newton_step,
        layout=newton.HYPER,
        needs_hessian=True,
        scratch_fn=eig_rows,
        reference="https://en.wikipedia.org/wiki/Newton%27s_method_in_optimization",
    )
)
register(
    Optimizer(
        name="saddle_free_newton",
        description="saddle-free Newton (Dauphin et al. 2014): x -= lr (|H| + damping I)^-1 g, |H| = V |Lambda| V^T",
        hyper={"lr": 1.0, "damping": 1e-3},
        state=(),
        step=saddle_free_newton_step,
        layout=newton.HYPER,
        needs_hessian=True,
        scratch_fn=eig_rows,
        reference="https://arxiv.org/abs/1406.2572",
    )
)


def get_optimizer(name: str) -> Optimizer:
    try:
        return OPTIMIZERS[name]
    except KeyError:
        raise KeyError(f"optimizer.name: unknown optimizer {name!r}; known: {sorted(OPTIMIZERS)}") from None
