"""The run file's format: names, constants, errors, and helpers shared by writer and reader."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from ..buffers import ALIGN

FORMAT = "descentlab.run"
FORMAT_VERSION = 1
PARTIAL_SUFFIX = ".partial"
LOCK_SUFFIX = ".lock"
#: Target size (bytes) of one HDF5 chunk of a trajectory dataset.
H5_CHUNK_BYTES = 1 << 20
#: File-creation options: objects of 64 KiB and more start on an ALIGN boundary.
_ALIGNED: dict[str, int] = {"alignment_threshold": 1 << 16, "alignment_interval": ALIGN}
#: Records kept in one engine chunk by default are bounded by this (bytes).
CHUNK_RECORD_BYTES = 512 << 20
#: Default seconds between checkpoints. A checkpoint is written after a chunk once this many
#: seconds have passed since the last one (or the start), so a run shorter than this writes none:
#: killed, it restarts from step 0 and loses less than this much work.
CHECKPOINT_SECONDS = 30.0
#: Record-axis chunk length of the trajectory when nothing else constrains it.
H5_CHUNK_RECORDS = 16


class StoreError(ValueError):
    """Bad input about files (existing output, mismatched resume): exit status 2."""


def partial_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + PARTIAL_SUFFIX)


def lock_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + LOCK_SUFFIX)


def dataset(grp: h5py.Group, name: str, data: np.ndarray | None = None, *, shape: tuple[int, ...] = (),
            dtype: np.dtype | type | None = None) -> h5py.Dataset:  # fmt: skip
    """A new contiguous dataset ``grp/name``: of ``data`` (written), or of ``shape`` and ``dtype``.

    The same object ``grp.create_dataset`` makes (no timestamps, h5py's type mapping),
    made through h5py's low-level API: about a third of the CPU time, which counts
    for the ~20 datasets of every run file when a sweep writes many small ones.
    """
    arr = None
    if data is not None:
        arr = np.ascontiguousarray(data)
        shape, dtype = arr.shape, arr.dtype
    tid = h5py.h5t.py_create(np.dtype(dtype), logical=True)
    space = h5py.h5s.create_simple(tuple(shape)) if shape else h5py.h5s.create(h5py.h5s.SCALAR)
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_obj_track_times(False)
    dsid = h5py.h5d.create(grp.id, name.encode(), tid, space, dcpl=dcpl)
    if arr is not None and arr.size:
        dsid.write(h5py.h5s.ALL, h5py.h5s.ALL, arr)
    return h5py.Dataset(dsid)


def scale(grp: h5py.Group, name: str, data: np.ndarray) -> h5py.Dataset:
    """A dataset ``name`` holding ``data`` that is an HDF5 dimension scale of that name."""
    ds = dataset(grp, name, data)
    h5py.h5ds.set_scale(ds.id, name.encode())
    return ds


def attach(ds: h5py.Dataset, *scales: h5py.Dataset) -> None:
    """Attach dimension scales to the axes of ``ds`` in order, labelling each axis with the scale's name."""
    for i, sc in enumerate(scales):
        h5py.h5ds.attach_scale(ds.id, sc.id, i)
        h5py.h5ds.set_label(ds.id, i, sc.name.rsplit("/", 1)[-1].encode())
