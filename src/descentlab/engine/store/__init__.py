"""The HDF5 run file: its format (:mod:`.format`), the writer (:mod:`.writer`) and the reader (:mod:`.reader`).

Layout (the run-file format; N particles, R records, D dimensions)::

    /                 attrs: format, format_version, spec (JSON), complete, versions,
                      target, dtype, seed, rng, created, finished, steps_done
    /init/x           (N, D)     initial positions
    /trajectory/step  (R,)       step of each record
    /trajectory/x     (N, R, D)  recorded positions (chunked, record axis appendable)
    /trajectory/loss  (N, R)     loss at each record
    /final/x, loss, grad_norm, status (int8), stop_step (int64)
    /checkpoint/      attrs step, records, slot; slots 0 and 1 each hold the full
                      engine state in its native layout: x (D, N), state (S, D, N),
                      status, stop_step, count; a complete run drops both slots
                      (attr dropped, slot -1) and the file shrinks by their size

Each group also holds its dimension scales (``particle``, ``record``, ``dim``),
so ``xarray.open_dataset(path, group="trajectory", engine="h5netcdf")`` shows
named dims.

Writing: the file is built as ``OUT.partial`` and moved into place with
:func:`os.replace` once complete (root attr ``complete=True``). The engine runs
the (nogil) kernel in the main thread while a writer thread drains a bounded
queue (files under 64 MiB are written by the main thread between chunks): records
of a chunk, then - every ``checkpoint_every`` seconds - a checkpoint into the slot
*not* in use, a flush, and only then the checkpoint pointer (``/checkpoint`` attrs)
and a second flush. A run killed at any moment therefore leaves a partial file whose current
checkpoint is intact and whose records up to that checkpoint are on disk;
:func:`write_run` with ``resume=True`` continues from it, bit for bit.

Reading (:func:`open_run`) needs only h5py and NumPy: nothing is compiled.
"""

from ...core.hdf5 import foreign_storage, shard_sources
from ...core.status import STATUS_CODES
from .format import (
    CHECKPOINT_SECONDS,
    CHUNK_RECORD_BYTES,
    FORMAT,
    FORMAT_VERSION,
    H5_CHUNK_BYTES,
    H5_CHUNK_RECORDS,
    LOCK_SUFFIX,
    PARTIAL_SUFFIX,
    StoreError,
    attach,
    lock_path,
    partial_path,
    scale,
)
from .reader import RunFile, open_run
from .writer import DIRECT_MIN_BYTES, OutputLock, chunk_plan, disk_full, write_run

__all__ = [
    "CHECKPOINT_SECONDS", "CHUNK_RECORD_BYTES", "DIRECT_MIN_BYTES", "FORMAT", "FORMAT_VERSION", "H5_CHUNK_BYTES",
    "H5_CHUNK_RECORDS", "LOCK_SUFFIX", "PARTIAL_SUFFIX", "STATUS_CODES", "OutputLock", "RunFile", "StoreError",
    "attach", "chunk_plan", "disk_full", "foreign_storage", "lock_path", "open_run", "partial_path", "scale",
    "shard_sources", "write_run",
]  # fmt: skip
