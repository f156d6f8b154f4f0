"""Run the fused pass of `analysis._engine` over NumPy or dask data and finish it."""

from __future__ import annotations

import itertools
import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr
from oscsim.analysis import _engine as E
from oscsim.analysis._errors import AnalysisInputError
from oscsim.analysis._validate import (
    SignalInfo,
    constant_message,
    inspect_signal,
    is_constant,
    is_dask,
    resolve_estimator,
    resolve_window,
)

#: Partials merged per task in the tree reduction over dask blocks.
MERGE_FANOUT = 8


@dataclass
class Analysis:
    """Everything one pass found; `report` turns it into plain numbers."""

    info: SignalInfo
    opts: E.Options
    seed: int
    summary: dict[str, dict[str, float]]
    pgd_threshold: float
    wavelength_threshold: float
    null_points: int
    percent_waves: float
    percent_long_waves: float
    mode: dict[str, Any]
    points: int


def _offsets(chunks: tuple[tuple[int, ...], ...]) -> list[np.ndarray]:
    return [np.concatenate([[0], np.cumsum(c)[:-1]]).astype(int) for c in chunks]


def _tree_merge(parts: list[Any]) -> Any:
    import dask

    while len(parts) > 1:
        parts = [
            dask.delayed(E.merge_all)(parts[i : i + MERGE_FANOUT])
            for i in range(0, len(parts), MERGE_FANOUT)
        ]
    return parts[0]


def _dask_pass(arr: Any, info: SignalInfo, opts: E.Options) -> tuple[E.Partial, Any]:
    import dask
    import dask.array as dsa

    n_lead = len(info.lead)
    t_axis = n_lead
    if arr.numblocks[t_axis] > 1:
        # The Hilbert transform needs every frame of a cell in one chunk.
        arr = arr.rechunk({t_axis: -1})
    halo = opts.halo[2 - info.ndim :]
    space_axes = list(range(t_axis + 1, arr.ndim))
    small = {ax: h for ax, h in zip(space_axes, halo, strict=False) if min(arr.chunks[ax]) < h}
    if small:
        arr = arr.rechunk({ax: max(h, max(arr.chunks[ax])) for ax, h in small.items()})
    depth = {ax: 0 for ax in range(arr.ndim)}
    boundary: dict[int, str] = {ax: "none" for ax in range(arr.ndim)}
    for ax, h in zip(space_axes, halo, strict=False):
        depth[ax] = h
        boundary[ax] = "periodic"
    padded = dsa.overlap.overlap(arr, depth=depth, boundary=boundary)
    blocks = padded.to_delayed()
    offsets = _offsets(arr.chunks)
    parts = []
    for index in itertools.product(*(range(n) for n in blocks.shape)):
        lead_off = tuple(int(offsets[a][index[a]]) for a in range(n_lead))
        sp = [int(offsets[a][index[a]]) for a in space_axes]
        space_off = (sp[0], sp[1]) if info.ndim == 2 else (0, sp[0])
        parts.append(
            dask.delayed(E.block_pass)(
                blocks[index],
                n_lead=n_lead,
                lead_offset=lead_off,
                space_offset=space_off,
                periodic=False,
                opts=opts,
                check=True,
            )
        )
    (total,) = dask.compute(_tree_merge(parts))
    return total, arr


def _dask_spectrum_bins(arr: Any, info: SignalInfo, opts: E.Options, bins: list[int]):
    """Second pass over dask data: the one-sided spectrum at `bins`, ``(L, B, Y, X)``."""
    import dask

    n_lead = len(info.lead)
    blocks = arr.to_delayed()
    pieces = [
        dask.delayed(E.block_spectrum_bins)(
            blocks[index], n_lead=n_lead, bins=tuple(bins), opts=opts
        )
        for index in itertools.product(*(range(n) for n in blocks.shape))
    ]
    computed = dask.compute(*pieces)
    offsets = _offsets(arr.chunks)
    lead_shape = tuple(info.sizes[d] for d in info.lead)
    grid = info.grid if info.ndim == 2 else (1, info.grid[0])
    full = np.empty((*lead_shape, len(bins), *grid), dtype=computed[0].dtype)
    for index, piece in zip(
        itertools.product(*(range(n) for n in blocks.shape)), computed, strict=False
    ):
        sel = []
        for a in range(arr.ndim):
            if a == n_lead:
                continue
            o = int(offsets[a][index[a]])
            sel.append(slice(o, o + arr.chunks[a][index[a]]))
        lead_sel = sel[:n_lead]
        space_sel = sel[n_lead:] if info.ndim == 2 else [slice(0, 1), sel[n_lead]]
        block_lead = tuple(arr.chunks[a][index[a]] for a in range(n_lead))
        piece = piece.reshape(*block_lead, *piece.shape[1:])
        full[(*lead_sel, slice(None), *space_sel)] = piece
    return full.reshape(-1, len(bins), *grid)


