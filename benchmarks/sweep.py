"""Sweep overhead (issue 10): a 64-point sweep vs one run of the same particle-steps.

64 points = 2 landscapes (himmelblau, quadratic) x 2 optimizers (sgd, adam) x 16 lr,
each ``--particles`` particles x ``--steps`` steps (every particle runs every
step: grad_tol = 0, stable lr). Baselines: one run of 64 x particles of
himmelblau x adam, and four runs (one per landscape x optimizer) of 16 x particles
each - the same mixture of work as the sweep. Kernels are warmed first (a tiny
sweep) so the timed sweep loads them from the disk cache; the first, cold sweep's
compile share is reported separately. The local executor runs these small points
several at once (one thread each); the same sweep one point at a time on all
threads is timed beside it. Then the same sweep on a 2-worker
``LocalCluster`` (1 thread each; cluster start-up timed apart).

python benchmarks/sweep.py [--particles 10000] [--steps 1000] [--dask]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from descentlab.engine.store import write_run
from descentlab.sweeps import expand, run_sweep
from descentlab.sweeps.execute import DaskExecutor, LocalExecutor, Task


def base(particles: int, steps: int) -> dict:
    return {
        "run": {"particles": particles, "steps": steps, "record_every": steps, "seed": 1},
        "landscape": {"name": "himmelblau"},
        "optimizer": {"name": "adam", "lr": 1e-3},
        "init": {"scheme": "uniform", "low": -4.0, "high": 4.0},
        "stop": {"grad_tol": 0.0},
    }


def grid(particles: int, steps: int) -> dict:
    lrs = [float(x) for x in np.logspace(-4, -2, 16)]
    return {**base(particles, steps), "sweep": {"landscape.name": ["himmelblau", "quadratic"],
                                                "optimizer.name": ["sgd", "adam"], "optimizer.lr": lrs}}  # fmt: skip


def tasks_of(plan: object) -> list[Task]:
    return [Task(str(p.index), p.spec, p.file_name, run=p.run) for p in plan.points]  # type: ignore[attr-defined]


def compile_share(directory: Path) -> float:
    total = 0.0
    for p in directory.glob("point*.h5"):
        with h5py.File(p, "r") as f:
            total += float(f.attrs.get("compile_time", 0.0))
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--particles", type=int, default=10_000)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--dask", action="store_true")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="dl-sweep-bench-"))
    try:
        plan = expand(grid(a.particles, a.steps))
        t = time.perf_counter()
        run_sweep(expand(grid(64, 10)), tmp / "warm", progress=False)
        print(f"warm-up sweep (64 x 64 particles x 10 steps; compiles or loads 4 kernels): "
              f"{time.perf_counter() - t:.2f} s, compile/load {compile_share(tmp / 'warm'):.2f} s")  # fmt: skip
        t = time.perf_counter()
        run_sweep(plan, tmp / "local", progress=False)
        t_sweep = time.perf_counter() - t
        t = time.perf_counter()
        write_run(base(64 * a.particles, a.steps), tmp / "one.h5", progress=False)
        t_one = time.perf_counter() - t
        t = time.perf_counter()
        for land in ("himmelblau", "quadratic"):
            for opt in ("sgd", "adam"):
                s = base(16 * a.particles, a.steps)
                s["landscape"]["name"], s["optimizer"]["name"] = land, opt
                write_run(s, tmp / f"four-{land}-{opt}.h5", progress=False)
        t_four = time.perf_counter() - t
        ps = 64 * a.particles * a.steps
        print(f"local sweep, 64 points x {a.particles} x {a.steps}: {t_sweep:.2f} s "
              f"({ps / t_sweep / 1e6:.0f} M particle-steps/s; kernels loaded {compile_share(tmp / 'local'):.2f} s)")
        print(f"one run of {64 * a.particles} particles (himmelblau x adam): {t_one:.2f} s "
              f"-> ratio {t_sweep / t_one:.2f}")  # fmt: skip
        print(f"four runs of {16 * a.particles} (one per landscape x optimizer): {t_four:.2f} s "
              f"-> ratio {t_sweep / t_four:.2f}")  # fmt: skip
        t = time.perf_counter()
        run_sweep(plan, tmp / "serial", executor=LocalExecutor(at_once=1), progress=False)
        t_serial = time.perf_counter() - t
        print(f"local sweep, one point at a time on all threads: {t_serial:.2f} s -> ratio {t_serial / t_one:.2f} "
              f"(the default runs these small points {LocalExecutor()._plan(tasks_of(plan))[0]} at once)")
        if a.dask:
            t = time.perf_counter()
            ex = DaskExecutor("local", workers=2, threads=1)
            t_start = time.perf_counter() - t
            try:
                t = time.perf_counter()
                run_sweep(plan, tmp / "dask", executor=ex, progress=False)
                t_dask = time.perf_counter() - t
            finally:
                ex.close()
            print(f"dask LocalCluster 2 workers x 1 thread: {t_dask:.2f} s (+ {t_start:.2f} s cluster start; "
                  f"kernels compiled/loaded in workers {compile_share(tmp / 'dask'):.2f} s)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
