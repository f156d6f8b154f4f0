"""Wave quantities at every (time, cell) point (DESIGN §4), as xarray objects.

Each function takes the real signal ``s`` — a DataArray with a ``time`` dimension and
spatial dims ``x`` (ring) or ``y, x`` (torus), any other dims broadcasting — or the complex
analytic signal that `analytic_signal` returned (then used as it is, so that a chain of
calls transforms only once). Results keep the input's dims and coordinates and carry
``units`` in their attrs. On dask-backed input they are lazy: time must be whole in each
chunk (it is rechunked if not); chunk along space, and the periodic halo that the spatial
differences need is exchanged between chunks by `dask.array.map_overlap`.

For ``s = cos(k·x − ω·t)`` with ``ω > 0`` the phase is ``θ = ω·t − k·x``, and these
functions return exactly ``k``, ``ω`` and speed ``ω/|k|`` (up to the Hilbert transform's
edge effects when the recording does not hold a whole number of periods).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import xarray as xr
from oscsim.analysis import _kernels as K
from oscsim.analysis._errors import AnalysisInputError
from oscsim.analysis._validate import (
    TIME,
    SignalInfo,
    check_not_constant,
    inspect_signal,
    is_dask,
    resolve_estimator,
    resolve_window,
)

__all__ = [
    "amplitude",
    "analytic_signal",
    "bandpass",
    "direction",
    "instantaneous_frequency",
    "local_resultant_length",
    "phase",
    "phase_gradient_directionality",
    "phase_velocity",
    "remove_mean",
    "wave_speed",
    "wave_vector",
    "wavelength",
]


def _setup(data: Any, **checks: Any) -> tuple[SignalInfo, xr.DataArray]:
    info = inspect_signal(data, **checks)
    arranged = data.transpose(*info.order)
    if is_dask(arranged):
        t_axis = len(info.lead)
        if arranged.data.numblocks[t_axis] > 1:
            arranged = arranged.chunk({TIME: -1})
    return info, arranged


def _map(
    fn: Callable[[np.ndarray], np.ndarray],
    arr: Any,
    info: SignalInfo,
    *,
    halo: int = 0,
    dtype: Any = None,
) -> Any:
    """Apply a NumPy kernel to a NumPy array, or blockwise (with a periodic halo) to dask."""
    if not hasattr(arr, "dask"):
        return fn(arr)
    if halo == 0:
        return arr.map_blocks(fn, dtype=dtype)
    import dask.array as dsa

    space = range(arr.ndim - info.ndim, arr.ndim)
    depth = {ax: (halo if ax in space else 0) for ax in range(arr.ndim)}
    boundary = {ax: ("periodic" if ax in space else "none") for ax in range(arr.ndim)}
    return dsa.map_overlap(fn, arr, depth=depth, boundary=boundary, dtype=dtype)


def _like(
    values: Any, template: xr.DataArray, original: xr.DataArray, name: str, attrs: dict[str, Any]
) -> xr.DataArray:
    out = xr.DataArray(values, dims=template.dims, coords=template.coords, name=name, attrs=attrs)
    return out.transpose(*original.dims)


def _units(info: SignalInfo) -> dict[str, str]:
    tu = info.time_units
    return {
        "phase": "rad",
        "omega": f"rad / {tu}",
        "k": "rad / cell",
        "velocity": f"cell / {tu}",
        "length": "cell",
    }


def _analytic(info: SignalInfo, arr: xr.DataArray, band: tuple[float, float] | None) -> Any:
    """The analytic signal's array (NumPy or dask) in ``info.order``."""
    values = arr.data
    if np.iscomplexobj(np.empty(0, dtype=arr.dtype)):
        return values
    t_axis = len(info.lead)

    def kernel(x: np.ndarray) -> np.ndarray:
        if is_dask(arr):
            # NumPy data was checked whole by inspect_signal; a dask chunk when computed
            check_not_constant(x, t_axis)
        return K.analytic_signal(x, t_axis, band=band, dt=info.dt, check=True)

    complex_dtype = np.result_type(K.float_dtype(arr.dtype), np.complex64)
    return _map(kernel, values, info, dtype=complex_dtype)


def remove_mean(data: xr.DataArray) -> xr.DataArray:
    """The signal minus its mean over ``time`` (per cell and per any other index).

    Raises
    ------
    AnalysisInputError
        If `data` is not a signal the analysis accepts (see `analysis.AnalysisInputError`).
    """
    inspect_signal(data)
    out = data - data.mean(TIME)
    out.attrs = dict(data.attrs)
    return out


