"""Trajectories as `xarray.Dataset`, written atomically to netCDF or zarr (DESIGN §3).

Dims ``("sample", "time", "channel", "x")`` on a ring and ``("sample", "time", "channel",
"y", "x")`` on a torus; variables ``position`` and ``velocity``; attrs carry everything
needed to rerun (the whole configuration as JSON under ``config``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from oscsim.atomic import atomic_target
from oscsim.atomic import current_umask as _umask
from oscsim.errors import OscsimInputError

SUFFIXES = (".nc", ".zarr")


def _version() -> str:
    from oscsim import __version__

    return __version__


def _attr_value(value: Any) -> Any:
    """A netCDF-safe attribute: numbers, strings and 1-D numeric arrays pass; others to JSON."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float, str, np.integer, np.floating)):
        return value
    array = np.asarray(value)
    if array.dtype.kind in "if" and array.ndim == 1:
        return array
    return json.dumps(value.tolist() if isinstance(value, np.ndarray) else value)


def trajectory_dataset(
    times: np.ndarray,
    position: np.ndarray,
    velocity: np.ndarray,
    *,
    config: dict[str, Any] | str | None = None,
    **attrs: Any,
) -> xr.Dataset:
    """Build the DESIGN §3 dataset from time-first arrays.

    Parameters
    ----------
    times
        ``(S,)`` model times.
    position, velocity
        ``(S, B, C, n)`` or ``(S, B, C, h, w)``.
    config
        The configuration (dict, stored as JSON) that reruns it.
    **attrs
        Further attributes (``method``, ``dt``, ``gamma``, ``epsilon``, ``coupling``,
        ``seed``, …).
    """
    position = np.asarray(position)
    velocity = np.asarray(velocity)
    if position.shape != velocity.shape or position.ndim not in (4, 5):
        raise OscsimInputError(
            "position and velocity must share a shape (S, B, C, n) or (S, B, C, h, w); got "
            f"{position.shape} and {velocity.shape}"
        )
    times = np.asarray(times, dtype=np.float64)
    if times.ndim != 1 or times.shape[0] != position.shape[0]:
        raise OscsimInputError(
            f"times must be 1-D with one entry per frame of position's first (time) axis: "
            f"got times of shape {times.shape} for position of shape {position.shape} "
            "(expected (S, B, C, n) or (S, B, C, h, w), time first)"
        )
    spatial = ("x",) if position.ndim == 4 else ("y", "x")
    dims = ("sample", "time", "channel", *spatial)
    # Stored sample-first: one sample's whole history is contiguous on disk.
    order = (1, 0, 2, *range(3, position.ndim))
    coords: dict[str, Any] = {
        "sample": np.arange(position.shape[1]),
        "time": times,
        "channel": np.arange(position.shape[2]),
    }
    for axis, name in enumerate(spatial, start=3):
        coords[name] = np.arange(position.shape[axis])
    ds = xr.Dataset(
        {
            "position": (dims, np.transpose(position, order)),
            "velocity": (dims, np.transpose(velocity, order)),
        },
        coords=coords,
    )
    ds["time"].attrs["units"] = "model time units"
    ds["x"].attrs["units"] = "cells"
    if "y" in ds.coords:
        ds["y"].attrs["units"] = "cells"
    config_text = config if isinstance(config, str) else json.dumps(config or {}, sort_keys=True)
    ds.attrs["config"] = config_text
    ds.attrs["oscsim_version"] = _version()
    for key, value in attrs.items():
        ds.attrs[key] = _attr_value(value)
    return ds


def _check_suffix(path: Path) -> str:
    if path.suffix not in SUFFIXES:
        raise OscsimInputError(
            f"output path {str(path)!r} must end in .nc (netCDF) or .zarr (zarr)"
        )
    return path.suffix


def write_trajectory(ds: xr.Dataset, path: str | os.PathLike[str]) -> Path:
    """Write ``ds`` to ``path`` (``.nc`` or ``.zarr``) atomically.

    The data go to a temporary name in the same folder, renamed into place only when
    complete, so a crash or kill never leaves a truncated file under ``path``.
    """
    target = Path(path)
    suffix = _check_suffix(target)
    if suffix == ".nc":
        with atomic_target(target) as tmp:
            ds.to_netcdf(tmp, engine="h5netcdf")
        return target
    # a zarr store is a folder: written under a temporary name, then swapped in
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        ds.to_zarr(tmp, mode="w", consolidated=False)
        os.chmod(tmp, 0o777 & ~_umask())
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _existing(path: str | os.PathLike[str]) -> tuple[Path, str]:
    source = Path(path)
    suffix = _check_suffix(source)
    if not source.exists():
        raise OscsimInputError(f"no trajectory at {str(source)!r}")
    return source, suffix


def _dask_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("dask") is not None


def open_trajectory(path: str | os.PathLike[str]) -> xr.Dataset:
    """Open a trajectory written by `write_trajectory` lazily.

    Nothing is read until it is computed, so a recording larger than memory streams
    through dask-aware code such as `oscsim.analysis.analyze_dataset` (``oscsim analyze``
    opens files this way). With dask installed (the ``dask`` extra) the variables are dask
    arrays in the file's own chunks (a zarr store's chunks; one chunk per variable for
    netCDF); without it they are xarray's lazily indexed arrays, read on first use. Close
    the dataset when done (``with open_trajectory(path) as ds: ...``).

    Raises
    ------
    OscsimInputError
        For a path that does not end in ``.nc`` or ``.zarr``, or does not exist.
    """
    source, suffix = _existing(path)
    chunks: dict[str, int] | None = {} if _dask_available() else None
    if suffix == ".nc":
        return xr.open_dataset(source, engine="h5netcdf", chunks=chunks)
    return xr.open_zarr(source, consolidated=False, chunks=chunks)


def read_trajectory(path: str | os.PathLike[str]) -> xr.Dataset:
    """Read a trajectory written by `write_trajectory` fully into memory."""
    source, suffix = _existing(path)
    if suffix == ".nc":
        with xr.open_dataset(source, engine="h5netcdf") as ds:
            return ds.load()
    with xr.open_zarr(source, consolidated=False) as ds:
        return ds.load()


def dataset_config(ds: xr.Dataset) -> dict[str, Any]:
    """The configuration stored in a trajectory's ``config`` attribute."""
    text = ds.attrs.get("config")
    if not text:
        return {}
    return dict(json.loads(text))
