"""Sweeps and sharded runs (issue 10): spec expansion, index files, xarray, resume, shards."""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest

import descentlab as dl
from descentlab.cli import main
from descentlab.engine.spec import SpecError
from descentlab.engine.store import partial_path, write_run
from descentlab.sweeps import expand, open_sweep, run_sharded, run_sweep, shard_ranges

BASE = {
    "run": {"particles": 64, "steps": 40, "record_every": 10, "seed": 3},
    "landscape": {"name": "himmelblau"},
    "optimizer": {"name": "sgd", "lr": 0.01},
    "init": {"scheme": "uniform", "low": -5.0, "high": 5.0},
    "stop": {"grad_tol": 1e-3},
}
SWEEP = {
    **BASE,
    "sweep": {
        "optimizer.lr": [0.002, 0.02],
        "zip": [{"optimizer.name": ["sgd", "adam"], "optimizer.momentum": [0.9, "-"]}],
    },
}
TOML = """
[run]
particles = 64
steps = 40
record_every = 10
seed = 3
[landscape]
name = "himmelblau"
[optimizer]
name = "sgd"
lr = 0.01
[init]
scheme = "uniform"
low = -5.0
high = 5.0
[stop]
grad_tol = 1e-3
[sweep]
"optimizer.lr" = [0.002, 0.02]
[[sweep.zip]]
"optimizer.name" = ["sgd", "adam"]
"optimizer.momentum" = [0.9, "-"]
"""
#: Attributes that legitimately differ between two runs of the same spec.
TIME_ATTRS = {"created", "finished", "wall_time", "compile_time"}


def call(*args: str) -> tuple[int, str, str]:
    o, e = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e):
        rc = main(list(args))
    return rc, o.getvalue(), e.getvalue()


def run_contents(path: Path, with_checkpoint: bool = False) -> dict[str, np.ndarray]:
    """Every dataset of a run file (not /checkpoint unless asked), and the spec attribute."""
    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: out.__setitem__(n, o[...]) if isinstance(o, h5py.Dataset) else None)
        out["@spec"] = np.array(f.attrs["spec"])
        assert bool(f.attrs["complete"])
    return {k: v for k, v in out.items() if with_checkpoint or not k.startswith("checkpoint/")}


def assert_same_run(a: Path, b: Path, names: tuple[str, ...] | None = None) -> None:
    ca, cb = run_contents(a), run_contents(b)
    keys = set(names) if names else set(ca) | set(cb)
    for k in sorted(keys):
        assert k in ca and k in cb, k
        assert ca[k].dtype == cb[k].dtype and ca[k].shape == cb[k].shape, k
        assert np.array_equal(ca[k], cb[k], equal_nan=ca[k].dtype.kind == "f"), k


# ----------------------------------------------------------------------------- spec expansion


def test_expand_product_zip_and_absent_keys() -> None:
    plan = expand(SWEEP)
    assert len(plan) == 4
    assert [p.axes for p in plan.points] == [
        {"optimizer.lr": 0.002, "optimizer.name": "sgd", "optimizer.momentum": 0.9},
        {"optimizer.lr": 0.002, "optimizer.name": "adam", "optimizer.momentum": "-"},
        {"optimizer.lr": 0.02, "optimizer.name": "sgd", "optimizer.momentum": 0.9},
        {"optimizer.lr": 0.02, "optimizer.name": "adam", "optimizer.momentum": "-"},
    ]
    assert plan.points[0].resolved["optimizer"]["momentum"] == 0.9
    assert plan.points[1].resolved["optimizer"]["name"] == "adam" and "momentum" not in plan.points[1].spec["optimizer"]
    assert plan.points[3].resolved["optimizer"]["lr"] == 0.02
    # points that differ only in numbers share a kernel: sgd and adam on one landscape -> 2
    assert len(plan.kernel_keys()) == 2
    assert len({p.file_name for p in plan.points}) == 4
    assert all(p.file_name.startswith(f"point{p.index:04d}-") for p in plan.points)


