"""Nothing lost, nothing mixed (issue 15): one writer per output, analysis never
endangers run data, resume refuses changed inputs, bounded formula parsing,
resource guards, self-contained input files, the exit-code promise."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from descentlab.cli import main
from descentlab.engine.store import StoreError, lock_path, partial_path, write_run

SPEC: dict[str, Any] = {
    "run": {"particles": 64, "steps": 400, "record_every": 1, "seed": 1},
    "landscape": {"name": "himmelblau"},
    "optimizer": {"name": "sgd", "lr": 0.01},
    "init": {"scheme": "uniform", "low": -5.0, "high": 5.0},
}


def toml(spec: dict[str, Any]) -> str:
    lines = []
    for table, body in spec.items():
        lines.append(f"[{table}]")
        for k, v in body.items():
            lines.append(f"{k} = {v!r}".replace("'", '"').replace("True", "true").replace("False", "false"))
    return "\n".join(lines) + "\n"


def with_seed(seed: int, **run: Any) -> dict[str, Any]:
    return {**SPEC, "run": {**SPEC["run"], "seed": seed, **run}}


def call(*args: str) -> tuple[int, str, str]:
    o, e = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e):
        rc = main([str(a) for a in args])
    return rc, o.getvalue(), e.getvalue()


def datasets(path: Path) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: out.__setitem__(n, o[...]) if isinstance(o, h5py.Dataset) else None)
    return {k: v for k, v in out.items() if not k.startswith("checkpoint/")}


def assert_same_data(a: Path, b: Path) -> None:
    da, db = datasets(a), datasets(b)
    assert sorted(da) == sorted(db)
    for k in da:
        assert np.array_equal(da[k], db[k], equal_nan=True), k


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# A writer slowed down at each checkpoint; refused writers exit 2 with the message.
CHILD = """
import sys, time
from descentlab.engine.store import StoreError, write_run
spec = {spec!r}
first = [{wait}]
def announce(step):
    print("checkpoint", step, flush=True)
    if first[0]:  # hold the output until the parent says go
        first[0] = False
        sys.stdin.readline()
    time.sleep({pause})
try:
    write_run(spec, sys.argv[1], chunk_steps=10, progress=False, on_checkpoint=announce, checkpoint_every=0)
except StoreError as exc:
    print("refused:", exc, flush=True)
    sys.exit(2)