def bandpass(data: xr.DataArray, band: tuple[float, float]) -> xr.DataArray:
    """Mean removed, then a zero-phase Butterworth band-pass along ``time``.

    The filter is of order `analysis._validate.BUTTER_ORDER` (4), run forwards and
    backwards by `scipy.signal.sosfiltfilt`, so it shifts no phase.

    Parameters
    ----------
    data
        The signal (dims ``time``, ``x`` or ``y, x``, others broadcast).
    band
        ``(low, high)`` in cycles per time unit, with ``0 < low < high < Nyquist``.

    Raises
    ------
    AnalysisInputError
        For a band outside (0, Nyquist) or too few frames for the filter's padding.
    """
    info, arr = _setup(data, band=band)
    t_axis = len(info.lead)
    low, high = float(band[0]), float(band[1])

    def kernel(x: np.ndarray) -> np.ndarray:
        return K.prepare(x, t_axis, (low, high), info.dt, True)

    values = _map(kernel, arr.data, info, dtype=K.float_dtype(arr.dtype))
    attrs = dict(data.attrs, band=[low, high], band_units=f"1 / {info.time_units}")
    return _like(values, arr, data, str(data.name or "signal"), attrs)


def analytic_signal(data: xr.DataArray, *, band: tuple[float, float] | None = None) -> xr.DataArray:
    """``a = s + i·H[s]`` along ``time``, after removing the time mean and band-passing.

    Equal to ``scipy.signal.hilbert`` of the mean-free (band-passed) signal. A complex
    input is returned unchanged (it is taken to be an analytic signal already).

    Parameters
    ----------
    data
        The real signal (dims ``time``, ``x`` or ``y, x``; others broadcast).
    band
        Optional band-pass ``(low, high)`` in cycles per time unit (see `bandpass`).

    Returns
    -------
    xarray.DataArray
        Complex, same dims and coords as `data`.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> t = np.arange(200) * 0.1
    >>> s = xr.DataArray(np.cos(2.0 * t)[:, None] * np.ones(8), dims=("time", "x"),
    ...                  coords={"time": t})
    >>> float(abs(analytic_signal(s)).sel(time=10.0).mean().round(2))
    1.0
    """
    info, arr = _setup(data, band=band)
    values = _analytic(info, arr, band)
    attrs = {"long_name": "analytic signal", "units": str(data.attrs.get("units", ""))}
    return _like(values, arr, data, "analytic_signal", attrs)


def phase(
    data: xr.DataArray,
    *,
    band: tuple[float, float] | None = None,
    method: str = "analytic",
    threshold: float = 0.0,
) -> xr.DataArray:
    """Instantaneous phase ``θ = arg a`` in radians, in (−π, π].

    Parameters
    ----------
    data, band
        As for `analytic_signal`.
    method
        ``"analytic"`` (default): the phase of the analytic signal. ``"generalized"``: the
        generalized phase of Davis et al. (2020, Nature 587: 432–436) for wideband signals —
        the analytic signal's phase with its negative-frequency epochs (where it slips
        backwards, instantaneous frequency below `threshold` rad per time unit) stitched
        over by shape-preserving interpolation (see `analysis._kernels.generalized_phase`).
    threshold
        For ``"generalized"``: the frequency below which an epoch is stitched over.

    Raises
    ------
    AnalysisInputError
        As `analytic_signal`, and for an unknown method.
    """
    if method not in ("analytic", "generalized"):
        raise AnalysisInputError(f"method must be 'analytic' or 'generalized', got {method!r}")
    info, arr = _setup(data, band=band)
    a = _analytic(info, arr, band)
    if method == "generalized":
        t_axis = len(info.lead)
        thr = float(threshold)

        def gp(x: np.ndarray) -> np.ndarray:
            return K.generalized_phase(x, t_axis, info.dt, thr).astype(K.float_dtype(x.dtype))

        values = _map(gp, a, info, dtype=K.float_dtype(a.dtype))
    else:
        values = _map(np.angle, a, info, dtype=K.float_dtype(a.dtype))
    attrs = {"long_name": f"instantaneous phase ({method})", "units": "rad"}
    return _like(values, arr, data, "phase", attrs)


