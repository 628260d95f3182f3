"""Sweeps (grids of runs) and sharded runs, on this machine or a Dask cluster (issue 10).

``descentlab.sweep(spec)`` expands a spec's ``[sweep]`` table into points, runs
them and returns an ``xarray.Dataset``; :func:`run_sweep` writes run files and
the index ``DIR/sweep.h5``; :func:`run_sharded` splits one run into particle
ranges with an index run file over them.
"""

from .api import open_sweep, run_sharded, run_sweep, shard_ranges, sweep
from .spec import Point, SweepPlan, expand

__all__ = ["Point", "SweepPlan", "expand", "open_sweep", "run_sharded", "run_sweep", "shard_ranges", "sweep"]