print("done", flush=True)
"""


def child(spec: dict[str, Any], out: Path, pause: float = 0.05, wait: bool = False) -> subprocess.Popen[str]:
    """A writer; with ``wait`` it stops after its first checkpoint until a line arrives on its stdin."""
    return subprocess.Popen([sys.executable, "-c", CHILD.format(spec=spec, pause=pause, wait=wait), str(out)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ})  # fmt: skip


@pytest.fixture(scope="module")
def seed1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_run(with_seed(1), tmp_path_factory.mktemp("ref") / "seed1.h5", progress=False)


@pytest.fixture(scope="module")
def seed2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_run(with_seed(2), tmp_path_factory.mktemp("ref") / "seed2.h5", progress=False)


# ----------------------------------------------------------------------------- 1. one writer per output


def test_second_writer_refused_while_first_runs(tmp_path: Path, seed1: Path) -> None:
    """Timing 1: B starts while A is in the middle of its run (A slower than B)."""
    out = tmp_path / "o.h5"
    (tmp_path / "s2.toml").write_text(toml(with_seed(2)))
    proc = child(with_seed(1), out, wait=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("checkpoint")  # A holds the output, and waits
        for extra in ((), ("--overwrite",), ("--resume",)):
            rc, _, err = call("run", tmp_path / "s2.toml", "-o", out, "--quiet", *extra)
            assert rc == 2, (extra, err)
            assert f"pid {proc.pid}" in err and "another run" in err and err.count("\n") == 1, err
        assert partial_path(out).exists() and not out.exists()
        rest, stderr = proc.communicate("go\n", timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    assert rest.strip().endswith("done")
    # A's file is whole and entirely A's: every dataset equals an undisturbed seed-1 run
    assert_same_data(out, seed1)
    assert not lock_path(out).exists() and not partial_path(out).exists()


def test_two_writers_started_together_never_mix(tmp_path: Path, seed1: Path, seed2: Path) -> None:
    """Timing 2: A and B start at the same instant; one wins, the other is refused."""
    out = tmp_path / "o.h5"
    procs = [child(with_seed(1), out, 0.01), child(with_seed(2), out, 0.01)]
    results = [p.communicate(timeout=180) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], results
    loser = results[[p.returncode for p in procs].index(2)][0]
    # refused at the start: by the lock (naming the owner) or, if the winner had already finished, by the file
    assert ("another run" in loser and "pid" in loser) or "exists" in loser, loser
    winner = seed1 if procs[0].returncode == 0 else seed2
    assert_same_data(out, winner)
    assert not lock_path(out).exists() and not partial_path(out).exists()


def test_never_renames_a_partial_it_did_not_write(tmp_path: Path) -> None:
    """A process that ignores the lock replaces OUT.partial mid-run: the writer refuses to move it into place."""
    out = tmp_path / "o.h5"
    tmp = partial_path(out)
    swapped = []

    def swap(step: int) -> None:
        if not swapped:
            foreign = tmp_path / "foreign"
            foreign.write_bytes(b"not ours")
            os.replace(foreign, tmp)
            swapped.append(step)

    with pytest.raises(StoreError, match="replaced by another process"):
        write_run(with_seed(1), out, chunk_steps=100, progress=False, checkpoint_every=0, on_checkpoint=swap)
    assert not out.exists() and tmp.read_bytes() == b"not ours"
    assert not lock_path(out).exists()


def test_stale_lock_of_a_killed_writer_does_not_block(tmp_path: Path, seed1: Path) -> None:
    out = tmp_path / "o.h5"
    proc = child(with_seed(1), out, wait=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().startswith("checkpoint")
    proc.kill()
    proc.wait(timeout=60)
    assert lock_path(out).read_text().split()[0] == str(proc.pid)  # left behind, but no longer locked
    (tmp_path / "s.toml").write_text(toml(with_seed(1)))
    rc, _, err = call("run", tmp_path / "s.toml", "-o", out, "--quiet", "--resume")
    assert rc == 0, err
    assert_same_data(out, seed1)


# ----------------------------------------------------------------------------- 2. analysis never endangers run data


@pytest.fixture
def small_fs(tmp_path: Path) -> Any:
    """A private 4 MiB tmpfs (root only); skipped where it cannot be mounted."""
    mnt = tmp_path / "fs"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:  # fmt: skip
        pytest.skip("cannot mount a small tmpfs here")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(folder: Path) -> Path:
    """Fill the filesystem of ``folder`` to the last byte."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for block in (b"\0" * 65536, b"\0" * 512, b"\0"):
            with contextlib.suppress(OSError):
                while os.write(fd, block):
                    pass
    finally:
        os.close(fd)
    return filler


def test_disk_full_during_analyze_leaves_run_untouched(small_fs: Path, seed1: Path, seed2: Path) -> None:
    from descentlab.analysis import analysis_path

    run = small_fs / "r.h5"
    run.write_bytes(seed1.read_bytes())
    before = sha(run)
    filler = fill(small_fs)
    rc, _, err = call("analyze", run)
    assert rc == 2 and "disk full" in err and "Traceback" not in err and err.count("\n") == 1, err
    assert sha(run) == before
    assert sorted(p.name for p in small_fs.iterdir()) == ["filler", "r.h5"]  # no half analysis left behind
    rc, out, err = call("info", run)
    assert rc == 0 and "analysis of" not in out, err
    filler.unlink()
    rc, _, err = call("analyze", run)
    assert rc == 0, err
    assert sha(run) == before and analysis_path(run).exists()
    rc, out, err = call("info", run)
    assert rc == 0 and "analysis of" in out, err
    rc, out, err = call("compare", run, seed2)
    assert rc == 0 and "| run |" in out, err
    # re-analysing does not grow anything: the sidecar is rewritten whole
    size = analysis_path(run).stat().st_size
    assert call("analyze", run)[0] == 0
    assert analysis_path(run).stat().st_size == size and sha(run) == before


def test_half_written_or_foreign_analysis_is_never_used(tmp_path: Path, seed1: Path, seed2: Path) -> None:
    from descentlab.analysis import analysis_path, read_summary

    run = tmp_path / "r.h5"
    run.write_bytes(seed1.read_bytes())
    assert call("analyze", run)[0] == 0
    assert read_summary(run) is not None
    side = analysis_path(run)
    with h5py.File(side, "r+") as f:  # as if killed before the last attribute
        f.attrs["complete"] = False
    assert read_summary(run) is None
    rc, out, _ = call("info", run)
    assert rc == 0 and "analysis of" not in out
    assert call("analyze", run)[0] == 0 and read_summary(run) is not None
    # the output is overwritten by another run: the old sidecar does not describe it
    run.write_bytes(seed2.read_bytes())
    assert read_summary(run) is None