def test_expand_overrides_and_list_index(tmp_path: Path) -> None:
    overrides = [
        {"when": {"optimizer.name": "adam"}, "set": {"optimizer.betas": [0.8, 0.99]}},
        {"when": {"optimizer.name": "sgd"}, "set": {"optimizer.nesterov": True, "optimizer.momentum": 0.5}},
    ]
    spec = {**BASE, "sweep": {"optimizer.name": ["sgd", "adam"], "override": overrides}}
    plan = expand(spec)
    assert plan.points[1].resolved["optimizer"]["betas"] == [0.8, 0.99]
    assert plan.points[0].resolved["optimizer"]["nesterov"] is True
    assert plan.points[0].resolved["optimizer"]["momentum"] == 0.5
    sw = {**BASE, "optimizer": {"name": "switch", "phases": [{"name": "sgd", "lr": 0.01, "steps": 10},
                                                                {"name": "adam", "lr": 0.01}]},
          "sweep": {"optimizer.phases.1.lr": [0.1, 0.2]}}
    plan = expand(sw)
    assert [p.resolved["optimizer"]["phases"][1]["lr"] for p in plan.points] == [0.1, 0.2]
    p = tmp_path / "s.toml"
    p.write_text(TOML)
    assert [q.hash for q in expand(p).points] == [q.hash for q in expand(SWEEP).points]


@pytest.mark.parametrize(
    ("sweep", "message"),
    [
        ({"optimizer.lr": [0.1, -1.0]}, "sweep point 1 (optimizer.lr=-1.0): optimizer.lr: must be > 0"),
        ({"optimizer.name": ["sgd", "adam"], "optimizer.momentum": [0.0, 0.9]},
         "sweep point 2 (optimizer.name='adam', optimizer.momentum=0.0): optimizer.momentum: optimizer 'adam' has no"),
        ({"zip": [{"optimizer.lr": [0.1, 0.2], "run.seed": [1]}]}, "sweep.zip.0: axes that move together"),
        ({"optimiser.lr": [0.1]}, "sweep.optimiser.lr: an axis is a dotted key"),
        ({"optimizer.lr": []}, "sweep.optimizer.lr: expected a non-empty list"),
        ({"optimizer.lr": [0.1], "override": [{"when": {"optimizer.lr": 0.5}, "set": {"run.seed": 1}}]},
         "sweep.override.0: `when`"),
        ({"optimizer.lr": [0.1], "override": [{"when": {"run.seed": 0}, "set": {"run.seed": 1}}]},
         "sweep.override.0.when.run.seed: not an axis"),
    ],
)
def test_bad_sweeps_name_point_and_field(sweep: dict, message: str) -> None:
    with pytest.raises(SpecError) as err:
        expand({**BASE, "sweep": sweep})
    assert message in str(err.value)


def test_cli_bad_point_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    spec = tmp_path / "bad.toml"
    spec.write_text(TOML.replace('"optimizer.lr" = [0.002, 0.02]', '"optimizer.lr" = [0.002, -0.02]'))
    out = tmp_path / "out"
    rc, _, err = call("sweep", str(spec), "-o", str(out), "-q")
    assert rc == 2
    assert "sweep point 2 (optimizer.lr=-0.02, optimizer.name='sgd', optimizer.momentum=0.9): optimizer.lr" in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


# ----------------------------------------------------------------------------- local sweeps


