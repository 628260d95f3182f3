"""Optimizers with torch.optim's update rules, schedules and the switch (see :mod:`.registry`)."""

from .base import Optimizer
from .registry import OPTIMIZERS, get_optimizer

__all__ = ["OPTIMIZERS", "Optimizer", "get_optimizer"]
