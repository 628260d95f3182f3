"""Spec tables: the error that names a field, and validation of a table by its owner's pydantic model.

Each table of a run spec is validated by the module that owns it (``[run]``, ``[stop]`` and
``[init]`` by the engine, ``[landscape]``/``[data]``/``[batch]`` of a model by
:mod:`descentlab.problems.finite_sum`, ``[optimizer]`` by :meth:`descentlab.optimizers.base.Optimizer.validate`);
:func:`validate_table` turns a pydantic error into a :class:`SpecError` whose message names the
field, e.g. ``run.steps: Input should be greater than 0 (got 0)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError


class SpecError(ValueError):
    """Bad input: the message names the field and what was expected."""


class StrictTable(BaseModel):
    """Base of the spec tables' models: unknown keys refused, no type coercion, no NaN/inf."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


_UNION_TAGS = {"float", "int", "str", "bool"}


def _loc(err: dict[str, Any]) -> str:
    """Dotted field path of a pydantic error, without union-member tags (``float``, ``list[float]``)."""
    parts = [p for p in err["loc"] if not (isinstance(p, str) and (p in _UNION_TAGS or "[" in p))]
    return ".".join(str(p) for p in parts)


def validate_table(cls: type[BaseModel], data: Mapping[str, Any], prefix: str) -> Any:
    """``data`` validated by the pydantic model ``cls``; :class:`SpecError` naming ``prefix.field`` otherwise."""
    try:
        return cls.model_validate(dict(data))
    except ValidationError as exc:
        errs = exc.errors()
        # of a union's alternatives, report the one that got furthest (e.g. an element of a list)
        err = max(errs, key=lambda e: (e["loc"][:1] == errs[0]["loc"][:1], len(e["loc"])))
        where = f"{prefix}.{_loc(err)}" if err["loc"] else prefix
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = f"unknown key; {prefix} takes {sorted(cls.model_fields)}"
        elif "input" in err and not isinstance(err["input"], dict):
            msg = f"{msg} (got {err['input']!r})"
        raise SpecError(f"{where}: {msg}") from None


def check_number(key: str, value: Any) -> float:
    """``value`` as a finite float; ``ValueError("key: ...")`` for a non-number (booleans included) or inf/NaN."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key}: expected a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{key}: must be finite (got {value!r})")
    return float(value)
