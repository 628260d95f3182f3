"""Kernels from Numba's on-disk cache are the kernels asked for, across processes.

The defect this guards against (issue 9): Numba links called functions by name,
with a per-process counter in the name; closures share a name, so two kernels
compiled in *different* processes exported the same symbol, and once both were
loaded from the cache into one process, "Adam" ran SGD's code. It appeared only
on the third process of a fresh cache, so the tests here run several processes
on one fresh cache, in several orders, one after another and at the same time,
and compare every result bit for bit with the same pair run alone on a private cache.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

WORKER = Path(__file__).with_name("_cache_worker.py")


def _run(cache: Path, out: Path, pairs: list[str]) -> subprocess.Popen[bytes]:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "NUMBA_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(WORKER), str(out), *pairs], env=env, stderr=subprocess.PIPE)


def _wait(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        _, err = p.communicate(timeout=900)
        assert p.returncode == 0, err.decode()[-3000:]


def _alone(tmp: Path, pairs: list[str], at_once: int) -> dict[str, dict[str, np.ndarray]]:
    """Each pair in its own process with its own empty cache (``at_once`` processes at a time)."""
    outs = {pair: tmp / f"alone-{i}.npz" for i, pair in enumerate(pairs)}
    items = list(outs.items())
    for k in range(0, len(items), at_once):
        _wait([_run(tmp / f"cache-alone-{k + j}", out, [pair]) for j, (pair, out) in enumerate(items[k : k + at_once])])
    return {pair: dict(np.load(out)) for pair, out in outs.items()}


def _same(got: Path, alone: dict[str, dict[str, np.ndarray]], pairs: list[str], where: str) -> None:
    data = np.load(got)
    for pair in pairs:
        for key, value in alone[pair].items():
            np.testing.assert_array_equal(data[f"{pair}:{key.split(':')[-1]}"], value, err_msg=f"{where}: {pair} {key}")


def _check(tmp: Path, pairs: list[str], orders: list[list[str]], concurrent_orders: list[list[str]],
           at_once: int = 2) -> None:  # fmt: skip
    alone = _alone(tmp, pairs, at_once)
    # different pairs must give different results, or the comparison could not fail
    finals = [alone[p][f"{p}:final_x"].tobytes() for p in pairs]
    assert len(set(finals)) == len(finals)
    shared = tmp / "cache-shared"
    for i, order in enumerate(orders):  # one after another: later processes load what earlier ones compiled
        _wait([_run(shared, tmp / f"seq-{i}.npz", order)])
        _same(tmp / f"seq-{i}.npz", alone, order, f"process {i + 1} of a shared cache, order {order}")
    concurrent = tmp / "cache-concurrent"
    procs = [_run(concurrent, tmp / f"con-{i}.npz", order) for i, order in enumerate(concurrent_orders)]
    _wait(procs)
    for i, order in enumerate(concurrent_orders):
        _same(tmp / f"con-{i}.npz", alone, order, f"concurrent process {i + 1}, order {order}")
    # and once more, everything from the cache the concurrent writers left
    _wait([_run(concurrent, tmp / "after.npz", orders[-1])])
    _same(tmp / "after.npz", alone, orders[-1], "after concurrent writers")


def test_cached_kernels_are_the_requested_ones_across_processes(tmp_path: Path) -> None:
    """Issue 9's scenario: momentum, then Adam (and RMSprop) in several processes on one fresh cache."""
    momentum, adam, rmsprop = pairs = ["quadratic:momentum", "quadratic:adam", "quadratic:rmsprop"]
    # the script (momentum, then Adam) showed the defect on the third process; then other orders,
    # and two processes that compile concurrently into one empty cache
    orders = [[momentum, adam]] * 3 + [[rmsprop, adam, momentum]]
    _check(tmp_path, pairs, orders, [[momentum, adam, rmsprop], [rmsprop, momentum, adam]], at_once=3)


@pytest.mark.slow
def test_sweep_of_first_order_optimizers_on_two_landscapes(tmp_path: Path) -> None:
    """Every first-order optimizer on two landscapes: in one process and in 4 concurrent ones."""
    opts = ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw", "langevin"]
    pairs = [f"{land}:{opt}" for land in ("quadratic", "rosenbrock") for opt in opts]
    rng = np.random.default_rng(0)
    orders = [pairs, pairs[::-1], *[list(rng.permutation(pairs)) for _ in range(2)]]
    _check(tmp_path, pairs, orders, orders)


def test_a_compile_is_announced_with_what_it_compiled(tmp_path: Path) -> None:
    """On an empty cache the API logs 'compiling ... - first use' and then what took how long, named for a
    reader (no cache hashes); from the cache it logs no compile."""
    code = ("import logging, sys; logging.basicConfig(level=logging.INFO, stream=sys.stdout, format='%(message)s'); "
            "import descentlab as dl; dl.simulate({'run': {'particles': 64, 'steps': 5, 'seed': 1}, "
            "'landscape': {'name': 'himmelblau'}, 'optimizer': {'name': 'adam', 'lr': 0.01}})")  # fmt: skip
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    first = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "compiling himmelblau x adam (float64) - first use, cached afterwards" in first.stdout
    line = next(x for x in first.stdout.splitlines() if x.startswith("compiled himmelblau x adam (float64) in "))
    for part in ("block loop", "value (himmelblau_value)", "gradient", "no-op Hessian", "step (adam_step)"):
        assert part in line, line
    assert not re.search(r"[0-9a-f]{12}", line), line
    again = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "compil" not in again.stdout, again.stdout
