"""Sweep specs: a ``[sweep]`` table of axes expanded into validated run specs (points).

A sweep is a run spec with a ``[sweep]`` table::

    [sweep]
    "optimizer.lr" = [1e-3, 1e-2, 1e-1]      # an axis: a dotted key and its values
    "run.seed" = [0, 1, 2]
    [[sweep.zip]]                             # axes that move together (same lengths)
    "optimizer.name" = ["sgd", "adam"]
    "optimizer.momentum" = [0.9, "-"]         # "-": the key is left out at that value
    [[sweep.override]]                        # per-point settings where `when` matches
    when = { "optimizer.name" = "adam" }
    set = { "optimizer.betas" = [0.9, 0.99] }

Axes and zip groups combine as a product, in the order written (the first axis
varies slowest). Every point is validated with :func:`~descentlab.engine.spec.parse_spec`
before anything runs; a bad one raises :class:`SpecError` naming the point and
the field. A dotted key may index a list (``optimizer.phases.1.lr``).
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..engine.spec import RunSpec, SpecError, load_toml, parse_spec

#: An axis value that leaves its key out of that point (e.g. momentum for adam).
ABSENT = "-"
_RESERVED = ("zip", "override")


@dataclass(frozen=True)
class Point:
    """One run of a sweep: its index, axis values, input spec and parsed spec."""

    index: int
    axes: dict[str, Any]
    spec: dict[str, Any]
    run: RunSpec = field(repr=False)

    @property
    def resolved(self) -> dict[str, Any]:
        return self.run.resolved

    @property
    def hash(self) -> str:
        """Short hash (8 hex digits) of the resolved spec."""
        return spec_hash(self.run.resolved)

    @property
    def file_name(self) -> str:
        return f"point{self.index:04d}-{self.hash}.h5"

    def label(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.axes.items())


@dataclass
class SweepPlan:
    """The expanded sweep: the base spec, the axes (key -> values) and the points."""

    base: dict[str, Any]
    sweep: dict[str, Any]
    axes: dict[str, list[Any]]
    points: list[Point]

    def __len__(self) -> int:
        return len(self.points)

    def kernel_keys(self) -> dict[tuple[Any, ...], list[int]]:
        """Distinct compiled kernels (landscape x optimizer phases x target x dtype) -> point indices."""
        out: dict[tuple[Any, ...], list[int]] = {}
        for p in self.points:
            out.setdefault(kernel_key(p.run), []).append(p.index)
        return out

    def describe_kernels(self) -> list[str]:
        from ..engine.run import describe_kernels

        keys = self.kernel_keys()
        return [f"{describe_kernels(self.points[ix[0]].run)} ({self.points[ix[0]].run.dtype}, "
                f"{self.points[ix[0]].run.target}): {len(ix)} point(s)" for ix in keys.values()]  # fmt: skip

    def same_shapes(self) -> bool:
        """Whether every point has the same particles, dims and records (so results stack)."""
        shapes = {(p.run.particles, p.run.dim, p.run.n_records, p.run.record_every) for p in self.points}
        return len(shapes) == 1

    def to_json(self) -> str:
        return json.dumps({**self.base, "sweep": self.sweep}, sort_keys=True, allow_nan=True)


def spec_hash(resolved: Mapping[str, Any]) -> str:
    text = json.dumps(resolved, sort_keys=True, allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def kernel_key(rs: RunSpec) -> tuple[Any, ...]:
    """What a point compiles: the math functions of its landscape and optimizer phases, target, dtype."""
    land = rs.landscape
    return (land.value, land.grad, land.hess, land.batch_grad, land.block,
            tuple(ph.optimizer.step for ph in rs.phases), tuple(ph.optimizer.name for ph in rs.phases),
            any(ph.optimizer.needs_hessian for ph in rs.phases), rs.target, rs.dtype)  # fmt: skip


def _fail(where: str, msg: str) -> SpecError:
    return SpecError(f"{where}: {msg}")


def set_dotted(spec: dict[str, Any], key: str, value: Any) -> None:
    """Set ``a.b.c`` in nested dicts (creating tables); integer parts index lists; ``"-"`` deletes."""
    parts = key.split(".")
    node: Any = spec
    for j, part in enumerate(parts[:-1]):
        where = ".".join(parts[: j + 1])
        if isinstance(node, list):
            node = _list_item(node, part, where)
            continue
        nxt = node.get(part)
        if nxt is None:
            nxt = node[part] = {}
        elif isinstance(nxt, list):
            pass
        elif not isinstance(nxt, dict):
            raise _fail(f"sweep.{key}", f"{where} is {nxt!r}, not a table")
        node = nxt
    last = parts[-1]
    if isinstance(node, list):
        idx = _index(node, last, key)
        if value == ABSENT:
            raise _fail(f"sweep.{key}", "a list element cannot be left out")
        node[idx] = copy.deepcopy(value)
    elif value == ABSENT:
        node.pop(last, None)
    else:
        node[last] = copy.deepcopy(value)


def _index(node: list[Any], part: str, where: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise _fail(f"sweep.{where}", f"{part!r} is not an index of a list of {len(node)}")
    return int(part)


def _list_item(node: list[Any], part: str, where: str) -> Any:
    item = node[_index(node, part, where)]
    if not isinstance(item, dict):
        raise _fail(f"sweep.{where}", f"expected a table, got {item!r}")
    return item


_TABLES = ("run", "landscape", "optimizer", "schedule", "init", "stop", "data", "batch")


def _check_axis(key: Any, values: Any, where: str) -> list[Any]:
    if not isinstance(key, str) or "." not in key or key.split(".")[0] not in _TABLES:
        raise _fail(where, f"an axis is a dotted key into one of {list(_TABLES)} (e.g. \"optimizer.lr\")")
    if not isinstance(values, list) or not values:
        raise _fail(where, f"expected a non-empty list of values, got {values!r}")
    return list(values)


def _split(raw: Mapping[str, Any]) -> tuple[list[list[tuple[str, list[Any]]]], list[dict[str, Any]]]:
    """The sweep table as factors (each a list of (key, values) that move together) and overrides."""
    factors: list[list[tuple[str, list[Any]]]] = []
    overrides: list[dict[str, Any]] = []
    seen: set[str] = set()

    def add(key: str) -> None:
        if key in seen:
            raise _fail(f"sweep.{key}", "this axis is given twice")
        seen.add(key)

    for key, val in raw.items():
        if key == "zip":
            groups = [val] if isinstance(val, Mapping) else val
            if not isinstance(groups, list) or not all(isinstance(g, Mapping) and g for g in groups):
                raise _fail("sweep.zip", "expected tables of axes that move together ([[sweep.zip]])")
            for j, g in enumerate(groups):
                factor = [(k, _check_axis(k, v, f"sweep.zip.{j}.{k}")) for k, v in g.items()]
                lens = {len(v) for _, v in factor}
                if len(lens) > 1:
                    desc = ", ".join(f"{k} has {len(v)}" for k, v in factor)
                    raise _fail(f"sweep.zip.{j}", f"axes that move together need equal lengths ({desc})")
                for k, _ in factor:
                    add(k)
                factors.append(factor)
        elif key == "override":
            items = [val] if isinstance(val, Mapping) else val
            if not isinstance(items, list):
                raise _fail("sweep.override", "expected tables with `when` and `set` ([[sweep.override]])")
            for j, o in enumerate(items):
                where = f"sweep.override.{j}"
                if not isinstance(o, Mapping) or set(o) - {"when", "set"} or not isinstance(o.get("set"), Mapping):
                    raise _fail(where, "expected a table with `when` (axis = value, optional) and `set` (key = value)")
                when = o.get("when", {})
                if not isinstance(when, Mapping):
                    raise _fail(f"{where}.when", f"expected a table of axis = value, got {when!r}")
                overrides.append({"when": dict(when), "set": dict(o["set"]), "where": where})
        else:
            factors.append([(key, _check_axis(key, val, f"sweep.{key}"))])
            add(key)
    for o in overrides:
        for k in o["when"]:
            if k not in seen:
                raise _fail(f"{o['where']}.when.{k}", f"not an axis of this sweep (axes: {sorted(seen)})")
        for k in o["set"]:
            _check_axis(k, [0], f"{o['where']}.set.{k}")
    return factors, overrides


def _matches(when: Mapping[str, Any], axes: Mapping[str, Any]) -> bool:
    return all(_same(axes[k], v) for k, v in when.items())


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b) and isinstance(a, bool) == isinstance(b, bool)


def expand(spec: Mapping[str, Any] | str | Path) -> SweepPlan:
    """Expand and validate a sweep spec (dict or TOML path) into a :class:`SweepPlan`.

    A spec without a ``[sweep]`` table is a sweep of one point. Raises
    :class:`SpecError` (``sweep point 3 (optimizer.lr=-1.0): optimizer.lr: must be > 0``)
    before anything runs.
    """
    folder = None  # relative file names resolve against the spec file's folder, as for a run spec
    if isinstance(spec, str | Path):
        folder = Path(spec).expanduser().absolute().parent
        spec = load_toml(spec)
    if not isinstance(spec, Mapping):
        raise SpecError(f"spec: expected a table, got {type(spec).__name__}")
    base = {k: copy.deepcopy(v) for k, v in spec.items() if k != "sweep"}
    raw = spec.get("sweep", {})
    if not isinstance(raw, Mapping):
        raise _fail("sweep", f"expected a table of axes, got {type(raw).__name__}")
    factors, overrides = _split(raw)
    axes: dict[str, list[Any]] = {k: v for f in factors for k, v in f}
    sizes = [len(f[0][1]) for f in factors]
    points: list[Point] = []
    used = [False] * len(overrides)
    for index, combo in enumerate(itertools.product(*(range(n) for n in sizes))):
        values = {k: v[i] for f, i in zip(factors, combo, strict=True) for k, v in f}
        pspec = copy.deepcopy(base)
        label = ", ".join(f"{k}={v!r}" for k, v in values.items())
        where = f"sweep point {index}" + (f" ({label})" if label else "")
        try:
            for k, v in values.items():
                set_dotted(pspec, k, v)
            for j, o in enumerate(overrides):
                if _matches(o["when"], values):
                    used[j] = True
                    for k, v in o["set"].items():
                        set_dotted(pspec, k, v)
            rs = parse_spec(pspec, base_dir=folder)
        except SpecError as exc:
            raise SpecError(f"{where}: {exc}") from None
        points.append(Point(index, values, pspec, rs))
    for j, o in enumerate(overrides):
        if not used[j]:
            raise _fail(o["where"], f"`when` {o['when']} matches no point of the sweep")
    return SweepPlan(base=base, sweep=copy.deepcopy(dict(raw)), axes=axes, points=points)
