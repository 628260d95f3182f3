"""The engine: a chunked time loop over a compiled kernel.

:class:`Simulation` holds the state of a (shard of a) run - positions,
optimizer state, status, counters - and advances it chunk by chunk; the
in-memory :func:`simulate` and the HDF5 writer (:mod:`.store`) both drive it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._jit import block_for
from ..core.status import STATUS_CODES, Status
from ..kernels.common import ChunkRecords as RecordBuffers
from ..kernels.common import Particles, RunConstants
from ..kernels.compile import Kernels, build
from .buffers import aligned_empty
from .init import initial_positions
from .spec import RunSpec, check_memory, parse_spec

#: Default steps per chunk: bounded so a chunk's records stay small and the
#: progress bar moves; any value gives the same result.
DEFAULT_CHUNK_STEPS = 1000


def _kernel_parts(spec: RunSpec) -> tuple[Any, ...]:
    """The arguments of :func:`~descentlab.kernels.compile.build` for a spec (target and block last)."""
    steps, s_slices, h_slices = [], [], []
    s0 = h0 = 0
    for ph in spec.phases:
        ns = max(1, len(ph.optimizer.state))
        nh = len(ph.optimizer.pack(ph.hyper))
        steps.append(ph.optimizer.step)
        s_slices.append((s0, s0 + ns))
        h_slices.append((h0, h0 + nh))
        s0 += ns
        h0 += nh
    land = spec.landscape
    return (land.value, land.grad, land.hess, tuple(steps), tuple(s_slices), tuple(h_slices),
            any(ph.optimizer.needs_hessian for ph in spec.phases), spec.target, land.batch_grad,
            land.block or block_for(spec.dim, spec.particles))  # fmt: skip


def kernels_for(spec: RunSpec) -> Kernels:
    """The (cached) compiled kernels of a spec's landscape x optimizer phases."""
    return build(*_kernel_parts(spec))


def cuda_ptx(spec: RunSpec, cc: tuple[int, int] = (9, 0)) -> dict[str, str]:
    """PTX for compute capability ``cc`` of every CUDA kernel a run of ``spec`` launches (``run[j]``
    for optimizer phase j, ``evaluate``, ``hessian``), compiled for the argument types the run passes.

    Needs numba-cuda and libNVVM, not a GPU: it proves the kernels compile for a real device
    (the CUDA simulator runs them as Python and never compiles them).
    """
    from ..kernels.compile import full_batch
    from ..kernels.cuda import make_cuda_kernels

    value, grad, hess, steps, s_slices, h_slices, needs_hessian, _, bgrad, _ = _kernel_parts(spec)
    run_chunk, evaluate, hessian, _ = make_cuda_kernels(value, grad, bgrad or full_batch(grad), hess, steps,
                                                        s_slices, h_slices, needs_hessian,
                                                        require_device=False)  # fmt: skip
    sim = Simulation(spec, kernels=Kernels(run_chunk, evaluate, hessian, "cuda"))
    out: dict[str, str] = run_chunk.ptx(sim._host, sim.constants, cc)
    return out


def describe_kernels(spec: RunSpec) -> str:
    """``<landscape> x <optimizer>[ -> <optimizer> ...]``: what a spec compiles, for messages."""
    name = spec.resolved.get("landscape", {}).get("name") or "formula"
    return f"{name} x " + " -> ".join(ph.optimizer.name for ph in spec.phases)


@dataclass
class ChunkRecords:
    """Records produced by one chunk: steps (R,), x (n, R, D), loss (n, R)."""

    steps: np.ndarray
    x: np.ndarray
    loss: np.ndarray


