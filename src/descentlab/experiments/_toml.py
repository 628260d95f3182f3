"""A small TOML writer for run and sweep specs (tables of scalars, lists and inline tables).

The specs an experiment ran are written with it, so that ``descentlab sweep
FILE.toml -o DIR`` reruns them. ``tomllib.loads(dumps(spec)) == spec`` for
every spec made of str, bool, int, float (finite or not), lists and tables.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any


def _key(k: str) -> str:
    if k and all(c.isalnum() or c in "_-" for c in k):
        return k
    return json.dumps(k)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, Mapping):
        return "{" + ", ".join(f"{_key(str(k))} = {_value(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if hasattr(v, "item"):  # numpy scalar
        return _value(v.item())
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def dumps(spec: Mapping[str, Any]) -> str:
    """TOML text of ``spec``: top-level tables as ``[name]`` sections (nested tables inline)."""
    lines: list[str] = []
    scalars = {k: v for k, v in spec.items() if not isinstance(v, Mapping)}
    for k, v in scalars.items():
        lines.append(f"{_key(k)} = {_value(v)}")
    for k, v in spec.items():
        if not isinstance(v, Mapping):
            continue
        lines.append("")
        lines.append(f"[{_key(k)}]")
        for kk, vv in v.items():
            lines.append(f"{_key(str(kk))} = {_value(vv)}")
    return "\n".join(lines).lstrip("\n") + "\n"