def test_compare_writes_nothing(tmp_path: Path, seed1: Path, seed2: Path) -> None:
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    a.write_bytes(seed1.read_bytes())
    b.write_bytes(seed2.read_bytes())
    before = {p: sha(p) for p in (a, b)}
    rc, out, err = call("compare", a, b)
    assert rc == 0 and "| run |" in out, err
    assert {p: sha(p) for p in (a, b)} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.h5", "b.h5"]


def test_analyze_while_another_process_reads_the_run(tmp_path: Path, seed1: Path) -> None:
    run = tmp_path / "r.h5"
    run.write_bytes(seed1.read_bytes())
    with h5py.File(run, "r"):  # another reader holds it open (shared lock)
        rc, _, err = call("analyze", run)
    assert rc == 0, err


# ----------------------------------------------------------------------------- 3. resume guards (+ 9. paths)


def stop_at(step0: int) -> Any:
    def stop(step: int) -> None:
        if step >= step0:
            raise KeyboardInterrupt

    return stop


def test_resume_of_a_complete_file_compares_the_spec(tmp_path: Path, seed1: Path) -> None:
    out = tmp_path / "o.h5"
    out.write_bytes(seed1.read_bytes())
    before = sha(out)
    (tmp_path / "s2.toml").write_text(toml(with_seed(2)))
    rc, out_text, err = call("run", tmp_path / "s2.toml", "-o", out, "--resume")
    assert rc == 2 and err.startswith("descentlab: error: run.seed: differs") and "--overwrite" in err, err
    assert out_text == "" and sha(out) == before
    (tmp_path / "s1.toml").write_text(toml(with_seed(1)))
    rc, _, err = call("run", tmp_path / "s1.toml", "-o", out, "--resume", "--quiet")
    assert rc == 0 and sha(out) == before, err


@pytest.mark.parametrize("content", [b"", b"\x89HDF\r\n\x1a\n" + b"\0" * 40])
def test_resume_of_a_partial_killed_before_its_first_flush_starts_afresh(
    tmp_path: Path, seed1: Path, content: bytes
) -> None:
    out = tmp_path / "o.h5"
    partial_path(out).write_bytes(content)
    (tmp_path / "s1.toml").write_text(toml(with_seed(1)))
    rc, _, err = call("run", tmp_path / "s1.toml", "-o", out, "--resume", "--quiet")
    assert rc == 0, err
    assert_same_data(out, seed1)


def regression_data(path: Path, sign: float = 1.0) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 2))
    np.savez(path, x=x, y=sign * (x @ np.array([3.0, 1.0]))[:, None])


MODEL: dict[str, Any] = {
    "run": {"particles": 4, "steps": 400, "record_every": 10, "seed": 0},
    "landscape": {"name": "linear_regression"},
    "data": {"file": "data.npz", "test_fraction": 0.0},
    "optimizer": {"name": "sgd", "lr": 0.1},
    "stop": {"grad_tol": 0.0},
}


def test_resume_refuses_a_changed_data_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "specs"
    folder.mkdir()
    regression_data(folder / "data.npz")
    (folder / "m.toml").write_text(toml(MODEL))
    monkeypatch.chdir(tmp_path)  # relative data.file: against the spec's folder, not the current one
    out = tmp_path / "m.h5"
    with pytest.raises(KeyboardInterrupt):
        write_run(folder / "m.toml", out, chunk_steps=50, progress=False, checkpoint_every=0,
                  on_checkpoint=stop_at(100))
    with h5py.File(partial_path(out), "r") as f:
        stored = json.loads(f.attrs["spec"])
    assert stored["data"]["file"] == str(folder / "data.npz") and len(stored["data"]["sha256"]) == 64
    regression_data(folder / "data.npz", sign=-1.0)  # y negated under the same name
    before = sha(partial_path(out))
    rc, _, err = call("run", folder / "m.toml", "-o", out, "--resume", "--quiet")
    assert rc == 2 and err.startswith("descentlab: error: data.sha256: differs"), err
    assert sha(partial_path(out)) == before and not out.exists()
    regression_data(folder / "data.npz")  # the original data again: resumes, and lands on w = (3, 1)
    rc, _, err = call("run", folder / "m.toml", "-o", out, "--resume", "--quiet")
    assert rc == 0, err
    with h5py.File(out, "r") as f:
        np.testing.assert_allclose(f["final/x"][:, :2], np.tile([3.0, 1.0], (4, 1)), atol=1e-3)


