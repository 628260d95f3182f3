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
#: Default seconds between checkpoints (a checkpoint is also written at the last step).
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


def scale(grp: h5py.Group, name: str, data: np.ndarray) -> h5py.Dataset:
    """A dataset ``name`` holding ``data`` that is an HDF5 dimension scale of that name."""
    ds = grp.create_dataset(name, data=data)
    ds.make_scale(name)
    return ds


def attach(ds: h5py.Dataset, *scales: h5py.Dataset) -> None:
    """Attach dimension scales to the axes of ``ds`` in order, labelling each axis with the scale's name."""
    for i, sc in enumerate(scales):
        ds.dims[i].attach_scale(sc)
        ds.dims[i].label = sc.name.rsplit("/", 1)[-1]


