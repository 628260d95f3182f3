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


def kernels_for(spec: RunSpec) -> Kernels:
    """The (cached) compiled kernels of a spec's landscape x optimizer phases."""
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
    return build(
        land.value, land.grad, land.hess, tuple(steps), tuple(s_slices), tuple(h_slices),
        any(ph.optimizer.needs_hessian for ph in spec.phases), spec.target,
        land.batch_grad, land.block or block_for(spec.dim, spec.particles),
    )  # fmt: skip


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
    (n,) int64, ``count`` (n,) int64, ``step`` the number of steps done.
    """

    def __init__(self, spec: RunSpec, start: int = 0, stop: int | None = None) -> None:
        self.spec = spec
        self.start = start
        self.stop = spec.particles if stop is None else stop
        if not 0 <= self.start < self.stop <= spec.particles:
            raise ValueError(f"particle range [{start}, {stop}) outside [0, {spec.particles})")
        self.dtype = np.dtype(spec.dtype)
        self.kernels = kernels_for(spec)
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
        """
        if self.step == self.spec.steps:
            out = ~np.all(np.abs(self.x) <= self.bound, axis=0) & (self.status == Status.RUNNING)
            self.status[out] = Status.OUT_OF_BOUND
            self.stop_step[out] = self.step
        loss, grad_norm = self.evaluate()
        bad = ~np.isfinite(loss) & ((self.status == Status.RUNNING) | (self.status == Status.CONVERGED))
        self.stop_step[bad & (self.status == Status.RUNNING)] = self.step
        self.status[bad] = Status.DIVERGED
        return loss, grad_norm


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
    #: Finite-sum runs: ``test_loss``, ``train_accuracy``, ``test_accuracy`` (n, R) at the
    #: records, and per-layer statistics at initialization ``activation_mean`` ... (n, L).
    metrics: dict[str, np.ndarray] = field(default_factory=dict)

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
) -> Result:
    """Run a spec in memory and return its :class:`Result`.

    ``spec`` is a dict with the run-spec keys (README) (or a TOML path, or a parsed
    :class:`RunSpec`); ``particles=(a, b)`` simulates only global particles
    ``[a, b)`` (identical to rows ``a:b`` of the whole run).
    """
    rs = spec if isinstance(spec, RunSpec) else parse_spec(spec)
    a, b = particles if particles is not None else (0, rs.particles)
    check_memory(rs)  # every record is held in memory here
    sim = Simulation(rs, a, b)
    t_start = time.perf_counter()
    recs = [sim.initial_records()]
    recs.extend(sim.chunks(chunk_steps))
    loss, gn = sim.finish()
    wall = time.perf_counter() - t_start
    traj_x = np.concatenate([r.x for r in recs], axis=1)
    metrics: dict[str, np.ndarray] = {}
    if rs.finite_sum is not None:
        from ..problems.finite_sum import init_stats

        assert sim.metrics is not None
        metrics.update(sim.metrics.at(traj_x))
        metrics.update(init_stats(rs.finite_sum, sim.init_x))
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

