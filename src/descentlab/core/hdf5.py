"""Safety checks on HDF5 files read as inputs (run files, data files)."""

from __future__ import annotations

import json
from pathlib import Path

import h5py


def shard_sources(f: h5py.File) -> set[str]:
    """The shard files a sharded run's index declares (attribute ``shards``): relative paths
    inside the index's folder only (no absolute path, no ``..``); empty for other files."""
    try:
        names = json.loads(f.attrs.get("shards", "[]"))
    except (TypeError, ValueError):
        return set()
    ok = set()
    for name in names if isinstance(names, list) else []:
        p = Path(str(name))
        if not p.is_absolute() and ".." not in p.parts:
            ok.add(str(name))
    return ok


def foreign_storage(f: h5py.File, allowed_sources: set[str] | frozenset[str] = frozenset()) -> str | None:
    """What in an HDF5 file reads data from outside it (external links, external storage,
    virtual datasets), or None. Such files are refused as inputs: reading them would
    copy whatever other local file they point at. ``allowed_sources``: files a virtual
    dataset may read (a sharded run's index reads its own shards)."""
    stack: list[tuple[str, h5py.Group]] = [("", f)]
    while stack:
        prefix, grp = stack.pop()
        for name in grp:
            where = f"{prefix}/{name}"
            link = grp.get(name, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                return f"{where} is an external link to {link.filename}"
            if isinstance(link, h5py.SoftLink):
                continue  # points inside the file; its target is visited as itself
            obj = grp.get(name)
            if isinstance(obj, h5py.Dataset):
                if obj.external:
                    return f"{where} keeps its data in external files ({obj.external[0][0]!r})"
                if obj.is_virtual and not all(v.file_name in allowed_sources for v in obj.virtual_sources()):
                    return f"{where} is a virtual dataset (its data lives in other files)"
            elif isinstance(obj, h5py.Group):
                stack.append((where, obj))
    return None
