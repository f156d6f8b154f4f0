"""Parameter sweeps on Dask: every point of a product grid, one zarr store, resumable.

``oscsim sweep CONFIG --grid network.gamma=0.5,1,2 --grid network.epsilon=0:0.2:3 --out
S.zarr`` runs one simulation per point of the product grid on a `dask.distributed`
cluster (a `LocalCluster` by default, any scheduler by address) and writes them into one
zarr store:

1. the client checks the whole grid before any work (each point's configuration is
   validated by `oscsim.config.parse_config`; all points must share the trajectory's
   shape and frame times; the store must fit the free disk and one point the memory of a
   worker) and writes the store's *template*: the swept keys as leading dimensions with
   their coordinates, ``position`` and ``velocity`` of shape ``(*sweep, sample, time,
   channel, *grid)`` chunked one point per chunk, the base configuration, the grid and
   the full configuration of every point in the attributes, and ``point_status``;
2. each worker simulates a point exactly as ``oscsim simulate`` would (same
   configuration, so the same seeds: a point's result depends on its configuration only,
   never on the order or the worker) and writes it into the point's own region of the
   store, then sets the point's ``point_status`` to 1 (done) — or 2 (failed) with the
   error returned to the client. Trajectories never travel through the client.

Zarr writes every chunk to a temporary name and renames it, and a point is marked done
only after its region is complete, so a kill at any moment leaves finished points
finished; ``--resume`` recomputes the points whose status is not 1.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from oscsim.config import (
    SCHEMA,
    SimulationConfig,
    apply_overrides,
    parse_config,
    parse_value,
    read_toml,
)
from oscsim.errors import OscsimInputError

#: Version of the store layout below (checked on ``--resume``).
SWEEP_FORMAT = 1
#: ``point_status`` values.
PENDING, DONE, FAILED = 0, 1, 2
#: Dimension names of a trajectory, which a swept key's dimension may not take.
TRAJECTORY_DIMS = ("sample", "time", "channel", "y", "x")
#: Keys that describe how a run is shown or where it goes, not what it computes.
UNSWEPT_KEYS = ("output.path", "solver.progress")
#: Peak memory of one point as a multiple of its trajectory's bytes: the solver's frames,
#: their float64 copies and the sample-first copy of the dataset (measured on the
#: torch backend; the numba backend holds fewer copies).
MEMORY_FACTOR = 4
#: Memory of a worker process before any point (Python, torch, dask), in bytes.
WORKER_BASELINE_BYTES = 400 * 2**20


@dataclass(frozen=True)
class SweepAxis:
    """One swept key: its dimension name in the store and its values, in order."""

    key: str
    dim: str
    values: tuple[Any, ...]

    def coordinate(self) -> np.ndarray:
        """The coordinate array: numbers as numbers, words as text, anything else as JSON."""
        values = list(self.values)
        if all(isinstance(v, bool) for v in values):
            return np.asarray(values, dtype=bool)
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            return np.asarray(values, dtype=np.int64)
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            return np.asarray(values, dtype=np.float64)
        # variable-length text (object arrays): zarr's stable string type
        if all(isinstance(v, str) for v in values):
            return np.asarray(values, dtype=object)
        return np.asarray([json.dumps(v) for v in values], dtype=object)


def _key_default(key: str) -> Any:
    section, _, name = key.partition(".")
    return SCHEMA[section][name][0]


def _check_key(key: str, option: str) -> None:
    section, dot, name = key.partition(".")
    if not dot or section not in SCHEMA:
        raise OscsimInputError(
            f"--grid {option!r}: {key!r} is not section.key; sections: {', '.join(SCHEMA)}"
        )
    if name not in SCHEMA[section]:
        raise OscsimInputError(
            f"--grid {option!r}: unknown key {key}; allowed keys in [{section}]: "
            f"{', '.join(SCHEMA[section])}"
        )
    if key in UNSWEPT_KEYS:
        raise OscsimInputError(
            f"--grid {option!r}: {key} does not change what is computed and cannot be swept"
        )


def _integral(key: str, value: float) -> Any:
    """Range values of an integer key become ints when they are whole numbers."""
    if isinstance(_key_default(key), int) and not isinstance(_key_default(key), bool):
        if float(value).is_integer():
            return int(value)
    return float(value)


def parse_grid_option(option: str) -> tuple[str, tuple[Any, ...]]:
    """``KEY=V1,V2,...`` or ``KEY=START:STOP:NUM`` → ``(key, values)``.

    Values are TOML values (``0.5``, ``"rk4"`` or the bare word ``rk4``, ``true``,
    ``[16, 16]``); ``START:STOP:NUM`` gives ``NUM`` evenly spaced numbers from ``START``
    to ``STOP`` inclusive (``numpy.linspace``).

    Raises
    ------
    OscsimInputError
        For a missing ``=``, an unknown key, an empty list, a malformed range or a
        repeated value.
    """
    key, sep, text = option.partition("=")
    key, text = key.strip(), text.strip()
    if not sep or not key:
        raise OscsimInputError(
            f"--grid expects KEY=V1,V2,... or KEY=START:STOP:NUM "
            f"(for example network.gamma=0.5,1,2), got {option!r}"
        )
    _check_key(key, option)
    if not text:
        raise OscsimInputError(f"--grid {option!r}: no values given; the grid would be empty")
    values: list[Any]
    parts = text.split(":")
    if len(parts) == 3 and not text.startswith(("[", '"', "'")):
        try:
            start, stop = float(parts[0]), float(parts[1])
            num = int(parts[2])
        except ValueError:
            raise OscsimInputError(
                f"--grid {option!r}: START:STOP:NUM needs two numbers and a whole count"
            ) from None
        if num < 1 or not (math.isfinite(start) and math.isfinite(stop)):
            raise OscsimInputError(
                f"--grid {option!r}: NUM must be >= 1 and START, STOP finite; the grid would "
                "be empty"
            )
        values = [_integral(key, v) for v in np.linspace(start, stop, num).tolist()]
    else:
        listed = parse_value(f"[{text}]")
        if isinstance(listed, list):
            values = listed
        else:  # bare words such as rk4,euler are not TOML; take them one by one
            values = [parse_value(part.strip()) for part in text.split(",")]
        if any(v == "" for v in values):
            raise OscsimInputError(f"--grid {option!r}: an empty value in the list")
    if not values:
        raise OscsimInputError(f"--grid {option!r}: no values given; the grid would be empty")
    texts = [json.dumps(v, sort_keys=True) for v in values]
    if len(set(texts)) != len(texts):
        raise OscsimInputError(f"--grid {option!r}: a value is repeated; each must be distinct")
    return key, tuple(values)


def _dim_names(keys: Sequence[str]) -> list[str]:
    """The key's own name where unambiguous (``gamma``), else ``section_key``."""
    names = [key.partition(".")[2] for key in keys]
    dims = []
    for key, name in zip(keys, names, strict=True):
        if names.count(name) > 1 or name in TRAJECTORY_DIMS or name.startswith("point_"):
            name = key.replace(".", "_")
        dims.append(name)
    return dims