def test_resume_refuses_a_changed_init_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "specs"
    folder.mkdir()
    pts = np.random.default_rng(1).uniform(-4, 4, (64, 2))
    np.save(folder / "pts.npy", pts)
    spec = {**SPEC, "run": {"steps": 400, "record_every": 1}, "init": {"scheme": "points", "file": "pts.npy"}}
    (folder / "p.toml").write_text(toml(spec))
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "p.h5"
    with pytest.raises(KeyboardInterrupt):
        write_run(folder / "p.toml", out, chunk_steps=50, progress=False, checkpoint_every=0,
                  on_checkpoint=stop_at(100))
    with h5py.File(partial_path(out), "r") as f:
        stored = json.loads(f.attrs["spec"])
    assert stored["init"]["file"] == str(folder / "pts.npy")
    np.save(folder / "pts.npy", -pts)
    rc, _, err = call("run", folder / "p.toml", "-o", out, "--resume", "--quiet")
    assert rc == 2 and err.startswith("descentlab: error: init.sha256: differs"), err
    # the stored spec itself refuses the changed file (e.g. when the run is analysed or re-run)
    from descentlab.engine.spec import SpecError, parse_spec

    with pytest.raises(SpecError, match=r"^init\.sha256: .* has changed"):
        parse_spec(stored)


# ----------------------------------------------------------------------------- 4. bounded formulas


HOSTILE = {
    "x + 10**10**10": "exponent",
    "*".join(f"x{i}" for i in range(100)): "100 variables",
    "sin(" * 150 + "x" + ")" * 150: "nested",
    "1e999*x": "not a finite number",
    "1e300*x*1e300": "not a finite float",
    "exp(1000)*x + y": "too large",
    "x**2000": "exponent",
}


@pytest.mark.parametrize("formula", list(HOSTILE))
def test_hostile_formulas_are_refused_fast(tmp_path: Path, formula: str) -> None:
    import time

    spec = {**SPEC, "landscape": {"formula": formula}, "init": {"scheme": "zeros"}}
    (tmp_path / "f.toml").write_text(toml(spec))
    t0 = time.perf_counter()
    rc, _, err = call("run", tmp_path / "f.toml", "-o", tmp_path / "f.h5")
    assert time.perf_counter() - t0 < 10
    assert rc == 2 and err.startswith("descentlab: error: landscape.formula:") and HOSTILE[formula] in err, err
    assert "Traceback" not in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == [tmp_path / "f.toml"]


def test_non_string_formula_exits_2(tmp_path: Path) -> None:
    (tmp_path / "f.toml").write_text(toml(SPEC).replace('name = "himmelblau"', "formula = [1, 2]"))
    rc, _, err = call("run", tmp_path / "f.toml", "-o", tmp_path / "f.h5")
    assert rc == 2 and "landscape.formula: a formula must be a string" in err, err


def test_analyze_of_a_file_carrying_a_hostile_formula(tmp_path: Path, seed1: Path) -> None:
    import time

    run = tmp_path / "r.h5"
    run.write_bytes(seed1.read_bytes())
    with h5py.File(run, "r+") as f:
        spec = json.loads(f.attrs["spec"])
        spec["landscape"] = {"name": "formula", "dim": 2, "formula": "x + 10**10**10 + y"}
        f.attrs["spec"] = json.dumps(spec)
    t0 = time.perf_counter()
    rc, _, err = call("analyze", run)
    assert time.perf_counter() - t0 < 10
    assert rc == 2 and "exponent" in err and "Traceback" not in err and err.count("\n") == 1, err


def test_formula_time_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    from descentlab.landscapes import formula as fm

    monkeypatch.setattr(fm, "TIME_LIMIT", 0.2)
    with pytest.raises(ValueError, match="too complex"):
        fm.formula_landscape("*".join(f"v{i}" for i in range(24)))  # about 2 s of SymPy


# ----------------------------------------------------------------------------- 8. exit 2, one line, no traceback


