"""descentlab: many particles through loss landscapes under every common optimizer."""

from ._version import __version__
from .engine.run import Result, simulate
from .engine.store import open_run
from .sweeps import open_sweep, sweep

__all__ = ["Result", "__version__", "open_run", "open_sweep", "simulate", "sweep"]
