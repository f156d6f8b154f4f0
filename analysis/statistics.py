"""Reductions over space and time: summary statistics, percent waves, the dominant mode.

They all come from one fused pass over the data (`analysis._engine`), which streams over
dask chunks with bounded memory; unlike the per-point functions in `analysis.fields` they
compute when called and return concrete results. They pool every dimension (``time``,
the grid, and ``sample``, ``channel``, … alike): select first, e.g.
``data.sel(sample=0)``, for the statistics of one sample.
"""

from __future__ import annotations

import xarray as xr
from oscsim.analysis._driver import Analysis, analyse

__all__ = [
    "dominant_mode",
    "percent_long_waves",
    "percent_waves",
    "summary_statistics",
]

_STATISTICS = ("median", "q25", "q75", "iqr")


def summary_from(result: Analysis) -> xr.Dataset:
    """`summary_statistics` from a finished `Analysis`."""
    tu = result.info.time_units
    units = {
        "speed": f"cell / {tu}",
        "wavelength": "cell",
        "omega": f"rad / {tu}",
        "frequency": f"1 / {tu}",
    }
    names = {
        "speed": "wave speed",
        "wavelength": "wavelength",
        "omega": "angular frequency",
        "frequency": "frequency",
    }
    data_vars = {
        key: xr.DataArray(
            [result.summary[key][s] for s in _STATISTICS],
            dims=("statistic",),
            attrs={"units": unit, "long_name": names[key]},
        )
        for key, unit in units.items()
    }
    circ = result.summary["direction"]
    for key, long_name in (
        ("mean", "circular mean direction of propagation"),
        ("median", "circular median direction of propagation"),
        ("circular_std", "circular standard deviation of the direction"),
        ("resultant_length", "resultant length of the directions"),
    ):
        data_vars[f"direction_{key}"] = xr.DataArray(
            circ[key],
            attrs={"units": "1" if key == "resultant_length" else "rad", "long_name": long_name},
        )
    return xr.Dataset(
        data_vars,
        coords={"statistic": list(_STATISTICS)},
        attrs={
            "description": (
                "amplitude-weighted median, quartiles and inter-quartile range over time, "
                "space and every other dimension; directions by circular statistics"
            ),
            "points": result.points,
        },
    )


def summary_statistics(
    data: xr.DataArray,
    *,
    band: tuple[float, float] | None = None,
    estimator: str = "window",
    local_window: int | tuple[int, int] | None = None,
) -> xr.Dataset:
    """Amplitude-weighted medians and quartiles of speed, wavelength, ω and frequency; circular
    statistics of the direction.

    Each (time, cell) point counts with the weight of its instantaneous amplitude, so that
    points where the oscillation has died out hardly count. Quantiles are read off fine
    histograms (bins of at most 0.1 % of the value) summed over chunks. Directions are
    angles, and get circular statistics only: the circular mean, the circular median, the
    resultant length R and the circular standard deviation sqrt(−2 ln R).

    Parameters
    ----------
    data
        The real signal (dims ``time``, ``x`` or ``y, x``, others pooled).
    band
        Optional band-pass ``(low, high)`` in cycles per time unit.
    estimator, local_window
        The local estimator of k and ω, as for `analysis.wave_vector`.

    Returns
    -------
    xarray.Dataset
        Variables ``speed``, ``wavelength``, ``omega``, ``frequency`` over dim
        ``statistic`` = ``median, q25, q75, iqr``; 0-d ``direction_mean``,
        ``direction_median``, ``direction_circular_std`` (rad) and
        ``direction_resultant_length``; with ``units`` attrs.

    Raises
    ------
    AnalysisInputError
        If `data` is not a signal the analysis accepts.
    """
    return summary_from(analyse(data, band=band, estimator=estimator, local_window=local_window))


def _percent(value: float, threshold: float, result: Analysis, what: str) -> xr.DataArray:
    return xr.DataArray(
        value,
        name=what,
        attrs={
            "units": "%",
            "null_threshold": threshold,
            "null_points": result.null_points,
            "window": result.opts.window,
            "seed": result.seed,
        },
    )