def assert_clean_2(rc: int, err: str, *words: str) -> None:
    assert rc == 2, err
    # information about compiling a kernel (first use) may come first; the error is one line
    err = "".join(line for line in err.splitlines(keepends=True) if not line.startswith("descentlab: compil"))
    assert err.startswith("descentlab: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, (w, err)


@pytest.mark.parametrize("kind", ["npz", "empty", "complex", "text"])
def test_bad_init_files_exit_2(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "p.npy"
    if kind == "npz":
        with open(path, "wb") as fh:
            np.savez(fh, x=np.zeros((4, 2)))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "complex":
        np.save(path, np.ones((4, 2)) * (1 + 2j))
    else:
        path.write_text("1 2\n3 4\n")
    spec = {**SPEC, "run": {"steps": 10}, "init": {"scheme": "points", "file": str(path)}}
    (tmp_path / "s.toml").write_text(toml(spec))
    rc, _, err = call("run", tmp_path / "s.toml", "-o", tmp_path / "o.h5")
    assert_clean_2(rc, err, "init.file")
    if kind == "complex":
        assert "complex" in err
    assert not (tmp_path / "o.h5").exists() and not partial_path(tmp_path / "o.h5").exists()


def test_deeply_nested_toml_exits_2(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text("[init]\npoints = " + "[" * 3000 + "]" * 3000 + "\n")
    rc, _, err = call("run", tmp_path / "s.toml", "-o", tmp_path / "o.h5")
    assert_clean_2(rc, err, "not valid TOML")


@pytest.fixture
def readonly_dir(tmp_path: Path) -> Any:
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    # root ignores permission bits: a read-only mount instead
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)],
                      capture_output=True).returncode != 0:  # fmt: skip
        pytest.skip("cannot mount a read-only tmpfs here")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_read_only_output_folder_exits_2(tmp_path: Path, readonly_dir: Path) -> None:
    (tmp_path / "s.toml").write_text(toml(with_seed(1)))
    rc, _, err = call("run", tmp_path / "s.toml", "-o", readonly_dir / "o.h5")
    assert_clean_2(rc, err, "OUT:", str(readonly_dir))
    assert list(readonly_dir.iterdir()) == []


# EFBIG from a file-size limit: a real "disk full" for this process alone, no root needed
LIMITED = """
import resource, signal, sys
from descentlab.cli import main
from descentlab.engine.spec import parse_spec
parse_spec({spec!r})  # compile (or load the cached kernels) before the limit
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
sys.exit(main(sys.argv[1:]))
"""


def test_disk_full_during_run_keeps_the_partial_and_says_how_to_resume(tmp_path: Path, seed1: Path) -> None:
    spec = with_seed(1)
    (tmp_path / "s.toml").write_text(toml(spec))
    out = tmp_path / "o.h5"
    code = LIMITED.format(spec=spec, limit=400_000)  # the run file needs about 650 kB
    proc = subprocess.run([sys.executable, "-c", code, "run", str(tmp_path / "s.toml"), "-o", str(out), "--quiet",
                           "--chunk-steps", "20", "--checkpoint-every", "0"],
                          capture_output=True, text=True, timeout=300, env={**os.environ})  # fmt: skip
    assert_clean_2(proc.returncode, proc.stderr, "disk full", "--resume", str(partial_path(out)))
    assert partial_path(out).exists() and not out.exists()
    rc, _, err = call("run", tmp_path / "s.toml", "-o", out, "--quiet", "--resume")
    assert rc == 0, err
    assert_same_data(out, seed1)


def test_disk_full_in_the_middle_of_a_run_then_resume(small_fs: Path, seed1: Path) -> None:
    """ENOSPC on a real (4 MiB tmpfs) filesystem while the trajectory is being written."""
    spec = with_seed(1)
    (small_fs / "s.toml").write_text(toml(spec))
    out = small_fs / "o.h5"
    filler = fill(small_fs)
    os.truncate(filler, filler.stat().st_size - 300_000)  # 300 kB free; the run file needs about 650 kB
    rc, _, err = call("run", small_fs / "s.toml", "-o", out, "--quiet", "--chunk-steps", "20",
                      "--checkpoint-every", "0", "--no-resource-check")  # fmt: skip
    assert_clean_2(rc, err, "disk full", "No space left on device", "--resume", str(partial_path(out)))
    assert partial_path(out).exists() and not out.exists() and not lock_path(out).exists()
    with h5py.File(partial_path(out), "r") as f:
        assert 0 < int(f.attrs["steps_done"]) < 400  # it failed in the middle, after some checkpoints
    filler.unlink()
    rc, _, err = call("run", small_fs / "s.toml", "-o", out, "--quiet", "--resume")
    assert rc == 0, err
    assert_same_data(out, seed1)


def test_crafted_run_files_exit_2(tmp_path: Path, seed1: Path) -> None:
    def craft(name: str, edit: Any) -> Path:
        p = tmp_path / f"{name}.h5"
        p.write_bytes(seed1.read_bytes())
        with h5py.File(p, "r+") as f:
            edit(f)
        return p

    cases = {
        "nospec": (lambda f: f.attrs.__delitem__("spec"), "no root attribute 'spec'"),
        "badjson": (lambda f: f.attrs.__setitem__("spec", "{not json"), "not valid JSON"),
        "nofinal": (lambda f: f.__delitem__("final"), "no dataset /final/x"),
        "notspec": (lambda f: f.attrs.__setitem__("spec", "[1, 2]"), "not a run spec"),
    }
    for name, (edit, words) in cases.items():
        p = craft(name, edit)
        for cmd in (("info", p), ("analyze", p), ("compare", p, seed1)):
            rc, _, err = call(*cmd)
            assert_clean_2(rc, err, words)