def test_sweep_in_memory_equals_points_run_alone() -> None:
    ds = dl.sweep(SWEEP, trajectory=True)
    plan = expand(SWEEP)
    assert ds.sizes["point"] == 4 and ds.final_x.dims == ("point", "particle", "dim")
    assert list(ds["optimizer.name"].values) == ["sgd", "adam", "sgd", "adam"]
    np.testing.assert_array_equal(ds["optimizer.lr"].values, [0.002, 0.002, 0.02, 0.02])
    for p in plan.points:
        res = dl.simulate(p.spec)
        np.testing.assert_array_equal(ds.final_x.values[p.index], res.final_x)
        np.testing.assert_array_equal(ds.trajectory_loss.values[p.index], res.trajectory_loss)
        np.testing.assert_array_equal(ds.final_status.values[p.index], res.status)
        finite = res.final_loss[np.isfinite(res.final_loss)]
        np.testing.assert_array_equal(ds.loss_quantile.values[p.index], np.quantile(finite, ds["quantile"].values))
        assert ds.status_count.values[p.index].sum() == 64
        assert ds.success_rate.values[p.index] == np.mean(res.status == 1)
    # adam and sgd differ, so the test can fail
    assert not np.array_equal(ds.final_x.values[0], ds.final_x.values[1])
    # selection by axis value works on the coordinates
    sel = ds.where(ds["optimizer.name"] == "adam", drop=True)
    assert sel.sizes["point"] == 2


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    d = tmp_path_factory.mktemp("sweep")
    (d / "s.toml").write_text(TOML)
    rc, out, err = call("sweep", str(d / "s.toml"), "-o", str(d / "out"))
    assert rc == 0, err
    return d / "out", out


def test_cli_sweep_writes_point_files_and_index(swept: tuple[Path, str]) -> None:
    out, stdout = swept
    plan = expand(SWEEP)
    assert "4 point(s), 2 distinct kernel(s)" in stdout
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([p.file_name for p in plan.points] + ["sweep.h5"])
    ds = open_sweep(out)
    try:
        assert dict(ds.sizes) == {"point": 4, "particle": 64, "dim": 2, "quantile": 7, "status": 4, "record": 5}
        for axis in ("optimizer.lr", "optimizer.name", "optimizer.momentum", "file", "point_status"):
            assert axis in ds.coords and ds.coords[axis].dims == ("point",)
        assert list(ds.point_status.values) == ["complete"] * 4
        assert ds.attrs["complete"]
        assert ds.trajectory_x.dims == ("point", "particle", "record", "dim")
        np.testing.assert_array_equal(ds.step.values, [0, 10, 20, 30, 40])
        mem = dl.sweep(SWEEP)
        for name in ("final_x", "final_loss", "final_grad_norm", "final_status", "final_stop_step", "init_x",
                     "loss_quantile", "status_count", "success_rate", "steps_to_target"):
            np.testing.assert_array_equal(ds[name].values, mem[name].values, err_msg=name)
        for p in plan.points:
            assert ds.file.values[p.index] == p.file_name
            with h5py.File(out / p.file_name, "r") as f:
                np.testing.assert_array_equal(ds.trajectory_x.values[p.index], f["trajectory/x"][...])
    finally:
        ds.close()
    rc, stdout, err = call("info", str(out))
    assert rc == 0, err
    assert "descentlab sweep, 4 points (4 complete)" in stdout
    assert stdout.count("complete  point") == 4


def test_sweep_files_identical_to_points_run_alone(swept: tuple[Path, str], tmp_path: Path) -> None:
    out, _ = swept
    for p in expand(SWEEP).points:
        alone = tmp_path / f"alone{p.index}.h5"
        write_run(p.spec, alone, progress=False)
        assert_same_run(out / p.file_name, alone)


def test_sweep_refuses_existing_dir_then_resumes(swept: tuple[Path, str], tmp_path: Path) -> None:
    out0, _ = swept
    plan = expand(SWEEP)
    out = tmp_path / "out"
    out.mkdir()
    # a stopped sweep: point 0 complete, point 1 partial (stopped after a checkpoint), 2 and 3 not started
    import shutil

    shutil.copy(out0 / plan.points[0].file_name, out / plan.points[0].file_name)
    mtime0 = (out / plan.points[0].file_name).stat().st_mtime_ns

    class Stop(Exception):
        pass

    def stop(step: int) -> None:
        raise Stop

    with pytest.raises(Stop):
        write_run(plan.points[1].spec, out / plan.points[1].file_name, chunk_steps=10, checkpoint_every=0,
                  progress=False, on_checkpoint=stop)
    assert partial_path(out / plan.points[1].file_name).exists()
    (tmp_path / "s.toml").write_text(TOML)
    rc, _, err = call("sweep", str(tmp_path / "s.toml"), "-o", str(out), "-q")
    assert rc == 2 and "--resume" in err
    rc, _, err = call("sweep", str(tmp_path / "s.toml"), "-o", str(out), "-q", "--resume")
    assert rc == 0, err
    assert (out / plan.points[0].file_name).stat().st_mtime_ns == mtime0  # skipped
    assert not partial_path(out / plan.points[1].file_name).exists()
    for p in plan.points:
        assert_same_run(out / p.file_name, out0 / p.file_name)
    with h5py.File(out / "sweep.h5", "r") as f:
        assert [s.decode() for s in f["point_status"][...]] == ["complete"] * 4
    # a different sweep spec cannot resume this directory
    (tmp_path / "t.toml").write_text(TOML.replace("[0.002, 0.02]", "[0.002, 0.03]"))
    rc, _, err = call("sweep", str(tmp_path / "t.toml"), "-o", str(out), "-q", "--resume")
    assert rc == 2 and "another spec" in err