def amplitude(data: xr.DataArray, *, band: tuple[float, float] | None = None) -> xr.DataArray:
    """Instantaneous amplitude ``|a|``, in the units of the signal.

    Parameters and raises as `analytic_signal`.
    """
    info, arr = _setup(data, band=band)
    a = _analytic(info, arr, band)
    values = _map(np.abs, a, info, dtype=K.float_dtype(a.dtype))
    attrs = {"long_name": "instantaneous amplitude", "units": str(data.attrs.get("units", ""))}
    return _like(values, arr, data, "amplitude", attrs)


Estimator = tuple[str, tuple[int, int]]


def _estimator(info: SignalInfo, estimator: str, local_window: Any) -> Estimator:
    return resolve_estimator(estimator, local_window, info.grid)


def _omega(info: SignalInfo, a: Any, est: Estimator = ("one_sample", (1, 1))) -> Any:
    t_axis = len(info.lead)
    name, (frames, cells) = est
    if name == "window":

        def kernel(x: np.ndarray) -> np.ndarray:
            (q, _), *_ = K.local_phase_sums(x, t_axis, info.ndim, frames, cells)
            return (np.angle(q) / (2 * info.dt)).astype(K.float_dtype(x.dtype))

        return _map(kernel, a, info, halo=cells // 2 + 1, dtype=K.float_dtype(a.dtype))

    def one(x: np.ndarray) -> np.ndarray:
        return K.wrapped_time_rate(x, t_axis, info.dt)

    return _map(one, a, info, dtype=K.float_dtype(a.dtype))


def _k(info: SignalInfo, a: Any, est: Estimator = ("one_sample", (1, 1))) -> list[Any]:
    """k = −∇θ, components in the order of ``info.space``."""
    name, (frames, cells) = est
    t_axis = len(info.lead)
    comps = []
    for i, axis in enumerate(range(-info.ndim, 0)):
        kernel: Callable[[np.ndarray], np.ndarray]
        if name == "window":

            def windowed(x: np.ndarray, i: int = i) -> np.ndarray:
                sums = K.local_phase_sums(x, t_axis, info.ndim, frames, cells)
                return (-np.angle(sums[1 + i][0])).astype(K.float_dtype(x.dtype))

            kernel, halo = windowed, cells // 2 + 1
        else:

            def one(x: np.ndarray, axis: int = axis) -> np.ndarray:
                return -K.phase_gradient(x, axis)

            kernel, halo = one, 1
        comps.append(_map(kernel, a, info, halo=halo, dtype=K.float_dtype(a.dtype)))
    return comps


def instantaneous_frequency(
    data: xr.DataArray,
    *,
    band: tuple[float, float] | None = None,
    estimator: str = "window",
    local_window: int | tuple[int, int] | None = None,
) -> xr.DataArray:
    """Angular frequency ``ω = ∂θ/∂t`` in rad per time unit.

    By default ``ω = arg Σ a(t'+1)·conj(a(t'−1)) / (2·dt)`` over the window around each
    point (the amplitude-weighted circular mean of the phase steps); with
    ``estimator="one_sample"``, the mean of the wrapped differences to the previous and the
    next frame (exact for a linear phase up to the Nyquist frequency; one-sided at the first
    and last frames). The time coordinate must be uniformly spaced; its step is the unit of
    time.

    Parameters
    ----------
    data, band
        As for `analytic_signal`.
    estimator
        ``"window"`` (default): the angle of the amplitude-weighted sum of phase steps over
        a window of ``local_window`` around each point — for ω the steps
        ``a(t+1)·conj(a(t−1))`` (two frames, so that white noise adds no bias; valid below
        half the Nyquist frequency), for k the steps ``a(x+1)·conj(a(x))`` along each grid
        axis. ``"one_sample"``: the phase differenced over one neighbour on each side, exact
        for clean waves up to the Nyquist frequency (and |k| < π/2), but noisy.
    local_window
        ``(frames, cells)`` of the window estimator, odd; an int means both; by default
        ``(3, 5)``: 3 frames and 5 cells along each spatial axis (5 × 5 on a torus).

    Raises
    ------
    AnalysisInputError
        As `analytic_signal`, and for an unknown estimator or a bad window.
    """
    info, arr = _setup(data, band=band)
    est = _estimator(info, estimator, local_window)
    values = _omega(info, _analytic(info, arr, band), est)
    attrs = {
        "long_name": "angular frequency",
        "units": _units(info)["omega"],
        "estimator": est[0],
        "local_window": list(est[1]),
    }
    return _like(values, arr, data, "omega", attrs)


def wave_vector(
    data: xr.DataArray,
    *,
    band: tuple[float, float] | None = None,
    estimator: str = "window",
    local_window: int | tuple[int, int] | None = None,
) -> xr.Dataset:
    """Wave vector ``k = −∇θ`` in rad per cell.

    By default ``k_x = −arg Σ a(x'+1)·conj(a(x'))`` over the window around each point,
    likewise along ``y``; with ``estimator="one_sample"``,
    ``∂θ/∂x ≈ arg(a[x+1]·conj(a[x−1])) / 2`` on the periodic grid. Both are exact for plane
    waves longer than 2 cells (window) or 4 cells (one sample).

    Parameters
    ----------
    data, band
        As for `analytic_signal`.
    estimator
        ``"window"`` (default): the angle of the amplitude-weighted sum of phase steps over
        a window of ``local_window`` around each point — for ω the steps
        ``a(t+1)·conj(a(t−1))`` (two frames, so that white noise adds no bias; valid below
        half the Nyquist frequency), for k the steps ``a(x+1)·conj(a(x))`` along each grid
        axis. ``"one_sample"``: the phase differenced over one neighbour on each side, exact
        for clean waves up to the Nyquist frequency (and |k| < π/2), but noisy.
    local_window
        ``(frames, cells)`` of the window estimator, odd; an int means both; by default
        ``(3, 5)``: 3 frames and 5 cells along each spatial axis (5 × 5 on a torus).

    Returns
    -------
    xarray.Dataset
        ``k_x`` (and ``k_y`` on a torus), same dims as `data`.
    """
    info, arr = _setup(data, band=band)
    est = _estimator(info, estimator, local_window)
    comps = _k(info, _analytic(info, arr, band), est)
    units = _units(info)["k"]
    return xr.Dataset(
        {
            f"k_{d}": _like(
                c, arr, data, f"k_{d}", {"long_name": f"wave vector, {d}", "units": units}
            )
            for d, c in zip(info.space, comps, strict=False)
        },
        attrs={"estimator": est[0], "local_window": list(est[1])},
    )


def local_resultant_length(
    data: xr.DataArray,
    *,
    band: tuple[float, float] | None = None,
    local_window: int | tuple[int, int] | None = None,
) -> xr.Dataset:
    """How well the phase steps in each window agree: the uncertainty of the window estimator.

    ``R = |Σ p| / Σ |p|`` over the window of the ``"window"`` estimator, for the steps ``p``
    in time (``R_omega``) and along each grid axis (``R_k_y``, ``R_k_x``). 1 where every step
    in the window points the same way; for ``n`` independent steps of circular spread σ
    (radians, small) it is about ``1 − σ²/2``, so the circular standard error of the
    estimate is about ``sqrt(−2·ln R / n)``.

    Returns
    -------
    xarray.Dataset
        ``R_omega``, ``R_k_x`` (and ``R_k_y``) in [0, 1], same dims as `data`.
    """
    info, arr = _setup(data, band=band)
    _, (frames, cells) = _estimator(info, "window", local_window)
    a = _analytic(info, arr, band)
    t_axis = len(info.lead)
    names = ["omega", *(f"k_{d}" for d in info.space)]
    out = {}
    for i, name in enumerate(names):

        def kernel(x: np.ndarray, i: int = i) -> np.ndarray:
            s, m = K.local_phase_sums(x, t_axis, info.ndim, frames, cells, magnitude=True)[i]
            with np.errstate(invalid="ignore", divide="ignore"):
                r = np.where(m > 0, np.abs(s) / m, 0.0)
            return np.minimum(r, 1.0).astype(K.float_dtype(x.dtype))

        values = _map(kernel, a, info, halo=cells // 2 + 1, dtype=K.float_dtype(a.dtype))
        out[f"R_{name}"] = _like(
            values, arr, data, f"R_{name}", {"long_name": f"resultant length, {name}", "units": "1"}
        )
    return xr.Dataset(out, attrs={"local_window": [frames, cells]})


def _velocity(info: SignalInfo, a: Any, est: Estimator) -> list[Any]:
    omega = _omega(info, a, est)
    comps = _k(info, a, est)
    k2 = sum(c * c for c in comps)
    with np.errstate(divide="ignore", invalid="ignore"):
        return [omega * c / k2 for c in comps]


def phase_velocity(
    data: xr.DataArray,
    *,
    band: tuple[float, float] | None = None,
    estimator: str = "window",
    local_window: int | tuple[int, int] | None = None,
) -> xr.Dataset:
    """Phase velocity ``v = ω·k / |k|²`` in cells per time unit.

    Parameters as `wave_vector`.

    Returns
    -------
    xarray.Dataset
        ``v_x`` (and ``v_y`` on a torus); infinite where ``k = 0``.
    """
    info, arr = _setup(data, band=band)
    est = _estimator(info, estimator, local_window)
    comps = _velocity(info, _analytic(info, arr, band), est)
    units = _units(info)["velocity"]
    return xr.Dataset(
        {
            f"v_{d}": _like(
                c, arr, data, f"v_{d}", {"long_name": f"phase velocity, {d}", "units": units}
            )
            for d, c in zip(info.space, comps, strict=False)
        }
    )


def wave_speed(
    data: xr.DataArray,
    *,
    band: tuple[float, float] | None = None,
    estimator: str = "window",
    local_window: int | tuple[int, int] | None = None,
) -> xr.DataArray:
    """Wave speed ``|v| = |ω| / |k|`` in cells per time unit (infinite where ``k = 0``).

    Parameters as `wave_vector`.
    """
    info, arr = _setup(data, band=band)
    est = _estimator(info, estimator, local_window)
    a = _analytic(info, arr, band)
    omega = _omega(info, a, est)
    knorm = sum(c * c for c in _k(info, a, est)) ** 0.5
    with np.errstate(divide="ignore", invalid="ignore"):
        values = abs(omega) / knorm
    attrs = {"long_name": "wave speed", "units": _units(info)["velocity"]}
    return _like(values, arr, data, "speed", attrs)


def wavelength(
    data: xr.DataArray,
    *,
    band: tuple[float, float] | None = None,
    estimator: str = "window",
    local_window: int | tuple[int, int] | None = None,
) -> xr.DataArray:
    """Wavelength ``2π / |k|`` in cells (infinite where ``k = 0``).

    Parameters as `wave_vector`.
    """
    info, arr = _setup(data, band=band)
    est = _estimator(info, estimator, local_window)
    knorm = sum(c * c for c in _k(info, _analytic(info, arr, band), est)) ** 0.5
    with np.errstate(divide="ignore"):
        values = (2 * math.pi) / knorm
    attrs = {"long_name": "wavelength", "units": _units(info)["length"]}
    return _like(values, arr, data, "wavelength", attrs)


def direction(
    data: xr.DataArray,
    *,
    band: tuple[float, float] | None = None,
    estimator: str = "window",
    local_window: int | tuple[int, int] | None = None,
) -> xr.DataArray:
    """Direction of propagation ``atan2(v_y, v_x)`` in radians, from +x towards +y.

    On a ring it is 0 (towards +x) or π (towards −x). Parameters as `wave_vector`.
    """
    info, arr = _setup(data, band=band)
    est = _estimator(info, estimator, local_window)
    comps = _velocity(info, _analytic(info, arr, band), est)
    vy = comps[0] if info.ndim == 2 else 0.0
    values = np.arctan2(vy, comps[-1])
    attrs = {"long_name": "direction of propagation", "units": "rad"}
    return _like(values, arr, data, "direction", attrs)


def phase_gradient_directionality(
    data: xr.DataArray, *, band: tuple[float, float] | None = None, window: int | None = None
) -> xr.DataArray:
    """Local phase-gradient directionality, in [0, 1].

    ``PGD = |mean of ∇θ| / mean of |∇θ|`` over the ``window`` cells (ring) or
    ``window × window`` cells (torus) centred on each cell, periodic. 1 where all phase
    gradients in the neighbourhood are parallel (a plane wave), small for noise; 0 where
    every gradient there is zero.

    Parameters
    ----------
    window
        Odd neighbourhood size, at least 3 and at most the grid; by default 9 on a ring and
        5 on a torus (`analysis._validate.DEFAULT_WINDOW` says why).
    """
    info, arr = _setup(data, band=band, window=window)
    size = resolve_window(window, info.ndim)
    a = _analytic(info, arr, band)

    def kernel(x: np.ndarray) -> np.ndarray:
        grads = [K.phase_gradient(x, axis) for axis in range(-info.ndim, 0)]
        return K.directionality(grads, info.ndim, size).astype(K.float_dtype(x.dtype))

    values = _map(kernel, a, info, halo=1 + size // 2, dtype=K.float_dtype(a.dtype))
    attrs = {"long_name": "phase-gradient directionality", "units": "1", "window": size}
    return _like(values, arr, data, "pgd", attrs)
