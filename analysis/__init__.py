"""Wave and phase analysis of recordings on a ring or a torus.

Works on any `xarray.DataArray` with a ``time`` dimension and spatial dims ``x`` (ring)
or ``y, x`` (torus); other dims (``sample``, ``channel``, …) broadcast. Never imports
torch. Importing the package registers the ``DataArray.waves`` accessor.

- per point, lazy on dask: `analytic_signal`, `phase` (also the generalized phase),
  `amplitude`, `instantaneous_frequency`, `wave_vector`, `phase_velocity`, `wave_speed`,
  `wavelength`, `direction` (by default from the noise-robust window estimator, or
  ``estimator="one_sample"``), `local_resultant_length` (their uncertainty),
  `phase_gradient_directionality`; preprocessing `remove_mean`, `bandpass`;
- reductions (one streaming pass): `summary_statistics`, `percent_waves`,
  `percent_long_waves`, `dominant_mode`; the spectrum `kw_spectrum`;
- the report: `wave_report`, `analyze_dataset`; figures in `analysis.figures`;
- the published paper's measures by name: `published_percent_waves`,
  `published_analytic_signal`, `published_bandpass`, `published_phase` (band-pass, z-score,
  Hilbert phase) and `phase_rgb` (phase → hue) for figures.
"""

from oscsim.analysis import accessor as _accessor  # noqa: F401  (registers DataArray.waves)
from oscsim.analysis._errors import AnalysisInputError
from oscsim.analysis.accessor import WavesAccessor
from oscsim.analysis.fields import (
    amplitude,
    analytic_signal,
    bandpass,
    direction,
    instantaneous_frequency,
    local_resultant_length,
    phase,
    phase_gradient_directionality,
    phase_velocity,
    remove_mean,
    wave_speed,
    wave_vector,
    wavelength,
)
from oscsim.analysis.published import (
    phase_rgb,
    published_analytic_signal,
    published_bandpass,
    published_percent_waves,
    published_phase,
)
from oscsim.analysis.report import analyze_dataset, wave_report
from oscsim.analysis.spectrum import kw_spectrum
from oscsim.analysis.statistics import (
    dominant_mode,
    percent_long_waves,
    percent_waves,
    summary_statistics,
)

__all__ = [
    "AnalysisInputError",
    "WavesAccessor",
    "amplitude",
    "analytic_signal",
    "analyze_dataset",
    "bandpass",
    "direction",
    "dominant_mode",
    "instantaneous_frequency",
    "kw_spectrum",
    "local_resultant_length",
    "percent_long_waves",
    "percent_waves",
    "phase",
    "phase_gradient_directionality",
    "phase_rgb",
    "phase_velocity",
    "published_analytic_signal",
    "published_bandpass",
    "published_percent_waves",
    "published_phase",
    "remove_mean",
    "summary_statistics",
    "wave_speed",
    "wave_report",
    "wave_vector",
    "wavelength",
]
