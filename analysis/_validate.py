"""Checks on the signals handed to the analysis, and what they tell about its layout.

Every public function runs `inspect_signal` first, so that bad input fails early, with one
message that names the problem and the fix, and never deep inside NumPy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr
from oscsim.analysis._errors import AnalysisInputError

TIME = "time"
#: The minimum number of frames: the wrapped time differences and the Hilbert transform
#: need a few samples to mean anything.
MIN_FRAMES = 8


@dataclass(frozen=True)
class SignalInfo:
    """What the analysis needs to know about a signal's layout.

    ``lead`` are the dims that broadcast (``sample``, ``channel``, …), ``space`` is
    ``("x",)`` on a ring or ``("y", "x")`` on a torus; `order` is ``(*lead, time, *space)``.
    """

    lead: tuple[str, ...]
    space: tuple[str, ...]
    n_frames: int
    dt: float
    time_units: str
    sizes: dict[str, int]

    @property
    def order(self) -> tuple[str, ...]:
        return (*self.lead, TIME, *self.space)

    @property
    def ndim(self) -> int:
        return len(self.space)

    @property
    def geometry(self) -> str:
        return "ring" if self.ndim == 1 else "torus"

    @property
    def grid(self) -> tuple[int, ...]:
        return tuple(self.sizes[d] for d in self.space)


def is_dask(data: xr.DataArray) -> bool:
    """Whether `data` is backed by a dask array (without importing dask when it is not)."""
    return type(data.data).__module__.split(".")[0] == "dask"


def _time_step(data: xr.DataArray) -> tuple[float, str]:
    if TIME not in data.coords:
        return 1.0, "frame"
    t = np.asarray(data[TIME].values)
    units = str(data[TIME].attrs.get("units", "time unit"))
    if np.issubdtype(t.dtype, np.datetime64) or np.issubdtype(t.dtype, np.timedelta64):
        t = (t - t[0]) / np.timedelta64(1, "s")
        units = "s"
    if not np.issubdtype(t.dtype, np.number) or np.iscomplexobj(t):
        raise AnalysisInputError(
            f"the time coordinate must be numeric (model time units), got dtype {t.dtype}"
        )
    # The resolution of the stored times: float32 times (e.g. torch.linspace) carry 2^-24 of
    # their magnitude, integers and float64 far less.
    eps = float(np.finfo(t.dtype).eps) if np.issubdtype(t.dtype, np.floating) else 0.0
    t = t.astype(np.float64)
    steps = np.diff(t)
    if not np.all(np.isfinite(t)):
        raise AnalysisInputError("the time coordinate contains NaN or inf")
    dt = float(np.median(steps))
    if dt <= 0:
        raise AnalysisInputError(
            f"the time coordinate must increase; its median step is {dt:g}. Sort the data "
            "with data.sortby('time')"
        )
    dt = float((t[-1] - t[0]) / (len(t) - 1))
    if np.max(np.abs(steps - dt)) > time_tolerance(dt, float(np.max(np.abs(t))), eps):
        raise AnalysisInputError(
            f"the time coordinate must be uniformly spaced (steps range from {steps.min():g} "
            f"to {steps.max():g}); resample it first, e.g. data.interp(time=...)"
        )
    return dt, units


def time_tolerance(dt: float, t_max: float, eps: float) -> float:
    """How far a time step may differ from the mean step `dt` and still count as uniform.

    ``1e-6·dt + 8·eps·t_max``: each stored time is rounded to its dtype, an error of at most
    ``eps/2·|t|`` (half a unit in the last place), so a difference of two carries up to
    ``eps·t_max``; the factor 8 leaves room for the arithmetic that made the times (a float32
    ``linspace(0, 10, 101)`` has steps from 0.0999994 to 0.1000004, 6e-7 off, within
    8·1.19e-7·10 = 9.5e-6). ``1e-6·dt`` is the relative tolerance for exact dtypes and float64.
    Relative to the step the tolerance is ``1e-6 + 8·eps·t_max/dt``: genuinely uneven
    sampling, off by more than that, is refused.
    """
    return 1e-6 * dt + 8.0 * eps * t_max


# Default PGD window, cells per side, by the number of spatial dims. On a ring a window of
# w cells holds w − 1 phase gradients, all of one sign for spatial noise with probability
# 2^(2−w): 1 in 16 for w = 5, which makes the shuffled null degenerate (its 99th
# percentile is exactly 1 and noise scores ~6 % percent_waves); w = 9 gives 1 in 256 and
# noise ~1 %. On a torus a 5 × 5 window (25 cells) already gives ~1 %.
DEFAULT_WINDOW = {1: 9, 2: 5}


#: The local estimators of k and ω (see `analysis.fields`): "window" sums amplitude-weighted
#: phase steps over a small space–time window (the default, robust to noise); "one_sample"
#: differences the phase over one neighbour on each side (exact for clean waves, noisy).
ESTIMATORS = ("window", "one_sample")
#: Default window of the "window" estimator: (frames, cells per spatial side). 3 frames and
#: 5 cells (5 × 5 on a torus) bring a 119-cell wave under 10 % noise to within 2 % in
#: wavelength and speed (one-sample differences: −44 %), and keep the halo of the spatial
#: chunks at 3 cells, the same as the directionality window's.
DEFAULT_LOCAL_WINDOW = (3, 5)


def resolve_estimator(
    estimator: Any, local_window: Any, sizes: tuple[int, ...]
) -> tuple[str, tuple[int, int]]:
    """Check the estimator and its window ``(frames, cells)``; an int means both.

    Raises
    ------
    AnalysisInputError
        For an unknown estimator, or window sizes that are not odd positive integers or
        are larger than the grid.
    """
    if estimator not in ESTIMATORS:
        raise AnalysisInputError(
            f"estimator must be one of {', '.join(repr(e) for e in ESTIMATORS)}, got {estimator!r}"
        )
    if local_window is None:
        local_window = DEFAULT_LOCAL_WINDOW
    elif isinstance(local_window, (int, np.integer)) and not isinstance(local_window, bool):
        local_window = (int(local_window), int(local_window))
    try:
        frames, cells = local_window
    except (TypeError, ValueError):
        raise AnalysisInputError(
            f"local_window must be an odd integer or a pair (frames, cells) of odd integers, "
            f"got {local_window!r}"
        ) from None
    for name, v in (("frames", frames), ("cells", cells)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 or v % 2 == 0:
            raise AnalysisInputError(f"local_window {name} must be an odd integer >= 1, got {v!r}")
    if cells > min(sizes):
        raise AnalysisInputError(
            f"local_window of {cells} cells is larger than the grid {tuple(sizes)}; use a "
            "smaller window"
        )
    return str(estimator), (int(frames), int(cells))


def resolve_window(window: int | None, ndim: int) -> int:
    """`window`, or `DEFAULT_WINDOW` for a ring (``ndim`` 1) or a torus (2) when None."""
    return DEFAULT_WINDOW[ndim] if window is None else int(window)


def inspect_signal(
    data: Any,
    *,
    window: int | None = None,
    band: tuple[float, float] | None = None,
    check_finite: bool = True,
) -> SignalInfo:
    """Check that `data` is a signal the analysis can use, and describe its layout.

    Parameters
    ----------
    data
        The signal: an `xarray.DataArray` with a ``time`` dimension and spatial dims
        ``x`` (ring) or ``y, x`` (torus); any other dims broadcast.
    window
        The neighbourhood size of the directionality measure, checked against the grid
        (None: `DEFAULT_WINDOW` for the data's geometry).
    band
        A band-pass ``(low, high)`` in cycles per time unit, checked against (0, Nyquist).
    check_finite
        Look for NaN and inf (NumPy data only; dask data is checked chunk by chunk when it
        is computed).

    Raises
    ------
    AnalysisInputError
        Naming the problem: not a DataArray, no ``time`` dimension, no ``x``, fewer than
        `MIN_FRAMES` frames, a non-uniform time coordinate, a grid smaller than the window,
        a band outside (0, Nyquist), or NaN/inf values.
    """
    if not isinstance(data, xr.DataArray):
        raise AnalysisInputError(
            f"expected an xarray.DataArray, got {type(data).__name__}; select a variable "
            "first, e.g. ds['position']"
        )
    dims = tuple(str(d) for d in data.dims)
    if TIME not in dims:
        raise AnalysisInputError(
            f"the data has no 'time' dimension (its dims are {list(dims)}); rename the time "
            "axis with data.rename({'<name>': 'time'})"
        )
    if "x" not in dims:
        raise AnalysisInputError(
            f"the data has no spatial dimension 'x' (its dims are {list(dims)}); a ring needs "
            "'x', a torus 'y' and 'x'"
        )
    space = ("y", "x") if "y" in dims else ("x",)
    lead = tuple(d for d in dims if d not in (TIME, *space))
    if not (np.issubdtype(data.dtype, np.number) or data.dtype == np.bool_):
        raise AnalysisInputError(f"the data must be numeric, got dtype {data.dtype}")
    sizes = {str(d): int(n) for d, n in data.sizes.items()}
    n_frames = sizes[TIME]
    if n_frames < MIN_FRAMES:
        raise AnalysisInputError(
            f"the data has {n_frames} frame(s) along 'time'; the analysis needs at least "
            f"{MIN_FRAMES}"
        )
    dt, time_units = _time_step(data)
    min_cells = 3
    if window is None:
        window = DEFAULT_WINDOW[len(space)]
    else:
        if isinstance(window, bool) or not isinstance(window, (int, np.integer)):
            raise AnalysisInputError(f"window must be an odd integer >= 3, got {window!r}")
        if window < 3 or window % 2 == 0:
            raise AnalysisInputError(f"window must be an odd integer >= 3, got {window}")
    min_cells = max(min_cells, int(window))
    for d in space:
        if sizes[d] < min_cells:
            what = f"the window ({window} cells)"
            raise AnalysisInputError(
                f"the grid is smaller than {what} along {d!r} ({sizes[d]} cells); use a "
                "smaller window or a larger grid"
            )
    if band is not None:
        check_band(band, dt, n_frames)
    if check_finite and not is_dask(data):
        values = np.asarray(data.data)
        if not np.all(np.isfinite(values)):
            bad = int(np.size(values) - np.count_nonzero(np.isfinite(values)))
            if bad == values.size:
                raise AnalysisInputError(
                    f"all {bad} values of the data are NaN or inf; there is nothing to analyse"
                )
            raise AnalysisInputError(
                f"the data contains {bad} NaN or inf value(s); fill or drop them first, "
                "e.g. data.interpolate_na('time') or data.fillna(0)"
            )
        check_not_constant(values, dims.index(TIME))
    return SignalInfo(
        lead=lead, space=space, n_frames=n_frames, dt=dt, time_units=time_units, sizes=sizes
    )


#: Fluctuations within this many units of rounding of the values count as none: a mean
#: removed from a constant signal leaves a few ulps, whose "phase" would be noise.
CONSTANT_ULPS = 64


def constant_message(spread: float, scale: float) -> str:
    return (
        f"the data is constant in time (its values vary by {spread:.3g} at most, against "
        f"{scale:.3g} in magnitude: no more than rounding), so it has no phase and no wave; "
        "phase, wave vector, frequency and percent waves are undefined for it"
    )


def time_spread(values: np.ndarray, t_axis: int) -> tuple[float, float]:
    """The largest change of any cell over time, and the largest magnitude of `values`."""
    if np.iscomplexobj(values):
        first = np.take(values, [0], axis=t_axis)
        return float(np.max(np.abs(values - first))), float(np.max(np.abs(values)))
    return float(np.max(np.ptp(values, axis=t_axis))), float(np.max(np.abs(values)))


def is_constant(spread: float, scale: float, dtype: Any) -> bool:
    """Whether a spread over time of `spread` is no more than rounding of values of `scale`."""
    dtype = np.dtype(dtype)
    eps = float(np.finfo(dtype).eps) if np.issubdtype(dtype, np.inexact) else 0.0
    return spread <= CONSTANT_ULPS * eps * scale


def check_not_constant(values: np.ndarray, t_axis: int) -> None:
    """Raise `AnalysisInputError` if no cell of `values` varies in time beyond rounding.

    A signal constant in time has no oscillation: after its mean is removed only rounding
    is left, whose phase would describe a made-up wave (100 % waves, a "dominant frequency"
    at Nyquist). Integer and boolean data count as constant only if exactly so.
    """
    if values.size == 0:
        raise AnalysisInputError("the data is empty; there is nothing to analyse")
    spread, scale = time_spread(values, t_axis)
    if is_constant(spread, scale, values.dtype):
        raise AnalysisInputError(constant_message(spread, scale))


def check_band(band: Any, dt: float, n_frames: int) -> tuple[float, float]:
    """Check a band-pass ``(low, high)`` in cycles per time unit against (0, Nyquist)."""
    try:
        low, high = (float(b) for b in band)
    except (TypeError, ValueError):
        raise AnalysisInputError(
            f"band must be a pair (low, high) in cycles per time unit, got {band!r}"
        ) from None
    nyquist = 0.5 / dt
    if not (0.0 < low < high < nyquist):
        raise AnalysisInputError(
            f"band ({low:g}, {high:g}) must satisfy 0 < low < high < Nyquist = {nyquist:g} "
            f"cycles per time unit (the sampling step is {dt:g})"
        )
    min_frames = butter_padlen() + 1
    if n_frames < min_frames:
        raise AnalysisInputError(
            f"band-passing needs at least {min_frames} frames (zero-phase filtering pads "
            f"{butter_padlen()} frames at each end); the data has {n_frames}"
        )
    return low, high


#: The order of the Butterworth band-pass (each of its two passes).
BUTTER_ORDER = 4


def butter_padlen() -> int:
    """The padding `scipy.signal.sosfiltfilt` uses for our Butterworth band-pass."""
    # A band-pass of order N has N second-order sections, none with a zero b2 or a2, and
    # sosfiltfilt then pads 3 * (2 * N + 1) frames at each end.
    return 3 * (2 * BUTTER_ORDER + 1)
