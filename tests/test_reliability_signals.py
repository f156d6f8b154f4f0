"""Signals and kills during writes: exit 130/143 without a traceback, nothing left behind.

Each case runs ``tests/reliability_driver.py`` in a subprocess, which arranges the signal
at a chosen moment (see its docstring); the atomic writer is also checked in process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import oscsim.atomic
from oscsim.atomic import is_zarr_store, remove_stale_temporaries, temp_name, write_text_atomic
from oscsim.io import read_trajectory, trajectory_dataset, write_trajectory
from tests.reliability_files import GOOD_CONFIG

DRIVER = Path(__file__).with_name("reliability_driver.py")
ROOT = DRIVER.parent.parent


def _drive(mode: str, folder: Path, out_name: str) -> subprocess.CompletedProcess[str]:
    config = folder / "c.toml"
    config.write_text(GOOD_CONFIG)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(DRIVER), mode, str(config), str(folder / out_name)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=folder,
    )


@pytest.mark.parametrize(
    ("mode", "out_name", "status", "word"),
    [
        ("term-in-write", "out.nc", 143, "terminated"),
        ("int-in-write", "out.nc", 130, "interrupted"),
        ("term-in-zarr", "out.zarr", 143, "terminated"),
        ("term-in-integration", "out.nc", 143, "terminated"),
    ],
)
def test_a_signal_is_honoured_with_its_status_and_leaves_nothing(
    tmp_path: Path, mode: str, out_name: str, status: int, word: str
) -> None:
    result = _drive(mode, tmp_path, out_name)
    assert result.returncode == status, result.stderr
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr
    assert result.stderr == f"oscsim simulate: {word}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml"]


def test_kill_9_mid_write_leaves_a_temporary_that_the_next_write_removes(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(GOOD_CONFIG)
    out = tmp_path / "out.nc"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, str(DRIVER), "hang-in-write", str(config), str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "READY"
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    stale = [p for p in tmp_path.iterdir() if p.name.startswith(".oscsim-")]
    assert len(stale) == 1 and not out.exists()
    # The name stays short whatever the target's length.
    assert len(stale[0].name) < 45
    ds = trajectory_dataset(np.arange(2.0), np.zeros((2, 1, 1, 4)), np.zeros((2, 1, 1, 4)))
    write_trajectory(ds, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml", "out.nc"]
    xr.testing.assert_identical(read_trajectory(out).drop_attrs(), ds.drop_attrs())


def test_a_live_writers_temporary_is_left_alone(tmp_path: Path) -> None:
    target = tmp_path / "x.txt"
    mine = temp_name(target)  # this process: alive
    mine.write_text("in progress")
    parent = target.with_name(mine.name.replace(f"-{os.getpid()}-", f"-{os.getppid()}-"))
    parent.write_text("in progress too")
    other = tmp_path / ".oscsim-00000000-1-00000000.tmp"  # another target's tag
    other.write_text("not ours to judge")
    assert remove_stale_temporaries(target) == []
    assert mine.exists() and parent.exists() and other.exists()


@pytest.mark.parametrize("length", [252, 255])
def test_a_target_with_the_longest_name_is_written(tmp_path: Path, length: int) -> None:
    name = "t" * (length - 3) + ".nc"
    ds = trajectory_dataset(np.arange(2.0), np.zeros((2, 1, 1, 4)), np.zeros((2, 1, 1, 4)))
    write_trajectory(ds, tmp_path / name)
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_a_replaced_zarr_store_is_always_whole(tmp_path: Path, monkeypatch) -> None:
    """The new store is exchanged with the old in one rename: when the old is removed, the
    target is already the whole new store, and there was never a moment without one."""
    target = tmp_path / "run.zarr"
    shape = (2, 1, 1, 4)
    old = trajectory_dataset(np.arange(2.0), np.zeros(shape), np.zeros(shape))
    new = trajectory_dataset(np.arange(2.0), np.ones(shape), np.ones(shape))
    write_trajectory(old, target)
    seen: list[float] = []
    remove = oscsim.atomic._remove

    def check_then_remove(path: Path) -> None:
        if path.parent == tmp_path and path != target:
            assert is_zarr_store(target)
            seen.append(float(read_trajectory(target)["position"].max()))
        remove(path)

    replace = os.replace

    def no_gap(src, dst, *args, **kwargs):
        if Path(dst) == target:
            assert not Path(dst).exists(), "a rename over an existing store leaves a gap"
        return replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(oscsim.atomic, "_remove", check_then_remove)
    monkeypatch.setattr(oscsim.atomic.os, "replace", no_gap)
    write_trajectory(new, target)
    assert seen == [1.0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.zarr"]


def test_an_error_inside_a_write_removes_the_temporary(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="disk full"):
        with oscsim.atomic.atomic_target(tmp_path / "x.txt") as tmp:
            tmp.write_text("half")
            raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []
    write_text_atomic("whole", tmp_path / "x.txt")
    assert (tmp_path / "x.txt").read_text() == "whole"


def test_kill_9_during_training_then_resume_finishes_the_same_run(tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = ["train", "adding", "--out", str(out), "--seq-len", "10", "--limit-eval", "8"]
    argv += ["--batch-size", "4", "--set", "hidden=9", "--checkpoint-every", "1"]
    argv += ["--max-steps", "100000"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "oscsim.cli", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    deadline = time.monotonic() + 240
    while not (out / "last.safetensors").exists():
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.2)
    time.sleep(1.0)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    from oscsim.models.checkpoint import load_checkpoint

    from oscsim.cli import main

    step = int(load_checkpoint(out / "last.safetensors")["step"])
    assert (
        main(["train", "adding", "--resume", "--out", str(out), "--max-steps", str(step + 3)]) == 0
    )
    assert int(load_checkpoint(out / "last.safetensors")["step"]) == step + 3
    assert not [p for p in out.iterdir() if p.name.startswith(".oscsim-")]
