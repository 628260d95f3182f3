"""Notebook and library use: xarray views, progress bars, measured epoch times, the divergence rule."""

from __future__ import annotations

import json

import numpy as np
import pytest

import descentlab
from descentlab.analysis import analysis_path, analyze, analyze_result
from descentlab.engine.run import Simulation, epoch_times
from descentlab.engine.spec import parse_spec
from descentlab.engine.store import write_run

xr = pytest.importorskip("xarray")

SPEC = {
    "run": {"steps": 120, "record_every": 10},
    "landscape": {"name": "himmelblau"},
    "optimizer": {"name": "sgd", "lr": 0.01},
    "init": {"scheme": "grid", "resolution": 12},
}


@pytest.fixture(scope="module")
def run_file(tmp_path_factory):
    return write_run(SPEC, tmp_path_factory.mktemp("nb") / "h.h5", progress=False)


def test_result_and_run_file_to_xarray_round_trip(run_file):
    r = descentlab.simulate(SPEC, progress=False)
    ds = r.to_xarray()
    assert ds.sizes == {"particle": 144, "record": 13, "dim": 2}
    np.testing.assert_array_equal(ds["step"].values, np.arange(0, 121, 10))
    assert ds["trajectory_x"].dims == ("particle", "record", "dim")
    np.testing.assert_array_equal(ds["trajectory_x"].values, r.trajectory_x)
    np.testing.assert_array_equal(ds["final_loss"].values, r.final_loss)
    st = ds["status"]
    assert list(st.attrs["flag_values"]) == [0, 1, 2, 3]
    assert st.attrs["flag_meanings"].split() == ["ran_all_steps", "converged", "diverged", "left_the_bound"]
    assert json.loads(ds.attrs["spec"])["landscape"]["name"] == "himmelblau"
    # select by step, as a notebook would
    np.testing.assert_array_equal(ds["trajectory_loss"].swap_dims(record="step").sel(step=60).values,
                                  r.trajectory_loss[:, 6])  # fmt: skip
    # the run file gives the same dataset (same spec and seed: the same numbers)
    with descentlab.open_run(run_file) as f:
        fd = f.to_xarray()
    for name in ("init_x", "trajectory_x", "trajectory_loss", "final_x", "final_loss", "status", "stop_step"):
        np.testing.assert_array_equal(fd[name].values, ds[name].values, err_msg=name)
    np.testing.assert_array_equal(fd["step"].values, ds["step"].values)
    # and it survives a netCDF round trip
    back = xr.Dataset.from_dict(fd.to_dict())
    np.testing.assert_array_equal(back["trajectory_x"].values, fd["trajectory_x"].values)


def test_analysis_to_xarray_and_named_dims_in_the_file(run_file):
    ar = analyze(run_file)
    ds = ar.to_xarray()
    assert list(ds["attractor"].values) == ar.attractors.names
    np.testing.assert_array_equal(ds["label"].values, ar.labels)
    np.testing.assert_allclose(ds["attractor_fraction"].sum() + ds["outcome_fraction"].sel(
        outcome=["not settled", "diverged", "left the bound"]).sum(), 1.0)  # fmt: skip
    assert ds["steps_to_target"].dims == ("particle", "target")
    assert ds["basin_map"].shape == (12, 12)
    # the sidecar opens with xarray, every dimension named (no phony_dim_*)
    side = analysis_path(run_file)
    for group in ("analysis", "analysis/attractors", "analysis/outcomes", "analysis/known", "analysis/convergence"):
        g = xr.open_dataset(side, group=group, engine="h5netcdf")
        assert not [d for d in g.dims if str(d).startswith("phony_dim")], (group, dict(g.sizes))
        g.close()
    with xr.open_dataset(side, group="analysis/attractors", engine="h5netcdf") as g:
        assert g["position"].dims == ("attractor", "dim")
        np.testing.assert_allclose(g["position"].values, ar.attractors.positions)
    with xr.open_dataset(side, group="analysis", engine="h5netcdf") as g:
        assert g["labels"].dims == ("particle",) and g["basin_map"].dims == ("x0", "x1")


