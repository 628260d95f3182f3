"""Run specs: the TOML/dict keys ([run], [landscape], [optimizer] ... as in the README), validated with pydantic.

``parse_spec(dict) -> RunSpec`` checks the structure (unknown keys, types,
ranges) and then the semantics against the registries (landscape and
optimizer parameters, init dimensions, memory). Every error is a
:class:`SpecError` whose message names the field, e.g.
``optimizer.lr: must be > 0 (got -1.0)``.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import ConfigDict, Field, field_validator, model_validator

from ..core.schedules import pack_schedule
from ..core.tables import SpecError, StrictTable, validate_table
from ..landscapes import get_landscape
from ..landscapes.base import Landscape
from ..optimizers import get_optimizer
from ..optimizers.base import Optimizer
from ..problems.finite_sum import MODEL_LANDSCAPES
from .init import InitTable, count_particles, load_points

#: Share of the machine's memory (or of its cgroup limit) a run may plan to use; see memory_limit().
MEMORY_FRACTION = 0.8
#: The interpreter with NumPy, Numba, h5py and the compiled kernels loaded (measured: about 230 MiB),
#: plus the compiler's working memory when a kernel is not in the on-disk cache yet (about 500 MiB).
BASE_MEMORY = (256 + 512) << 20


class RunTable(StrictTable):
    """``[run]``: how many particles, how long, what is recorded, on which target."""

    particles: int | None = Field(default=None, gt=0, description="number of particles (implied by init grid/points)")
    steps: int = Field(default=1000, gt=0, description="optimizer updates per particle")
    record_every: int | None = Field(default=None, gt=0, description="steps between records (default: steps)")
    seed: int = Field(default=0, ge=0, lt=2**64, description="key of the counter-based RNG")
    dtype: Literal["float64", "float32"] | None = Field(
        default=None, description="floating type of the kernels (default float64 on the CPU, float32 on CUDA)")
    target: Literal["cpu", "cuda"] = Field(default="cpu", description="where the kernels run")
    chunk_steps: int | None = Field(default=None, gt=0, description="steps per engine chunk (results unchanged)")
    epochs: int | None = Field(default=None, gt=0, description="models only: passes over the data instead of steps")
    record_every_epochs: int | None = Field(default=None, gt=0, description="models only: epochs between records")

    @model_validator(mode="after")
    def _dtype_of_target(self) -> RunTable:
        # a GPU's float64 throughput is a fraction of its float32 (1/2 on an H200, 1/64 on consumer
        # cards), so float32 is CUDA's default; float64 stays one key away
        if self.dtype is None:
            self.dtype = "float32" if self.target == "cuda" else "float64"
        return self


class StopTable(StrictTable):
    """``[stop]``: when a particle counts as converged or as gone."""

    grad_tol: float = Field(default=1e-6, ge=0, description="converged when the gradient norm stays below this")
    patience: int = Field(default=1, ge=1, description="... for this many steps in a row")
    bound: float = Field(default=math.inf, gt=0, description="a particle with a coordinate beyond it has left")
    model_config = ConfigDict(extra="forbid", strict=False, allow_inf_nan=True)

    @field_validator("grad_tol", "bound")
    @classmethod
    def _not_nan(cls, v: float) -> float:
        if math.isnan(v):
            raise ValueError("must be a number, not NaN")
        return v

    @field_validator("grad_tol")
    @classmethod
    def _finite_tol(cls, v: float) -> float:
        if math.isinf(v):
            raise ValueError("must be finite (inf would stop every particle at once)")
        return v


def _fail(field_name: str, msg: str) -> SpecError:
    return SpecError(f"{field_name}: {msg}")


@dataclass(frozen=True)
class Phase:
    """One optimizer phase of a run: from global step ``start`` on."""

    optimizer: Optimizer
    hyper: dict[str, Any]
    start: int


@dataclass(frozen=True)
class RunSpec:
    """A validated run: everything the engine needs, and the resolved spec dict."""

    landscape: Landscape
    landscape_params: dict[str, Any]
    dim: int
    phases: tuple[Phase, ...]
    schedule: np.ndarray
    init: dict[str, Any]
    particles: int
    steps: int
    record_every: int
    seed: int
    dtype: str
    target: str
    chunk_steps: int | None
    grad_tol: float
    patience: int
    bound: float
    resolved: dict[str, Any] = field(default_factory=dict)
    finite_sum: Any = None  # problems.finite_sum.FiniteSum of a model run

    @property
    def n_records(self) -> int:
        return self.steps // self.record_every + 1

    def memory_bytes(self, particles: int | None = None, records: int | None = None) -> int:
        """Peak bytes of a run (an upper bound): interpreter, engine state and ``records`` records held at once.

        ``records=None`` is the in-memory :func:`~descentlab.simulate`: every
        record, twice (the chunks, then their concatenation); a run streamed to
        a file holds only a few chunks' worth (:meth:`streaming_records`). Per
        particle: positions and initial positions, optimizer state, status /
        stop step / counter, two checkpoint snapshots of them (one being
        written, one being taken), final loss and gradient norm.
        """
        n = self.particles if particles is None else particles
        held = 2 * self.n_records if records is None else records
        item = 4 if self.dtype == "float32" else 8
        n_state = sum(max(1, len(p.optimizer.state)) for p in self.phases)
        d = self.dim
        engine = (2 + n_state) * d * item + 17
        snapshot = (1 + n_state) * d * item + 17
        per = engine + 2 * snapshot + 2 * item
        return BASE_MEMORY + n * per + n * held * (d + 1) * item

    def streaming_records(self, chunk_steps: int | None = None) -> int:
        """Records held at once when streaming: the chunk in the kernel, one queued, one
        being written (each as :func:`~descentlab.engine.store.chunk_plan` sizes them),
        and record 0 with the first chunk.
        """
        from .store import CHUNK_RECORD_BYTES, H5_CHUNK_RECORDS

        size = chunk_steps or self.chunk_steps
        if size is not None:
            per_chunk = size // self.record_every + 1
        else:
            per_record = max(1, self.particles * (self.dim + 1) * np.dtype(self.dtype).itemsize)
            per_chunk = max(1, min(CHUNK_RECORD_BYTES // per_record, H5_CHUNK_RECORDS))
        return min(self.n_records, 3 * per_chunk + 1)

    def file_bytes(self) -> int:
        """Bytes of the (uncompressed) run file: trajectory, metrics, initial and final
        positions, the two checkpoint slots, and a margin for metadata."""
        n, d, r = self.particles, self.dim, self.n_records
        item = np.dtype(self.dtype).itemsize
        n_state = sum(max(1, len(p.optimizer.state)) for p in self.phases)
        per_record = (d + 1) * item + (3 * item if self.finite_sum is not None else 0)
        per = d * item + (d + 2) * item + 9 + 2 * ((1 + n_state) * d * item + 17)
        data = 0
        if self.finite_sum is not None:
            ds = self.finite_sum.data
            data = sum(a.nbytes for a in (ds.x_train, ds.y_train, ds.x_test, ds.y_test))
        return n * r * per_record + n * per + data + (1 << 20)


def load_toml(path: str | Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: not valid TOML ({exc})") from None
    except RecursionError:
        raise SpecError(f"{path}: not valid TOML (nested too deeply)") from None
    except OSError as exc:
        raise SpecError(f"{path}: cannot read ({exc.strerror})") from None


def _table(spec: Mapping[str, Any], key: str) -> dict[str, Any]:
    val = spec.get(key, {})
    if val is None:
        return {}
    if not isinstance(val, Mapping):
        raise _fail(key, f"expected a table, got {type(val).__name__}")
    return dict(val)


def _resolve_hyper(opt: Optimizer, given: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """An optimizer table validated by its owner (:meth:`Optimizer.validate`), errors named in full."""
    try:
        return opt.validate(given)
    except KeyError as exc:
        bad = next(iter(sorted(set(given) - set(opt.hyper) - {"name"})), "name")
        raise _fail(f"{prefix}.{bad}", str(exc.args[0])) from None
    except ValueError as exc:
        raise SpecError(f"{prefix}.{exc}") from None


def _phases(spec: Mapping[str, Any], steps: int) -> tuple[Phase, ...]:
    table = _table(spec, "optimizer")
    if not table:
        raise _fail("optimizer", "missing table; give at least optimizer.name")
    name = table.get("name")
    if name == "switch":
        raw = table.get("phases")
        extra = sorted(set(table) - {"name", "phases"})
        if extra:
            raise _fail(f"optimizer.{extra[0]}", "unknown key; a switch takes name and phases")
        if not isinstance(raw, list) or len(raw) < 1 or not all(isinstance(p, Mapping) for p in raw):
            raise _fail("optimizer.phases", "expected a list of tables, each with a name")
        phases: list[Phase] = []
        start = 0
        for j, ph in enumerate(raw):
            ph = dict(ph)
            where = f"optimizer.phases.{j}"
            length = ph.pop("steps", None)
            if j < len(raw) - 1:
                if not isinstance(length, int) or isinstance(length, bool) or length < 1:
                    raise _fail(f"{where}.steps", f"expected an integer >= 1, got {length!r}")
            elif length is not None:
                raise _fail(f"{where}.steps", "the last phase runs to the end; give it no steps")
            pname = ph.get("name")
            if pname == "switch":
                raise _fail(f"{where}.name", "a switch cannot be nested")
            opt = _get_opt(pname, f"{where}.name")
            phases.append(Phase(opt, _resolve_hyper(opt, ph, where), start))
            start += int(length or 0)
        if start >= steps and len(phases) > 1:
            raise _fail("optimizer.phases", f"phases end at step {start} but run.steps is {steps}")
        return tuple(phases)
    opt = _get_opt(name, "optimizer.name")
    return (Phase(opt, _resolve_hyper(opt, table, "optimizer"), 0),)


def _get_opt(name: Any, where: str) -> Optimizer:
    if not isinstance(name, str):
        raise _fail(where, f"expected an optimizer name, got {name!r}")
    try:
        return get_optimizer(name)
    except KeyError as exc:
        raise _fail(where, str(exc.args[0]).split(": ", 1)[-1]) from None


def _landscape(spec: Mapping[str, Any]) -> tuple[Landscape, dict[str, Any], int]:
    """The landscape a table names (registry or formula), its table validated by it (:meth:`Landscape.validate`)."""
    table = _table(spec, "landscape")
    dim = table.pop("dim", None)
    if "formula" in table:
        from ..landscapes.formula import formula_landscape

        extra = sorted(set(table) - {"formula", "name"})
        if extra:
            raise _fail(f"landscape.{extra[0]}", "unknown key; a formula landscape takes formula (and dim)")
        try:
            land = formula_landscape(table["formula"])
        except ValueError as exc:
            raise _fail("landscape.formula", str(exc)) from None
        table = {}
    else:
        name = table.pop("name", None)
        if not isinstance(name, str):
            raise _fail("landscape.name", f"expected a landscape name or a formula, got {name!r}")
        try:
            land = get_landscape(name)
        except KeyError as exc:
            raise _fail("landscape.name", str(exc.args[0]).split(": ", 1)[-1]) from None
    try:
        params, d = land.validate(table, dim)
    except KeyError as exc:
        bad = sorted(set(table) - set(land.params))[0]
        raise _fail(f"landscape.{bad}", str(exc.args[0])) from None
    except ValueError as exc:
        raise SpecError(f"landscape.{exc}") from None
    return land, params, d


def _check_init(init: dict[str, Any], dim: int, default_box: tuple[float, float] = (-math.inf, math.inf)) -> None:
    for key in ("low", "high", "mean", "std", "resolution"):
        val = init.get(key)
        if isinstance(val, list) and len(val) != dim:
            raise _fail(f"init.{key}", f"expected a number or {dim} numbers (one per dimension), got {len(val)}")
    if init["scheme"] in ("uniform", "grid"):
        if init.get("low") is not None or init.get("high") is not None:
            lo_v, hi_v = init.get("low", default_box[0]), init.get("high", default_box[1])
            low = np.broadcast_to(np.asarray(lo_v, dtype=float), (dim,))
            high = np.broadcast_to(np.asarray(hi_v, dtype=float), (dim,))
            if np.any(low >= high):
                raise _fail("init.low", f"must be below init.high in every dimension (low={lo_v}, high={hi_v}; "
                                        f"the landscape's default box is {list(default_box)})")  # fmt: skip
    if init.get("std") is not None and np.any(np.asarray(init["std"], dtype=float) < 0):
        raise _fail("init.std", "must be >= 0")
    if init["scheme"] == "grid" and init.get("resolution") is not None:
        if np.any(np.asarray(init["resolution"]) < 1):
            raise _fail("init.resolution", "must be >= 1")
    if init["scheme"] == "constant" and init.get("value") is None:
        raise _fail("init.value", "the constant scheme needs a value")
    if init["scheme"] == "points":
        if (init.get("points") is None) == (init.get("file") is None):
            raise _fail("init.points", "give exactly one of points or file")
        try:
            pts = load_points(init)
        except (OSError, ValueError) as exc:
            raise _fail("init.file", f"cannot load points ({exc})") from None
        if pts.ndim != 2 or pts.shape[1] != dim:
            raise _fail("init.points", f"expected an array (N, {dim}), got shape {pts.shape}")
        if not np.all(np.isfinite(pts)):
            raise _fail("init.points", "contains NaN or Inf")


def _file_sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _pin_init_file(init: dict[str, Any], base: Path) -> None:
    """Resolve ``init.file`` against ``base`` (the spec file's folder) and record its SHA-256.

    A spec that already carries ``init.sha256`` (e.g. the resolved spec of a run
    file) is refused when the file has changed since.
    """
    name = init.get("file")
    if name is None:
        return
    path = Path(name).expanduser()
    path = (path if path.is_absolute() else base / path).resolve()
    init["file"] = str(path)
    try:
        digest = _file_sha256(path)
    except OSError as exc:
        raise _fail("init.file", f"cannot load points from {name!r} ({exc.strerror or exc})") from None
    given = init.get("sha256")
    if given is not None and given != digest:
        raise _fail("init.sha256", f"{str(path)!r} has changed (its sha256 is {digest[:16]}..., the spec says "
                                   f"{str(given)[:16]}...)")  # fmt: skip
    init["sha256"] = digest


def _check_init_range(init: dict[str, Any], dim: int, box: tuple[float, float], dtype: str) -> None:
    """Refuse initial positions that would not be finite numbers of ``run.dtype``."""
    big = float(np.finfo(dtype).max)
    scheme = init["scheme"]

    def arr(key: str, default: Any) -> np.ndarray:
        return np.broadcast_to(np.asarray(init.get(key, default), dtype=float), (dim,))

    with np.errstate(over="ignore", invalid="ignore"):
        if scheme in ("uniform", "grid"):
            low, high = arr("low", box[0]), arr("high", box[1])
            for key, v in (("low", low), ("high", high)):
                if not np.all(np.abs(v) <= big):
                    raise _fail(f"init.{key}", f"must be a finite {dtype} in every dimension (got {init.get(key)})")
            if not np.all(np.abs(high - low) <= big):
                raise _fail("init.high", f"high - low overflows {dtype} (low={init.get('low')}, "
                                         f"high={init.get('high')}); the positions would be infinite")  # fmt: skip
        elif scheme == "normal":
            mean, std = arr("mean", 0.0), arr("std", 1.0)
            if not np.all(np.abs(mean) + 10 * std <= big):  # |z| < 10 for every draw
                raise _fail("init.std", f"mean +- 10 std overflows {dtype} (mean={init.get('mean')}, "
                                        f"std={init.get('std')}); the positions would be infinite")  # fmt: skip
        elif scheme == "constant" and not abs(float(init.get("value", 0.0))) <= big:
            raise _fail("init.value", f"must be a finite {dtype} (got {init.get('value')})")
        elif scheme == "points":
            pts = load_points(init)
            if not np.all(np.abs(pts) <= big):
                raise _fail("init.points", f"values beyond the range of {dtype} (largest {np.max(np.abs(pts)):.3g})")


def parse_spec(spec: Mapping[str, Any] | str | Path, *, memory_check: bool = True,
               base_dir: str | Path | None = None) -> RunSpec:  # fmt: skip
    """Validate a spec (dict or TOML path) into a :class:`RunSpec`; raises :class:`SpecError`.

    Relative file names (``init.file``, ``data.file``) are resolved against the
    spec file's folder (the current folder for a dict); the resolved spec holds
    the absolute paths and the files' SHA-256 (``init.sha256``, ``data.sha256``).
    ``memory_check=False`` skips :func:`check_memory` (e.g. to analyse a finished run).
    ``base_dir``: the folder relative file names of a dict resolve against (a sweep's spec file's).
    """
    base = Path.cwd() if base_dir is None else Path(base_dir).expanduser().absolute()
    if isinstance(spec, str | Path):
        base = Path(spec).expanduser().absolute().parent
        spec = load_toml(spec)
    if not isinstance(spec, Mapping):
        raise SpecError(f"spec: expected a table, got {type(spec).__name__}")
    known = {"run", "landscape", "optimizer", "schedule", "init", "stop", "data", "batch"}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise _fail(unknown[0], f"unknown table; a run spec has {sorted(known)}")
    run_raw = _table(spec, "run")
    run: RunTable = validate_table(RunTable, run_raw, "run")
    stop: StopTable = validate_table(StopTable, _table(spec, "stop"), "stop")
    fs, land_resolved = None, None
    if _table(spec, "landscape").get("name") in MODEL_LANDSCAPES:
        fs, land, land_resolved = _finite_sum(spec, base)
        params, dim = {}, land.dim
        assert dim is not None
        run = _epochs(run, run_raw, fs)
        init = _model_init(spec, dim, base)
        if init["scheme"] == "points":
            _check_init_range(init, dim, (-math.inf, math.inf), run.dtype)
    else:
        for key in ("data", "batch"):
            if key in spec:
                raise _fail(key, f"only models trained on data ({sorted(MODEL_LANDSCAPES)}) take a [{key}] table")
        for key in ("epochs", "record_every_epochs"):
            if key in run_raw:
                raise _fail(f"run.{key}", "epochs count passes over a data set; this landscape has none (use steps)")
        init_t: InitTable = validate_table(InitTable, _table(spec, "init"), "init")
        land, params, dim = _landscape(spec)
        init = init_t.model_dump(exclude_none=True)
        init.setdefault("scheme", "uniform")
        _pin_init_file(init, base)
        _check_init(init, dim, land.init_box)
        _check_init_range(init, dim, land.init_box, run.dtype)
    phases = _phases(spec, run.steps)
    if fs is not None and any(ph.optimizer.needs_hessian for ph in phases):
        raise _fail("optimizer.name", "models have no Hessian in the kernel; use a first-order optimizer")
    implied = count_particles(init, dim)
    if implied is not None:
        if run.particles is not None and run.particles != implied:
            raise _fail("run.particles", f"init.{init['scheme']} defines {implied} particles, not {run.particles}")
        particles = implied
    elif run.particles is None:
        raise _fail("run.particles", "missing; give the number of particles")
    else:
        particles = run.particles
    record_every = run.steps if run.record_every is None else run.record_every
    if record_every > run.steps:
        raise _fail("run.record_every", f"must be <= run.steps ({run.steps}), got {record_every}")
    try:
        sched = pack_schedule(_table(spec, "schedule"), phases[0].hyper["lr"], run.steps)
    except (KeyError, ValueError, TypeError) as exc:
        msg = str(exc.args[0]) if exc.args else str(exc)
        field_name, _, text = msg.partition(": ")
        raise SpecError(f"{field_name}: {text}" if text else f"schedule: {msg}") from None
    resolved = {
        # steps-based: run.epochs / record_every_epochs are resolved into steps / record_every
        "run": {**run.model_dump(exclude={"epochs", "record_every_epochs"}), "particles": particles,
                "record_every": record_every},
        "landscape": land_resolved or {"name": land.name, "dim": dim, **params, **land.spec_entry},
        "optimizer": _resolved_optimizer(phases),
        "schedule": dict(_table(spec, "schedule")) or {"name": "constant"},
        "init": init,
        "stop": stop.model_dump(),
    }
    if fs is not None:
        resolved["data"] = fs.data.description["config"]
        # in the input form, so that a run file's spec parses again (analysis, resume)
        if len(fs.sizes) == 1:
            sizes: dict[str, Any] = {"size": fs.sizes[0]}
        else:
            phases_b = [{"size": b, "epochs": e} for b, e in zip(fs.sizes[:-1], fs.epochs, strict=True)]
            sizes = {"schedule": [*phases_b, {"size": fs.sizes[-1]}]}
        resolved["batch"] = {**sizes, "shuffle": fs.shuffle, "drop_last": fs.drop_last}
    rs = RunSpec(
        landscape=land, landscape_params=params, dim=dim, phases=phases, schedule=sched, init=init,
        particles=particles, steps=run.steps, record_every=record_every, seed=run.seed, dtype=run.dtype,
        target=run.target, chunk_steps=run.chunk_steps, grad_tol=stop.grad_tol, patience=stop.patience,
        bound=stop.bound, resolved=resolved, finite_sum=fs,
    )  # fmt: skip
    if memory_check:
        check_memory(rs, rs.streaming_records())
    return rs


def _finite_sum(spec: Mapping[str, Any], base: Path) -> tuple[Any, Landscape, dict[str, Any]]:
    from ..problems.finite_sum import parse_finite_sum

    data = spec.get("data")
    if data is not None and not isinstance(data, Mapping):
        raise _fail("data", f"expected a table, got {type(data).__name__}")
    if data is not None and isinstance(data.get("file"), str):  # relative to the spec file's folder
        path = Path(data["file"]).expanduser()
        data = {**data, "file": str(path if path.is_absolute() else base / path)}
    try:
        return parse_finite_sum(_table(spec, "landscape"), data, _table(spec, "batch"))
    except SpecError:
        raise
    except ValueError as exc:
        msg = str(exc)
        raise SpecError(msg if ": " in msg else f"data: {msg}") from None


def _epochs(run: RunTable, raw: Mapping[str, Any], fs: Any) -> RunTable:
    """Steps and record interval of a model run from ``run.epochs`` / ``run.record_every_epochs``."""
    upd: dict[str, Any] = {}
    if run.epochs is not None:
        if "steps" in raw:
            raise _fail("run.epochs", "give either run.steps (updates) or run.epochs, not both")
        upd["steps"] = fs.steps_for_epochs(run.epochs)
        if upd["steps"] < 1:
            raise _fail("run.epochs", "these epochs hold no update (drop_last with a batch larger than the data?)")
    if run.record_every_epochs is not None:
        if "record_every" in raw:
            raise _fail("run.record_every_epochs", "give either run.record_every or run.record_every_epochs")
        if len(fs.sizes) > 1:
            raise _fail("run.record_every_epochs", "epochs differ in length under a batch-size schedule; "
                                                   "use run.record_every (updates)")  # fmt: skip
        upd["record_every"] = run.record_every_epochs * fs.steps_for_epochs(1)
    return run.model_copy(update=upd) if upd else run


def _model_init(spec: Mapping[str, Any], dim: int, base: Path) -> dict[str, Any]:
    from ..problems.finite_sum import parse_init

    table = _table(spec, "init")
    try:
        init = parse_init(table)
    except ValueError as exc:
        msg = str(exc)
        raise SpecError(msg if msg.startswith("init") else f"init: {msg}") from None
    if init["scheme"] == "points":
        _pin_init_file(init, base)
        _check_init({**init}, dim)
    return init


def human_bytes(n: float) -> str:
    """``1.50 GiB``, ``12.3 MiB``: a size for a message."""
    return f"{n / 2**30:.2f} GiB" if abs(n) >= 2**30 else f"{n / 2**20:.1f} MiB"


def _machine_memory() -> tuple[int, int | None]:
    """(total, available) bytes of memory of this machine, the total capped by a cgroup limit."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    available = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return total, available


def memory_limit() -> tuple[int, str]:
    """(bytes a run may plan to use, where that figure comes from).

    ``DESCENTLAB_MEMORY_LIMIT`` (bytes) if set; else :data:`MEMORY_FRACTION` of
    the machine's memory (its cgroup limit if lower), at most what is available now.
    """
    env = os.environ.get("DESCENTLAB_MEMORY_LIMIT")
    if env:
        try:
            return int(float(env)), "DESCENTLAB_MEMORY_LIMIT"
        except ValueError:
            raise _fail("DESCENTLAB_MEMORY_LIMIT", f"expected a number of bytes, got {env!r}") from None
    total, available = _machine_memory()
    limit = int(MEMORY_FRACTION * total)
    if available is not None and available < limit:
        return available, f"available now, of {total / 2**30:.1f} GiB"
    return limit, f"{MEMORY_FRACTION:.0%} of {total / 2**30:.1f} GiB"


def check_memory(rs: RunSpec, records: int | None = None) -> None:
    """Refuse a run whose peak memory (:meth:`RunSpec.memory_bytes`) exceeds :func:`memory_limit`."""
    need = rs.memory_bytes(records=records)
    limit, source = memory_limit()
    if need > limit:
        hint = "stream it to a file with `descentlab run`, " if records is None else ""
        raise _fail(
            "run.particles",
            f"the run needs about {human_bytes(need)} of memory, more than this machine allows "
            f"({human_bytes(limit)}, {source}); {hint}use fewer particles or a larger run.record_every "
            "(or override: --no-resource-check, DESCENTLAB_MEMORY_LIMIT=bytes)",
        )


def _resolved_optimizer(phases: tuple[Phase, ...]) -> dict[str, Any]:
    def one(p: Phase) -> dict[str, Any]:
        return {"name": p.optimizer.name, **{k: list(v) if isinstance(v, tuple) else v for k, v in p.hyper.items()}}

    if len(phases) == 1:
        return one(phases[0])
    out = []
    for j, p in enumerate(phases):
        d = one(p)
        if j + 1 < len(phases):
            d["steps"] = phases[j + 1].start - p.start
        out.append(d)
    return {"name": "switch", "phases": out}
