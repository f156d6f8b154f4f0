"""Trajectories as `xarray.Dataset`, written atomically to netCDF or zarr (docs/formats.md).

Dims ``("sample", "time", "channel", "x")`` on a ring and ``("sample", "time", "channel",
"y", "x")`` on a torus; variables ``position`` and ``velocity``; attrs carry everything
needed to rerun (the whole configuration as JSON under ``config``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from oscsim.atomic import ZARR_MARKERS, OutputPathError, atomic_target, check_output_path
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
    """Build the trajectory dataset (docs/formats.md#trajectories) from time-first arrays.

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


def check_trajectory_output(path: str | os.PathLike[str]) -> Path:
    """Refuse, before any work, a trajectory path that `write_trajectory` could not write.

    Raises
    ------
    OscsimInputError
        If the suffix is not ``.nc``/``.zarr`` or the path cannot be written (see
        `oscsim.atomic.check_output_path`: a folder as a file name, a file as a store, a
        name too long, a folder that is a file or not writable).
    """
    target = Path(path)
    suffix = _check_suffix(target)
    try:
        return check_output_path(target, directory=suffix == ".zarr")
    except OutputPathError as error:
        raise OscsimInputError(str(error)) from None


def write_trajectory(ds: xr.Dataset, path: str | os.PathLike[str]) -> Path:
    """Write ``ds`` to ``path`` (``.nc`` or ``.zarr``) atomically.

    The data go to a temporary name in the same folder, renamed into place only when
    complete (`oscsim.atomic`), so a crash, kill or signal never leaves a truncated file
    under ``path``, and a zarr store replacing an older one is swapped in whole.

    Raises
    ------
    OscsimInputError
        If ``path`` cannot be written (`check_trajectory_output`), before writing.
    """
    target = check_trajectory_output(path)
    if target.suffix == ".nc":
        with atomic_target(target) as tmp:
            ds.to_netcdf(tmp, engine="h5netcdf")
        return target
    with atomic_target(target, directory=True) as tmp:
        ds.to_zarr(tmp, mode="w", consolidated=False)
    return target


#: The first bytes of an HDF5 file (netCDF4 is HDF5) and of a classic netCDF3 file.
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
NETCDF3_SIGNATURE = b"CDF"


#: What xarray's readers raise on a truncated, damaged or foreign file.
_READ_ERRORS = (OSError, ValueError, KeyError, TypeError, RuntimeError)


def _checked_source(path: str | os.PathLike[str], what: str) -> Path:
    """`path` as a Path, checked to be a readable ``.nc`` file or ``.zarr`` store."""
    source = Path(path)
    if source.suffix not in SUFFIXES:
        raise OscsimInputError(
            f"{what} {str(source)!r} must end in .nc (netCDF4) or .zarr (zarr store)"
        )
    _check_readable(source, what)
    return source


def _unreadable(source: Path, what: str, error: Exception) -> OscsimInputError:
    """The one-line error for a trajectory the reader failed on, naming the reader's error."""
    text = " ".join(str(error).split())[:200]
    return OscsimInputError(
        f"{what} {str(source)!r} cannot be read (truncated or damaged?): "
        f"{type(error).__name__}: {text}"
    )


def _check_readable(source: Path, what: str) -> None:
    if not source.exists():
        raise OscsimInputError(f"{what} {str(source)!r} does not exist")
    if source.suffix == ".nc":
        if not source.is_file():
            raise OscsimInputError(
                f"{what} {str(source)!r} is not a regular file; expected a netCDF4 file"
            )
        try:
            with source.open("rb") as handle:
                head = handle.read(8)
        except OSError as error:
            raise OscsimInputError(f"{what} {str(source)!r} cannot be read: {error}") from None
        if head.startswith(NETCDF3_SIGNATURE):
            raise OscsimInputError(
                f"{what} {str(source)!r} is classic netCDF3; oscsim reads netCDF4 (HDF5) "
                "files: convert it (e.g. nccopy -k nc4 IN OUT)"
            )
        if head != HDF5_SIGNATURE:
            raise OscsimInputError(
                f"{what} {str(source)!r} is not a netCDF4 (HDF5) file"
                + (" (it is empty)" if not head else "")
                + "; expected a trajectory written by oscsim simulate"
            )
    elif not source.is_dir() or not any((source / m).exists() for m in ZARR_MARKERS):
        raise OscsimInputError(
            f"{what} {str(source)!r} is not a zarr store (a folder with .zgroup or zarr.json); "
            "expected a trajectory written by oscsim simulate"
        )


def read_trajectory(
    path: str | os.PathLike[str], *, variables: Sequence[str] = (), what: str = "trajectory"
) -> xr.Dataset:
    """Read a trajectory written by `write_trajectory` fully into memory.

    Parameters
    ----------
    path
        A ``.nc`` (netCDF4) file or ``.zarr`` store.
    variables
        Variables that must be present (e.g. ``("position", "velocity")``).
    what
        How the file is named in error messages (e.g. ``"initial.path"``).

    Raises
    ------
    OscsimInputError
        If the file is missing, of another format (netCDF3, not HDF5, not a store),
        truncated or damaged, or lacks one of ``variables``.
    """
    source = _checked_source(path, what)
    try:
        if source.suffix == ".nc":
            with xr.open_dataset(source, engine="h5netcdf") as ds:
                loaded = ds.load()
        else:
            with xr.open_zarr(source, consolidated=False) as ds:
                loaded = ds.load()
    except _READ_ERRORS as error:
        raise _unreadable(source, what, error) from None
    missing = [name for name in variables if name not in loaded.data_vars]
    if missing:
        raise OscsimInputError(
            f"{what} {str(source)!r} has no variable {missing[0]!r} (it has "
            f"{', '.join(map(str, loaded.data_vars)) or 'none'}); expected a trajectory "
            "written by oscsim simulate"
        )
    return loaded


def _dask_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("dask") is not None


def open_trajectory(path: str | os.PathLike[str], *, what: str = "trajectory") -> xr.Dataset:
    """Open a trajectory written by `write_trajectory` lazily.

    Nothing is read until it is computed, so a recording larger than memory streams
    through dask-aware code such as `oscsim.analysis.analyze_dataset` (``oscsim analyze``
    opens files this way). With dask installed (the ``dask`` extra) the variables are dask
    arrays in the file's own chunks (a zarr store's chunks; one chunk per variable for
    netCDF); without it they are xarray's lazily indexed arrays, read on first use. Close
    the dataset when done (``with open_trajectory(path) as ds: ...``).

    Parameters
    ----------
    path
        A ``.nc`` (netCDF4) file or ``.zarr`` store.
    what
        How the file is named in error messages.

    Raises
    ------
    OscsimInputError
        If the file is missing, of another format (netCDF3, not HDF5, not a store) or
        cannot be opened.
    """
    source = _checked_source(path, what)
    chunks: dict[str, int] | None = {} if _dask_available() else None
    try:
        if source.suffix == ".nc":
            return xr.open_dataset(source, engine="h5netcdf", chunks=chunks)
        return xr.open_zarr(source, consolidated=False, chunks=chunks)
    except _READ_ERRORS as error:
        raise _unreadable(source, what, error) from None


def dataset_config(ds: xr.Dataset) -> dict[str, Any]:
    """The configuration stored in a trajectory's ``config`` attribute."""
    text = ds.attrs.get("config")
    if not text:
        return {}
    return dict(json.loads(text))
