"""Loss landscapes: analytic test functions, user formulas (see :mod:`.registry`)."""

from .base import Landscape
from .registry import LANDSCAPES, get_landscape

__all__ = ["LANDSCAPES", "Landscape", "get_landscape"]
