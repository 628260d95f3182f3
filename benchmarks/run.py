"""Benchmark suite entry point (``make bench``); the suite lives in :mod:`descentlab.bench`.

python benchmarks/run.py [--sizes 1e4,1e5,1e6] [--dtypes float64,float32] [--steps 1000]
                         [--peers numpy,jax,torch] [--quick] [--markdown benchmarks/RESULTS.md]
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from descentlab.bench import main as bench_main

    return bench_main(argv)


if __name__ == "__main__":
    sys.exit(main())