class Simulation:
    """State of particles ``[start, stop)`` of a run, advanced in chunks.

    Attributes (all modified as the run advances): ``x`` (D, n) positions,
    ``state`` (S, D, n) optimizer state, ``status`` (n,) int8, ``stop_step``
    (n,) int64, ``count`` (n,) int64, ``step`` the number of steps done. ``kernels``: the
    compiled kernels to run (default :func:`kernels_for` the spec).
    """

    def __init__(self, spec: RunSpec, start: int = 0, stop: int | None = None, kernels: Kernels | None = None) -> None:
        self.spec = spec
        self.start = start
        self.stop = spec.particles if stop is None else stop
        if not 0 <= self.start < self.stop <= spec.particles:
            raise ValueError(f"particle range [{start}, {stop}) outside [0, {spec.particles})")
        self.dtype = np.dtype(spec.dtype)
        self.kernels = kernels_for(spec) if kernels is None else kernels
        #: Seconds spent compiling or loading kernels for this simulation (0 when already loaded).
        self.compile_time = self.kernels.prepare(self.dtype, describe_kernels(spec))
        n, dim = self.stop - self.start, spec.dim
        ids = np.arange(self.start, self.stop, dtype=np.int64)
        land = spec.landscape
        if spec.finite_sum is not None and spec.init["scheme"] != "points":
            from ..problems.finite_sum import initial_positions as model_positions

            init = model_positions(spec.finite_sum, spec.init, ids, spec.seed)
        else:
            init = initial_positions(spec.init, dim, ids, spec.seed, land.init_box)
        self.init_x = np.ascontiguousarray(init.astype(self.dtype))  # (n, D)
        x = self.init_x.T.copy(order="C")  # never a view of init_x (n = 1 would be one)
        state = np.concatenate(
            [ph.optimizer.initial_state(ph.hyper, dim, n, self.dtype) for ph in spec.phases], axis=0
        )
        self.hyper = np.concatenate([ph.optimizer.pack(ph.hyper) for ph in spec.phases])
        self.phase_start = np.array([ph.start for ph in spec.phases], dtype=np.int64)
        self.phase_lr = np.array([float(ph.hyper["lr"]) for ph in spec.phases], dtype=np.float64)
        self.lparams = land.pack(spec.landscape_params, dim).astype(self.dtype)
        self.lrows = land.scratch_rows(dim)
        self.orows = max(ph.optimizer.scratch_rows(dim) for ph in spec.phases)
        self._host = Particles(x, state, np.zeros(n, dtype=np.int8), np.full(n, -1, dtype=np.int64),
                               np.zeros(n, dtype=np.int64))  # fmt: skip
        self._device: Any = None  # the state on the device between chunks (targets that keep it there)
        self._host_current, self._device_current = True, False
        self.step = 0
        self.metrics = None
        if spec.finite_sum is not None:
            from ..problems.finite_sum import Metrics

            self.metrics = Metrics(spec.finite_sum, self.kernels.evaluate, self.dtype)
        self.tol2 = float(spec.grad_tol) ** 2
        self.bound = float(spec.bound)
        # An infinite bound becomes the largest finite value, so that the kernel's
        # `abs(x) <= bound` test also flags +-Inf (not only NaN) as an event.
        big = float(np.finfo(self.dtype).max)
        self.constants = RunConstants(
            lparams=self.lparams, lrows=self.lrows, hyper=self.hyper, phase_start=self.phase_start,
            phase_lr=self.phase_lr, schedule=spec.schedule, seed=np.uint64(spec.seed), gid_base=self.start,
            orows=self.orows, tol2=self.dtype.type(min(self.tol2, big)), patience=spec.patience,
            bound=self.dtype.type(min(self.bound, big)),
        )  # fmt: skip

    @property
    def n(self) -> int:
        return self.stop - self.start

    # The state (x, state, status, stop_step, count) lives in host arrays; on a target that keeps
    # it on the device between chunks (CUDA), reading any of them brings the device's copy back
    # first, and the next chunk sends the host's copy again (the reader may have changed it).
    def _particles(self) -> Particles:
        if self._device is not None:
            if not self._host_current:
                self._device.download(self._host)
                self._host_current = True
            self._device_current = False
        return self._host

    x = property(lambda self: self._particles().x, doc="(D, n) positions")
    state = property(lambda self: self._particles().state, doc="(S, D, n) optimizer state")
    status = property(lambda self: self._particles().status, doc="(n,) int8 status codes")
    stop_step = property(lambda self: self._particles().stop_step, doc="(n,) int64 stop steps (-1: running)")
    count = property(lambda self: self._particles().count, doc="(n,) int64 steps in a row under grad_tol")

    def evaluate(self, x: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(loss (n,), grad_norm (n,)) at ``x`` (D, n), default the current positions."""
        x = self.x if x is None else np.ascontiguousarray(x, dtype=self.dtype)
        loss = np.empty(x.shape[1], self.dtype)
        gn = np.empty(x.shape[1], self.dtype)
        self.kernels.evaluate(x, self.lparams, self.lrows, loss, gn)
        return loss, gn

    def initial_records(self) -> ChunkRecords:
        loss, _ = self.evaluate(np.ascontiguousarray(self.init_x.T))
        return ChunkRecords(np.array([0]), self.init_x[:, None, :].copy(), loss[:, None].copy())

    def advance(self, t1: int, with_initial: bool = False) -> ChunkRecords:
        """Run steps ``[step, t1)``; returns the records of steps in ``(step, t1]``.

        ``with_initial`` (first chunk only) puts the record of step 0 in front,
        in the same buffer, so a writer gets one contiguous block.
        """
        t0 = self.step
        re = self.spec.record_every
        first, last = t0 // re + 1, t1 // re
        n_rec = max(0, last - first + 1)
        lead = 1 if with_initial and t0 == 0 else 0
        # page-aligned, so the file writer can hand whole chunks to the disk (O_DIRECT)
        rec_x = aligned_empty((self.n, lead + n_rec, self.spec.dim), self.dtype)
        rec_loss = aligned_empty((self.n, lead + n_rec), self.dtype)
        if lead:
            rec_x[:, 0] = self.init_x
            rec_loss[:, 0] = self.evaluate(np.ascontiguousarray(self.init_x.T))[0]
        buffers = RecordBuffers(rec_x, rec_loss, first - lead, re)
        if self.kernels.resident is None:
            self.kernels.run_chunk(self._host, self.constants, t0, t1, buffers)
        else:  # the state stays on the device from chunk to chunk; only the records come back
            if self._device is None:
                self._device = self.kernels.resident(self._host, self.constants)
            elif not self._device_current:
                self._device.upload(self._host)
            self._device_current, self._host_current = True, False
            self.kernels.run_chunk(self._host, self.constants, t0, t1, buffers, on_device=self._device)
        self.step = t1
        return ChunkRecords(np.arange(first - lead, last + 1, dtype=np.int64) * re, rec_x, rec_loss)

    def advance_timed(self, t1: int, with_initial: bool = False, cuts: Any = None, on_piece: Any = None,
                      seconds: float | None = None) -> tuple[ChunkRecords, list[tuple[int, float]]]:  # fmt: skip
        """:meth:`advance` to ``t1`` in pieces: each ends at the next of ``cuts`` (steps, e.g. epoch
        ends) inside the chunk, and with ``seconds`` lasts about that long (its length adapts to the
        measured speed, starting small), so a progress bar moves; ``on_piece(step)`` is called after
        each piece. Returns (the chunk's records, [(steps, seconds) of each piece]) - the same
        records as one :meth:`advance` (results never depend on the pieces), and per-piece kernel
        times that never straddle a cut."""
        inner = sorted(int(c) for c in np.asarray([] if cuts is None else cuts).ravel() if self.step < c < t1)
        pieces, times = [], []
        size = max(1, int(2e6 / max(1, self.n)))
        while self.step < t1:
            a = self.step
            end = next((c for c in inner if c > a), t1)
            if seconds is not None:
                end = min(end, a + size)
            t_start = time.perf_counter()
            pieces.append(self.advance(end, with_initial=with_initial and a == 0))
            dt = time.perf_counter() - t_start
            times.append((end - a, dt))
            if seconds is not None:
                size = max(1, int((end - a) * min(4.0, seconds / max(dt, 1e-6))))
            if on_piece is not None:
                on_piece(end)
        if len(pieces) == 1:
            return pieces[0], times
        r = sum(p.steps.shape[0] for p in pieces)
        x = aligned_empty((self.n, r, self.spec.dim), self.dtype)
        loss = aligned_empty((self.n, r), self.dtype)
        k = 0
        for p in pieces:
            m = p.steps.shape[0]
            x[:, k : k + m] = p.x
            loss[:, k : k + m] = p.loss
            k += m
        return ChunkRecords(np.concatenate([p.steps for p in pieces]), x, loss), times

    def chunks(self, chunk_steps: int | None = None) -> Iterator[ChunkRecords]:
        """Advance to the end in chunks, yielding each chunk's records."""
        size = chunk_steps or self.spec.chunk_steps or DEFAULT_CHUNK_STEPS
        while self.step < self.spec.steps:
            yield self.advance(min(self.spec.steps, self.step + size))

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """Final checks at the last step; returns (loss, grad_norm).

        A running particle outside the bound is "left the bound" at the last step. A
        particle whose loss there is not finite although its position is (``log(x)`` at
        x < 0: the gradient ``1/x`` stays finite, so the kernel never saw a non-finite
        value) is "diverged"; its stop step is the last step unless it had stopped before.

        When is a growing particle "diverged"? When a value becomes non-finite. With the
        default infinite ``stop.bound`` the only way out of the bound is a coordinate
        overflowing to +-Inf, which is a divergence, and is reported as "diverged"
        (status 2); "left the bound" (status 3) is kept for a finite bound the user set.
        """
        if self.step == self.spec.steps:
            out = ~np.all(np.abs(self.x) <= self.bound, axis=0) & (self.status == Status.RUNNING)
            self.status[out] = Status.OUT_OF_BOUND
            self.stop_step[out] = self.step
        if not np.isfinite(self.bound):
            self.status[self.status == Status.OUT_OF_BOUND] = Status.DIVERGED
        loss, grad_norm = self.evaluate()
        bad = ~np.isfinite(loss) & ((self.status == Status.RUNNING) | (self.status == Status.CONVERGED))
        self.stop_step[bad & (self.status == Status.RUNNING)] = self.step
        self.status[bad] = Status.DIVERGED
        return loss, grad_norm


class RunMetrics(dict):
    """``Result.metrics``: a dict under the run file's ``/metrics`` names; the former names of the
    initialization statistics (``activation_mean`` for ``init_activation_mean``, ...) still read."""

    def __missing__(self, key: str) -> np.ndarray:
        if not key.startswith("init_") and f"init_{key}" in self:
            return self[f"init_{key}"]
        raise KeyError(key)


@dataclass
class Result:
    """In-memory result of :func:`simulate` (particles are rows).

    init_x (N, D); final_x (N, D); final_loss, grad_norm (N,); status (N,) int8
    (0 ran all steps, 1 converged, 2 diverged, 3 left the bound); stop_step (N,)
    int64 (-1 if it never stopped); record_steps (R,); trajectory_x (N, R, D);
    trajectory_loss (N, R); spec the resolved spec; wall_time seconds of
    simulation (compilation excluded); compile_time seconds spent compiling or
    loading kernels before it.
    """

    spec: dict[str, Any]
    init_x: np.ndarray
    final_x: np.ndarray
    final_loss: np.ndarray
    grad_norm: np.ndarray
    status: np.ndarray
    stop_step: np.ndarray
    record_steps: np.ndarray
    trajectory_x: np.ndarray
    trajectory_loss: np.ndarray
    wall_time: float = 0.0
    compile_time: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    #: Finite-sum runs: the run file's ``/metrics`` names: ``train_loss``, ``test_loss``,
    #: ``train_accuracy``, ``test_accuracy`` (n, R) at the records, per-layer statistics at
    #: initialization ``init_activation_mean`` ... (n, L), ``epoch_updates`` (E,) and
    #: ``epoch_wall_time`` (E,) seconds of kernel time of each epoch (measured per epoch).
    metrics: dict[str, np.ndarray] = field(default_factory=dict)

    def to_xarray(self) -> Any:
        """The run as an ``xarray.Dataset`` (layout in :mod:`descentlab.engine.xarray_view`)."""
        from .xarray_view import run_dataset

        return run_dataset(
            self.spec, init_x=self.init_x, trajectory_x=self.trajectory_x, trajectory_loss=self.trajectory_loss,
            record_steps=self.record_steps, final_x=self.final_x, final_loss=self.final_loss,
            grad_norm=self.grad_norm, status=self.status, stop_step=self.stop_step, metrics=self.metrics,
            attrs={"wall_time": self.wall_time, "compile_time": self.compile_time},
        )  # fmt: skip

    def layer_statistics(self, particles: Any = None) -> dict[str, np.ndarray]:
        """Per-layer activation and gradient statistics at every record of a model run, each
        (n, R, L) (see :mod:`descentlab.analysis.layers`); empty otherwise."""
        from ..problems.finite_sum import layer_stats_at
        from .spec import parse_spec

        rs = parse_spec(self.spec, memory_check=False)
        if rs.finite_sum is None:
            return {}
        rows = slice(None) if particles is None else np.asarray(particles, dtype=np.int64)
        return layer_stats_at(rs.finite_sum, self.trajectory_x[rows])

    @property
    def layout(self) -> list[dict[str, Any]]:
        """A model run's parameter layout: one dict per tensor (name, kind, offset, size, shape,
        fan_in, fan_out; :func:`descentlab.models.layout.layout_records`); empty otherwise."""
        from .spec import parse_spec

        rs = parse_spec(self.spec, memory_check=False)
        if rs.finite_sum is None:
            return []
        from ..models.layout import layout_records

        return layout_records(rs.finite_sum.model.layout)

    def status_counts(self) -> dict[str, int]:
        return {name: int(np.sum(self.status == k)) for k, name in STATUS_CODES.items()}

    def __repr__(self) -> str:
        n, d = self.final_x.shape
        counts = ", ".join(f"{k}: {v}" for k, v in self.status_counts().items() if v)
        return (
            f"Result({self.spec['landscape']['name']}, {self.spec['optimizer']['name']}, "
            f"{n} particles x {d} dims, {self.spec['run']['steps']} steps, {counts}; "
            f"{self.wall_time:.3g} s)"
        )


def simulate(
    spec: Mapping[str, Any] | RunSpec | str | Path,
    *,
    particles: tuple[int, int] | None = None,
    chunk_steps: int | None = None,
    progress: bool | None = None,
) -> Result:
    """Run a spec in memory and return its :class:`Result`.

    ``spec`` is a dict with the run-spec keys (README) (or a TOML path, or a parsed
    :class:`RunSpec`); ``particles=(a, b)`` simulates only global particles
    ``[a, b)`` (identical to rows ``a:b`` of the whole run). ``progress``: a progress
    bar (``tqdm.auto``: a widget in a notebook) counting steps and particle-steps/s;
    None shows it only when interactive (a terminal or a notebook kernel).
    """
    rs = spec if isinstance(spec, RunSpec) else parse_spec(spec)
    a, b = particles if particles is not None else (0, rs.particles)
    check_memory(rs)  # every record is held in memory here
    sim = Simulation(rs, a, b)
    t_start = time.perf_counter()
    recs = [sim.initial_records()]
    epochs = rs.finite_sum.epoch_of_steps(rs.steps) if rs.finite_sum is not None else None
    cuts = np.cumsum(epochs) if epochs is not None else None
    times: list[tuple[int, float]] = []
    with progress_bar(rs.steps, sim.n, show=progress) as bar:
        for t1 in progress_ends(rs, chunk_steps):
            rec, dt = sim.advance_timed(t1, cuts=cuts, on_piece=lambda s: bar.update(s - bar.n),
                                        seconds=None if bar.hidden else PROGRESS_SECONDS / 2)  # fmt: skip
            recs.append(rec)
            times.extend(dt)
    loss, gn = sim.finish()
    wall = time.perf_counter() - t_start
    traj_x = np.concatenate([r.x for r in recs], axis=1)
    metrics: dict[str, np.ndarray] = RunMetrics()
    if rs.finite_sum is not None:
        from ..problems.finite_sum import init_stats

        assert sim.metrics is not None and epochs is not None
        metrics["train_loss"] = np.concatenate([r.loss for r in recs], axis=1)
        metrics.update(sim.metrics.at(traj_x))
        metrics.update({f"init_{k}": v for k, v in init_stats(rs.finite_sum, sim.init_x).items()})
        metrics["epoch_updates"] = epochs
        metrics["epoch_wall_time"] = epoch_times(epochs, times, 0)
    return Result(
        spec=rs.resolved,
        init_x=sim.init_x,
        final_x=np.ascontiguousarray(sim.x.T),
        final_loss=loss,
        grad_norm=gn,
        status=sim.status,
        stop_step=sim.stop_step,
        record_steps=np.concatenate([r.steps for r in recs]),
        trajectory_x=traj_x,
        trajectory_loss=np.concatenate([r.loss for r in recs], axis=1),
        wall_time=wall,
        compile_time=sim.compile_time,
        metrics=metrics,
    )



#: Seconds between progress-bar updates at most: a visible bar makes the engine advance in pieces
#: of about half that (their length adapts to the measured speed).
PROGRESS_SECONDS = 2.0


def interactive() -> bool:
    """Whether a progress bar would be seen: stderr is a terminal, or we run in a Jupyter kernel."""
    import sys

    if sys.stderr.isatty():
        return True
    return "ipykernel" in sys.modules and type(sys.stderr).__module__.startswith("ipykernel")


class _Bar:
    """A ``tqdm.auto`` bar over steps with particle-steps/s in its postfix (a no-op when hidden)."""

    def __init__(self, total: int, particles: int, initial: int = 0, show: bool | None = None) -> None:
        from tqdm.auto import tqdm

        self.particles = particles
        self.n = initial
        self.t0 = time.perf_counter()
        self.n0 = initial
        self.bar = tqdm(total=total, initial=initial, unit="step", disable=not (interactive() if show is None
                        else show), dynamic_ncols=True, leave=True, mininterval=0.5)  # fmt: skip

    def update(self, k: int) -> None:
        self.n += k
        if self.bar.disable:
            return
        dt = time.perf_counter() - self.t0
        if dt > 0:
            self.bar.set_postfix_str(f"{(self.n - self.n0) * self.particles / dt:.3g} particle-steps/s", refresh=False)
        self.bar.update(k)

    @property
    def hidden(self) -> bool:
        return bool(self.bar.disable)

    def close(self) -> None:
        self.bar.close()

    def __enter__(self) -> _Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress_bar(total: int, particles: int, initial: int = 0, show: bool | None = None) -> _Bar:
    """The engine's progress bar: steps done of ``total``, particle-steps/s; left on screen at the
    end; hidden when ``show`` is False, or when None and not interactive (:func:`interactive`)."""
    return _Bar(total, particles, initial, show)


def progress_ends(spec: RunSpec, chunk_steps: int | None = None, per_second: float | None = None) -> list[int]:
    """Chunk end steps for :func:`simulate` (records are gathered per chunk): ``chunk_steps`` if given,
    else chunks of about :data:`PROGRESS_SECONDS` at ``per_second`` particle-steps/s (an estimate;
    default 5e7), never longer than :data:`DEFAULT_CHUNK_STEPS` x 10; the bar itself moves with the
    pieces of :meth:`Simulation.advance_timed`. Results never depend on it."""
    size = chunk_steps or spec.chunk_steps
    if size is None:
        rate = per_second or 5e7
        size = int(min(DEFAULT_CHUNK_STEPS * 10, max(1, rate * PROGRESS_SECONDS / max(1, spec.particles))))
    return [*range(size, spec.steps, size), spec.steps]


def epoch_times(updates: np.ndarray, piece_times: list[tuple[int, float]], step0: int) -> np.ndarray:
    """(E,) seconds of each epoch from the timed pieces of the run [(steps, seconds), ...] that
    start at step ``step0``; pieces never straddle an epoch end (:meth:`Simulation.advance_timed`),
    so each epoch's time is the sum of its pieces' - measured, not shared out. Epochs (partly)
    before ``step0`` (run before a resume) are NaN."""
    bounds = np.concatenate([[0], np.cumsum(updates)])
    out = np.zeros(len(updates))
    s = step0
    for n_steps, secs in piece_times:
        e = int(np.searchsorted(bounds, s, side="right")) - 1
        out[min(e, len(out) - 1)] += secs
        s += n_steps
    out[bounds[:-1] < step0] = np.nan
    return out
