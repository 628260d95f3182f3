"""Sweeps and shards on a Dask LocalCluster of 2 worker processes, 1 thread each (issue 10)."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from descentlab.engine.store import partial_path, write_run
from descentlab.sweeps import expand, open_sweep, run_sharded, run_sweep
from descentlab.sweeps.execute import DaskExecutor

distributed = pytest.importorskip("distributed")

from test_sweep import assert_same_run  # noqa: E402

BASE = {
    "run": {"particles": 64, "steps": 40, "record_every": 10, "seed": 5},
    "landscape": {"name": "himmelblau"},
    "optimizer": {"name": "sgd", "lr": 0.01},
    "init": {"scheme": "uniform", "low": -4.0, "high": 4.0},
    "stop": {"grad_tol": 1e-3},
}
#: 12 points: 3 lr x 2 optimizers x 2 landscapes (4 kernels)
SWEEP12 = {**BASE, "sweep": {"landscape.name": ["quadratic", "himmelblau"], "optimizer.name": ["sgd", "adam"],
                             "optimizer.lr": [0.001, 0.01, 0.05]}}  # fmt: skip


@pytest.fixture(scope="module")
def client():
    env = {"NUMBA_NUM_THREADS": "1", "NUMBA_CACHE_DIR": os.environ.get("NUMBA_CACHE_DIR", "")}
    os.environ.update({k: v for k, v in env.items() if v})
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


def test_dask_sweep_equals_points_run_alone(client, tmp_path: Path) -> None:
    plan = expand(SWEEP12)
    assert len(plan) == 12 and len(plan.kernel_keys()) == 4
    ex = DaskExecutor(client=client, threads=1)
    index = run_sweep(plan, tmp_path / "out", executor=ex, progress=False)
    for p in plan.points:
        alone = write_run(p.spec, tmp_path / f"alone{p.index}.h5", progress=False)
        assert_same_run(tmp_path / "out" / p.file_name, alone)
    with open_sweep(index) as ds:
        assert ds.sizes["point"] == 12
        assert list(ds.point_status.values) == ["complete"] * 12
        assert list(ds["landscape.name"].values[:6]) == ["quadratic"] * 6
        with h5py.File(tmp_path / "out" / plan.points[7].file_name, "r") as f:
            np.testing.assert_array_equal(ds.final_x.values[7], f["final/x"][...])
    # a second run resumes nothing and changes nothing
    mtimes = {p.file_name: (tmp_path / "out" / p.file_name).stat().st_mtime_ns for p in plan.points}
    run_sweep(plan, tmp_path / "out", executor=ex, progress=False, resume=True)
    assert mtimes == {p.file_name: (tmp_path / "out" / p.file_name).stat().st_mtime_ns for p in plan.points}


def test_dask_shards_equal_monolithic(client, tmp_path: Path) -> None:
    spec = {**BASE, "run": {**BASE["run"], "particles": 203}, "optimizer": {"name": "adam", "lr": 0.05}}
    mono = write_run(spec, tmp_path / "mono.h5", progress=False)
    idx = run_sharded(spec, tmp_path / "sh.h5", 4, executor=DaskExecutor(client=client, threads=1), progress=False)
    names = ("init/x", "trajectory/step", "trajectory/x", "trajectory/loss", "final/x", "final/loss",
             "final/grad_norm", "final/status", "final/stop_step", "@spec")  # fmt: skip
    assert_same_run(idx, mono, names)
    from descentlab.analysis import analyze

    a, b = analyze(mono, write=False, label="r"), analyze(idx, write=False, label="r")
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.outcomes["fraction"], b.outcomes["fraction"])


@pytest.mark.slow
def test_worker_killed_mid_sweep_every_point_exactly_once(client, tmp_path: Path) -> None:
    # points long enough (about a second each) that a kill lands inside one; a checkpoint every chunk
    long = {**BASE, "run": {"particles": 256, "steps": 400_000, "record_every": 40_000, "seed": 9},
            "stop": {"grad_tol": 0.0},
            "sweep": {"optimizer.name": ["sgd", "adam"], "optimizer.lr": [1e-5, 2e-5, 3e-5]}}  # fmt: skip
    plan = expand(long)
    out = tmp_path / "out"
    ex = DaskExecutor(client=client, threads=1)
    done: list[BaseException | None] = []

    def go() -> None:
        try:
            run_sweep(plan, out, executor=ex, progress=False, chunk_steps=40_000, checkpoint_every=0)
            done.append(None)
        except BaseException as exc:
            done.append(exc)

    th = threading.Thread(target=go)
    th.start()
    # wait until a point is half-way (a partial file with a checkpoint), then SIGKILL the worker running it
    victim = None
    deadline = time.time() + 60
    while victim is None and time.time() < deadline:
        for p in plan.points:
            tmp = partial_path(out / p.file_name)
            try:
                with h5py.File(tmp, "r", locking=False) as f:
                    step = int(f["checkpoint"].attrs["step"])
            except (OSError, KeyError):
                continue
            if 0 < step < 400_000:
                processing = client.processing()
                pids = client.run(os.getpid)
                for addr, keys in processing.items():
                    if any(f"point-{p.index}-" in str(k) for k in keys):
                        victim = (pids[addr], p)
                break
        time.sleep(0.05)
    assert victim is not None, "no point was caught mid-run"
    os.kill(victim[0], signal.SIGKILL)
    th.join(timeout=120)
    assert done == [None]
    names = sorted(q.name for q in out.iterdir())
    assert names == sorted([p.file_name for p in plan.points] + ["sweep.h5"])  # no duplicates, no partials
    for p in plan.points:
        alone = write_run(p.spec, tmp_path / f"alone{p.index}.h5", progress=False)
        assert_same_run(out / p.file_name, alone)
    with open_sweep(out) as ds:
        assert list(ds.point_status.values) == ["complete"] * len(plan)
        assert len(set(ds.file.values)) == len(plan)


@pytest.mark.slow
def test_cli_sweep_dask_local_resumes_a_stopped_sweep(tmp_path: Path) -> None:
    from test_sweep import TOML, call

    spec = tmp_path / "s.toml"
    spec.write_text(TOML)
    plan = expand(spec)
    out = tmp_path / "out"
    out.mkdir()

    class Stop(Exception):
        pass

    def stop(step: int) -> None:
        raise Stop

    # stopped: point 2 half-way (a checkpoint), the others not started
    with pytest.raises(Stop):
        write_run(plan.points[2].spec, out / plan.points[2].file_name, chunk_steps=10, checkpoint_every=0,
                  progress=False, on_checkpoint=stop)  # fmt: skip
    rc, stdout, err = call("sweep", str(spec), "-o", str(out), "--resume", "--dask", "local", "--workers", "2",
                           "--threads", "1")  # fmt: skip
    assert rc == 0, err
    assert "4 point(s), 2 distinct kernel(s)" in stdout
    assert not partial_path(out / plan.points[2].file_name).exists()
    for p in plan.points:
        alone = write_run(p.spec, tmp_path / f"alone{p.index}.h5", progress=False)
        assert_same_run(out / p.file_name, alone)
    rc, _, err = call("sweep", str(spec), "-o", str(out), "--dask", "tcp", "-q", "--resume")
    assert rc == 2 and "--dask" in err
