"""The wave report over a parameter sweep, and its phase diagrams.

A sweep store (written by ``oscsim sweep``) holds one trajectory per point of a grid of
parameters, the swept keys as its leading dims. `sweep_metrics` runs `wave_report` on
every point — each point read lazily from the store chunk by chunk through dask, never
the whole store — and gathers the numbers into one `xarray.Dataset` with the sweep dims.
`phase_diagrams` draws speed, wavelength and percent waves over two swept parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from oscsim.analysis._errors import AnalysisInputError
from oscsim.analysis.report import wave_report

__all__ = ["METRICS", "phase_diagrams", "sweep_metrics", "write_phase_diagrams"]

#: Variable → (where in the report, units, long name).
METRICS: dict[str, tuple[tuple[str, ...], str, str]] = {
    "speed": (("speed", "median"), "cell / time", "median local wave speed"),
    "speed_q25": (("speed", "q25"), "cell / time", "first quartile of the wave speed"),
    "speed_q75": (("speed", "q75"), "cell / time", "third quartile of the wave speed"),
    "wavelength": (("wavelength", "median"), "cell", "median local wavelength"),
    "wavelength_q25": (("wavelength", "q25"), "cell", "first quartile of the wavelength"),
    "wavelength_q75": (("wavelength", "q75"), "cell", "third quartile of the wavelength"),
    "omega": (("omega", "median"), "rad / time", "median angular frequency"),
    "frequency": (("frequency", "median"), "1 / time", "median frequency"),
    "percent_waves": (("percent_waves",), "%", "time-space points in a traveling wave"),
    "percent_long_waves": (("percent_long_waves",), "%", "points in a long wave"),
    "dominant_phase_speed": (
        ("dominant_mode", "phase_speed"),
        "cell / time",
        "phase speed of the strongest k-omega mode",
    ),
    "dominant_wavelength": (
        ("dominant_mode", "wavelength"),
        "cell",
        "wavelength of the strongest k-omega mode",
    ),
    "dominant_omega": (
        ("dominant_mode", "omega"),
        "rad / time",
        "angular frequency of the strongest k-omega mode",
    ),
}


def _lookup(report: dict[str, Any], path: tuple[str, ...]) -> float:
    value: Any = report
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return float("nan")
        value = value[key]
    return float("nan") if value is None else float(value)


def sweep_metrics(
    ds: xr.Dataset,
    sweep_dims: Sequence[str],
    *,
    var: str = "position",
    band: tuple[float, float] | None = None,
    window: int | None = None,
    seed: int = 0,
    status: str | None = "point_status",
    progress: bool = True,
) -> xr.Dataset:
    """`wave_report` of every point of a sweep, as one dataset over the sweep dims.

    Parameters
    ----------
    ds
        The sweep store, opened lazily (``xarray.open_zarr``): ``ds[var]`` has dims
        ``(*sweep_dims, sample, time, channel, *space)``; samples and channels of a point
        are pooled as `wave_report` pools every non-space, non-time dim.
    sweep_dims
        The leading dims, one point per combination.
    var, band, window, seed
        As for `oscsim.analysis.wave_report`.
    status
        A variable over the sweep dims whose value 1 marks a finished point; other points
        get NaN (None: analyse every point).
    progress
        Show a progress bar over the points.

    Returns
    -------
    xarray.Dataset
        The variables of `METRICS` (units and a long name in their attrs) and
        ``dominant_wavevector`` ``(*sweep_dims, axis)`` in rad per cell, grid order, with
        the sweep coordinates; NaN where a point is missing or its metric undefined.

    Raises
    ------
    AnalysisInputError
        If `var` or a sweep dim is missing.
    """
    from tqdm.auto import tqdm

    if var not in ds.data_vars:
        raise AnalysisInputError(f"the store has no variable {var!r}")
    dims = list(sweep_dims)
    missing = [d for d in dims if d not in ds[var].dims]
    if missing:
        raise AnalysisInputError(f"sweep dims {missing} are not dims of {var!r}")
    shape = tuple(ds.sizes[d] for d in dims)
    space = [d for d in ("y", "x") if d in ds[var].dims]
    values = {name: np.full(shape, np.nan) for name in METRICS}
    wavevectors = np.full((*shape, len(space)), np.nan)
    done = (
        np.asarray(ds[status].values) == 1
        if status is not None and status in ds
        else np.ones(shape, dtype=bool)
    )
    for index in tqdm(list(np.ndindex(*shape)), desc="analyze", disable=not progress):
        if not done[index]:
            continue
        point = ds[var].isel(dict(zip(dims, index, strict=True)))
        report = wave_report(point, band=band, window=window, seed=seed)
        for name, (path, _, _) in METRICS.items():
            values[name][index] = _lookup(report, path)
        vector = report["dominant_mode"].get("wavevector") or []
        if len(vector) == len(space) and all(v is not None for v in vector):
            wavevectors[index] = vector
    coords = {d: ds[d].values for d in dims if d in ds.coords}
    out = xr.Dataset(
        {name: (dims, array) for name, array in values.items()},
        coords=coords,
    )
    out["dominant_wavevector"] = ((*dims, "axis"), wavevectors)
    out = out.assign_coords(axis=space)
    for name, (_, units, long_name) in METRICS.items():
        out[name].attrs.update({"units": units, "long_name": long_name})
    out["dominant_wavevector"].attrs.update(
        {"units": "rad / cell", "long_name": "wave vector of the strongest k-omega mode"}
    )
    out.attrs.update(
        {"variable": var, "band": "none" if band is None else list(band), "seed": seed}
    )
    return out


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _two_dims(metrics: xr.Dataset, dims: Sequence[str] | None) -> list[str]:
    numeric = [
        str(d)
        for d in metrics[next(iter(METRICS))].dims
        if metrics.sizes[d] > 1 and d in metrics.coords and metrics[d].dtype.kind in "iuf"
    ]
    chosen = list(dims) if dims is not None else numeric[:2]
    if not chosen:
        raise AnalysisInputError(
            "phase diagrams need a swept parameter with numbers and more than one value"
        )
    return chosen


def _reduce_to(field: xr.DataArray, keep: Sequence[str]) -> tuple[xr.DataArray, str]:
    others = [d for d in field.dims if d not in keep]
    note = ""
    if others:
        field = field.isel({d: 0 for d in others})
        note = ", ".join(f"{d}={field[d].values.item()}" for d in others if d in field.coords)
    return field.transpose(*keep), note


def phase_diagrams(
    metrics: xr.Dataset,
    *,
    dims: Sequence[str] | None = None,
    predicted: xr.DataArray | None = None,
) -> dict[str, Figure]:
    """Phase diagrams of speed, wavelength and percent waves over two swept parameters.

    Parameters
    ----------
    metrics
        From `sweep_metrics`.
    dims
        The two swept dims to draw (x axis first; default: the first two numeric ones).
        Other sweep dims are shown at their first value (named in the title). With one
        swept dim the diagrams are curves.
    predicted
        Optional speed of the linearised network over the same dims (NaN where it does
        not apply); drawn beside the measured speed with the same colour scale.

    Returns
    -------
    dict
        ``{"speed": Figure, "wavelength": Figure, "percent_waves": Figure}``.
    """
    keep = _two_dims(metrics, dims)
    panels = {
        "speed": [("speed", "measured (median)"), ("dominant_phase_speed", "dominant mode")],
        "wavelength": [("wavelength", "median"), ("dominant_wavelength", "dominant mode")],
        "percent_waves": [("percent_waves", "percent waves")],
    }
    figures: dict[str, Figure] = {}
    for name, entries in panels.items():
        fields = [(metrics[var], label) for var, label in entries]
        if name == "speed" and predicted is not None and np.isfinite(predicted.values).any():
            fields.append((predicted, "linearised network"))
        fig = _figure(4.2 * len(fields), 3.6)
        axes = fig.subplots(1, len(fields), squeeze=False)[0]
        shown = [_reduce_to(field, keep) for field, _ in fields]
        finite = np.concatenate([f.values[np.isfinite(f.values)].ravel() for f, _ in shown])
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        units = str(metrics[entries[0][0]].attrs.get("units", ""))
        for ax, (field, note), (_, label) in zip(axes, shown, fields, strict=True):
            title = label + (f" ({note})" if note else "")
            if len(keep) == 1:
                ax.plot(field[keep[0]].values, field.values, "o-")
                ax.set_xlabel(keep[0])
                ax.set_ylabel(f"{name} [{units}]")
                ax.set_ylim(low - 0.05 * abs(low), high + 0.05 * abs(high) + 1e-12)
            else:
                mesh = ax.pcolormesh(
                    field[keep[0]].values,
                    field[keep[1]].values,
                    field.values.T,
                    shading="nearest",
                    vmin=low,
                    vmax=high,
                    cmap="viridis",
                )
                ax.set_xlabel(keep[0])
                ax.set_ylabel(keep[1])
                fig.colorbar(mesh, ax=ax, label=f"{name} [{units}]")
            ax.set_title(title, fontsize=9)
        figures[name] = fig
    return figures


def write_phase_diagrams(
    metrics: xr.Dataset,
    out_dir: str | Path,
    *,
    dims: Sequence[str] | None = None,
    predicted: xr.DataArray | None = None,
) -> list[Path]:
    """Draw `phase_diagrams` into ``out_dir`` as ``phase_<name>.png``; return the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in phase_diagrams(metrics, dims=dims, predicted=predicted).items():
        path = out / f"phase_{name}.png"
        fig.savefig(path, dpi=110)
        paths.append(path)
    return paths
