"""HDF5 run file: schema, equality with the in-memory engine, chunk/thread invariance,
atomic write, refusal to overwrite, reader without compiling (issue 3)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from descentlab import open_run, simulate
from descentlab.engine.store import StoreError, chunk_plan, partial_path, write_run

SPEC = {
    "run": {"particles": 300, "steps": 120, "record_every": 10, "seed": 7},
    "landscape": {"name": "himmelblau"},
    "optimizer": {"name": "adam", "lr": 0.05},
    "stop": {"grad_tol": 1e-4, "bound": 50.0},
}


def datasets(path: Path, skip_checkpoint: bool = True) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: out.__setitem__(n, o[...]) if isinstance(o, h5py.Dataset) else None)
        if skip_checkpoint:
            out = {k: v for k, v in out.items() if not k.startswith("checkpoint/")}
            # a complete file's checkpoint is not part of its result (a run shorter than checkpoint_every
            # writes none, a resumed one keeps its last): compared only in partial files
            slot = str(f["checkpoint"].attrs["slot"])
            for name in f["checkpoint"][slot] if slot != "-1" and not f.attrs["complete"] else ():
                out[f"checkpoint/current/{name}"] = f["checkpoint"][slot][name][...]
    return out


def assert_same_files(a: Path, b: Path) -> None:
    da, db = datasets(a), datasets(b)
    assert sorted(da) == sorted(db)
    for key in da:
        assert da[key].dtype == db[key].dtype, key
        assert np.array_equal(da[key], db[key], equal_nan=da[key].dtype.kind == "f"), key


@pytest.fixture(scope="module")
def ref(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_run(SPEC, tmp_path_factory.mktemp("ref") / "ref.h5", progress=False)


def test_schema_matches_design(ref: Path) -> None:
    n, d = 300, 2
    r = 120 // 10 + 1
    with h5py.File(ref, "r") as f:
        a = f.attrs
        assert a["format"] == "descentlab.run" and a["format_version"] == 1 and bool(a["complete"])
        for key in ("descentlab_version", "numba_version", "numpy_version", "h5py_version", "target", "dtype",
                    "seed", "rng", "created", "finished"):
            assert key in a, key
        assert a["rng"] == "philox4x32-10" and int(a["seed"]) == 7
        spec = json.loads(a["spec"])
        assert spec["run"]["particles"] == n and spec["optimizer"]["betas"] == [0.9, 0.999]
        shapes = {"init/x": (n, d), "trajectory/step": (r,), "trajectory/x": (n, r, d), "trajectory/loss": (n, r),
                  "final/x": (n, d), "final/loss": (n,), "final/grad_norm": (n,), "final/status": (n,),
                  "final/stop_step": (n,)}
        for path, shape in shapes.items():
            assert f[path].shape == shape, path
        assert f["final/status"].dtype == np.int8 and f["final/stop_step"].dtype == np.int64
        assert np.array_equal(f["trajectory/step"][...], np.arange(r) * 10)
        assert f["trajectory/x"].maxshape == (n, None, d) and f["trajectory/x"].chunks is not None
        assert set(np.unique(f["final/status"][...])) <= {0, 1, 2, 3}
        assert [f["trajectory/x"].dims[i].label for i in range(3)] == ["particle", "record", "dim"]


def test_file_equals_in_memory_engine(ref: Path) -> None:
    res = simulate(SPEC)
    with open_run(ref) as f:
        assert f.complete and f.records == res.record_steps.size
        pairs = [(f.init_x, res.init_x), (f.trajectory_step, res.record_steps), (f.trajectory_x, res.trajectory_x),
                 (f.trajectory_loss, res.trajectory_loss), (f.final_x, res.final_x), (f.final_loss, res.final_loss),
                 (f.final_grad_norm, res.grad_norm), (f.status, res.status), (f.stop_step, res.stop_step)]
        for ds, arr in pairs:
            assert np.array_equal(ds[...], arr, equal_nan=True), ds.name
        assert sum(f.status_counts().values()) == 300
        assert np.array_equal(f.trajectory(5), res.trajectory_x[5])


@pytest.mark.parametrize("chunk_steps", [1, 7, 25, 120])
def test_chunk_size_does_not_change_results(ref: Path, tmp_path: Path, chunk_steps: int) -> None:
    out = write_run(SPEC, tmp_path / "c.h5", chunk_steps=chunk_steps, progress=False)
    assert_same_files(ref, out)


def test_thread_count_does_not_change_results(ref: Path, tmp_path: Path) -> None:
    import numba

    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        out = write_run(SPEC, tmp_path / "t1.h5", chunk_steps=30, progress=False)
    finally:
        numba.set_num_threads(old)
    assert_same_files(ref, out)


def test_compression_is_an_option(ref: Path, tmp_path: Path) -> None:
    out = write_run(SPEC, tmp_path / "z.h5", compression="gzip", progress=False)
    with h5py.File(out, "r") as f:
        assert f["trajectory/x"].compression == "gzip"
    with h5py.File(ref, "r") as f:
        assert f["trajectory/x"].compression is None  # default uncompressed
    assert_same_files(ref, out)


def test_chunk_plan_aligns_writes_with_hdf5_chunks() -> None:
    from descentlab.engine.spec import parse_spec

    rs = parse_spec(SPEC)
    for cs in (1, 5, 10, 30, 35, 120, None):
        ends, rc = chunk_plan(rs, cs)
        assert ends[-1] == 120 and ends == sorted(set(ends)) and ends[0] > 0
        recs = [e // 10 + 1 for e in ends]  # records written once a chunk ending at e is done
        assert all(r % rc == 0 for r in recs[:-1]), (cs, ends, rc)


def test_xarray_named_dims(ref: Path) -> None:
    xr = pytest.importorskip("xarray")
    pytest.importorskip("h5netcdf")
    with xr.open_dataset(ref, group="trajectory", engine="h5netcdf") as ds:
        assert ds["x"].dims == ("particle", "record", "dim")
        assert ds["loss"].dims == ("particle", "record")
        assert ds["x"].shape == (300, 13, 2)
        assert int(ds["step"][-1]) == 120
    with xr.open_dataset(ref, group="final", engine="h5netcdf") as ds:
        assert ds["x"].dims == ("particle", "dim") and ds["status"].dims == ("particle",)
    with xr.open_dataset(ref, group="init", engine="h5netcdf") as ds:
        assert ds["x"].dims == ("particle", "dim")


def test_refuses_to_overwrite(ref: Path, tmp_path: Path) -> None:
    out = tmp_path / "o.h5"
    out.write_bytes(b"precious")
    with pytest.raises(StoreError, match=r"OUT.*--overwrite"):
        write_run(SPEC, out, progress=False)
    assert out.read_bytes() == b"precious"
    write_run(SPEC, out, overwrite=True, progress=False)
    assert_same_files(ref, out)


def test_failed_run_leaves_only_an_incomplete_partial(ref: Path, tmp_path: Path) -> None:
    out = tmp_path / "f.h5"
    seen: list[bool] = []

    def boom(step: int) -> None:
        with h5py.File(partial_path(out), "r") as f:  # never complete while running
            seen.append(bool(f.attrs["complete"]))
        assert not out.exists()
        if step >= 60:
            raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):
        write_run(SPEC, out, chunk_steps=20, progress=False, on_checkpoint=boom, checkpoint_every=0)
    assert seen and not any(seen)
    assert not out.exists() and partial_path(out).exists()
    with open_run(partial_path(out)) as f:
        assert not f.complete and 60 <= f.steps_done < 120 and f.records == f.steps_done // 10 + 1
        assert f.status_counts() is None and "INCOMPLETE" in f.describe()
    # resuming from that point (with another chunk size) gives the same file
    write_run(SPEC, out, resume=True, chunk_steps=13, progress=False)
    assert not partial_path(out).exists()
    assert_same_files(ref, out)


@pytest.mark.parametrize("stop_at", [1, 30, 110])
def test_resume_point_does_not_change_results(ref: Path, tmp_path: Path, stop_at: int) -> None:
    out = tmp_path / "r.h5"

    def stop(step: int) -> None:
        if step >= stop_at:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_run(SPEC, out, chunk_steps=stop_at if stop_at < 100 else 10, progress=False, on_checkpoint=stop,
                  checkpoint_every=0)
    write_run(SPEC, out, resume=True, progress=False)
    assert_same_files(ref, out)


def test_resume_refuses_another_spec(tmp_path: Path) -> None:
    out = tmp_path / "m.h5"

    def stop(step: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_run(SPEC, out, chunk_steps=10, progress=False, on_checkpoint=stop,
                  checkpoint_every=0)
    other = json.loads(json.dumps(SPEC))
    other["optimizer"]["lr"] = 0.01
    with pytest.raises(StoreError, match=r"^optimizer\.lr: differs"):
        write_run(other, out, resume=True, progress=False)
    assert partial_path(out).exists()


def test_reader_compiles_nothing(ref: Path, tmp_path: Path) -> None:
    cache = tmp_path / "numba_cache"
    code = (
        "import sys, descentlab\n"
        f"f = descentlab.open_run({str(ref)!r})\n"
        "x = f.trajectory_x[3, :, :]; s = f.spec; c = f.status_counts(); d = f.describe()\n"
        "assert x.shape == (13, 2) and s['landscape']['name'] == 'himmelblau'\n"
        "from numba.core.registry import cpu_target\n"
        "import numba.core.dispatcher as dp\n"
        "print('OK')\n"
    )
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "NUMBA_DEBUG_CACHE": "1"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "OK" in proc.stdout
    assert "[cache]" not in proc.stdout + proc.stderr  # no kernel was loaded or compiled
    assert not cache.exists() or not any(cache.rglob("*.nbi"))


def test_killed_between_completion_and_rename_resumes_by_moving(ref: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """A run killed after its file is complete but before the rename loses nothing: resume moves it."""
    import descentlab.engine.store.writer as writer

    out = tmp_path / "k.h5"

    def killed(src: object, dst: object) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(writer.os, "replace", killed)
        with pytest.raises(KeyboardInterrupt):
            write_run(SPEC, out, progress=False)
    assert not out.exists() and partial_path(out).exists()
    with h5py.File(partial_path(out), "r") as f:
        assert bool(f.attrs["complete"])
    calls: list[int] = []
    write_run(SPEC, out, resume=True, progress=False, on_checkpoint=calls.append, checkpoint_every=0)
    assert calls == []  # nothing ran again
    assert out.exists() and not partial_path(out).exists()
    assert_same_files(ref, out)
