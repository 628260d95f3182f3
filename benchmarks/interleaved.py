"""descentlab and JAX's direct form run in turns in one process, optionally beside busy processes.

The suite (``run.py``) reports the best of a few runs per implementation, one implementation
after the other. Under load, short runs (N = 1e4 is 10-40 ms) depend on how the OS happens to
schedule each one, so this script alternates the two for many rounds and reports the best and
the median of each (Rosenbrock + Adam, D = 2, ``stop.grad_tol = 1e-8``, descentlab's general
path; JAX: the suite's ``jax-direct`` peer from the same initial positions)::

    NUMBA_NUM_THREADS=2 python benchmarks/interleaved.py [--n 1e4] [--dtype float64] [--load 2] [--rounds 15]

Prints one line: M particle-steps/s, (best, median) per implementation.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=float, default=1e4, help="particles (default 1e4)")
    p.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--load", type=int, default=0, metavar="K", help="K busy background processes meanwhile")
    p.add_argument("--rounds", type=int, default=15)
    a = p.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import suite
    from descentlab.engine.run import Simulation
    from descentlab.engine.spec import parse_spec

    n = int(a.n)
    spec = parse_spec({"run": {"particles": n, "steps": a.steps, "record_every": a.steps, "dtype": a.dtype, "seed": 0},
                       "landscape": {"name": "rosenbrock"}, "optimizer": {"name": "adam", "lr": 1e-3},
                       "stop": {"grad_tol": 1e-8}})  # fmt: skip
    rates: dict[str, list[float]] = {"jax-direct": [], "descentlab": []}
    with suite.BackgroundLoad(a.load):  # started before JAX's threads exist (fork)
        Simulation(spec).advance(2)  # compile or load first
        jax_run = suite.jax_direct_peer(Simulation(spec).init_x.copy(), a.steps, a.dtype)
        jax_run()  # compiles
        time.sleep(0.5)
        for _ in range(a.rounds):
            t = time.perf_counter()
            jax_run()
            rates["jax-direct"].append(n * a.steps / (time.perf_counter() - t) / 1e6)
            time.sleep(0.05)
            sim = Simulation(spec)
            t = time.perf_counter()
            sim.advance(a.steps)
            rates["descentlab"].append(n * a.steps / (time.perf_counter() - t) / 1e6)
            time.sleep(0.05)
    cells = ", ".join(f"{k} {max(v):.0f} / {statistics.median(v):.0f}" for k, v in rates.items())
    print(f"N={n:.0e} {a.dtype} load={a.load} rounds={a.rounds} (best / median M particle-steps/s): {cells}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
