"""The command line as a user runs it: simulate against an independent solver, errors, kills."""

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
from scipy.integrate import solve_ivp

from oscsim.cli import main
from oscsim.config import load_config
from oscsim.initial import initial_state
from tests.helpers import numpy_field, relative_error

# The same integration settings for both grids.
SOLVER_SECTION = """
[solver]
method = "rk4"
dtype = "float64"
dt = 0.01
t_end = 2.0
save_every = 20
progress = false
"""

RING_CONFIG = (
    """
[network]
grid = [14]
kernel_size = 5
kernel_position = [0.3, 1.0, -2.5, 0.8, 0.2]
kernel_velocity = [0.0, 0.1, -0.2, 0.05, 0.0]
gamma = 0.7
epsilon = 0.15
bias = 0.05
[initial]
kind = "gaussian"
width = 1.5
"""
    + SOLVER_SECTION
)

TORUS_CONFIG = (
    """
[network]
grid = [9, 6]
kernel_size = 3
kernel_position = [[0.1, 0.9, 0.0], [1.1, -4.0, 0.9], [0.0, 1.0, 0.2]]
kernel_velocity = [[0.0, 0.05, 0.0], [0.02, -0.1, 0.0], [0.0, 0.0, 0.03]]
gamma = 1.2
epsilon = 0.1
[initial]
kind = "gaussian"
center = [4, 2]
"""
    + SOLVER_SECTION
)


@pytest.mark.parametrize("text", [RING_CONFIG, TORUS_CONFIG], ids=["ring-k5", "torus-9x6"])
def test_simulate_agrees_with_dop853(tmp_path: Path, text: str) -> None:
    config_path = tmp_path / "c.toml"
    config_path.write_text(text)
    out = tmp_path / "run.nc"
    assert main(["simulate", str(config_path), "--out", str(out)]) == 0
    ds = xr.open_dataset(out, engine="h5netcdf")
    config = load_config(config_path)
    params = config.network_parameters()
    y0, z0 = initial_state(config.initial, params)
    times = ds["time"].values
    reference = solve_ivp(
        numpy_field(params),
        (0.0, times[-1]),
        np.concatenate([y0.ravel(), z0.ravel()]),
        method="DOP853",
        t_eval=times,
        rtol=1e-10,
        atol=1e-12,
    )
    size = y0.size
    expected = reference.y[:size].T.reshape(ds["position"].shape)
    for frame in range(len(times)):
        # rk4 at dt = 0.01 has global error ~1e-9 here; DOP853 at rtol 1e-10 ~1e-10.
        assert relative_error(ds["position"].values[:, frame], expected[:, frame]) < 1e-6


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "oscsim.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_bad_config_exits_2_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[network]\nkernel_size = 4\n")
    result = _run(["simulate", str(path)], tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "network.kernel_size must be odd" in lines[0]
    assert not (tmp_path / "run.nc").exists()


def test_killed_simulate_leaves_no_file_under_the_output_name(tmp_path: Path) -> None:
    path = tmp_path / "long.toml"
    path.write_text(
        "[network]\ngrid = [64, 64]\n[solver]\nmethod = 'rk4'\ndt = 0.001\nt_end = 1000.0\n"
        "save_every = 100\nprogress = false\n[output]\npath = 'out.nc'\n"
    )
    for sig in (signal.SIGTERM, signal.SIGKILL):
        process = subprocess.Popen(
            [sys.executable, "-m", "oscsim.cli", "simulate", str(path)],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(4.0)
        assert process.poll() is None, "the simulation should still be running"
        os.kill(process.pid, sig)
        process.wait(timeout=60)
        assert not (tmp_path / "out.nc").exists()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name not in ("long.toml",)]
    assert leftovers == []
