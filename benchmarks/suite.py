"""Benchmark suite: descentlab's general path vs NumPy, JAX and PyTorch.

Workload (issue 2): Rosenbrock (a = 1, b = 100) + Adam (lr = 1e-3, torch's
defaults otherwise), D = 2, T steps, N particles, float64 and float32;
figure of merit: particle-steps per second (N * T / wall time of the steps).

* **descentlab** - ``Simulation(parse_spec(spec)).advance(T)`` on the general
  path: ``stop.grad_tol = 1e-8`` keeps the status checks on (they rarely fire),
  ``record_every = T`` makes recording negligible. Timed after a warm-up
  compile, best of ``repeats``; construction (initial positions) is not timed.
* **numpy** - the same update rule on (D, N) arrays with preallocated buffers.
* **jax** - ``jit(scan(vmap(step)))`` with ``jax.grad`` of the loss; compiled
  ahead of time (``lower().compile()``), so compile time is not timed.
* **torch** - one (N, D) parameter, ``torch.optim.Adam`` (fused on the CPU
  where supported, else foreach), ``loss.sum().backward()`` then ``step()``.

Every peer starts from descentlab's initial positions, and before timing its
final positions after T steps on a few particles are checked against
descentlab's (float64 rtol 1e-6): otherwise it is not the same workload.
Slow peers time fewer steps (``--peer-budget``); the table says so.

Run ``python benchmarks/run.py --help`` (or ``descentlab bench --help-bench`` in a checkout of the repository).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

A, B = 1.0, 100.0  # Rosenbrock parameters (descentlab's defaults)
LR, BETA1, BETA2, EPS = 1e-3, 0.9, 0.999, 1e-8  # Adam (torch's defaults but lr)
GRAD_TOL = 1e-8
CHECK_N = 512  # particles of the correctness check
TOLERANCE = {"float64": (1e-6, 1e-9), "float32": (1e-4, 1e-5)}  # (rtol, atol) of the check
MARK_BEGIN = "<!-- descentlab-bench:begin -->"
MARK_END = "<!-- descentlab-bench:end -->"


# --------------------------------------------------------------------------- descentlab


def _spec(n: int, dtype: str, steps: int, landscape: str = "rosenbrock", dim: int = 2) -> dict[str, Any]:
    return {
        "run": {"particles": n, "steps": steps, "record_every": steps, "dtype": dtype, "seed": 0},
        "landscape": {"name": landscape, "dim": dim},
        "optimizer": {"name": "adam", "lr": LR},
        "stop": {"grad_tol": GRAD_TOL},
    }


def _simulation(n: int, dtype: str, steps: int, landscape: str = "rosenbrock", dim: int = 2) -> Any:
    from descentlab.engine.run import Simulation
    from descentlab.engine.spec import parse_spec

    return Simulation(parse_spec(_spec(n, dtype, steps, landscape, dim)))


def time_descentlab(
    n: int, dtype: str, steps: int, repeats: int, landscape: str = "rosenbrock", dim: int = 2
) -> tuple[float, np.ndarray, np.ndarray]:
    """(best seconds of ``advance(steps)``, initial x (N, D), final x (N, D))."""
    _simulation(min(n, 1024), dtype, 1, landscape, dim).advance(1)  # warm-up compile
    best = math.inf
    sim = None
    for _ in range(repeats):
        sim = _simulation(n, dtype, steps, landscape, dim)
        t0 = time.perf_counter()
        sim.advance(steps)
        best = min(best, time.perf_counter() - t0)
    assert sim is not None
    return best, sim.init_x, np.ascontiguousarray(sim.x.T)


def time_simulate(n: int, dtype: str, steps: int, repeats: int) -> float:
    """Best seconds of ``descentlab.simulate(spec)`` end to end (kernels already compiled)."""
    from descentlab.engine.run import simulate

    simulate(_spec(min(n, 1024), dtype, 1))  # loads the kernels
    return _best_of(lambda: simulate(_spec(n, dtype, steps)), repeats)


def _adam_consts(steps: int, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """Per step t = 1..T: lr / (1 - beta1^t) and 1 / sqrt(1 - beta2^t), as descentlab forms them."""
    t = np.arange(1, steps + 1, dtype=np.float64)
    step_size = LR / (1.0 - BETA1**t)
    inv_sqrt_bc2 = 1.0 / np.sqrt(1.0 - BETA2**t)
    return step_size.astype(dtype), inv_sqrt_bc2.astype(dtype)


# --------------------------------------------------------------------------- peers


class PeerUnavailable(Exception):
    """A peer library is not installed (the table notes it and goes on)."""


def numpy_peer(x0: np.ndarray, steps: int, dtype: str) -> Callable[[], np.ndarray]:
    """Vectorised NumPy Adam on 2-D Rosenbrock over (2, N) arrays, same operation order as descentlab."""
    dt = np.dtype(dtype)
    x_init = np.ascontiguousarray(x0.T, dtype=dt)
    if x_init.shape[0] != 2:
        raise PeerUnavailable("the NumPy peer is written for D = 2")
    n = x_init.shape[1]
    a, m4b, two, twob = dt.type(A), dt.type(-4.0 * B), dt.type(2.0), dt.type(2.0 * B)
    b1, omb1, b2, omb2, eps = (dt.type(c) for c in (BETA1, 1.0 - BETA1, BETA2, 1.0 - BETA2, EPS))
    step_size, inv_sqrt_bc2 = _adam_consts(steps, dtype)

    def run() -> np.ndarray:
        x = x_init.copy()
        m = np.zeros_like(x)
        v = np.zeros_like(x)
        g = np.empty_like(x)
        u = np.empty(n, dt)
        w = np.empty(n, dt)
        t1 = np.empty_like(x)
        t2 = np.empty_like(x)
        x0, x1, g0, g1 = x[0], x[1], g[0], g[1]
        for k in range(steps):
            np.multiply(x0, x0, out=u)
            np.subtract(x1, u, out=u)  # u = y - x^2
            np.multiply(x0, m4b, out=g0)
            np.multiply(g0, u, out=g0)  # -4 b x u
            np.subtract(a, x0, out=w)
            np.multiply(w, two, out=w)
            np.subtract(g0, w, out=g0)  # ... - 2 (a - x)
            np.multiply(u, twob, out=g1)  # 2 b u
            np.multiply(m, b1, out=m)
            np.multiply(g, omb1, out=t1)
            np.add(m, t1, out=m)  # m = b1 m + (1 - b1) g
            np.multiply(g, omb2, out=t1)
            np.multiply(t1, g, out=t1)
            np.multiply(v, b2, out=v)
            np.add(v, t1, out=v)  # v = b2 v + (1 - b2) g g
            np.sqrt(v, out=t1)
            np.multiply(t1, inv_sqrt_bc2[k], out=t1)
            np.add(t1, eps, out=t1)  # sqrt(v) / sqrt(bc2) + eps
            np.multiply(m, step_size[k], out=t2)
            np.divide(t2, t1, out=t2)
            np.subtract(x, t2, out=x)
        return np.ascontiguousarray(x.T)

    return run


def _jax(dtype: str) -> tuple[Any, Any]:
    """``(jax, jax.numpy)`` with 64-bit floats enabled for float64; PeerUnavailable without JAX."""
    try:
        import jax
    except ImportError:
        raise PeerUnavailable("jax not installed (pip install 'descentlab[bench]')") from None
    if dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    return jax, jnp


def _jax_runner(jax: Any, xj: Any, run_all: Callable[..., Any], consts: Any) -> Callable[[], np.ndarray]:
    """``run_all(xj, consts)`` compiled ahead of time; the runner waits for the result."""
    compiled = jax.jit(run_all).lower(xj, consts).compile()

    def run() -> np.ndarray:
        out = compiled(xj, consts)
        out.block_until_ready()
        return np.asarray(out)

    return run


def jax_peer(x0: np.ndarray, steps: int, dtype: str) -> Callable[[], np.ndarray]:
    """``jit(scan(vmap(step)))`` with ``jax.grad``; compiled ahead of time; returns a runner."""
    jax, jnp = _jax(dtype)
    dt = jnp.dtype(dtype)

    def loss(x):  # type: ignore[no-untyped-def]
        return B * (x[1] - x[0] * x[0]) ** 2 + (A - x[0]) ** 2

    grad = jax.grad(loss)

    def one(x, m, v, ss, ib):  # type: ignore[no-untyped-def]
        g = grad(x)
        m = BETA1 * m + (1.0 - BETA1) * g
        v = BETA2 * v + (1.0 - BETA2) * g * g
        x = x - ss * m / (jnp.sqrt(v) * ib + EPS)
        return x, m, v

    batched = jax.vmap(one, in_axes=(0, 0, 0, None, None))

    def scan_step(carry, consts):  # type: ignore[no-untyped-def]
        x, m, v = carry
        return batched(x, m, v, consts[0], consts[1]), None

    step_size, inv_sqrt_bc2 = _adam_consts(steps, dtype)
    consts = jnp.asarray(np.stack([step_size, inv_sqrt_bc2], axis=1), dtype=dt)

    def run_all(x, consts):  # type: ignore[no-untyped-def]
        z = jnp.zeros_like(x)
        (x, _, _), _ = jax.lax.scan(scan_step, (x, z, z), consts, length=steps)
        return x

    return _jax_runner(jax, jnp.asarray(x0, dtype=dt), run_all, consts)


def jax_direct_peer(x0: np.ndarray, steps: int, dtype: str) -> Callable[[], np.ndarray]:
    """The vectorised form a JAX user who wants speed writes: array math on the columns inside ``jit(scan)``.

    The gradient is written out (as descentlab's landscape does) on the (N,) columns of
    x, m and v, so XLA fuses each step into one loop over the particles.
    """
    jax, jnp = _jax(dtype)
    dt = jnp.dtype(dtype)

    def scan_step(carry, consts):  # type: ignore[no-untyped-def]
        a, b, ma, mb, va, vb = carry
        ss, ib = consts[0], consts[1]
        r = b - a * a
        ga = -4.0 * B * a * r - 2.0 * (A - a)
        gb = 2.0 * B * r
        ma = BETA1 * ma + (1.0 - BETA1) * ga
        mb = BETA1 * mb + (1.0 - BETA1) * gb
        va = BETA2 * va + (1.0 - BETA2) * ga * ga
        vb = BETA2 * vb + (1.0 - BETA2) * gb * gb
        a = a - ss * ma / (jnp.sqrt(va) * ib + EPS)
        b = b - ss * mb / (jnp.sqrt(vb) * ib + EPS)
        return (a, b, ma, mb, va, vb), None

    step_size, inv_sqrt_bc2 = _adam_consts(steps, dtype)
    consts = jnp.asarray(np.stack([step_size, inv_sqrt_bc2], axis=1), dtype=dt)

    def run_all(x, consts):  # type: ignore[no-untyped-def]
        a, b = x[:, 0], x[:, 1]
        z = jnp.zeros_like(a)
        (a, b, *_), _ = jax.lax.scan(scan_step, (a, b, z, z, z, z), consts, length=steps)
        return jnp.stack([a, b], axis=1)

    return _jax_runner(jax, jnp.asarray(x0, dtype=dt), run_all, consts)


def torch_peer(x0: np.ndarray, steps: int, dtype: str, device: str = "cpu") -> Callable[[], np.ndarray]:
    """``torch.optim.Adam`` (fused where the build supports it, else foreach) on one (N, D) tensor
    on ``device`` (``cpu`` or ``cuda``)."""
    try:
        import torch
    except ImportError:
        raise PeerUnavailable("torch not installed (pip install 'descentlab[bench]')") from None
    torch.set_num_threads(_threads())
    tdt = getattr(torch, dtype)
    x_init = torch.from_numpy(np.ascontiguousarray(x0, dtype=dtype)).to(device=device, dtype=tdt)
    flavour = {"fused": True}
    try:
        p = torch.nn.Parameter(x_init.clone())
        opt = torch.optim.Adam([p], lr=LR, **flavour)
        (p**2).sum().backward()
        opt.step()
    except (RuntimeError, TypeError, ValueError):
        flavour = {"foreach": True}
    TORCH_FLAVOUR[dtype] = next(iter(flavour))

    def run() -> np.ndarray:
        p = torch.nn.Parameter(x_init.clone())
        opt = torch.optim.Adam([p], lr=LR, betas=(BETA1, BETA2), eps=EPS, **flavour)
        for _ in range(steps):
            opt.zero_grad(set_to_none=False)
            x, y = p[:, 0], p[:, 1]
            loss = (B * (y - x * x) ** 2 + (A - x) ** 2).sum()
            loss.backward()
            opt.step()
        return p.detach().cpu().numpy().copy()  # (waits for the device)

    return run


TORCH_FLAVOUR: dict[str, str] = {}
PEERS: dict[str, Callable[[np.ndarray, int, str], Callable[[], np.ndarray]]] = {
    "numpy": numpy_peer,
    "jax": jax_peer,
    "jax-direct": jax_direct_peer,
    "torch": torch_peer,
}


def _threads() -> int:
    import numba

    return int(numba.config.NUMBA_NUM_THREADS)


# --------------------------------------------------------------------------- measurements


@dataclass
class Row:
    """One measured line of a table."""

    workload: str
    n: int
    dtype: str
    impl: str
    steps: int = 0
    seconds: float = math.nan
    note: str = ""
    dim: int = 2
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Particle-steps per second."""
        return self.n * self.steps / self.seconds if self.seconds > 0 else math.nan


def _best_of(run: Callable[[], Any], repeats: int, long_s: float = 10.0) -> float:
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        dt = time.perf_counter() - t0
        best = min(best, dt)
        if dt > long_s:  # a long run is its own average
            break
    return best


def check_peer(name: str, dtype: str, steps: int, log: Callable[[str], None]) -> str:
    """Run a peer on CHECK_N particles for ``steps`` steps and compare with descentlab; '' if equal."""
    _, x0, ref = time_descentlab(CHECK_N, dtype, steps, 1)
    got = PEERS[name](x0, steps, dtype)()
    rtol, atol = TOLERANCE[dtype]
    err = np.abs(got - ref)
    bad = ~(err <= atol + rtol * np.abs(ref))
    worst = float(np.max(err / (atol + rtol * np.abs(ref))))
    log(f"  check {name:6s} {dtype}: {CHECK_N} particles x {steps} steps, max |diff| = {err.max():.3g} "
        f"({worst:.3g} of the tolerance rtol={rtol:g} atol={atol:g})")  # fmt: skip
    if np.any(bad):
        return f"MISMATCH: {int(bad.sum())}/{bad.size} coordinates differ from descentlab beyond rtol={rtol:g}"
    return ""


def measure_d2(
    sizes: Sequence[int], dtypes: Sequence[str], steps: int, repeats: int, peers: Sequence[str],
    budget: float, log: Callable[[str], None],
) -> list[Row]:  # fmt: skip
    """Rosenbrock + Adam, D = 2: descentlab and each peer for each (dtype, N)."""
    rows: list[Row] = []
    for dtype in dtypes:
        status: dict[str, str] = {}
        for name in peers:
            try:
                status[name] = check_peer(name, dtype, steps, log)
            except PeerUnavailable as exc:
                status[name] = f"skipped: {exc}"
                log(f"  {name}: {exc}")
        for n in sizes:
            secs, x0, _ = time_descentlab(n, dtype, steps, repeats)
            adv = Row("rosenbrock-2d", n, dtype, "descentlab", steps, secs)
            rows.append(adv)
            log(f"  {dtype} N={n:>8d} descentlab {adv.rate / 1e6:9.1f} M/s  ({secs:.3f} s)")
            secs = time_simulate(n, dtype, steps, repeats)
            row = Row("rosenbrock-2d", n, dtype, "descentlab simulate()", steps, secs,
                      "end to end: spec parsing, init, kernel, final evaluation (kernels loaded)")  # fmt: skip
            rows.append(row)
            log(f"  {dtype} N={n:>8d} simulate() {row.rate / 1e6:9.1f} M/s  ({secs:.3f} s)")
            for name in peers:
                if status[name].startswith("skipped"):
                    rows.append(Row("rosenbrock-2d", n, dtype, name, note=status[name]))
                    continue
                # calibrate on a few steps, then time at most `budget` seconds per run
                k = min(steps, 20)
                probe = PEERS[name](x0, k, dtype)  # (JAX compiles here, untimed)
                t0 = time.perf_counter()
                probe()
                est = (time.perf_counter() - t0) * steps / k
                n_steps = steps if est <= budget else max(50, int(steps * budget / est) // 10 * 10)
                run = PEERS[name](x0, n_steps, dtype)
                secs = _best_of(run, repeats)
                note = status[name]
                if n_steps < steps:
                    note = (note + "; " if note else "") + f"timed {n_steps} of {steps} steps"
                if name == "torch":
                    note = (note + "; " if note else "") + f"{TORCH_FLAVOUR.get(dtype, '?')} Adam"
                prow = Row("rosenbrock-2d", n, dtype, name, n_steps, secs, note)
                rows.append(prow)
                log(f"  {dtype} N={n:>8d} {name:10s} {prow.rate / 1e6:9.1f} M/s  ({secs:.3f} s) {note}")
            if peers:  # once more after the peers (interleaved), keep the best: peers' thread pools
                again, _, _ = time_descentlab(n, dtype, steps, repeats)  # may still spin after they return
                adv.seconds = min(adv.seconds, again)
                log(f"  {dtype} N={n:>8d} descentlab again {n * steps / again / 1e6:9.1f} M/s")
    return rows


#: Math per particle-step of the second workload's landscapes (for the table).
WORK_PER_STEP = {
    "quadratic": "dense D x D matvec: O(D^2)",
    "rosenbrock": "O(D)",
    "rastrigin": "O(D), one cos per coordinate",
}


def measure_highdim(
    landscapes: Sequence[str], sizes: Sequence[int], dtypes: Sequence[str], steps: int, repeats: int, dim: int,
    log: Callable[[str], None],
) -> tuple[list[Row], list[str]]:  # fmt: skip
    """The second workload: Adam on D-dimensional landscapes; (rows, notes on landscapes not registered)."""
    from descentlab.landscapes.registry import LANDSCAPES

    rows, notes = [], []
    for name in landscapes:
        if name not in LANDSCAPES:
            notes.append(f"landscape {name!r} is not registered (yet): left out of the D = {dim} workload")
            log("  " + notes[-1])
            continue
        for dtype in dtypes:
            for n in sizes:
                secs, _, _ = time_descentlab(n, dtype, steps, repeats, name, dim)
                row = Row(f"{name}-{dim}d", n, dtype, "descentlab", steps, secs, dim=dim)
                rows.append(row)
                log(f"  {name} D={dim} {dtype} N={n:>8d} {row.rate / 1e6:9.2f} M particle-steps/s, "
                    f"{row.rate * dim / 1e6:9.1f} M coordinate-steps/s  ({secs:.3f} s)")  # fmt: skip
    return rows, notes


_COMPILE_CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[2])  # benchmarks/: this suite
t0 = time.perf_counter()
from suite import _simulation
t1 = time.perf_counter()
out = {"import_s": t1 - t0}
for dtype in sys.argv[1].split(","):
    t2 = time.perf_counter()
    sim = _simulation(64, dtype, 1)
    sim.advance(1)
    out[dtype] = time.perf_counter() - t2
print(json.dumps(out))
"""


def measure_compile(dtypes: Sequence[str], log: Callable[[str], None]) -> dict[str, dict[str, float]]:
    """Seconds to the first ``advance(1)`` in a fresh process: cold (empty cache) then cached."""
    out: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="descentlab-bench-cache-") as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        for kind in ("cold", "cached"):
            here = str(Path(__file__).resolve().parent)
            res = subprocess.run([sys.executable, "-c", _COMPILE_CHILD, ",".join(dtypes), here], env=env,
                                 capture_output=True, text=True, check=True)  # fmt: skip
            out[kind] = json.loads(res.stdout.strip().splitlines()[-1])
            log(f"  compile {kind}: " + ", ".join(f"{k} {v:.4g}" for k, v in out[kind].items()))
    return out


# --------------------------------------------------------------------------- report


def versions() -> dict[str, str]:
    """Versions of python and of the libraries measured (or 'not installed')."""
    from importlib import metadata

    out = {"python": platform.python_version()}
    for pkg in ("descentlab", "numba", "llvmlite", "numpy", "jax", "jaxlib", "torch"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def machine() -> dict[str, str]:
    """CPU model, cores, SIMD and Numba's threads."""
    model, flags = platform.processor() or "unknown", set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, val = line.partition(":")
            if key.strip() == "model name":
                model = val.strip()
            elif key.strip() == "flags":
                flags = set(val.split())
    simd = ", ".join(f for f in ("avx2", "fma", "avx512f") if f in flags) or "?"
    out = {
        "cpu": model,
        "logical cores": str(os.cpu_count()),
        "SIMD": simd,
        "descentlab threads": f"{_threads()} (a pool of Python threads running the nogil block loop)",
        "os": f"{platform.system()} {platform.release()}",
    }
    if os.environ.get(ISA_MARK):
        out["instruction set used"] = f"{os.environ[ISA_MARK]} for every implementation (`--isa`: {ISA_NOTE})"
    return out


def _fmt_rate(r: float) -> str:
    return "-" if not math.isfinite(r) else (f"{r / 1e6:,.0f}" if r >= 1e8 else f"{r / 1e6:,.1f}")


def markdown(rows: list[Row], compile_s: dict[str, dict[str, float]], info: dict[str, Any]) -> str:
    """The results section (between markers so other sections of RESULTS.md are kept)."""
    begin, end = _marks(info.get("load", 0))
    title = "## Engine vs peers"
    if info.get("load"):
        title += f" under load ({info['load']} busy background processes)"
    lines = [begin, title, "", f"Measured {info['when']} with `{info['command']}`.", ""]
    lines += ["| machine | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in info["machine"].items()]
    lines += ["", "| version | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in info["versions"].items()]
    d2 = [r for r in rows if r.workload == "rosenbrock-2d"]
    if d2:
        lines += ["", f"### Rosenbrock + Adam, D = 2, T = {info['steps']} (million particle-steps/s, best of "
                  f"{info['repeats']})", "",
                  "descentlab: general path (`stop.grad_tol = 1e-8`: status checks on), `record_every = T`; "
                  "timed before and after the peers (best of both). "
                  "Ratio = descentlab / peer (> 1: descentlab faster).", "",
                  "| dtype | N | impl | steps timed | s | M particle-steps/s | ratio | note |",
                  "|---|---:|---|---:|---:|---:|---:|---|"]  # fmt: skip
        ref = {(r.dtype, r.n): r.rate for r in d2 if r.impl == "descentlab"}
        for r in d2:
            ratio = ref[(r.dtype, r.n)] / r.rate if r.impl in PEERS and r.rate > 0 else math.nan
            lines.append(
                f"| {r.dtype} | {r.n:.0e} | {r.impl} | {r.steps or '-'} | "
                f"{r.seconds:.3f} | {_fmt_rate(r.rate)} | {'' if math.isnan(ratio) else f'{ratio:.2f}x'} | {r.note} |"
                if math.isfinite(r.seconds)
                else f"| {r.dtype} | {r.n:.0e} | {r.impl} | - | - | - | - | {r.note} |"
            )
    hd = [r for r in rows if r.workload != "rosenbrock-2d"]
    if hd:
        lines += ["", f"### Cost vs D: Adam in D = {hd[0].dim}, T = {hd[0].steps} (descentlab, general path)", "",
                  "| landscape | math per step | dtype | N | D | s | M particle-steps/s | M coordinate-steps/s | "
                  "coordinate-steps/s vs Rosenbrock D = 2 |",
                  "|---|---|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
        ref2 = {(r.dtype, r.n): r.rate for r in d2 if r.impl == "descentlab"}
        for r in hd:
            name = r.workload.rsplit("-", 1)[0]
            base = ref2.get((r.dtype, r.n))
            rel = f"{r.rate * r.dim / (base * 2):.2f}" if base else "-"
            lines.append(f"| {name} | {WORK_PER_STEP.get(name, '')} | {r.dtype} | {r.n:.0e} | {r.dim} | "
                         f"{r.seconds:.3f} | {_fmt_rate(r.rate)} | {_fmt_rate(r.rate * r.dim)} | {rel} |")  # fmt: skip
    if compile_s:
        lines += ["", "### Compile time (fresh process, seconds to the first `advance(1)`, import excluded)", "",
                  "| cache | import descentlab | " + " | ".join(info["dtypes"]) + " |",
                  "|---|---:|" + "---:|" * len(info["dtypes"])]  # fmt: skip
        for kind, d in compile_s.items():
            cells = " | ".join(f"{d[t]:.2f}" for t in info["dtypes"])
            lines.append(f"| {kind} | {d['import_s']:.2f} | {cells} |")
        lines += ["", "cold: empty `NUMBA_CACHE_DIR`; cached: a second process on the cache the first one wrote; "
                  "dtypes compiled one after another in the same process."]  # fmt: skip
    if info.get("notes"):
        lines += ["", *[f"- {n}" for n in info["notes"]]]
    lines += [end]
    return "\n".join(lines) + "\n"


def _marks(load: int) -> tuple[str, str]:
    """The markers of the quiet section, or of the section measured under load."""
    if not load:
        return MARK_BEGIN, MARK_END
    return MARK_BEGIN.replace("bench:", "bench-loaded:"), MARK_END.replace("bench:", "bench-loaded:")


def write_markdown(path: Path, section: str, load: int = 0) -> None:
    """Replace the marked section of ``path`` (or append it; create the file if missing)."""
    text = path.read_text() if path.exists() else "# descentlab benchmarks\n\n"
    begin, end = _marks(load)
    if begin in text and end in text:
        head, _, rest = text.partition(begin)
        _, _, tail = rest.partition(end)
        text = head + section.rstrip("\n") + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


# --------------------------------------------------------------------------- CLI


#: Set in the environment of a run re-executed by ``--isa``.
ISA_MARK = "DESCENTLAB_BENCH_ISA"
ISA_NOTE = ("NUMBA_CPU_NAME=haswell with no extra CPU features, XLA_FLAGS=--xla_cpu_max_isa=AVX2, "
            "ATEN_CPU_CAPABILITY=avx2, NPY_DISABLE_CPU_FEATURES=AVX512F,...")  # fmt: skip
#: What ``--isa avx2`` sets: every implementation limited to AVX2 + FMA, as on a machine without AVX-512.
ISA_ENV = {
    "avx2": {
        "NUMBA_CPU_NAME": "haswell",
        "NUMBA_CPU_FEATURES": "",  # the named CPU's own features only (not the host's AVX-512)
        "XLA_FLAGS": "--xla_cpu_max_isa=AVX2",
        "ATEN_CPU_CAPABILITY": "avx2",
        "NPY_DISABLE_CPU_FEATURES": "AVX512F AVX512CD AVX512_SKX AVX512_CLX AVX512_CNL AVX512_ICL AVX512_SPR",
    }
}


def _reexec_with_isa(isa: str, argv: Sequence[str]) -> None:
    """Run the suite again (``run.py`` with ``argv``) in a fresh process whose environment limits every
    implementation to ``isa`` (the settings must be there before Numba, JAX or torch are imported)."""
    if os.environ.get(ISA_MARK) == isa:
        return
    env = {**os.environ, **ISA_ENV[isa], ISA_MARK: isa}
    env["XLA_FLAGS"] = " ".join(x for x in (os.environ.get("XLA_FLAGS", ""), ISA_ENV[isa]["XLA_FLAGS"]) if x)
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, str(Path(__file__).with_name("run.py")), *argv], env)


def _sizes(text: str) -> list[int]:
    try:
        return [int(float(s)) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like 1e4,1e5, got {text!r}") from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="descentlab bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=_sizes, default=[10_000, 100_000, 1_000_000], help="particles (default 1e4,1e5,1e6)")
    p.add_argument("--dtypes", default="float64,float32", help="default float64,float32")
    p.add_argument("--steps", type=int, default=1000, help="T, steps per run (default 1000)")
    p.add_argument("--repeats", type=int, default=3, help="best of this many runs (default 3)")
    p.add_argument("--peers", default="numpy,jax,jax-direct,torch",
                   help="comma list of numpy,jax,jax-direct,torch, or 'none'")  # fmt: skip
    p.add_argument("--peer-budget", type=float, default=20.0,
                   help="seconds per peer run; slower peers time fewer steps (default 20)")  # fmt: skip
    p.add_argument("--dim", type=int, default=100, help="D of the second workload (default 100; 0 skips it)")
    p.add_argument("--dim-sizes", type=_sizes, default=[10_000, 100_000], help="N of the second workload")
    p.add_argument("--dim-steps", type=int, default=100, help="T of the second workload (default 100)")
    p.add_argument("--dim-landscapes", default="quadratic,rosenbrock",
                   help="landscapes of the second workload (default quadratic,rosenbrock)")  # fmt: skip
    p.add_argument("--no-compile", action="store_true", help="skip the compile-time subprocesses")
    p.add_argument("--quick", action="store_true", help="smoke test (overrides sizes, steps, repeats)")
    p.add_argument("--markdown", type=Path, help="write the results section into this file")
    p.add_argument("--json", type=Path, help="also write the raw rows as JSON")
    p.add_argument("--isa", choices=sorted(ISA_ENV),
                   help="limit every implementation to this instruction set (e.g. avx2 on an AVX-512 machine): "
                        "the command runs again in a fresh process with the settings in the environment")  # fmt: skip
    p.add_argument("--load", type=int, default=0, metavar="K",
                   help="run K busy background processes (one per core: os.cpu_count()) during the measurements")
    return p


def _spin() -> None:  # pragma: no cover - runs in a child process
    x = 0
    while True:
        x = (x * 1103515245 + 12345) % 2**31


class BackgroundLoad:
    """``k`` processes that keep one core busy each, for measuring under load (a context manager)."""

    def __init__(self, k: int) -> None:
        import multiprocessing

        self._procs = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(k)]

    def __enter__(self) -> BackgroundLoad:
        for p in self._procs:
            p.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for p in self._procs:
            p.terminate()
            p.join()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the suite; returns the exit status (0, or 2 on bad arguments)."""
    args = parser().parse_args(argv)
    if args.isa:
        _reexec_with_isa(args.isa, sys.argv[1:] if argv is None else list(argv))
    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    peers = [] if args.peers.strip() == "none" else [p.strip() for p in args.peers.split(",") if p.strip()]
    for d in dtypes:
        if d not in ("float64", "float32"):
            print(f"--dtypes: unknown dtype {d!r}; expected float64 and/or float32", file=sys.stderr)
            return 2
    for p in peers:
        if p not in PEERS:
            print(f"--peers: unknown peer {p!r}; expected some of {sorted(PEERS)} or 'none'", file=sys.stderr)
            return 2
    if args.quick:
        args.sizes, args.steps, args.repeats = [1_000, 10_000], 100, 1
        args.dim_sizes, args.dim_steps, args.peer_budget = [1_000], 20, 5.0

    def log(msg: str) -> None:
        print(msg, flush=True)

    command = "python benchmarks/run.py " + " ".join(sys.argv[1:] if argv is None else argv)
    log(f"descentlab bench: N={args.sizes} dtypes={dtypes} T={args.steps} peers={peers or 'none'} "
        f"threads={_threads()}")  # fmt: skip
    t_all = time.perf_counter()
    if args.load:
        log(f"background load: {args.load} busy processes")
    with BackgroundLoad(args.load):
        log("Rosenbrock + Adam, D = 2")
        rows = measure_d2(args.sizes, dtypes, args.steps, args.repeats, peers, args.peer_budget, log)
    if args.dim > 0:
        log(f"second workload, D = {args.dim}")
        lands = [x.strip() for x in args.dim_landscapes.split(",") if x.strip()]
        hd_rows, hd_notes = measure_highdim(lands, args.dim_sizes, dtypes, args.dim_steps, args.repeats, args.dim, log)
        rows += hd_rows
    compile_s = {} if args.no_compile else measure_compile(dtypes, (log("compile time"), log)[1])
    notes = [] if args.dim <= 0 else list(hd_notes)
    for r in rows:
        if r.impl in PEERS and r.workload == "rosenbrock-2d" and math.isfinite(r.rate):
            ours = next(q.rate for q in rows if q.impl == "descentlab" and (q.n, q.dtype) == (r.n, r.dtype))
            if ours <= r.rate:
                notes.append(f"descentlab is SLOWER than {r.impl} at {r.dtype} N={r.n:.0e}: "
                             f"{ours / 1e6:.0f} vs {r.rate / 1e6:.0f} M/s")  # fmt: skip
    for dtype, goal in (("float64", 600e6), ("float32", 1800e6)):
        ours = [q.rate for q in rows if q.impl == "descentlab" and q.workload == "rosenbrock-2d"
                and (q.n, q.dtype) == (100_000, dtype)]  # fmt: skip
        if ours and args.steps == 1000:
            verdict = "meets" if ours[0] >= goal else "MISSES"
            notes.append(f"acceptance (issue 2): descentlab {dtype} N=1e5 {ours[0] / 1e6:.0f} M/s {verdict} "
                         f"the goal of {goal / 1e6:.0f} M/s")  # fmt: skip
    if peers:
        notes.append(f"threads: descentlab and torch {_threads()}; NumPy 1 (element-wise ufuncs); "
                     "JAX/XLA its own intra-op pool (all cores)")  # fmt: skip
    for dtype in dtypes:
        for n in args.sizes:
            ours = [q.rate for q in rows if q.impl == "descentlab" and (q.n, q.dtype) == (n, dtype)
                    and q.workload == "rosenbrock-2d"]  # fmt: skip
            theirs = [(q.rate, q.impl) for q in rows if q.impl in PEERS and (q.n, q.dtype) == (n, dtype)
                      and q.workload == "rosenbrock-2d" and math.isfinite(q.rate) and "MISMATCH" not in q.note]
            if ours and theirs:
                best, name = max(theirs)
                ratio = ours[0] / best
                notes.append(f"issue 9 goal (>= 1.4x the best peer): {dtype} N={n:.0e} descentlab / {name} = "
                             f"{ratio:.2f}x ({'meets' if ratio >= 1.4 else 'MISSES'})")  # fmt: skip
    if args.load:
        notes.append(f"measured under load: {args.load} busy background processes (one per core) ran throughout")
    if any("MISMATCH" in r.note for r in rows):
        notes.append("a peer's results differ from descentlab's (see MISMATCH): its timing is not comparable")
    info = {
        "when": time.strftime("%Y-%m-%d %H:%M"),
        "command": command.strip(),
        "machine": machine(),
        "versions": versions(),
        "steps": args.steps,
        "repeats": args.repeats,
        "dtypes": dtypes,
        "notes": notes,
        "load": args.load,
    }
    section = markdown(rows, compile_s, info)
    log("")
    log(section)
    for n in notes:
        log("NOTE: " + n)
    log(f"total {time.perf_counter() - t_all:.0f} s")
    if args.markdown:
        write_markdown(args.markdown, section, args.load)
        log(f"wrote {args.markdown}")
    if args.json:
        raw = [{**r.__dict__, "rate": r.rate} for r in rows]
        args.json.write_text(json.dumps({"info": info, "compile": compile_s, "rows": raw}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
