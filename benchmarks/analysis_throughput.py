"""Analysis throughput: time ``descentlab.analysis.analyze`` on a large run file.

python benchmarks/analysis_throughput.py [--particles 1000000] [--steps 500] [--record-every 100]
                                         [--out /tmp/analysis_bench.h5] [--plots DIR] [--keep]

Simulates Himmelblau + gradient descent from a uniform grid (sqrt(N) x sqrt(N)
starting points) into an HDF5 run file with the store writer (not timed), then
times the analysis of that file: reading it, attractors, Hessians, basin map,
boundary fraction and basin entropy, steps-to-target and ECDF, loss bands,
writing /analysis back, and (with --plots) the figures.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--particles", type=float, default=1e6)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--record-every", type=int, default=100)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--out", type=Path, default=Path("/tmp/analysis_bench.h5"))
    ap.add_argument("--plots", type=Path, default=None)
    ap.add_argument("--keep", action="store_true", help="reuse --out if it exists")
    args = ap.parse_args(argv)

    from descentlab.analysis import analyze
    from descentlab.engine.store import write_run

    side = round(math.sqrt(args.particles))
    spec = {
        "run": {"steps": args.steps, "record_every": args.record_every},
        "landscape": {"name": "himmelblau"},
        "optimizer": {"name": "sgd", "lr": args.lr},
        "init": {"scheme": "grid", "resolution": side},
    }
    if not (args.keep and args.out.exists()):
        t0 = time.perf_counter()
        write_run(spec, args.out, overwrite=True, progress=False)
        print(f"simulated {side * side} particles x {args.steps} steps into {args.out} "
              f"in {time.perf_counter() - t0:.1f} s")  # fmt: skip
    t0 = time.perf_counter()
    ar = analyze(args.out)
    t_an = time.perf_counter() - t0
    print(ar)
    print(f"analyze({args.out.name}): {side * side} particles, {t_an:.2f} s (no figures)")
    if args.plots is not None:
        t0 = time.perf_counter()
        analyze(args.out, args.plots)
        print(f"analyze with figures: {time.perf_counter() - t0:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