def test_formula_cache_path_that_is_not_a_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cache").write_text("a file")
    monkeypatch.setenv("DESCENTLAB_CACHE", str(tmp_path / "cache"))
    spec = {**SPEC, "landscape": {"formula": "(x - 1.25)**2 + (y + 0.5)**2 + x*y/7"}}
    (tmp_path / "f.toml").write_text(toml(spec))
    rc, _, err = call("run", tmp_path / "f.toml", "-o", tmp_path / "f.h5")
    assert_clean_2(rc, err, "landscape.formula", "DESCENTLAB_CACHE")


HOLDER = """
import sys, time, h5py
f = h5py.File(sys.argv[1], "r+")  # a writer holds the file (HDF5 lock)
print("ready", flush=True)
time.sleep(60)
"""


def test_analyze_refuses_at_once_a_file_a_writer_holds_and_info_still_reads_it(tmp_path: Path, seed1: Path) -> None:
    import time

    run = tmp_path / "r.h5"
    run.write_bytes(seed1.read_bytes())
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        t0 = time.perf_counter()
        rc, _, err = call("analyze", run)
        assert time.perf_counter() - t0 < 5  # checked first, not after the whole analysis
        assert_clean_2(rc, err, "PATH:", "lock")
        rc, out, err = call("info", run)
        assert rc == 0 and "complete" in out, err
    finally:
        proc.kill()
        proc.wait()
    assert not (tmp_path / "r.h5.analysis").exists()


def test_info_of_a_run_in_progress(tmp_path: Path) -> None:
    out = tmp_path / "o.h5"
    proc = child(with_seed(1), out, wait=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().startswith("checkpoint")
        rc, text, err = call("info", partial_path(out))
        assert rc == 0 and "INCOMPLETE" in text, err
    finally:
        proc.kill()
        proc.wait()


# ----------------------------------------------------------------------------- 6. self-contained input files


def _external_storage(path: Path, secret: Path) -> None:
    with h5py.File(path, "w") as f:
        f.create_dataset("x", shape=(8, 2), dtype="f8", external=[(str(secret), 0, h5py.h5f.UNLIMITED)])
        f["y"] = np.zeros((8, 1))


def _external_link(path: Path, secret: Path) -> None:
    with h5py.File(secret.with_suffix(".h5"), "w") as g:
        g["x"] = np.ones((8, 2))
    with h5py.File(path, "w") as f:
        f["x"] = h5py.ExternalLink(str(secret.with_suffix(".h5")), "/x")
        f["y"] = np.zeros((8, 1))


def _virtual(path: Path, secret: Path) -> None:
    with h5py.File(secret.with_suffix(".h5"), "w") as g:
        g["x"] = np.ones((8, 2))
    layout = h5py.VirtualLayout(shape=(8, 2), dtype="f8")
    layout[:] = h5py.VirtualSource(str(secret.with_suffix(".h5")), "x", shape=(8, 2))
    with h5py.File(path, "w") as f:
        f.create_virtual_dataset("x", layout)
        f["y"] = np.zeros((8, 1))


@pytest.mark.parametrize(("make", "word"), [(_external_storage, "external files"), (_external_link, "external link"),
                                            (_virtual, "virtual dataset")])  # fmt: skip
def test_data_files_reading_other_files_are_refused(tmp_path: Path, make: Any, word: str) -> None:
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(16, dtype="f8").tobytes())
    make(tmp_path / "d.h5", secret)
    spec = {**MODEL, "data": {"file": str(tmp_path / "d.h5"), "test_fraction": 0.0}}
    (tmp_path / "m.toml").write_text(toml(spec))
    rc, _, err = call("run", tmp_path / "m.toml", "-o", tmp_path / "o.h5")
    assert_clean_2(rc, err, "data.file", word)
    assert not (tmp_path / "o.h5").exists()


def test_run_file_with_external_storage_is_refused(tmp_path: Path, seed1: Path) -> None:
    run = tmp_path / "r.h5"
    run.write_bytes(seed1.read_bytes())
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(128, dtype="f8").tobytes())
    with h5py.File(run, "r+") as f:
        del f["init/x"]
        f["init"].create_dataset("x", shape=(64, 2), dtype="f8", external=[(str(secret), 0, h5py.h5f.UNLIMITED)])
    for cmd in (("info", run), ("analyze", run)):
        rc, _, err = call(*cmd)
        assert_clean_2(rc, err, "/init/x", "external files")


