"""The space–time (k–ω) power spectrum of a signal."""

from __future__ import annotations

import math

import numpy as np
import xarray as xr
from oscsim.analysis import _kernels as K
from oscsim.analysis.fields import _setup

__all__ = ["kw_spectrum"]


def kw_spectrum(data: xr.DataArray, *, band: tuple[float, float] | None = None) -> xr.DataArray:
    """Power of the space–time Fourier transform over ω ≥ 0 and every wave vector.

    ``P(ω, k) = |Σ_t,x s(t, x)·e^{−i(k·x − ω·t)}|²`` of the mean-free (optionally
    band-passed) signal, summed over any other dims. With this sign convention a wave
    ``cos(k·x − ω·t)`` with ω > 0 puts its power at ``(ω, k)``. Wave numbers are shifted so
    that 0 is in the middle. Lazy on dask input (the spectrum is rechunked so that space is
    whole for the spatial transform).

    Returns
    -------
    xarray.DataArray
        dims ``("omega", "k_y", "k_x")`` on a torus, ``("omega", "k_x")`` on a ring;
        ``omega`` in rad per time unit, ``k_*`` in rad per cell.
    """
    info, arr = _setup(data, band=band)
    t_axis = len(info.lead)
    n_t = info.n_frames
    space_axes = tuple(range(t_axis + 1, t_axis + 1 + info.ndim))
    values = arr.data
    if hasattr(values, "dask"):
        import dask.array as dsa

        def prep(x: np.ndarray) -> np.ndarray:
            return K.prepare(x, t_axis, band, info.dt, True)

        spec = dsa.fft.rfft(values.map_blocks(prep, dtype=K.float_dtype(values.dtype)), axis=t_axis)
        spec = spec.rechunk({**{ax: -1 for ax in space_axes}, t_axis: "auto"})
        # e^{+i k·x}: the conjugate transform of the usual FFT, i.e. n·ifftn
        spec = dsa.fft.ifftn(spec, axes=space_axes)
        power = abs(spec) ** 2
    else:
        s = K.prepare(np.asarray(values), t_axis, band, info.dt, True)
        spec = np.fft.rfft(s, axis=t_axis)
        spec = np.fft.ifftn(spec, axes=space_axes)
        power = spec.real**2 + spec.imag**2
    n_cells = math.prod(info.grid)
    power = power * float(n_cells) ** 2
    if t_axis:
        power = power.sum(axis=tuple(range(t_axis)))
    if hasattr(power, "dask"):
        import dask.array as dsa

        power = dsa.fft.fftshift(power, axes=tuple(range(1, 1 + info.ndim)))
    else:
        power = np.fft.fftshift(power, axes=tuple(range(1, 1 + info.ndim)))
    omega = 2 * math.pi * np.fft.rfftfreq(n_t, d=info.dt)
    coords: dict[str, np.ndarray] = {"omega": omega}
    dims = ["omega"]
    for d in info.space:
        n = info.sizes[d]
        coords[f"k_{d}"] = 2 * math.pi * np.fft.fftshift(np.fft.fftfreq(n))
        dims.append(f"k_{d}")
    out = xr.DataArray(
        power,
        dims=dims,
        coords=coords,
        name="power",
        attrs={"long_name": "space–time power", "units": "(signal units)²"},
    )
    out["omega"].attrs = {"units": f"rad / {info.time_units}", "long_name": "angular frequency"}
    for d in info.space:
        out[f"k_{d}"].attrs = {"units": "rad / cell", "long_name": f"wave number, {d}"}
    return out