def _with_value(raw: Mapping[str, Any], key: str, value: Any) -> dict[str, Any]:
    section, _, name = key.partition(".")
    result = {s: dict(v) if isinstance(v, Mapping) else v for s, v in raw.items()}
    result.setdefault(section, {})
    result[section][name] = value
    return result


@dataclass(frozen=True)
class Sweep:
    """A validated product grid over one base configuration.

    ``configs[i]`` is point ``i`` in row-major order of ``shape`` (the last axis fastest),
    each a complete configuration that ``oscsim simulate`` would run the same way.
    """

    base: dict[str, Any]
    axes: tuple[SweepAxis, ...]
    configs: tuple[SimulationConfig, ...]

    @property
    def dims(self) -> tuple[str, ...]:
        """The sweep dimensions, in the order of the ``--grid`` options."""
        return tuple(axis.dim for axis in self.axes)

    @property
    def shape(self) -> tuple[int, ...]:
        """Points along each sweep dimension."""
        return tuple(len(axis.values) for axis in self.axes)

    @property
    def n_points(self) -> int:
        """Points in the grid."""
        return len(self.configs)

    def index(self, point: int) -> tuple[int, ...]:
        """The position of point ``point`` along each sweep dimension."""
        return tuple(int(i) for i in np.unravel_index(point, self.shape))

    def trajectory_shape(self) -> tuple[int, ...]:
        """``(sample, time, channel, *grid)`` of every point."""
        config = self.configs[0]
        return (
            config.initial.samples,
            config.solver.n_frames,
            config.network.channels,
            *config.network.grid,
        )

    def point_bytes(self) -> int:
        """Bytes of one point in the store (position and velocity, float64)."""
        return 2 * 8 * int(np.prod(self.trajectory_shape()))

    def spec(self) -> dict[str, Any]:
        """What defines the store (compared on ``--resume``)."""
        return {
            "format": SWEEP_FORMAT,
            "base": json.loads(json.dumps(self.base, sort_keys=True)),
            "grid": [{"key": a.key, "dim": a.dim, "values": list(a.values)} for a in self.axes],
        }