def test_index_with_points_of_different_shapes(tmp_path: Path) -> None:
    spec = {**BASE, "sweep": {"run.particles": [16, 32]}}
    index = run_sweep(spec, tmp_path / "out", progress=False)
    ds = open_sweep(index)
    try:
        assert "final_x" not in ds and ds.sizes["point"] == 2
        np.testing.assert_array_equal(ds.status_count.values.sum(axis=1), [16, 32])
        np.testing.assert_array_equal(ds["run.particles"].values, [16, 32])
    finally:
        ds.close()
    mem = dl.sweep(spec)
    assert "final_x" not in mem
    np.testing.assert_array_equal(mem.status_count.values.sum(axis=1), [16, 32])


def test_list_valued_axis_is_a_text_coordinate() -> None:
    spec = {**BASE, "optimizer": {"name": "adam", "lr": 0.01},
            "sweep": {"optimizer.betas": [[0.9, 0.999], [0.5, 0.9]]}}  # fmt: skip
    ds = dl.sweep(spec)
    assert list(ds["optimizer.betas"].values) == ["[0.9, 0.999]", "[0.5, 0.9]"]
    assert not np.array_equal(ds.final_x.values[0], ds.final_x.values[1])


def test_task_is_idempotent_and_survives_a_garbage_partial(tmp_path: Path) -> None:
    from descentlab.sweeps.execute import run_task

    out = tmp_path / "p.h5"
    partial_path(out).write_bytes(b"killed before the superblock")
    res = run_task(BASE, str(out))
    assert not res["skipped"] and not partial_path(out).exists()
    ref = write_run(BASE, tmp_path / "ref.h5", progress=False)
    assert_same_run(out, ref)
    mtime = out.stat().st_mtime_ns
    assert run_task(BASE, str(out))["skipped"] and out.stat().st_mtime_ns == mtime


# ----------------------------------------------------------------------------- shards


def test_shard_ranges_tile() -> None:
    assert shard_ranges(10, 3) == [(0, 3), (3, 6), (6, 10)]
    assert shard_ranges(4, 4) == [(0, 1), (1, 2), (2, 3), (3, 4)]


