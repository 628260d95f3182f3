"""The HDF5 run file (moved: the module is being split into writer and reader)."""

from .writer import *  # noqa: F403
