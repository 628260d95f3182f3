"""SIGKILL a run after its first checkpoint, resume it, compare every dataset with an
uninterrupted run; a partial file is never reported complete (issue 3)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from descentlab import open_run
from descentlab.cli import main
from descentlab.engine.store import StoreError, partial_path, write_run

SPEC = {
    "run": {"particles": 2000, "steps": 600, "record_every": 5, "seed": 11},
    "landscape": {"name": "rosenbrock"},
    "optimizer": {"name": "adam", "lr": 0.02},
    "init": {"scheme": "uniform", "low": -2.0, "high": 2.0},
    "stop": {"grad_tol": 1e-7, "bound": 1e6},
}
TOML = """
[run]
particles = 2000
steps = 600
record_every = 5
seed = 11
[landscape]
name = "rosenbrock"
[optimizer]
name = "adam"
lr = 0.02
[init]
scheme = "uniform"
low = -2.0
high = 2.0
[stop]
grad_tol = 1e-7
bound = 1e6
"""

# The child runs the real writer; each checkpoint is announced on stdout and the run
# is slowed down so that the kill lands in the middle of it.
CHILD = """
import sys, time
from descentlab.engine.store import write_run
spec = {spec!r}
def announce(step):
    print("checkpoint", step, flush=True)
    time.sleep(0.05)
write_run(spec, sys.argv[1], chunk_steps=10, progress=False, on_checkpoint=announce, checkpoint_every=0)
print("done", flush=True)
"""


def all_datasets(path: Path) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: out.__setitem__(n, o[...]) if isinstance(o, h5py.Dataset) else None)
        assert bool(f.attrs["complete"])
        # a complete run drops its checkpoint slots (only for resuming); the pointer stays
        assert not any(k.startswith("checkpoint/") for k in out) and bool(f["checkpoint"].attrs["dropped"])
    # a complete file's checkpoint is not part of its result
    return {k: v for k, v in out.items() if not k.startswith("checkpoint/")}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_run(SPEC, tmp_path_factory.mktemp("u") / "u.h5", chunk_steps=70, progress=False)


def test_sigkill_then_resume_is_bit_identical(tmp_path: Path, uninterrupted: Path) -> None:
    out = tmp_path / "k.h5"
    proc = subprocess.Popen([sys.executable, "-c", CHILD.format(spec=SPEC), str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ})
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # blocks until the first checkpoint is on disk
        assert line.startswith("checkpoint"), (line, proc.stderr.read() if proc.stderr else "")
        line = proc.stdout.readline()
        assert line.startswith("checkpoint")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists(), "a killed run must leave only the temporary file"
    assert partial_path(out).exists()
    with open_run(partial_path(out)) as f:
        assert not f.complete
        assert 0 < f.steps_done < 600
        done = f.steps_done
    rc, _, _ = _call("info", str(partial_path(out)))
    assert rc == 0
    spec_path = tmp_path / "s.toml"
    spec_path.write_text(TOML)
    rc, _, err = _call("run", str(spec_path), "-o", str(out), "--resume", "--quiet", "--chunk-steps", "45")
    assert rc == 0, err
    assert not partial_path(out).exists() and out.exists()
    a, b = all_datasets(uninterrupted), all_datasets(out)
    assert sorted(a) == sorted(b)
    for key in a:
        assert a[key].dtype == b[key].dtype, key
        assert np.array_equal(a[key], b[key], equal_nan=a[key].dtype.kind == "f"), key
    assert done > 0


def test_partial_file_never_reported_complete(tmp_path: Path) -> None:
    """Poll the temporary file from another process while a run writes it."""
    out = tmp_path / "p.h5"
    proc = subprocess.Popen([sys.executable, "-c", CHILD.format(spec=SPEC), str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ})
    seen = 0
    try:
        while proc.poll() is None:
            if partial_path(out).exists():
                try:
                    with open_run(partial_path(out), locking=False) as f:
                        assert not f.complete
                        seen += 1
                except (OSError, KeyError, StoreError):
                    pass  # caught mid-write: unreadable, but never complete
            if out.exists():
                with h5py.File(out, "r", locking=False) as f:
                    assert bool(f.attrs["complete"])  # OUT appears only once complete
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=60)
    assert proc.returncode == 0
    assert out.exists() and not partial_path(out).exists() and seen > 0
    rc, stdout, _ = _call("info", str(out))
    assert rc == 0 and "complete" in stdout and "INCOMPLETE" not in stdout


def test_resume_of_a_complete_file_does_nothing(tmp_path: Path, uninterrupted: Path) -> None:
    out = tmp_path / "c.h5"
    out.write_bytes(uninterrupted.read_bytes())
    mtime = out.stat().st_mtime_ns
    (tmp_path / "s.toml").write_text(TOML)
    rc, _, err = _call("run", str(tmp_path / "s.toml"), "-o", str(out), "--resume", "--quiet")
    assert rc == 0, err
    assert out.stat().st_mtime_ns == mtime


def _call(*args: str) -> tuple[int, str, str]:
    import contextlib
    import io

    o, e = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e):
        rc = main(list(args))
    return rc, o.getvalue(), e.getvalue()
