"""Trajectory datasets: the layout of docs/formats.md, lossless round trips, atomic writes."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest
import xarray as xr

from oscsim import OscsimInputError
from oscsim.io import dataset_config, read_trajectory, trajectory_dataset, write_trajectory


def _dataset(spatial: tuple[int, ...]) -> xr.Dataset:
    rng = np.random.default_rng(0)
    shape = (4, 2, 3, *spatial)
    return trajectory_dataset(
        np.arange(4) * 0.1,
        rng.standard_normal(shape),
        rng.standard_normal(shape),
        config={"network": {"grid": list(spatial)}},
        method="rk4",
        dt=0.01,
        gamma=np.array([1.0, 2.0, 3.0]),
        epsilon=0.1,
        coupling="local",
        seed=0,
    )


@pytest.mark.parametrize("spatial, dims", [((5,), ("x",)), ((4, 6), ("y", "x"))])
def test_layout(spatial: tuple[int, ...], dims: tuple[str, ...]) -> None:
    ds = _dataset(spatial)
    assert ds["position"].dims == ("sample", "time", "channel", *dims)
    assert ds.sizes["sample"] == 2 and ds.sizes["time"] == 4 and ds.sizes["channel"] == 3
    for name in ("sample", "channel", *dims):
        assert ds[name].dtype.kind == "i"
    assert ds["time"].dtype == np.float64
    for key in ("config", "oscsim_version", "method", "dt", "gamma", "epsilon", "coupling", "seed"):
        assert key in ds.attrs
    assert dataset_config(ds) == {"network": {"grid": list(spatial)}}


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
@pytest.mark.parametrize("spatial", [(5,), (4, 6)])
def test_round_trip_is_lossless(tmp_path, suffix: str, spatial: tuple[int, ...]) -> None:
    ds = _dataset(spatial)
    path = write_trajectory(ds, tmp_path / f"run{suffix}")
    back = read_trajectory(path)
    xr.testing.assert_identical(back.drop_attrs(), ds.drop_attrs())
    assert json.loads(back.attrs["config"]) == json.loads(ds.attrs["config"])
    np.testing.assert_array_equal(back.attrs["gamma"], ds.attrs["gamma"])
    # Overwriting an existing output is atomic too.
    write_trajectory(ds, path)
    xr.testing.assert_identical(read_trajectory(path).drop_attrs(), ds.drop_attrs())


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_failed_write_leaves_nothing(tmp_path, monkeypatch, suffix: str) -> None:
    ds = _dataset((5,))

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(xr.Dataset, "to_netcdf" if suffix == ".nc" else "to_zarr", explode)
    with pytest.raises(OSError, match="disk full"):
        write_trajectory(ds, tmp_path / f"run{suffix}")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_written_files_follow_the_umask(tmp_path, suffix: str) -> None:
    """Like a file from ``open(path, "w")``: 0o666 (folders 0o777) less the umask, not the
    private 0o600 of the temporary file it was written as."""
    old = os.umask(0o027)
    try:
        path = write_trajectory(_dataset((5,)), tmp_path / f"run{suffix}")
    finally:
        os.umask(old)
    expected = (0o777 if suffix == ".zarr" else 0o666) & ~0o027
    assert stat.S_IMODE(path.stat().st_mode) == expected


def test_times_must_match_the_time_axis() -> None:
    frames = np.zeros((1, 5, 1, 4, 6))  # sample-first by mistake: 1 "frame" of 5 samples
    with pytest.raises(OscsimInputError, match=r"times must be 1-D .* shape \(5,\)"):
        trajectory_dataset(np.arange(5.0), frames, frames)


def test_bad_suffix() -> None:
    with pytest.raises(OscsimInputError, match=r"\.nc .*\.zarr"):
        write_trajectory(_dataset((5,)), "run.csv")


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_open_trajectory_is_lazy_and_equal_to_read(tmp_path, suffix: str) -> None:
    """`open_trajectory` (what ``oscsim analyze`` uses) reads nothing until computed: the
    variables are dask arrays, and their values are those `read_trajectory` loads."""
    from oscsim.io import open_trajectory

    path = write_trajectory(_dataset((6, 5)), tmp_path / f"run{suffix}")
    loaded = read_trajectory(path)
    with open_trajectory(path) as lazy:
        assert type(lazy["position"].data).__module__.split(".")[0] == "dask"
        xr.testing.assert_identical(lazy.load(), loaded)
    with pytest.raises(OscsimInputError, match="does not exist"):
        open_trajectory(tmp_path / "missing.nc")
