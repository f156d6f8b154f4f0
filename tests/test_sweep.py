"""`oscsim sweep` on a real two-process LocalCluster: store layout, equality with
`oscsim simulate` alone, failures, bad grids, a real kill -9 and --resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from oscsim.cli import main
from oscsim.config import parse_config
from oscsim.errors import OscsimInputError
from oscsim.io import write_trajectory
from oscsim.simulation import simulate
from oscsim.sweep import (
    DONE,
    FAILED,
    build_sweep,
    check_resources,
    local_cluster,
    parse_grid_option,
    pending_points,
    read_status,
    run_sweep,
)

BASE = {
    "network": {"grid": [16], "gamma": 1.0, "epsilon": 0.1},
    "initial": {"kind": "random", "samples": 2, "seed": 3},
    "solver": {"t_end": 2.0, "dt": 0.05, "save_every": 4, "progress": False},
}

BASE_TOML = """
[network]
grid = [16]
[initial]
kind = "random"
seed = 3
[solver]
t_end = 2.0
dt = 0.05
save_every = 4
"""


@pytest.fixture(scope="module")
def client():
    from distributed import Client

    cluster, _ = local_cluster(2)
    with Client(cluster) as c:
        yield c
    cluster.close()


def _open(path: Path) -> xr.Dataset:
    return xr.open_zarr(path, consolidated=False)


def test_store_layout_and_points_equal_simulate_alone(tmp_path, client):
    grid = ["network.gamma=0.5,2", "solver.method=rk4,euler", "network.seed=7"]
    sweep = build_sweep(BASE, grid)
    out = tmp_path / "s.zarr"
    result = run_sweep(sweep, out, client, pending=range(sweep.n_points), progress=False)
    assert (result.computed, result.failed) == (4, {})
    ds = _open(out)
    assert ds["position"].dims == ("gamma", "method", "seed", "sample", "time", "channel", "x")
    assert ds["gamma"].values.tolist() == [0.5, 2.0]
    assert ds["method"].values.tolist() == ["rk4", "euler"]
    assert ds["seed"].values.dtype.kind == "i"
    configs = json.loads(ds.attrs["point_configs"])
    assert len(configs) == 4 and configs[2]["solver"]["method"] == "rk4"
    assert (configs[2]["network"]["gamma"], configs[2]["network"]["seed"]) == (2.0, 7)
    # every point bit for bit equal to the same configuration simulated alone here
    for point in range(sweep.n_points):
        alone = simulate(parse_config(configs[point]))
        index = dict(zip(sweep.dims, sweep.index(point), strict=True))
        for var in ("position", "velocity"):
            np.testing.assert_array_equal(ds[var].isel(index).values, alone[var].values)
    assert (read_status(out) == DONE).all()


def test_failed_point_is_recorded_and_the_others_finish(tmp_path, client):
    # the second point starts from a trajectory file that is not there: it fails on its
    # worker with the reader's error, the first is written
    start = tmp_path / "start.nc"
    write_trajectory(simulate(parse_config(BASE)), start)
    base = {**BASE, "initial": {"kind": "file", "samples": 2, "path": str(start)}}
    sweep = build_sweep(base, [f"initial.path={str(start)!r},{str(tmp_path / 'gone.nc')!r}"])
    out = tmp_path / "f.zarr"
    result = run_sweep(sweep, out, client, pending=range(2), progress=False)
    assert result.computed == 1 and list(result.failed) == [1]
    assert read_status(out).tolist() == [DONE, FAILED]
    errors = json.loads(_open(out).attrs["point_errors"])
    assert "does not exist" in errors["1"] and "gone.nc" in errors["1"]
    assert np.isfinite(_open(out)["position"].isel(path=0).values).all()
    assert np.isnan(_open(out)["position"].isel(path=1).values).all()
    # resume wants exactly the failed point again
    assert pending_points(sweep, out, resume=True) == [1]


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("network.gama=1,2", "unknown key network.gama"),
        ("gamma=1,2", "is not section.key"),
        ("network.gamma=", "no values"),
        ("network.gamma=1:2:0", "NUM must be >= 1"),
        ("network.gamma=1,x", "network.gamma must be a number"),
        ("solver.method=rk4,nope", "solver.method must be one of"),
        ("network.grid=[8],[16]", "different shape"),
        ("network.gamma=1,1", "repeated"),
        ("output.path=a.nc,b.nc", "cannot be swept"),
    ],
)
def test_bad_grids_are_refused_before_any_work(option, message):
    with pytest.raises(OscsimInputError, match=message):
        build_sweep(BASE, [option])


def test_grid_ranges_and_words():
    assert parse_grid_option("network.gamma=0:1:3") == ("network.gamma", (0.0, 0.5, 1.0))
    assert parse_grid_option("network.seed=0:4:3") == ("network.seed", (0, 2, 4))
    assert parse_grid_option("solver.method=rk4,euler") == ("solver.method", ("rk4", "euler"))
    key, values = parse_grid_option("network.gamma=[1.0, 2.0],3")
    assert values == ([1.0, 2.0], 3)


def test_cli_refuses_bad_input_with_status_2_before_writing(tmp_path, capsys):
    config = tmp_path / "base.toml"
    config.write_text(BASE_TOML)
    out = tmp_path / "x.zarr"
    assert main(["sweep", str(config), "--out", str(out)]) == 2
    assert "at least one --grid" in capsys.readouterr().err
    assert main(["sweep", str(config), "--grid", "network.gamma=1", "--out", "a.nc"]) == 2
    assert "must end in .zarr" in capsys.readouterr().err
    # a store far larger than any disk: refused by the estimate, nothing written
    big = ["--set", "solver.t_end=1e7", "--set", "network.grid=[1024,1024]"]
    assert main(["sweep", str(config), "--grid", "network.gamma=1,2", "--out", str(out), *big]) == 2
    assert "GiB free" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob(".x.zarr*"))


def _chunks(store: Path, point: int) -> list[Path]:
    """The chunk files of ``position`` at sweep index ``point`` (zarr v3 or v2 layout)."""
    v3 = [p for p in (store / "position" / "c" / str(point)).rglob("*") if p.is_file()]
    return v3 or list((store / "position").glob(f"{point}.*"))


def _status_or_none(out: Path) -> np.ndarray | None:
    try:
        return read_status(out)
    except Exception:  # noqa: BLE001 - the template may not be there yet
        return None


def test_kill_minus_9_then_resume_computes_only_missing_points(tmp_path, client):
    config = tmp_path / "base.toml"
    # each point takes a few tenths of a second on one core, so the kill lands mid-sweep
    config.write_text(BASE_TOML.replace("t_end = 2.0", "t_end = 40.0"))
    out = tmp_path / "r.zarr"
    command = [
        sys.executable,
        "-m",
        "oscsim.cli",
        "sweep",
        str(config),
        "--grid",
        "network.gamma=0.5:3:6",
        "--workers",
        "2",
        "--out",
        str(out),
        "--no-progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    status = None
    while time.monotonic() < deadline:
        status = _status_or_none(out)
        if status is not None and 1 <= (status == DONE).sum() <= 4:
            break
        if process.poll() is not None:
            pytest.fail(f"the sweep ended before the kill: {process.communicate()}")
        time.sleep(0.05)
    else:
        pytest.fail(f"no point finished in time: {status}")
    process.send_signal(signal.SIGKILL)
    process.wait()
    time.sleep(2.0)  # the workers notice their nanny's parent is gone and exit
    before = read_status(out)
    done_before = np.flatnonzero(before == DONE)
    assert 1 <= done_before.size < 6
    chunk_times = {
        path: path.stat().st_mtime_ns for p in done_before for path in _chunks(out, int(p))
    }
    assert len(chunk_times) == done_before.size  # one chunk per finished point (one sample)
    # --resume, on the test's own cluster: the same code path as the command line
    sweep = build_sweep(_read(config), ["network.gamma=0.5:3:6"])
    pending = pending_points(sweep, out, resume=True)
    assert pending == [p for p in range(6) if p not in done_before]
    result = run_sweep(sweep, out, client, pending=pending, progress=False)
    assert (result.computed, result.skipped, result.failed) == (len(pending), done_before.size, {})
    assert (read_status(out) == DONE).all()
    for path, mtime in chunk_times.items():  # finished points were not rewritten
        assert path.stat().st_mtime_ns == mtime
    # the resumed store equals each point run alone
    ds = _open(out)
    configs = json.loads(ds.attrs["point_configs"])
    for point in (int(done_before[0]), 5):
        alone = simulate(parse_config(configs[point]))
        np.testing.assert_array_equal(ds["position"].isel(gamma=point).values, alone["position"])
    # other settings are refused, naming the difference
    other = build_sweep(_read(config), ["network.gamma=0.5:3:6"], ["network.epsilon=0.3"])
    with pytest.raises(OscsimInputError, match="network.epsilon = 0.1 in the store, 0.3 now"):
        pending_points(other, out, resume=True)


def _read(path: Path) -> dict:
    from oscsim.config import read_toml

    return read_toml(path)


WAVE = {
    # a linear ring carrying one plane wave of k = 2π/16: its speed is ω(k)/k exactly
    "network": {
        "grid": [32],
        "activation": "identity",
        "kernel_position": [0.5, 0.0, 0.5],
        "kernel_velocity": [0.0, 0.0, 0.0],
        "epsilon": 0.0,
    },
    "initial": {"kind": "plane_wave", "amplitude": 0.1, "wavevector": [2 * np.pi / 16]},
    "solver": {"t_end": 40.0, "dt": 0.02, "save_every": 5, "progress": False},
}


def test_analyze_a_sweep_store_gives_metrics_over_the_sweep_and_phase_diagrams(
    tmp_path, client, capsys
):
    sweep = build_sweep(WAVE, ["network.gamma=1.2,2.0", "network.seed=0,1"])
    store = tmp_path / "w.zarr"
    run_sweep(sweep, store, client, pending=range(sweep.n_points), progress=False)
    out = tmp_path / "analysis"
    assert main(["analyze", str(store), "--out", str(out)]) == 0
    assert "analysed 4 of 4 points" in capsys.readouterr().out
    metrics = xr.load_dataset(out / "sweep_metrics.nc", engine="h5netcdf")
    assert metrics["speed"].dims == ("gamma", "seed")
    assert metrics["gamma"].values.tolist() == [1.2, 2.0]
    for name in ("speed", "wavelength", "percent_waves", "predicted_speed"):
        assert np.isfinite(metrics[name].values).all(), name
    # the k-omega spectrum resolves omega to 2π/T (T = 40): the dominant mode's speed is
    # the linear prediction to half a bin, (π/40)/k
    k = 2 * np.pi / 16
    half_bin = (np.pi / 40) / k
    np.testing.assert_allclose(
        metrics["dominant_phase_speed"], metrics["predicted_speed"], atol=half_bin
    )
    for gamma in (1.2, 2.0):  # ω² = γ − cos k for this kernel (0.5·e^{ik} + 0.5·e^{−ik})
        expected = np.sqrt(gamma - np.cos(k)) / k
        np.testing.assert_allclose(metrics["predicted_speed"].sel(gamma=gamma), expected)
    assert metrics["wavelength"].sel(gamma=2.0).values == pytest.approx(16, rel=0.05)
    for name in ("speed", "wavelength", "percent_waves"):
        assert (out / f"phase_{name}.png").stat().st_size > 0


def test_a_point_larger_than_a_worker_s_memory_is_refused(tmp_path):
    sweep = build_sweep(BASE, ["network.gamma=1,2"])
    # 2 samples × 11 frames × 16 cells × 2 variables × 8 B = 5632 B per point; a worker
    # limit below the estimate (4 × that + the worker's own memory) is refused
    assert sweep.point_bytes() == 2 * 11 * 16 * 2 * 8
    with pytest.raises(OscsimInputError, match="of memory"):
        check_resources(sweep, tmp_path / "m.zarr", worker_memory=2**20, pending=2)
    check_resources(sweep, tmp_path / "m.zarr", worker_memory=2**30, pending=2)