def build_sweep(
    base_raw: Mapping[str, Any], grid_options: Sequence[str], overrides: Iterable[str] = ()
) -> Sweep:
    """Validate the base configuration and every point of the grid, before any work.

    Parameters
    ----------
    base_raw
        The configuration as read from TOML.
    grid_options
        ``--grid`` texts (see `parse_grid_option`), one per swept key.
    overrides
        ``--set`` texts applied to the base first.

    Raises
    ------
    OscsimInputError
        No grid, a key given twice, an unknown key, a value of the wrong type or out of
        range for its key (naming the key and value), or points whose trajectories would
        differ in shape or frame times (they cannot share a store).
    """
    if not grid_options:
        raise OscsimInputError("give at least one --grid KEY=V1,V2,... to sweep")
    raw = apply_overrides(base_raw, overrides)
    base = parse_config(raw)
    parsed = [parse_grid_option(option) for option in grid_options]
    keys = [key for key, _ in parsed]
    for key in keys:
        if keys.count(key) > 1:
            raise OscsimInputError(f"--grid gives {key} twice; give each key once")
    axes = tuple(
        SweepAxis(key, dim, values)
        for (key, values), dim in zip(parsed, _dim_names(keys), strict=True)
    )
    # Each value alone on the base first: the message then names the one bad value.
    for axis in axes:
        for value in axis.values:
            try:
                parse_config(_with_value(raw, axis.key, value))
            except OscsimInputError as error:
                raise OscsimInputError(f"--grid {axis.key}={value!r}: {error}") from None
    configs = []
    reference = None
    for combination in itertools.product(*(axis.values for axis in axes)):
        point_raw = raw
        for axis, value in zip(axes, combination, strict=True):
            point_raw = _with_value(point_raw, axis.key, value)
        where = ", ".join(f"{a.key}={v!r}" for a, v in zip(axes, combination, strict=True))
        try:
            config = parse_config(point_raw)
        except OscsimInputError as error:
            raise OscsimInputError(f"--grid point {where}: {error}") from None
        layout = (
            config.initial.samples,
            config.network.channels,
            tuple(config.network.grid),
            config.solver.n_frames,
            round(config.solver.save_every * config.solver.dt, 12),
        )
        if reference is None:
            reference = (layout, where)
        elif layout != reference[0]:
            raise OscsimInputError(
                f"--grid points {reference[1]} and {where} save trajectories of different "
                "shape or frame times (samples, channels, grid, save_every·dt, t_end); the "
                "points of one store must share them"
            )
        configs.append(config)
    return Sweep(base=base.to_dict(), axes=axes, configs=tuple(configs))


