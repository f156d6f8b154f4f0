"""Property tests: plane waves on a ring and a torus with random k, ω, amplitude and noise.

The recovered speed, wavelength and frequency are within 2 % of the truth and the
direction within 5°, whatever the wave (wavelength > 4 cells, so that the central phase
difference is exact; at least four periods in the recording).
"""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from oscsim import analysis
from tests.test_analysis import DT, plane_wave

FRAMES = 160
CYCLES = st.floats(4.0, 20.0)  # periods in the recording
AMPLITUDE = st.floats(0.01, 100.0)
NOISE = st.floats(0.0, 0.05)  # white noise, relative to the amplitude


def _check(report: dict, k: tuple[float, ...], omega: float) -> None:
    kn = math.hypot(*k)
    assert math.isclose(report["speed"]["median"], omega / kn, rel_tol=0.02)
    assert math.isclose(report["wavelength"]["median"], 2 * math.pi / kn, rel_tol=0.02)
    assert math.isclose(report["frequency"]["median"], omega / (2 * math.pi), rel_tol=0.02)
    ky, kx = (k[0], k[1]) if len(k) == 2 else (0.0, k[0])
    truth = math.degrees(math.atan2(ky, kx))
    error = (report["direction_deg"]["median"] - truth + 180) % 360 - 180
    assert abs(error) < 5


@settings(deadline=None)
@given(
    m=st.tuples(st.integers(-7, 7), st.integers(-7, 7)).filter(lambda m: m != (0, 0)),
    cycles=CYCLES,
    amplitude=AMPLITUDE,
    noise=NOISE,
    seed=st.integers(0, 2**16),
)
def test_plane_wave_on_a_torus(m, cycles, amplitude, noise, seed):
    grid = (32, 32)
    k = tuple(2 * math.pi * mi / n for mi, n in zip(m, grid, strict=False))
    omega = 2 * math.pi * cycles / (FRAMES * DT)
    da = plane_wave(k, omega, grid=grid, frames=FRAMES, amplitude=amplitude, noise=noise, seed=seed)
    _check(analysis.wave_report(da), k, omega)


@settings(deadline=None)
@given(
    m=st.integers(-15, 15).filter(lambda m: m != 0),
    cycles=CYCLES,
    amplitude=AMPLITUDE,
    noise=NOISE,
    seed=st.integers(0, 2**16),
)
def test_plane_wave_on_a_ring(m, cycles, amplitude, noise, seed):
    n = 64
    k = (2 * math.pi * m / n,)
    omega = 2 * math.pi * cycles / (FRAMES * DT)
    da = plane_wave(k, omega, grid=(n,), frames=FRAMES, amplitude=amplitude, noise=noise, seed=seed)
    _check(analysis.wave_report(da), k, omega)
