"""``DataArray.waves``: the analysis as methods, e.g. ``da.waves.speed()``.

A thin, documented forwarder: each method calls the function of the same meaning in
`analysis` with the DataArray as its first argument, and returns exactly what it returns.
"""

from __future__ import annotations

from typing import Any

import xarray as xr
from oscsim.analysis import fields, published, report, spectrum, statistics

Band = tuple[float, float] | None
Window = int | tuple[int, int] | None


@xr.register_dataarray_accessor("waves")
class WavesAccessor:
    """Wave analysis of a signal with dims ``time`` and ``x`` (ring) or ``y, x`` (torus)."""

    def __init__(self, data: xr.DataArray) -> None:
        self._data = data

    def remove_mean(self) -> xr.DataArray:
        """The signal minus its time mean; see `analysis.remove_mean`."""
        return fields.remove_mean(self._data)

    def bandpass(self, band: tuple[float, float]) -> xr.DataArray:
        """Zero-phase Butterworth band-pass in cycles per time unit; see `analysis.bandpass`."""
        return fields.bandpass(self._data, band)

    def analytic_signal(self, *, band: Band = None) -> xr.DataArray:
        """``s + i·H[s]`` along time; see `analysis.analytic_signal`."""
        return fields.analytic_signal(self._data, band=band)

    def phase(self, *, band: Band = None, method: str = "analytic") -> xr.DataArray:
        """Instantaneous (or generalized) phase in rad; see `analysis.phase`."""
        return fields.phase(self._data, band=band, method=method)

    def amplitude(self, *, band: Band = None) -> xr.DataArray:
        """Instantaneous amplitude; see `analysis.amplitude`."""
        return fields.amplitude(self._data, band=band)

    def frequency(
        self, *, band: Band = None, estimator: str = "window", local_window: Window = None
    ) -> xr.DataArray:
        """Angular frequency ω = ∂θ/∂t (rad per time unit); see `instantaneous_frequency`."""
        return fields.instantaneous_frequency(
            self._data, band=band, estimator=estimator, local_window=local_window
        )

    def wave_vector(
        self, *, band: Band = None, estimator: str = "window", local_window: Window = None
    ) -> xr.Dataset:
        """k = −∇θ in rad per cell; see `analysis.wave_vector`."""
        return fields.wave_vector(
            self._data, band=band, estimator=estimator, local_window=local_window
        )

    def phase_velocity(
        self, *, band: Band = None, estimator: str = "window", local_window: Window = None
    ) -> xr.Dataset:
        """v = ω·k/|k|² in cells per time unit; see `analysis.phase_velocity`."""
        return fields.phase_velocity(
            self._data, band=band, estimator=estimator, local_window=local_window
        )

    def speed(
        self, *, band: Band = None, estimator: str = "window", local_window: Window = None
    ) -> xr.DataArray:
        """|v| in cells per time unit; see `analysis.wave_speed`."""
        return fields.wave_speed(
            self._data, band=band, estimator=estimator, local_window=local_window
        )

    def wavelength(
        self, *, band: Band = None, estimator: str = "window", local_window: Window = None
    ) -> xr.DataArray:
        """2π/|k| in cells; see `analysis.wavelength`."""
        return fields.wavelength(
            self._data, band=band, estimator=estimator, local_window=local_window
        )

    def direction(
        self, *, band: Band = None, estimator: str = "window", local_window: Window = None
    ) -> xr.DataArray:
        """atan2(v_y, v_x) in rad; see `analysis.direction`."""
        return fields.direction(
            self._data, band=band, estimator=estimator, local_window=local_window
        )

    def pgd(self, *, band: Band = None, window: int | None = None) -> xr.DataArray:
        """Local phase-gradient directionality; see `analysis.phase_gradient_directionality`."""
        return fields.phase_gradient_directionality(self._data, band=band, window=window)

    def percent_waves(
        self, *, band: Band = None, window: int | None = None, seed: int = 0
    ) -> xr.DataArray:
        """Share of points more directional than the shuffled null; see `analysis.percent_waves`."""
        return statistics.percent_waves(self._data, band=band, window=window, seed=seed)

    def percent_long_waves(
        self, *, band: Band = None, window: int | None = None, seed: int = 0
    ) -> xr.DataArray:
        """The paper's long-wave share; see `analysis.percent_long_waves`."""
        return statistics.percent_long_waves(self._data, band=band, window=window, seed=seed)

    def summary(
        self, *, band: Band = None, estimator: str = "window", local_window: Window = None
    ) -> xr.Dataset:
        """Amplitude-weighted medians, circular direction statistics; see `summary_statistics`."""
        return statistics.summary_statistics(
            self._data, band=band, estimator=estimator, local_window=local_window
        )

    def dominant_mode(self, *, band: Band = None) -> xr.Dataset:
        """Strongest (k, ω) of the space–time spectrum; see `analysis.dominant_mode`."""
        return statistics.dominant_mode(self._data, band=band)

    def kw_spectrum(self, *, band: Band = None) -> xr.DataArray:
        """Space–time power spectrum; see `analysis.kw_spectrum`."""
        return spectrum.kw_spectrum(self._data, band=band)

    def report(
        self,
        *,
        band: Band = None,
        window: int | None = None,
        seed: int = 0,
        estimator: str = "window",
        local_window: Window = None,
    ) -> dict[str, Any]:
        """The JSON-serialisable wave report; see `analysis.wave_report`."""
        return report.wave_report(
            self._data,
            band=band,
            window=window,
            seed=seed,
            estimator=estimator,
            local_window=local_window,
        )

    def published_phase(self) -> xr.DataArray:
        """Band-pass, z-score, Hilbert phase as published; see `analysis.published_phase`."""
        return published.published_phase(self._data)

    def published_percent_waves(self, *, seed: int = 0) -> xr.DataArray:
        """The paper's percent waves; see `analysis.published_percent_waves`."""
        return published.published_percent_waves(self._data, seed=seed)
