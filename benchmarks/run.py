"""Benchmark suite entry point (``make bench``, ``descentlab bench``); the suite lives in ``benchmarks/suite.py``.

python benchmarks/run.py [--sizes 1e4,1e5,1e6] [--dtypes float64,float32] [--steps 1000]
                         [--peers numpy,jax,torch] [--quick] [--markdown benchmarks/RESULTS.md]
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from suite import main as bench_main

    return bench_main(argv)


if __name__ == "__main__":
    sys.exit(main())