def load_sweep(
    config_path: str | os.PathLike[str], grid_options: Sequence[str], overrides: Iterable[str]
) -> Sweep:
    """`build_sweep` of a TOML file."""
    return build_sweep(read_toml(Path(config_path)), grid_options, overrides)


# --------------------------------------------------------------------------------------
# resources


def check_resources(
    sweep: Sweep, out: str | os.PathLike[str], *, worker_memory: int | None, pending: int
) -> None:
    """Refuse a sweep whose store would not fit the disk or whose point not a worker.

    Parameters
    ----------
    out
        The store (its folder's file system is checked).
    worker_memory
        Memory limit of one worker in bytes (None: unknown, not checked).
    pending
        Points still to compute.

    Raises
    ------
    OscsimInputError
        Naming the estimate and what is available.
    """
    parent = Path(out).absolute().parent
    while not parent.exists():
        parent = parent.parent
    need = pending * sweep.point_bytes()
    free = shutil.disk_usage(parent).free
    if need > free:
        raise OscsimInputError(
            f"the sweep needs about {need / 2**30:.2f} GiB ({pending} points × "
            f"{sweep.point_bytes() / 2**20:.1f} MiB uncompressed) but {parent} has "
            f"{free / 2**30:.2f} GiB free; sweep fewer points or save fewer frames"
        )
    if worker_memory:
        per_point = MEMORY_FACTOR * sweep.point_bytes() + WORKER_BASELINE_BYTES
        if per_point > worker_memory:
            raise OscsimInputError(
                f"one point needs about {per_point / 2**30:.2f} GiB of memory "
                f"({MEMORY_FACTOR}× its {sweep.point_bytes() / 2**20:.1f} MiB trajectory plus "
                f"the worker's own) but a worker has {worker_memory / 2**30:.2f} GiB; use "
                "fewer workers, more memory per worker or save fewer frames"
            )


# --------------------------------------------------------------------------------------
# the store


def _template(sweep: Sweep) -> Any:
    """The store's lazy template (dask zeros; only metadata and coordinates are written)."""
    import dask.array as da
    import xarray as xr

    from oscsim import __version__

    samples, frames, channels, *grid = sweep.trajectory_shape()
    spatial = ("x",) if len(grid) == 1 else ("y", "x")
    trajectory_dims = ("sample", "time", "channel", *spatial)
    dims = (*sweep.dims, *trajectory_dims)
    shape = (*sweep.shape, samples, frames, channels, *grid)
    chunks = (*(1 for _ in sweep.dims), 1, frames, channels, *grid)
    coords: dict[str, Any] = {axis.dim: axis.coordinate() for axis in sweep.axes}
    coords.update(
        {
            "sample": np.arange(samples),
            "time": sweep.configs[0].solver.frame_times(),
            "channel": np.arange(channels),
        }
    )
    for name, size in zip(spatial, grid, strict=True):
        coords[name] = np.arange(size)
    variables = {
        name: (dims, da.full(shape, np.nan, chunks=chunks, dtype=np.float64))
        for name in ("position", "velocity")
    }
    variables["point_status"] = (
        sweep.dims,
        da.zeros(sweep.shape, chunks=(1,) * len(sweep.dims), dtype=np.int8),
    )
    ds = xr.Dataset(variables, coords=coords)
    ds["time"].attrs["units"] = "model time units"
    for name in spatial:
        ds[name].attrs["units"] = "cells"
    ds["point_status"].attrs["meaning"] = "0 pending, 1 done, 2 failed (see attrs point_errors)"
    for axis in sweep.axes:
        ds[axis.dim].attrs["config_key"] = axis.key
    spec = sweep.spec()
    ds.attrs.update(
        {
            "config": json.dumps(sweep.base, sort_keys=True),
            "sweep": json.dumps(spec, sort_keys=True),
            "sweep_dims": json.dumps(list(sweep.dims)),
            "point_configs": json.dumps([c.to_dict() for c in sweep.configs], sort_keys=True),
            "point_errors": "{}",
            "oscsim_version": __version__,
        }
    )
    return ds