def analyse(
    data: xr.DataArray,
    *,
    band: tuple[float, float] | None = None,
    window: int | None = None,
    seed: int = 0,
    estimator: str = "window",
    local_window: int | tuple[int, int] | None = None,
) -> Analysis:
    """One fused pass over `data` and every reduction of the wave report."""
    info = inspect_signal(data, window=window, band=band)
    window = resolve_window(window, info.ndim)
    estimator, local = resolve_estimator(estimator, local_window, info.grid)
    if np.iscomplexobj(data.dtype.type(0)):
        raise AnalysisInputError(
            "the wave report analyses the real signal; pass it, not its analytic signal"
        )
    opts = E.make_options(info, band, window, estimator, local)
    data = data.transpose(*info.order)
    n_lead = len(info.lead)
    lead_shape = tuple(info.sizes[d] for d in info.lead)
    grid = (info.grid[0], info.grid[1]) if info.ndim == 2 else (1, info.grid[0])
    n_cells = int(np.prod(grid))
    n_t = info.n_frames

    if is_dask(data):
        part, arr = _dask_pass(data.data, info, opts)
        if is_constant(part.spread, part.scale, data.dtype):
            raise AnalysisInputError(constant_message(part.spread, part.scale))
        power = part.power if part.power is not None else np.zeros(n_t // 2 + 1)
        order = [int(f) for f in np.argsort(power[1:])[::-1] + 1]
        top = order[: E.DASK_CANDIDATES]
        bins = sorted({g for f in top for g in (f - 1, f, f + 1) if 1 <= g < len(power)})
        spec = _dask_spectrum_bins(arr, info, opts, bins)
        where = {f: i for i, f in enumerate(bins)}

        def slices(f: int) -> np.ndarray:
            return spec[:, where[f]] * E._scale(f, n_t)

        candidates = top
    else:
        values = np.asarray(data.data)
        if not np.issubdtype(values.dtype, np.floating) and not np.iscomplexobj(values):
            values = values.astype(np.float64)
        part = E.block_pass(
            values,
            n_lead=n_lead,
            lead_offset=(0,) * n_lead,
            space_offset=(0, 0),
            periodic=True,
            opts=opts,
            keep_spectra=True,
            threads=min(4, os.cpu_count() or 1),
        )
        spectra = part.spectra

        def slices(f: int) -> np.ndarray:
            return np.stack([s[f] for s in spectra])

        power = part.power if part.power is not None else np.zeros(n_t // 2 + 1)
        candidates = [int(f) for f in np.argsort(power[1:])[::-1] + 1]

    mode = E.dominant_mode(power, slices, candidates, n_t, n_cells, info.dt, info.ndim)
    part.spectra = []
    theta = E.assemble_null(part, lead_shape, grid)
    pgd_thr, wl_thr, n_null = E.null_thresholds(theta, info.ndim, opts.window, seed)
    waves, long_waves = E.wave_shares(part, pgd_thr, wl_thr)
    return Analysis(
        info=info,
        opts=opts,
        seed=seed,
        summary=E.summarise(part),
        pgd_threshold=pgd_thr,
        wavelength_threshold=wl_thr,
        null_points=n_null,
        percent_waves=waves,
        percent_long_waves=long_waves,
        mode=mode,
        points=part.points,
    )


def finite_or_none(value: Any) -> Any:
    """JSON has no NaN or inf: map them to None, recursively."""
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value