def test_sharded_run_equals_monolithic(tmp_path: Path) -> None:
    spec = {**BASE, "run": {**BASE["run"], "particles": 101}}
    mono = write_run(spec, tmp_path / "mono.h5", progress=False)
    toml = tmp_path / "s.toml"
    toml.write_text(TOML.split("[sweep]")[0].replace("particles = 64", "particles = 101"))
    rc, out, err = call("run", str(toml), "-o", str(tmp_path / "sh.h5"), "--shards", "3")
    assert rc == 0, err
    assert "101 particles" in out
    shards = sorted(p.name for p in tmp_path.glob("sh.shard*"))
    assert shards == ["sh.shard000-of-003.h5", "sh.shard001-of-003.h5", "sh.shard002-of-003.h5"]
    with h5py.File(tmp_path / "sh.shard001-of-003.h5", "r") as f:
        assert (int(f.attrs["particle_start"]), int(f.attrs["particle_stop"])) == (33, 67)
    names = ("init/x", "init/particle", "trajectory/step", "trajectory/x", "trajectory/loss", "trajectory/particle",
             "final/x", "final/loss", "final/grad_norm", "final/status", "final/stop_step", "@spec")
    assert_same_run(tmp_path / "sh.h5", mono, names)
    with dl.open_run(tmp_path / "sh.h5") as f:
        assert f.complete and f.shape == (101, 5, 2)
        assert f.status_counts() == dl.open_run(mono).status_counts()
    import xarray as xr

    with xr.open_dataset(tmp_path / "sh.h5", group="trajectory", engine="h5netcdf") as ds:
        assert ds.x.dims == ("particle", "record", "dim") and ds.sizes["particle"] == 101
    rc, out, _ = call("info", str(tmp_path / "sh.h5"))
    assert rc == 0 and "complete" in out
    # the existing files are not replaced without --resume / --overwrite
    rc, _, err = call("run", str(toml), "-o", str(tmp_path / "sh.h5"), "--shards", "3")
    assert rc == 2 and "exists" in err
    rc, _, err = call("run", str(toml), "-o", str(tmp_path / "sh.h5"), "--shards", "3", "--resume", "-q")
    assert rc == 0, err


def test_analyze_of_shard_index_equals_single_file(tmp_path: Path) -> None:
    from descentlab.analysis import analyze

    spec = {**BASE, "run": {**BASE["run"], "particles": 128, "steps": 400, "record_every": 100},
            "optimizer": {"name": "adam", "lr": 0.05}}  # fmt: skip
    mono = write_run(spec, tmp_path / "mono.h5", progress=False)
    idx = run_sharded(spec, tmp_path / "sh.h5", 4, progress=False)
    a, b = analyze(mono, label="run"), analyze(idx, label="run")
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.outcomes["fraction"], b.outcomes["fraction"])
    assert a.attractors.n >= 2  # himmelblau: several basins, so the comparison means something
    a.summary.pop("path"), b.summary.pop("path")
    assert json.dumps(a.summary, sort_keys=True) == json.dumps(b.summary, sort_keys=True)
    rc, _, err = call("analyze", str(idx))
    assert rc == 0, err


def test_sharded_resume_refuses_other_range(tmp_path: Path) -> None:
    spec = {**BASE, "run": {**BASE["run"], "particles": 64}}

    class Stop(Exception):
        pass

    def stop(step: int) -> None:
        raise Stop

    out = tmp_path / "x.h5"
    with pytest.raises(Stop):
        write_run(spec, out, chunk_steps=10, checkpoint_every=0, progress=False, on_checkpoint=stop, particles=(0, 32))
    with pytest.raises(Exception, match="particles"):
        write_run(spec, out, resume=True, particles=(32, 64), progress=False)
    write_run(spec, out, resume=True, particles=(0, 32), progress=False)
    assert os.path.exists(out)


# ----------------------------------------------------------------------------- sweep analysis


def test_analyze_sweep_directory_basins_and_figures(tmp_path: Path) -> None:
    spec = {**BASE, "run": {**BASE["run"], "particles": 128, "steps": 300, "record_every": 100},
            "optimizer": {"name": "adam", "lr": 0.05},
            "sweep": {"optimizer.lr": [0.01, 0.05, 0.1], "optimizer.name": ["sgd", "adam"]}}  # fmt: skip
    out = tmp_path / "out"
    run_sweep(spec, out, progress=False)
    rc, stdout, err = call("analyze", str(out))
    assert rc == 0, err
    assert "median_loss" in stdout and "n_attractors" in stdout
    figs = sorted(p.name for p in (out / "figures").iterdir())
    assert figs == ["basins_vs_optimizer.lr.png", "ecdf_final_loss.png",
                    "heatmap_median_final_loss_optimizer.lr_optimizer.name.png",
                    "sensitivity_median_final_loss_vs_optimizer.lr.png", "sensitivity_success_rate_vs_optimizer.lr.png"]
    from descentlab.analysis import analyze

    with open_sweep(out) as ds:
        assert ds.basin_fraction.dims == ("point", "basin")
        assert "basin_name" in ds.coords
        # the index's basin fractions are those of each point analysed alone
        p = expand(spec).points[4]
        ar = analyze(out / p.file_name, write=False)
        names = list(ds.basin_name.values)
        for row in ar.summary["attractors"]:
            assert ds.basin_fraction.values[4, names.index(row["name"])] == row["fraction"]
        assert np.nansum(ds.basin_fraction.values[4]) <= 1.0 + 1e-12
    # compare takes the sweep directory: one row per point
    rc, stdout, err = call("compare", str(out))
    assert rc == 0, err
    assert sum(p.file_name.removesuffix(".h5") in stdout for p in expand(spec).points) == 6


