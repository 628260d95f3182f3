"""A/B of the engine against an earlier revision of itself, in one process, interleaved.

Both packages are imported side by side: the earlier one renamed ``descentlab_old``.
Prepare it once (REV: the revision to compare with, e.g. cbc50d3)::

    git worktree add /tmp/old REV
    mkdir -p /tmp/oldpkg && cp -r /tmp/old/src/descentlab /tmp/oldpkg/descentlab_old
    grep -rl 'descentlab' /tmp/oldpkg/descentlab_old | xargs sed -i \\
        's/descentlab\\./descentlab_old./g; s/"descentlab"/"descentlab_old"/g'

then, for Adam on a landscape (5 interleaved rounds, best of each; results compared bit for bit)::

    NUMBA_NUM_THREADS=2 python benchmarks/ab_engine.py LANDSCAPE DIM DTYPE N STEPS [--old /tmp/oldpkg]

It prints one Markdown row: landscape | D | dtype | N | T | before | now | now / before | results.
"""

from __future__ import annotations

import argparse
import sys
import time


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("landscape")
    p.add_argument("dim", type=int)
    p.add_argument("dtype", choices=["float64", "float32"])
    p.add_argument("n", type=float)
    p.add_argument("steps", type=int)
    p.add_argument("--old", default="/tmp/oldpkg", help="folder holding the package descentlab_old")
    p.add_argument("--rounds", type=int, default=5)
    a = p.parse_args(argv)
    sys.path.insert(0, a.old)
    import numpy as np

    import descentlab.engine.run as new_run
    import descentlab.engine.spec as new_spec

    old_run = __import__("descentlab_old.engine.run", fromlist=["run"])
    old_spec = __import__("descentlab_old.engine.spec", fromlist=["spec"])
    n = int(a.n)
    spec = {"run": {"particles": n, "steps": a.steps, "record_every": a.steps, "dtype": a.dtype, "seed": 0},
            "landscape": {"name": a.landscape, "dim": a.dim}, "optimizer": {"name": "adam", "lr": 1e-3},
            "stop": {"grad_tol": 1e-8}}  # fmt: skip
    impls = {"before": (old_run, old_spec), "now": (new_run, new_spec)}
    for r, s in impls.values():  # compile or load first
        r.Simulation(s.parse_spec(spec)).advance(2)
    best = {k: 0.0 for k in impls}
    finals = {}
    for _ in range(a.rounds):
        for name, (r, s) in impls.items():
            sim = r.Simulation(s.parse_spec(spec))
            t = time.perf_counter()
            sim.advance(a.steps)
            best[name] = max(best[name], n * a.steps / (time.perf_counter() - t) / 1e6)
            finals[name] = sim.x.copy()
    same = "bit-identical" if np.array_equal(finals["before"], finals["now"]) else "DIFFERENT"
    print(f"| {a.landscape} | {a.dim} | {a.dtype} | {n:.0e} | {a.steps} | {best['before']:.1f} | {best['now']:.1f} "
          f"| {best['now'] / best['before']:.2f} | {same} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