def percent_waves(
    data: xr.DataArray,
    *,
    band: tuple[float, float] | None = None,
    window: int | None = None,
    seed: int = 0,
) -> xr.DataArray:
    """Share of (time, cell) points whose local PGD reaches the shuffled null's 99th percentile.

    PGD is `analysis.phase_gradient_directionality` over `window` cells (``window²`` on a
    torus; by default 9 on a ring, 5 on a torus). The null is the same measure on a
    spatially shuffled copy of the phase (one random permutation of the cells per field,
    from ``numpy.random.default_rng(seed)``),
    over about 10⁶ points of evenly spaced frames. A plane wave scores about 100 %,
    spatial noise about 1 %.

    On a ring a window of 5 makes the null degenerate: one neighbourhood in 16 has all
    gradients of one sign (PGD exactly 1), so the 99th percentile is 1. Points at the
    threshold count, and noise then scores about 6 %; the default window of 9 gives
    about 1 %.

    Returns
    -------
    xarray.DataArray
        0-d, in percent; attrs ``null_threshold`` (the PGD threshold), ``null_points``.
    """
    result = analyse(data, band=band, window=window, seed=seed)
    return _percent(result.percent_waves, result.pgd_threshold, result, "percent_waves")


def percent_long_waves(
    data: xr.DataArray,
    *,
    band: tuple[float, float] | None = None,
    window: int | None = None,
    seed: int = 0,
) -> xr.DataArray:
    """The paper's measure: share of points whose wavelength exceeds the shuffled 99th percentile.

    The wavelength ``2π/|k|`` at each point is compared with the 99th percentile of the
    same quantity on the spatially shuffled copy used by `percent_waves`. Only waves longer
    than the null's long tail count (a few tens of cells on a torus), so on small grids it
    stays near 0 even for clean waves; `percent_waves` is the measure that scores any
    coherent wave.

    Returns
    -------
    xarray.DataArray
        0-d, in percent; attrs ``null_threshold`` (a wavelength in cells).
    """
    result = analyse(data, band=band, window=window, seed=seed)
    return _percent(
        result.percent_long_waves, result.wavelength_threshold, result, "percent_long_waves"
    )


def mode_from(result: Analysis) -> xr.Dataset:
    """`dominant_mode` from a finished `Analysis`."""
    tu = result.info.time_units
    m = result.mode
    units = {
        "k_x": "rad / cell",
        "k_y": "rad / cell",
        "omega": f"rad / {tu}",
        "frequency": f"1 / {tu}",
        "phase_speed": f"cell / {tu}",
        "wavelength": "cell",
        "direction": "rad",
        "power_fraction": "1",
    }
    data_vars = {
        key: xr.DataArray(float("nan") if m.get(key) is None else float(m[key]), attrs={"units": u})
        for key, u in units.items()
        if key in m
    }
    return xr.Dataset(data_vars, attrs={"exact": int(bool(m.get("exact")))})


def dominant_mode(data: xr.DataArray, *, band: tuple[float, float] | None = None) -> xr.Dataset:
    """The strongest (k, ω > 0) mode of the space–time Fourier spectrum.

    The power ``|FFT_t,x,y[s]|²`` (mean removed, optionally band-passed), summed over any
    other dims, is maximised over ω > 0 and every wave vector of the grid. ω is refined
    between frequency bins from the neighbouring bins' amplitudes (exact for a sinusoid
    under the rectangular window); k stays on the grid's wavenumbers, which are the only
    ones a periodic grid supports.

    Returns
    -------
    xarray.Dataset
        0-d variables ``k_x`` (``k_y``) in rad/cell, ``omega``, ``frequency``,
        ``phase_speed`` = ω/|k|, ``wavelength``, ``direction`` (of k), ``power_fraction``
        (the mode's share of the power); attrs ``exact`` = 1 when the search proved the
        maximum (always for NumPy data).
    """
    return mode_from(analyse(data, band=band))