@pytest.mark.parametrize("declared", [None, "../secret.h5", "ABS"])
def test_run_file_with_a_virtual_dataset_outside_its_shards_is_refused(tmp_path: Path, seed1: Path,
                                                                        declared: str | None) -> None:  # fmt: skip
    # a sharded run's index may read its own shards (relative, inside its folder) and nothing else
    (tmp_path / "sub").mkdir()
    run = tmp_path / "sub" / "r.h5"
    run.write_bytes(seed1.read_bytes())
    secret = tmp_path / "secret.h5"
    with h5py.File(secret, "w") as g:
        g["x"] = np.ones((64, 2))
    with h5py.File(run, "r+") as f:
        shape = f["init/x"].shape
        del f["init/x"]
        layout = h5py.VirtualLayout(shape=shape, dtype="f8")
        layout[:] = h5py.VirtualSource("../secret.h5", "x", shape=(64, 2))
        f["init"].create_virtual_dataset("x", layout)
        if declared is not None:
            f.attrs["shards"] = json.dumps([str(secret) if declared == "ABS" else declared])
    for cmd in (("info", run), ("analyze", run)):
        rc, _, err = call(*cmd)
        assert_clean_2(rc, err, "/init/x", "virtual dataset")


# ----------------------------------------------------------------------------- 7. non-finite values


@pytest.mark.parametrize(("init", "dtype", "field"), [
    ({"scheme": "uniform", "low": -1e308, "high": 1e308}, "float64", "init.high"),
    ({"scheme": "uniform", "low": -1e39, "high": 0.0}, "float32", "init.low"),
    ({"scheme": "grid", "low": -1e308, "high": 1e308, "resolution": 8}, "float64", "init.high"),
    ({"scheme": "normal", "mean": 0.0, "std": 1e308}, "float64", "init.std"),
    ({"scheme": "constant", "value": 1e39}, "float32", "init.value"),
    ({"scheme": "points", "points": [[1e39, 0.0], [0.0, 0.0]]}, "float32", "init.points"),
])  # fmt: skip
def test_initial_positions_must_be_finite(tmp_path: Path, init: dict[str, Any], dtype: str, field: str) -> None:
    run = {"steps": 10, "dtype": dtype} if init["scheme"] in ("grid", "points") else {**SPEC["run"], "dtype": dtype}
    spec = {**SPEC, "run": run, "init": init}
    (tmp_path / "s.toml").write_text(toml(spec))
    rc, _, err = call("run", tmp_path / "s.toml", "-o", tmp_path / "o.h5")
    assert_clean_2(rc, err, f"{field}:")
    assert not (tmp_path / "o.h5").exists()


# ----------------------------------------------------------------------------- 5. memory and disk guards


def test_memory_limit_is_read_from_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    from descentlab.engine import spec as sp

    monkeypatch.delenv("DESCENTLAB_MEMORY_LIMIT", raising=False)
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    limit, _ = sp.memory_limit()
    assert 0 < limit <= 0.8 * total + 1
    monkeypatch.setattr(sp, "_machine_memory", lambda: (8 << 30, 7 << 30))  # an 8 GiB machine, 7 available
    assert sp.memory_limit()[0] == int(0.8 * (8 << 30))
    monkeypatch.setattr(sp, "_machine_memory", lambda: (64 << 30, 2 << 30))  # busy: 2 GiB available
    assert sp.memory_limit() == (2 << 30, "available now, of 64.0 GiB")
    # 10^8 particles (D = 2) no longer pass on a 23 GiB machine (the issue: ~22 GB needed, 18.6 GiB estimated)
    monkeypatch.setattr(sp, "_machine_memory", lambda: (23 << 30, 22 << 30))
    with pytest.raises(sp.SpecError, match=r"^run\.particles: the run needs about .* GiB of memory"):
        sp.parse_spec({**SPEC, "run": {"particles": 10**8, "steps": 100, "record_every": 1}})


MEASURE = """
import resource, sys
from descentlab.engine.store import write_run
from descentlab.engine.spec import parse_spec
rs = parse_spec({spec!r})
write_run(rs, sys.argv[1], progress=False)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(peak, rs.memory_bytes(records=rs.streaming_records()))
"""


def test_memory_estimate_is_an_upper_bound_of_the_peak(tmp_path: Path) -> None:
    """Whether the kernels are in the on-disk cache (warm) or compiled on the way (cold)."""
    spec = {**SPEC, "run": {"particles": 1_000_000, "steps": 20, "record_every": 1, "seed": 1}}
    proc = subprocess.run([sys.executable, "-c", MEASURE.format(spec=spec), str(tmp_path / "o.h5")],
                          capture_output=True, text=True, timeout=300, env={**os.environ})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    peak, estimate = map(int, proc.stdout.split())
    assert peak <= estimate <= 3 * peak, (peak / 2**20, estimate / 2**20)