def write_template(sweep: Sweep, out: str | os.PathLike[str]) -> Path:
    """Write the template under a temporary name and rename it to ``out`` when complete."""
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        ds = _template(sweep)
        # unwritten chunks read as the fill value: NaN for the data, PENDING for the status
        encoding = {"point_status": {"fill_value": PENDING}}
        ds.to_zarr(tmp, mode="w", compute=False, consolidated=False, encoding=encoding)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def read_spec(out: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``sweep`` attribute of a store (refusing anything that is not a sweep store)."""
    import zarr

    try:
        group = zarr.open_group(str(out), mode="r")
        text = group.attrs["sweep"]
    except Exception as error:  # noqa: BLE001 - any unreadable store gets the same answer
        raise OscsimInputError(
            f"{str(out)!r} exists and is not an oscsim sweep store ({type(error).__name__}); "
            "choose another --out"
        ) from None
    return dict(json.loads(str(text)))


def describe_difference(stored: Mapping[str, Any], wanted: Mapping[str, Any]) -> str | None:
    """The first difference between two `Sweep.spec` dicts, in words (None if equal)."""
    if stored.get("format") != wanted.get("format"):
        return f"store format {stored.get('format')} (this oscsim writes {wanted.get('format')})"
    old_grid = [(g["key"], g["values"]) for g in stored.get("grid", [])]
    new_grid = [(g["key"], g["values"]) for g in wanted.get("grid", [])]
    if [k for k, _ in old_grid] != [k for k, _ in new_grid]:
        return (
            f"swept keys {', '.join(k for k, _ in old_grid)} in the store, "
            f"{', '.join(k for k, _ in new_grid)} now"
        )
    for (key, old), (_, new) in zip(old_grid, new_grid, strict=True):
        if json.dumps(old) != json.dumps(new):
            return f"--grid {key}: {old} in the store, {new} now"
    old_base, new_base = stored.get("base", {}), wanted.get("base", {})
    for section in sorted(set(old_base) | set(new_base)):
        a, b = old_base.get(section, {}), new_base.get(section, {})
        for key in sorted(set(a) | set(b)):
            if f"{section}.{key}" in UNSWEPT_KEYS:
                continue
            if json.dumps(a.get(key)) != json.dumps(b.get(key)):
                return f"{section}.{key} = {a.get(key)!r} in the store, {b.get(key)!r} now"
    return None


def read_status(out: str | os.PathLike[str]) -> np.ndarray:
    """``point_status`` of a store, flat in point order."""
    import zarr

    return np.asarray(zarr.open_array(str(Path(out) / "point_status"), mode="r")[...]).ravel()


def _write_errors(out: str | os.PathLike[str], errors: Mapping[int, str]) -> None:
    import zarr

    group = zarr.open_group(str(out), mode="r+")
    stored = json.loads(str(group.attrs.get("point_errors", "{}")))
    stored.update({str(k): v for k, v in errors.items()})
    group.attrs["point_errors"] = json.dumps(stored, sort_keys=True)


def _clear_errors(out: str | os.PathLike[str], points: Iterable[int]) -> None:
    import zarr

    group = zarr.open_group(str(out), mode="r+")
    stored = json.loads(str(group.attrs.get("point_errors", "{}")))
    for point in points:
        stored.pop(str(point), None)
    group.attrs["point_errors"] = json.dumps(stored, sort_keys=True)


# --------------------------------------------------------------------------------------
# one point, on a worker


def _set_status(out: str, dims: Sequence[str], index: Sequence[int], value: int) -> None:
    import zarr

    status = zarr.open_array(str(Path(out) / "point_status"), mode="r+")
    status[tuple(index)] = value


def run_point(
    out: str,
    point: int,
    index: Sequence[int],
    dims: Sequence[str],
    config_json: str,
    torch_threads: int | None = None,
) -> dict[str, Any]:
    """Simulate one point and write it into its region of the store (runs on a worker).

    The trajectory goes from the worker straight into the store; the client gets back only
    the status, the time taken and, for a failure, the error.

    Returns
    -------
    dict
        ``point``, ``status`` (``"done"`` or ``"failed"``), ``seconds``; when done the
        ``write_seconds`` and ``bytes`` of its region write, when failed the ``error``.
    """
    import dataclasses

    import xarray as xr

    from oscsim.simulation import simulate

    start = time.perf_counter()
    try:
        if torch_threads is not None:
            import torch

            torch.set_num_threads(torch_threads)
        config = parse_config(json.loads(config_json))
        # no progress bar per point: the client shows the sweep's
        config = dataclasses.replace(
            config, solver=dataclasses.replace(config.solver, progress=False)
        )
        ds = simulate(config)
        region_data = xr.Dataset(
            {name: ds[name].variable for name in ("position", "velocity")}
        ).expand_dims({dim: 1 for dim in dims})
        region = {dim: slice(i, i + 1) for dim, i in zip(dims, index, strict=True)}
        written = time.perf_counter()
        region_data.to_zarr(out, region=region, consolidated=False)
        _set_status(out, dims, index, DONE)
        write_seconds = time.perf_counter() - written
    except Exception as error:  # noqa: BLE001 - a failed point is recorded, the others go on
        message = f"{type(error).__name__}: {' '.join(str(error).split())}"
        try:
            _set_status(out, dims, index, FAILED)
        except Exception as status_error:  # noqa: BLE001 - report both
            message += f" (and its status could not be written: {status_error})"
        return {
            "point": point,
            "status": "failed",
            "seconds": time.perf_counter() - start,
            "error": message,
        }
    return {
        "point": point,
        "status": "done",
        "seconds": time.perf_counter() - start,
        "write_seconds": write_seconds,
        "bytes": int(ds["position"].nbytes + ds["velocity"].nbytes),
    }


# --------------------------------------------------------------------------------------
# the sweep, from the client


@dataclass
class SweepResult:
    """What a sweep run did."""

    store: Path
    n_points: int
    computed: int
    skipped: int
    failed: dict[int, str]
    seconds: float


def pending_points(sweep: Sweep, out: str | os.PathLike[str], *, resume: bool) -> list[int]:
    """Points to compute, after checking ``out`` against the sweep.

    Raises
    ------
    OscsimInputError
        ``out`` exists without ``resume``, is no sweep store, or was made with other
        settings (the message names the first difference).
    """
    target = Path(out)
    if not target.exists():
        return list(range(sweep.n_points))
    if not resume:
        raise OscsimInputError(
            f"{str(target)!r} already exists; pass --resume to finish its missing points or "
            "choose another --out"
        )
    difference = describe_difference(read_spec(target), sweep.spec())
    if difference is not None:
        raise OscsimInputError(
            f"--resume: {str(target)!r} was made with other settings: {difference}"
        )
    status = read_status(target)
    return [int(p) for p in np.flatnonzero(status != DONE)]


def run_sweep(
    sweep: Sweep,
    out: str | os.PathLike[str],
    client: Any,
    *,
    pending: Sequence[int],
    torch_threads: int | None = None,
    progress: bool = True,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> SweepResult:
    """Compute ``pending`` points of ``sweep`` into ``out`` on ``client``'s cluster.

    Writes the template first when ``out`` does not exist. Points are submitted as
    independent tasks; the progress bar counts points done and failed and estimates the
    time left. Failed points are recorded (``point_status`` 2, ``point_errors`` in the
    attributes) and the others go on.
    """
    from distributed import as_completed
    from tqdm.auto import tqdm

    target = Path(out)
    if not target.exists():
        write_template(sweep, target)
    start = time.perf_counter()
    failed: dict[int, str] = {}
    computed = 0
    dims = list(sweep.dims)
    futures = [
        client.submit(
            run_point,
            str(target),
            point,
            sweep.index(point),
            dims,
            sweep.configs[point].to_json(),
            torch_threads,
            key=f"oscsim-point-{point}-{time.time_ns()}",
            pure=False,
        )
        for point in pending
    ]
    point_of = {future.key: point for future, point in zip(futures, pending, strict=True)}
    bar = tqdm(
        total=sweep.n_points,
        initial=sweep.n_points - len(pending),
        desc="sweep",
        unit="point",
        disable=not progress,
    )
    try:
        for future in as_completed(futures):
            point = point_of[future.key]
            try:
                result = future.result()
            except Exception as error:  # noqa: BLE001 - a lost worker fails only its point
                result = {
                    "point": point,
                    "status": "failed",
                    "error": f"{type(error).__name__}: {' '.join(str(error).split())}",
                }
            if result["status"] == "done":
                computed += 1
            else:
                failed[point] = str(result["error"])
            if on_result is not None:
                on_result(result)
            bar.set_postfix(done=computed, failed=len(failed), refresh=False)
            bar.update(1)
    finally:
        bar.close()
        for future in futures:
            future.cancel()
        _clear_errors(target, [p for p in pending if p not in failed])
        if failed:
            _write_errors(target, failed)
    return SweepResult(
        store=target,
        n_points=sweep.n_points,
        computed=computed,
        skipped=sweep.n_points - len(pending),
        failed=failed,
        seconds=time.perf_counter() - start,
    )


def local_cluster(workers: int, *, memory_limit: int | None = None) -> tuple[Any, int]:
    """A `LocalCluster` of ``workers`` processes, one task at a time each.

    Each worker runs one point at a time (``threads_per_worker=1``) and gives that point
    ``cores // workers`` torch threads, so the machine's cores are shared without
    oversubscription. Returns the cluster and that thread count.
    """
    from distributed import LocalCluster

    cores = os.cpu_count() or 1
    torch_threads = max(1, cores // workers)
    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        memory_limit=memory_limit if memory_limit is not None else "auto",
        silence_logs=40,
    )
    return cluster, torch_threads


def worker_memory_limit(client: Any) -> int | None:
    """The smallest memory limit among the cluster's workers (None when unlimited)."""
    workers = client.scheduler_info().get("workers", {})
    limits = [w.get("memory_limit") for w in workers.values() if w.get("memory_limit")]
    return int(min(limits)) if limits else None


def point_configs(ds: Any) -> list[dict[str, Any]]:
    """The full configuration of every point of a sweep store, in point order."""
    return list(json.loads(ds.attrs["point_configs"]))


def is_sweep_store(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a zarr store written by `run_sweep`."""
    target = Path(path)
    if target.suffix != ".zarr" or not target.is_dir():
        return False
    try:
        read_spec(target)
    except OscsimInputError:
        return False
    return True


def predicted_speeds(ds: Any, wavevectors: np.ndarray) -> np.ndarray:
    """The linearised network's phase speed at each point's measured dominant wave vector.

    Parameters
    ----------
    ds
        A sweep store (opened lazily; only its attributes are read).
    wavevectors
        ``(n_points, d)`` wave vectors in rad per cell, grid order (NaN where unknown).

    Returns
    -------
    numpy.ndarray
        ``(n_points,)`` speeds in cells per time unit: ``ω(k)/|k|`` of `oscsim.linear`,
        NaN where the linearisation does not apply (coupling other than ``local`` or
        ``none``, an activation other than ``tanh`` or ``identity``) or ``k`` is 0 or
        unknown.
    """
    from oscsim.config import parse_config as _parse
    from oscsim.linear import phase_speed

    configs = point_configs(ds)
    speeds = np.full(len(configs), np.nan)
    for point, raw in enumerate(configs):
        k = np.asarray(wavevectors[point], dtype=np.float64)
        if not np.all(np.isfinite(k)) or np.linalg.norm(k) == 0:
            continue
        config = _parse(raw)
        if config.network.coupling not in ("local", "none"):
            continue
        if config.network.activation not in ("tanh", "identity"):
            continue
        speeds[point] = phase_speed(config.network_parameters(), k)
    return speeds
