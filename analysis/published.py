"""The published paper's way of looking at waves, by name, beside oscsim's own measures.

The Neural Wave Machines paper (Keller & Welling, ICML 2023) measures and draws waves in a
few specific ways that differ in details from `analysis.percent_waves` and
`analysis.phase`. They are reproduced here so that numbers can be compared with the
paper's:

- `published_bandpass`: the visualisation filter, a Butterworth band-pass of order 5 from
  0.2 to 0.4 of the Nyquist frequency, applied causally (``scipy.signal.lfilter``, one
  pass forwards: it delays the phase, unlike `analysis.bandpass`, which is zero-phase);
- `published_phase`: that band-pass, then a z-score of each cell over time, then the
  Hilbert phase — "the published way of looking" at any latent recording;
- `published_percent_waves`: the paper's percent waves — the analytic signal by FFT with
  the DC and Nyquist bins removed, central phase differences on the periodic grid, the
  "wavelength" ``1/|∇θ|``, and a null from shuffling each row of the real signal along the
  last spatial axis; a point is a wave where its wavelength exceeds the null's 99th
  percentile;
- `phase_rgb`: a phase image for figures (phase → hue).

All of them load the data into memory (dask data is computed), as the published code does.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.fft
import scipy.signal
import xarray as xr
from oscsim.analysis import _kernels as K
from oscsim.analysis._errors import AnalysisInputError
from oscsim.analysis._validate import TIME, inspect_signal

__all__ = [
    "PUBLISHED_BAND",
    "PUBLISHED_ORDER",
    "phase_rgb",
    "published_analytic_signal",
    "published_bandpass",
    "published_percent_waves",
    "published_phase",
]

#: The published visualisation band, as fractions of the Nyquist frequency.
PUBLISHED_BAND = (0.2, 0.4)
#: The order of the published Butterworth band-pass (scipy's ``N``).
PUBLISHED_ORDER = 5


def _arranged(data: xr.DataArray) -> tuple[Any, np.ndarray, int]:
    info = inspect_signal(data)
    arranged = data.transpose(*info.order)
    values = np.asarray(arranged.values)
    if not np.issubdtype(values.dtype, np.floating):
        values = values.astype(np.float64)
    return info, values, len(info.lead)


def _wrap_like(values: np.ndarray, info: Any, data: xr.DataArray, name: str, attrs: dict) -> Any:
    arranged = data.transpose(*info.order)
    out = xr.DataArray(values, dims=arranged.dims, coords=arranged.coords, name=name, attrs=attrs)
    return out.transpose(*data.dims)


def published_bandpass(
    data: xr.DataArray,
    *,
    band: tuple[float, float] = PUBLISHED_BAND,
    order: int = PUBLISHED_ORDER,
) -> xr.DataArray:
    """The published visualisation band-pass: Butterworth, causal, along ``time``.

    ``b, a = scipy.signal.butter(order, band, btype="bandpass")`` with `band` in fractions
    of the Nyquist frequency (so independent of the time step), applied once forwards by
    ``scipy.signal.lfilter`` from a zero initial state. Being causal it delays each
    frequency by the filter's group delay, and its first few tens of frames carry the
    filter's start-up transient; the published analysis drops the first frames for that.

    Parameters
    ----------
    data
        The real signal (dims ``time``, ``x`` or ``y, x``; others broadcast).
    band
        ``(low, high)`` as fractions of the Nyquist frequency, ``0 < low < high < 1``.
    order
        The Butterworth order (the band-pass has twice as many poles).

    Raises
    ------
    AnalysisInputError
        For a band outside (0, 1) or an order that is not a positive integer.
    """
    try:
        low, high = (float(b) for b in band)
    except (TypeError, ValueError):
        raise AnalysisInputError(
            f"band must be a pair (low, high) of fractions of Nyquist, got {band!r}"
        ) from None
    if not 0.0 < low < high < 1.0:
        raise AnalysisInputError(
            f"band ({low:g}, {high:g}) must satisfy 0 < low < high < 1 (fractions of Nyquist)"
        )
    if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or order < 1:
        raise AnalysisInputError(f"order must be a positive integer, got {order!r}")
    info, values, t_axis = _arranged(data)
    b, a = scipy.signal.butter(int(order), [low, high], btype="bandpass")
    out = scipy.signal.lfilter(b, a, values, axis=t_axis)
    attrs = dict(data.attrs, band_of_nyquist=[low, high], filter="butter-lfilter", order=order)
    return _wrap_like(out, info, data, str(data.name or "signal"), attrs)


def published_phase(
    data: xr.DataArray,
    *,
    band: tuple[float, float] | None = PUBLISHED_BAND,
    order: int = PUBLISHED_ORDER,
) -> xr.DataArray:
    """The published way of looking: band-pass, z-score per cell over time, Hilbert phase.

    1. `published_bandpass` (Butterworth of order 5, 0.2–0.4 of Nyquist, causal), unless
       ``band=None``;
    2. each cell (and each index of the other dims) z-scored over time:
       ``(s − mean_t s) / std_t s`` (cells that do not vary are left at 0);
    3. the phase of the analytic signal along time, in (−π, π].

    Parameters
    ----------
    data
        Any latent recording with dims ``time`` and ``x`` (ring) or ``y, x`` (torus).
    band, order
        As for `published_bandpass`; ``band=None`` skips the filter.

    Returns
    -------
    xarray.DataArray
        The phase in rad, same dims and coords as `data`.
    """
    if band is not None:
        data = published_bandpass(data, band=band, order=order)
    info, values, t_axis = _arranged(data)
    centred = values - values.mean(axis=t_axis, keepdims=True)
    std = centred.std(axis=t_axis, keepdims=True)
    z = np.divide(centred, std, out=np.zeros_like(centred), where=std > 0)
    a = K.analytic_signal(z, t_axis)
    attrs = {
        "long_name": "phase (published: band-pass, z-score, Hilbert)",
        "units": "rad",
        "band_of_nyquist": None if band is None else [float(band[0]), float(band[1])],
    }
    return _wrap_like(np.angle(a), info, data, "phase", attrs)


def _published_analytic(values: np.ndarray, axis: int) -> np.ndarray:
    n = values.shape[axis]
    spec = scipy.fft.fft(values, axis=axis)
    gain = np.zeros(n)
    gain[1 : n // 2] = 2.0  # DC, Nyquist (and for odd n the bin n // 2) and below: removed
    shape = [1] * values.ndim
    shape[axis] = n
    return scipy.fft.ifft(spec * gain.reshape(shape), axis=axis)


def published_analytic_signal(data: xr.DataArray) -> xr.DataArray:
    """The analytic signal as the published percent waves computes it, along ``time``.

    The FFT along time with bins ``1 … n//2 − 1`` doubled and every other bin — DC, the
    Nyquist bin ``n//2`` and the negative frequencies — set to zero. It differs from
    `analysis.analytic_signal` (``scipy.signal.hilbert``) only at the Nyquist bin (kept
    there with weight 1) and, for odd ``n``, at bin ``n//2`` (doubled there).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> s = xr.DataArray(np.array([1.0, 0.0, -1.0, 0.0])[:, None] * np.ones(3),
    ...                  dims=("time", "x"))
    >>> np.round(published_analytic_signal(s).values[:, 0], 12)
    array([ 1.+0.j,  0.+1.j, -1.+0.j, -0.-1.j])
    """
    if TIME not in data.dims:
        inspect_signal(data)
    dims = list(data.dims)
    values = np.asarray(data.values, dtype=np.float64)
    a = _published_analytic(values, dims.index(TIME))
    return xr.DataArray(a, dims=data.dims, coords=data.coords, name="analytic_signal")


def _gradient_norm(a: np.ndarray, nd: int) -> np.ndarray:
    """|∇θ| from central differences ``arg(a[i−1]·conj(a[i+1])) / 2`` on periodic axes."""
    total = np.zeros(a.shape, dtype=np.float64)
    for axis in range(-nd, 0):
        d = np.angle(np.roll(a, 1, axis) * np.conj(np.roll(a, -1, axis))) / 2.0
        total += d * d
    return np.sqrt(total)


def published_wave_share(
    wavelength: np.ndarray, null_wavelength: np.ndarray
) -> tuple[float, float]:
    """The published decision: the null's 99th percentile and the share above it.

    ``cutoff = quantile(null, 0.99)`` with linear interpolation between order statistics
    (NumPy's and JAX's default), and the share of `wavelength` strictly greater than it, in
    percent. Infinite wavelengths (zero gradient) count as above any finite cutoff.
    """
    cutoff = float(np.quantile(np.asarray(null_wavelength, dtype=np.float64).ravel(), 0.99))
    share = 100.0 * float(np.mean(np.asarray(wavelength).ravel() > cutoff))
    return cutoff, share


def published_percent_waves(data: xr.DataArray, *, seed: int = 0) -> xr.DataArray:
    """The paper's percent waves, pooled over time, space and every other dim.

    1. the analytic signal along ``time`` by FFT, DC and Nyquist removed
       (`published_analytic_signal`; the signal's mean goes with the DC bin);
    2. central phase differences on the periodic grid,
       ``∂θ/∂x ≈ arg(a[x−1]·conj(a[x+1])) / 2`` (likewise along ``y``), and the
       "wavelength" ``1/|∇θ|`` in cells per radian (the published code calls ``|∇θ|`` the
       phase velocity; ``2π/|∇θ|`` would be cells, and the share is the same);
    3. the null: the real signal with every row along the last spatial axis (``x``)
       shuffled independently — one random permutation per (other index, frame, row),
       from ``numpy.random.default_rng(seed)`` — through steps 1 and 2;
    4. the share of points whose wavelength exceeds the null's 99th percentile
       (`published_wave_share`).

    Because only ``x`` is shuffled, a wave that travels along ``y`` alone (constant along
    ``x``) survives the shuffle, and scores about 0 %: a property of the published measure,
    which `analysis.percent_waves` (its own null shuffles whole fields) does not share.

    Returns
    -------
    xarray.DataArray
        0-d, in percent; attrs ``null_threshold`` (the cutoff, cells per radian), ``seed``.

    Raises
    ------
    AnalysisInputError
        If `data` is not a signal the analysis accepts.
    """
    info, values, t_axis = _arranged(data)
    nd = info.ndim
    a = _published_analytic(values, t_axis)
    with np.errstate(divide="ignore"):
        wl = 1.0 / _gradient_norm(a, nd)
    del a
    rng = np.random.default_rng(seed)
    # independent permutations of every row along x: sort random keys along that axis
    order = np.argsort(rng.random(values.shape), axis=-1)
    shuffled = np.take_along_axis(values, order, axis=-1)
    del order
    with np.errstate(divide="ignore"):
        wl_null = 1.0 / _gradient_norm(_published_analytic(shuffled, t_axis), nd)
    cutoff, share = published_wave_share(wl, wl_null)
    return xr.DataArray(
        share,
        name="published_percent_waves",
        attrs={"units": "%", "null_threshold": cutoff, "seed": seed, "percentile": 99},
    )


def phase_rgb(
    phase: xr.DataArray | np.ndarray,
    *,
    amplitude: xr.DataArray | np.ndarray | None = None,
) -> np.ndarray:
    """An RGB image of a phase field: the phase sets the hue, for figures and animations.

    Hue ``h = (θ + π) / 2π`` goes once around the colour wheel (red at θ = −π and π,
    green at −π/3, blue at π/3), at full saturation. The value (brightness) is 1, or the
    `amplitude` scaled by its maximum, so that cells without oscillation are dark.

    Parameters
    ----------
    phase
        Phases in rad, any shape (e.g. ``(time, y, x)``).
    amplitude
        Optional, broadcastable to `phase`, non-negative.

    Returns
    -------
    numpy.ndarray
        float64 in [0, 1], shape ``(*phase.shape, 3)``.
    """
    theta = np.asarray(phase, dtype=np.float64)
    h = np.mod(theta + math.pi, 2 * math.pi) / (2 * math.pi)
    v = np.ones_like(theta)
    if amplitude is not None:
        amp = np.broadcast_to(np.asarray(amplitude, dtype=np.float64), theta.shape)
        top = float(np.max(amp)) if amp.size else 0.0
        v = amp / top if top > 0 else np.zeros_like(theta)
    # HSV → RGB at saturation 1: channel c (red 0, green 2, blue 4, in sixths of the wheel)
    # is v·clip(2 − d, 0, 1), d the distance of 6h from c around the wheel
    rgb = np.empty((*theta.shape, 3))
    for i, c in enumerate((0.0, 2.0, 4.0)):
        d = np.abs(np.mod(6.0 * h - c + 3.0, 6.0) - 3.0)
        rgb[..., i] = v * np.clip(2.0 - d, 0.0, 1.0)
    return rgb