def test_local_executor_runs_small_points_at_once(tmp_path: Path) -> None:
    """Small points run several at once (one thread each); the files equal one-at-a-time runs
    and a run of the same point in another process."""
    import subprocess
    import sys
    import threading

    from descentlab.kernels.threads import get_threads
    from descentlab.sweeps.execute import LocalExecutor, Task

    plan = expand(SWEEP)
    tasks = [Task(f"t{p.index}", p.spec, str(tmp_path / "at_once" / p.file_name)) for p in plan.points]
    if get_threads() >= 2:
        assert LocalExecutor()._plan(tasks) == (2, 1)  # automatic: 4 small points, 2 threads
    assert LocalExecutor(threads=2)._plan(tasks) == (1, 2)  # threads per point given: one at a time
    (tmp_path / "at_once").mkdir()
    where: dict[str, str] = {}
    def seen(task: Task, result: dict) -> None:
        where[task.key] = threading.current_thread().name

    LocalExecutor(at_once=2).run(tasks, progress=False, on_done=seen)
    assert len(where) == 4
    # the first point runs alone, the others in the executor's threads
    assert where["t0"] == threading.main_thread().name
    assert all(where[f"t{i}"].startswith("descentlab-point") for i in (1, 2, 3))
    run_sweep(plan, tmp_path / "one_at_a_time", executor=LocalExecutor(at_once=1), progress=False)
    for p in plan.points:
        assert_same_run(tmp_path / "at_once" / p.file_name, tmp_path / "one_at_a_time" / p.file_name)
    # the last point, in a fresh process
    p = plan.points[-1]
    (tmp_path / "p.json").write_text(json.dumps(p.spec))
    code = ("import json, sys; from descentlab.engine.store import write_run; "
            "write_run(json.load(open(sys.argv[1])), sys.argv[2], progress=False)")  # fmt: skip
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "p.json"), str(tmp_path / "alone.h5")], check=True,
                   env={**os.environ, "NUMBA_NUM_THREADS": "1"})  # fmt: skip
    assert_same_run(tmp_path / "at_once" / p.file_name, tmp_path / "alone.h5")


def test_relative_file_names_resolve_against_the_sweep_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As for a run spec: a sweep TOML's relative file names are relative to its folder, whatever the
    current folder, and the points' tasks carry the absolute names (with their SHA-256)."""
    sub = tmp_path / "specs"
    sub.mkdir()
    np.save(sub / "starts.npy", np.array([[1.0, 1.0], [-2.0, 3.0], [3.5, -1.5]]))
    (sub / "s.toml").write_text(TOML.replace('[init]\nscheme = "uniform"\nlow = -5.0\nhigh = 5.0',
                                             '[init]\nscheme = "points"\nfile = "starts.npy"')
                                .replace("particles = 64\n", ""))  # fmt: skip
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    plan = expand(sub / "s.toml")
    for p in plan.points:
        assert p.resolved["init"]["file"] == str(sub / "starts.npy")
        assert p.run.particles == 3
    rc, _, err = call("sweep", str(sub / "s.toml"), "-o", str(tmp_path / "out"))
    assert rc == 0, err
    with h5py.File(tmp_path / "out" / plan.points[0].file_name, "r") as f:
        np.testing.assert_array_equal(f["init/x"][...], np.load(sub / "starts.npy"))