def test_memory_guard_and_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed1: Path) -> None:
    monkeypatch.setenv("DESCENTLAB_MEMORY_LIMIT", str(64 << 20))
    (tmp_path / "s.toml").write_text(toml(with_seed(1)))
    rc, _, err = call("run", tmp_path / "s.toml", "-o", tmp_path / "o.h5")
    assert_clean_2(rc, err, "run.particles:", "MiB of memory", "--no-resource-check")
    assert list(tmp_path.iterdir()) == [tmp_path / "s.toml"]
    rc, _, err = call("run", tmp_path / "s.toml", "-o", tmp_path / "o.h5", "--quiet", "--no-resource-check")
    assert rc == 0, err
    assert_same_data(tmp_path / "o.h5", seed1)


def test_free_space_guard_and_override(small_fs: Path) -> None:
    spec = {**SPEC, "run": {"particles": 3000, "steps": 400, "record_every": 1, "seed": 1}}  # about 29 MB
    (small_fs / "s.toml").write_text(toml(spec))
    rc, _, err = call("run", small_fs / "s.toml", "-o", small_fs / "o.h5")
    assert_clean_2(rc, err, "OUT:", "MiB free", "--no-resource-check")
    assert sorted(p.name for p in small_fs.iterdir()) == ["s.toml"]  # nothing written, not even the lock
    rc, _, err = call("run", small_fs / "s.toml", "-o", small_fs / "o.h5", "--no-resource-check")
    assert_clean_2(rc, err, "disk full")  # overridden: it starts, then the disk fills, cleanly


def test_simulate_refuses_a_hostile_formula_fast() -> None:
    import time

    import descentlab as dl
    from descentlab.engine.spec import SpecError

    t0 = time.perf_counter()
    with pytest.raises(SpecError, match=r"^landscape\.formula: .*exponent"):
        dl.simulate({**SPEC, "landscape": {"formula": "x + 10**10**10"}})
    assert time.perf_counter() - t0 < 10


# ----------------------------------------------------------------------------- 9. paths relative to the spec file


def test_relative_init_file_resolves_against_the_spec_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "specs"
    folder.mkdir()
    (tmp_path / "elsewhere").mkdir()
    np.save(folder / "pts.npy", np.random.default_rng(2).uniform(-4, 4, (64, 2)))
    np.save(tmp_path / "elsewhere" / "pts.npy", np.zeros((3, 2)))  # a decoy in the current folder
    spec = {**SPEC, "run": {"steps": 50, "record_every": 10}, "init": {"scheme": "points", "file": "pts.npy"}}
    (folder / "p.toml").write_text(toml(spec))
    monkeypatch.chdir(tmp_path / "elsewhere")
    rc, _, err = call("run", "../specs/p.toml", "-o", tmp_path / "p.h5", "--quiet")
    assert rc == 0, err
    with h5py.File(tmp_path / "p.h5", "r") as f:
        stored = json.loads(f.attrs["spec"])
        np.testing.assert_array_equal(f["init/x"][...], np.load(folder / "pts.npy"))
    assert stored["init"]["file"] == str(folder / "pts.npy")
    assert stored["init"]["sha256"] == sha(folder / "pts.npy")
    monkeypatch.chdir(tmp_path)  # the stored (absolute) spec works from anywhere
    rc, _, err = call("analyze", tmp_path / "p.h5")
    assert rc == 0, err


def test_resume_of_a_complete_file_on_a_full_disk_does_nothing(small_fs: Path, seed1: Path) -> None:
    out = small_fs / "o.h5"
    out.write_bytes(seed1.read_bytes())
    (small_fs / "s.toml").write_text(toml(with_seed(1)))
    fill(small_fs)
    rc, _, err = call("run", small_fs / "s.toml", "-o", out, "--resume", "--quiet")
    assert rc == 0, err
    assert_same_data(out, seed1)


def test_analysis_never_replaces_a_file_that_is_not_its_sidecar(tmp_path: Path, seed1: Path, seed2: Path) -> None:
    run = tmp_path / "r.h5"
    run.write_bytes(seed1.read_bytes())
    other = tmp_path / "r.h5.analysis"  # a run file that happens to have the sidecar's name
    other.write_bytes(seed2.read_bytes())
    before = sha(other)
    rc, _, err = call("analyze", run)
    assert_clean_2(rc, err, "not a descentlab analysis file")
    assert sha(other) == before