def test_model_run_xarray_has_parameter_layout_and_file_metric_names(tmp_path):
    spec = {"run": {"particles": 3, "epochs": 3, "seed": 1}, "landscape": {"name": "linear_regression"},
            "data": {"name": "teacher", "samples": 40, "features": 2}, "batch": {"size": 8},
            "optimizer": {"name": "sgd", "lr": 0.05}}  # fmt: skip
    r = descentlab.simulate(spec, progress=False)
    path = write_run(spec, tmp_path / "lin.h5", progress=False)
    with descentlab.open_run(path) as f:
        names = {k for k, v in f["metrics"].items() if k != "layer"}
        ds = f.to_xarray()
    assert names <= set(r.metrics), names - set(r.metrics)
    assert {"train_loss", "epoch_wall_time", "epoch_updates"} <= set(r.metrics)
    np.testing.assert_array_equal(r.metrics["train_loss"], r.trajectory_loss)
    assert list(ds["parameter"].values) == ["layer0.weight[0,0]", "layer0.weight[0,1]", "layer0.bias[0]"]
    assert list(ds["tensor_kind"].values) == ["weight", "weight", "bias"]
    assert ds["epoch_wall_time"].dims == ("epoch",)
    rd = r.to_xarray()
    assert "parameter" in rd.coords and rd["train_loss"].dims == ("particle", "record")


def test_epoch_times_are_measured_per_epoch():
    # pieces never straddle an epoch end: each epoch's time is the sum of its own pieces
    np.testing.assert_allclose(epoch_times(np.array([3, 3, 2]), [(2, 1.0), (1, 0.5), (3, 2.0), (2, 5.0)], 0),
                               [1.5, 2.0, 5.0])  # fmt: skip
    # epochs run before a resume are not measured
    out = epoch_times(np.array([3, 3, 2]), [(3, 2.0), (2, 5.0)], 3)
    assert np.isnan(out[0]) and out.tolist()[1:] == [2.0, 5.0]
    # advance_timed cuts at the given steps and gives the records of one advance
    rs = parse_spec(SPEC)
    a, b = Simulation(rs), Simulation(rs)
    one = a.advance(37)
    cut, times = b.advance_timed(37, cuts=np.array([5, 20, 37, 50]))
    assert [t[0] for t in times] == [5, 15, 17]
    np.testing.assert_array_equal(cut.steps, one.steps)
    np.testing.assert_array_equal(cut.x, one.x)
    np.testing.assert_array_equal(cut.loss, one.loss)
    # with a time per piece (a visible progress bar) the pieces adapt; the records do not change
    c = Simulation(rs)
    seen: list[int] = []
    timed, times = c.advance_timed(37, cuts=np.array([20]), seconds=1e-7, on_piece=seen.append)
    assert len(seen) > 2 and seen[-1] == 37 and 20 in seen and seen == sorted(seen)
    np.testing.assert_array_equal(timed.x, one.x)
    np.testing.assert_array_equal(timed.loss, one.loss)


def test_progress_bar_counts_particle_steps_and_is_hidden_when_not_interactive(capsys):
    descentlab.simulate(SPEC, progress=True)
    err = capsys.readouterr().err
    assert "120/120" in err and "particle-steps/s" in err
    descentlab.simulate(SPEC)  # not a terminal (captured): no bar
    assert capsys.readouterr().err == ""


def test_a_blow_up_with_the_default_bound_is_diverged():
    spec = {"run": {"steps": 200, "record_every": 50}, "landscape": {"name": "product"},
            "optimizer": {"name": "sgd", "lr": 0.6},
            "init": {"scheme": "grid", "resolution": 6, "low": 1.0, "high": 2.0}}  # fmt: skip
    r = descentlab.simulate(spec, progress=False)
    assert np.all(r.status != 3)  # with an infinite bound, only an overflow leaves it: diverged
    assert np.any(r.status == 2)
    bounded = descentlab.simulate({**spec, "stop": {"bound": 100.0}}, progress=False)
    assert np.any(bounded.status == 3)  # a finite bound the user set: "left the bound"
    ar = analyze_result(r)
    assert ar.summary["success_rate"] <= np.mean(r.status < 2)


def test_a_complete_run_drops_its_checkpoint_slots_and_shrinks(tmp_path):
    import os

    import h5py

    spec = {"run": {"particles": 4000, "steps": 60, "record_every": 20}, "landscape": {"name": "himmelblau"},
            "optimizer": {"name": "adam", "lr": 0.05}}  # fmt: skip
    # a checkpoint after every chunk: the slots hold data until the run completes
    path = write_run(spec, tmp_path / "a.h5", progress=False, checkpoint_every=0, chunk_steps=20)
    with h5py.File(path, "r") as f:
        c = f["checkpoint"]
        assert list(c) == [] and bool(c.attrs["dropped"]) and int(c.attrs["step"]) == 60
        stored = [0]
        f.visititems(lambda n, o: stored.__setitem__(0, stored[0] + o.id.get_storage_size())
                     if isinstance(o, h5py.Dataset) else None)  # fmt: skip
    # two slots of x (D, N) and Adam's state (2, D, N) would be 2 x 3 x 8 x 2 x 4000 = 384 kB
    assert os.path.getsize(path) < stored[0] + 100_000
