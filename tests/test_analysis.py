"""Tests of `analysis`: exact plane waves, the null of percent_waves, dask, errors, files."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import xarray as xr
from oscsim.analysis import AnalysisInputError
from oscsim.analysis import _histogram as H

from oscsim import analysis

DT = 0.1


def plane_wave(
    k: tuple[float, ...],
    omega: float,
    *,
    grid: tuple[int, ...],
    frames: int,
    amplitude: float = 1.0,
    noise: float = 0.0,
    seed: int = 0,
) -> xr.DataArray:
    """``amplitude·cos(k·x − ω·t)`` (+ white noise) on a ring or torus; `k` in grid order."""
    t = np.arange(frames) * DT
    axes = np.meshgrid(*(np.arange(n) for n in grid), indexing="ij")
    kx = sum(kc * ax for kc, ax in zip(k, axes, strict=False))
    s = amplitude * np.cos(kx[None] - omega * t.reshape(-1, *([1] * len(grid))))
    if noise:
        s = s + noise * amplitude * np.random.default_rng(seed).standard_normal(s.shape)
    dims = ("time", "y", "x") if len(grid) == 2 else ("time", "x")
    coords = {"time": t, **{d: np.arange(n) for d, n in zip(dims[1:], grid, strict=False)}}
    return xr.DataArray(s, dims=dims, coords=coords, name="position")


def noise_field(grid: tuple[int, ...], frames: int, seed: int = 1) -> xr.DataArray:
    rng = np.random.default_rng(seed)
    dims = ("time", "y", "x") if len(grid) == 2 else ("time", "x")
    return xr.DataArray(
        rng.standard_normal((frames, *grid)), dims=dims, coords={"time": np.arange(frames) * DT}
    )


# ----------------------------------------------------------------- exact plane waves


@pytest.mark.parametrize("grid,m", [((64,), (3,)), ((32, 48), (2, -3))])
def test_fields_are_exact_for_a_plane_wave(grid, m):
    """A whole number of periods: k, ω and speed come back to rounding (DESIGN §4)."""
    frames = 200
    k = tuple(2 * math.pi * mi / n for mi, n in zip(m, grid, strict=False))
    omega = 2 * math.pi * 9 / (frames * DT)
    da = plane_wave(k, omega, grid=grid, frames=frames)
    kv = analysis.wave_vector(da)
    for d, kc in zip(("y", "x")[-len(grid) :], k, strict=False):
        np.testing.assert_allclose(kv[f"k_{d}"].values, kc, atol=1e-9)
    np.testing.assert_allclose(analysis.instantaneous_frequency(da).values, omega, rtol=1e-9)
    kn = math.hypot(*k)
    np.testing.assert_allclose(analysis.wave_speed(da).values, omega / kn, rtol=1e-9)
    np.testing.assert_allclose(analysis.wavelength(da).values, 2 * math.pi / kn, rtol=1e-9)
    vel = analysis.phase_velocity(da)
    np.testing.assert_allclose(vel["v_x"].values, omega * k[-1] / kn**2, rtol=1e-9)
    kx, ky = k[-1], (k[0] if len(grid) == 2 else 0.0)
    np.testing.assert_allclose(analysis.direction(da).values, math.atan2(ky, kx), atol=1e-9)
    assert analysis.wave_speed(da).attrs["units"] == "cell / time unit"
    assert analysis.wave_speed(da).dims == da.dims


def test_analytic_signal_equals_scipy_hilbert():
    from scipy.signal import hilbert

    da = noise_field((16, 12), 50)
    expected = hilbert(da.values - da.values.mean(axis=0), axis=0)
    np.testing.assert_allclose(analysis.analytic_signal(da).values, expected, atol=1e-12)


def test_report_recovers_a_torus_wave_and_its_mode():
    grid, frames = (48, 64), 256
    k = (2 * math.pi * -2 / 48, 2 * math.pi * 5 / 64)
    omega = 1.37  # not a whole number of periods: the dominant mode interpolates
    r = analysis.wave_report(plane_wave(k, omega, grid=grid, frames=frames, amplitude=3.0))
    kn = math.hypot(*k)
    assert r["speed"]["median"] == pytest.approx(omega / kn, rel=0.02)
    assert r["wavelength"]["median"] == pytest.approx(2 * math.pi / kn, rel=0.02)
    assert r["omega"]["median"] == pytest.approx(omega, rel=0.02)
    assert r["frequency"]["median"] == pytest.approx(omega / (2 * math.pi), rel=0.02)
    assert r["direction_deg"]["median"] == pytest.approx(math.degrees(math.atan2(*k)), abs=5)
    assert r["percent_waves"] > 99
    mode = r["dominant_mode"]
    assert mode["k"] == {"y": pytest.approx(k[0]), "x": pytest.approx(k[1])}
    assert mode["wavevector"] == pytest.approx(list(k))
    assert mode["omega"] == pytest.approx(omega, rel=0.01)
    assert mode["phase_speed"] == pytest.approx(omega / kn, rel=0.01)
    assert mode["exact"] is True
    assert r["n_frames"] == frames and r["dims"] == {"time": frames, "y": 48, "x": 64}
    json.dumps(r, allow_nan=False)


def test_direction_spread_across_the_cut_at_pi():
    """A noisy wave moving in −x has directions on both sides of ±π: circular statistics
    see one tight cluster at ±π (a linear IQR of the same angles would be ~360°)."""
    grid, frames = (48, 48), 200
    wave = plane_wave((0.0, -2 * math.pi * 4 / 48), 1.1, grid=grid, frames=frames, noise=0.3)
    # measured: window R 0.995 (circular std 5.9°), one sample R 0.47 (70°)
    for estimator, max_std in (("window", 10), ("one_sample", 90)):
        r = analysis.wave_report(wave, estimator=estimator)
        direction = r["direction_deg"]
        assert abs(abs(direction["median"]) - 180) < 5
        assert abs(abs(direction["mean"]) - 180) < 5
        assert 0 < direction["circular_std"] < max_std
        assert 0.3 < direction["resultant_length"] <= 1
        assert "iqr" not in direction and "q25" not in direction
        # the statistics are those of the angles themselves: sin and cos of the per-point
        # directions, amplitude-weighted, give the same resultant length
        d = analysis.direction(wave, estimator=estimator).values
        w = np.abs(analysis.analytic_signal(wave).values)
        z = np.sum(w * np.exp(1j * d)) / np.sum(w)
        assert abs(z) == pytest.approx(direction["resultant_length"], abs=2e-3)
        assert math.degrees(np.angle(z)) == pytest.approx(direction["mean"], abs=0.1)


# ----------------------------------------------------------------- percent waves


def test_percent_waves_plane_wave_and_noise_on_a_torus():
    wave = plane_wave((2 * math.pi * 3 / 48, -2 * math.pi * 2 / 48), 1.5, grid=(48, 48), frames=160)
    assert float(analysis.percent_waves(wave)) > 99
    pw = analysis.percent_waves(noise_field((48, 48), 160))
    assert 0.5 < float(pw) < 2.0
    assert pw.attrs["units"] == "%"


def test_percent_waves_on_a_ring():
    wave = plane_wave((2 * math.pi * 3 / 128,), 1.5, grid=(128,), frames=400)
    assert float(analysis.percent_waves(wave)) > 99
    # the default window on a ring is 9 cells: noise scores about 1 %
    assert 0.4 < float(analysis.percent_waves(noise_field((128,), 400))) < 2.0
    # with 5 cells 1 in 16 null windows have gradients of one sign (documented)
    assert 4 < float(analysis.percent_waves(noise_field((128,), 400), window=5)) < 9


def test_percent_long_waves_counts_only_long_waves():
    long = plane_wave((2 * math.pi / 128, 0.0), 1.0, grid=(128, 128), frames=64)
    short = plane_wave((2 * math.pi / 8, 0.0), 1.0, grid=(128, 128), frames=64)
    assert float(analysis.percent_long_waves(long)) > 95
    assert float(analysis.percent_long_waves(short)) < 5


def test_pgd_field_is_one_for_a_plane_wave():
    omega = 2 * math.pi * 3 / (40 * DT)  # whole periods: no Hilbert edge effects
    wave = plane_wave((2 * math.pi / 16, 2 * math.pi * 2 / 16), omega, grid=(16, 16), frames=40)
    pgd = analysis.phase_gradient_directionality(wave)
    np.testing.assert_allclose(pgd.values, 1.0, atol=1e-9)


# ----------------------------------------------------------------- band-pass


def test_bandpass_selects_one_of_two_waves():
    grid, frames = (64,), 800
    w_slow = 2 * math.pi * 16 / (frames * DT)
    slow = plane_wave((2 * math.pi * 2 / 64,), w_slow, grid=grid, frames=frames)
    fast = plane_wave((2 * math.pi * 5 / 64,), 6.0, grid=grid, frames=frames, amplitude=2.0)
    band = (0.6 / (2 * math.pi), 2.5 / (2 * math.pi))
    r = analysis.wave_report(slow + fast, band=band)
    assert r["omega"]["median"] == pytest.approx(w_slow, rel=0.02)
    assert r["wavelength"]["median"] == pytest.approx(32, rel=0.02)
    assert r["band"] == pytest.approx(list(band))
    # without the band the stronger, faster wave dominates the spectrum
    assert analysis.wave_report(slow + fast)["dominant_mode"]["omega"] == pytest.approx(
        6.0, rel=0.01
    )


# ----------------------------------------------------------------- accessor, dask


def test_accessor_forwards_to_the_functions():
    da = plane_wave((0.3, -0.2), 1.2, grid=(16, 20), frames=64, noise=0.2)
    xr.testing.assert_identical(da.waves.phase(), analysis.phase(da))
    xr.testing.assert_identical(da.waves.speed(), analysis.wave_speed(da))
    xr.testing.assert_identical(da.waves.wave_vector(), analysis.wave_vector(da))
    xr.testing.assert_identical(
        da.waves.pgd(window=3), analysis.phase_gradient_directionality(da, window=3)
    )
    xr.testing.assert_identical(da.waves.summary(), analysis.summary_statistics(da))
    xr.testing.assert_identical(da.waves.kw_spectrum(), analysis.kw_spectrum(da))
    assert da.waves.report() == analysis.wave_report(da)
    assert float(da.waves.percent_waves()) == float(analysis.percent_waves(da))


def test_other_dims_broadcast():
    base = plane_wave((0.3, -0.2), 1.2, grid=(16, 20), frames=64)
    da = xr.concat([base, 2 * base], dim="sample").transpose("sample", "time", "y", "x")
    speed = analysis.wave_speed(da)
    assert speed.dims == da.dims
    np.testing.assert_allclose(speed.isel(sample=0), analysis.wave_speed(base))


def test_dask_fields_are_lazy_and_match_numpy():
    pytest.importorskip("dask")
    da = plane_wave((0.3, -0.2), 1.2, grid=(24, 20), frames=64, noise=0.3)
    chunked = da.chunk({"y": 8, "x": 10})
    for fn in (analysis.wave_speed, analysis.direction, analysis.phase_gradient_directionality):
        lazy = fn(chunked)
        assert lazy.chunks is not None
        np.testing.assert_allclose(lazy.compute().values, fn(da).values, rtol=1e-9, atol=1e-12)


def test_dask_report_matches_numpy():
    pytest.importorskip("dask")
    base = plane_wave((0.3, -0.2), 1.2, grid=(24, 20), frames=96, noise=0.5)
    da = xr.concat([base, base.roll(x=3)], dim="sample").transpose("sample", "time", "y", "x")
    eager = analysis.wave_report(da)
    lazy = analysis.wave_report(da.chunk({"sample": 1, "y": 12, "x": 10}))
    for key in ("speed", "wavelength", "omega", "direction"):
        assert lazy[key]["median"] == pytest.approx(eager[key]["median"], rel=1e-4)
    assert lazy["percent_waves"] == pytest.approx(eager["percent_waves"], rel=1e-6)
    assert lazy["dominant_mode"]["omega"] == pytest.approx(eager["dominant_mode"]["omega"])


# ----------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda d: d.rename(time="t"), "no 'time' dimension"),
        (lambda d: d.isel(time=slice(0, 5)), "at least 8"),
        (lambda d: d.where(d.x != 3), "NaN"),
        (lambda d: d.isel(x=slice(0, 4)), "smaller than the window"),
        (lambda d: d.assign_coords(time=d.time**2), "uniformly spaced"),
        (lambda d: d.rename(x="col"), "no spatial dimension 'x'"),
        (lambda d: d.values, "expected an xarray.DataArray"),
    ],
)
def test_bad_input_is_refused_clearly(make, match):
    da = plane_wave((0.3, 0.2), 1.0, grid=(16, 16), frames=40)
    with pytest.raises(AnalysisInputError, match=match):
        analysis.wave_report(make(da))


@pytest.mark.parametrize("band", [(0.0, 1.0), (1.0, 6.0), (2.0, 1.0), (1.0,)])
def test_band_outside_nyquist_is_refused(band):
    da = plane_wave((0.3,), 1.0, grid=(16,), frames=100)
    with pytest.raises(AnalysisInputError, match="band"):
        analysis.wave_speed(da, band=band)


def test_nan_in_dask_data_is_refused_when_computed():
    pytest.importorskip("dask")
    da = plane_wave((0.3,), 1.0, grid=(16,), frames=40)
    bad = da.where(da.x != 3).chunk({"x": 8})
    lazy = analysis.wave_speed(bad)  # no error until computed
    with pytest.raises(AnalysisInputError, match="NaN"):
        lazy.compute()
    with pytest.raises(AnalysisInputError, match="NaN"):
        analysis.wave_report(bad)


def test_error_is_a_value_error():
    assert issubclass(AnalysisInputError, ValueError)


def test_window_must_be_odd():
    da = plane_wave((0.3,), 1.0, grid=(16,), frames=40)
    with pytest.raises(AnalysisInputError, match="odd"):
        analysis.percent_waves(da, window=4)


# ----------------------------------------------------------------- files


def test_analyze_dataset_reads_a_trajectory_file_and_writes_report(tmp_path):
    k, omega = (2 * math.pi * 2 / 24, 2 * math.pi * -3 / 32), 1.1
    wave = plane_wave(k, omega, grid=(24, 32), frames=120)
    values = wave.values[None, :, None]
    ds = xr.Dataset(
        {
            "position": (("sample", "time", "channel", "y", "x"), values),
            "velocity": (("sample", "time", "channel", "y", "x"), np.zeros_like(values)),
        },
        coords={
            "sample": [0],
            "time": wave.time.values,
            "channel": [0],
            "y": np.arange(24),
            "x": np.arange(32),
        },
        attrs={"config": "{}", "method": "rk4", "dt": 0.01, "oscsim_version": "0.1.0"},
    )
    path = tmp_path / "wave.nc"
    ds.to_netcdf(path, engine="h5netcdf")
    with xr.open_dataset(path, engine="h5netcdf") as opened:
        report = analysis.analyze_dataset(opened, out_dir=tmp_path / "out", figures=False)
    kn = math.hypot(*k)
    assert report["speed"]["median"] == pytest.approx(omega / kn, rel=0.02)
    assert report["source"]["method"] == "rk4"
    written = json.loads((tmp_path / "out" / "report.json").read_text())
    assert written == json.loads(json.dumps(report))
    assert report["files"] == [str(tmp_path / "out" / "report.json")]
    with pytest.raises(AnalysisInputError, match="available: position, velocity"):
        analysis.analyze_dataset(ds, var="potential")


# ----------------------------------------------------------------- histograms


def test_histogram_quantiles_match_sorted_weighted_quantiles():
    rng = np.random.default_rng(3)
    v = rng.lognormal(0.0, 2.0, 200_000)
    w = rng.random(v.size)
    hist = H.histogram(H.LogBins(), v, w)
    order = np.argsort(v)
    cum = np.cumsum(w[order])
    for q, got in zip(
        (0.25, 0.5, 0.75), H.quantiles(hist, H.LogBins().edges, (0.25, 0.5, 0.75)), strict=False
    ):
        exact = v[order][np.searchsorted(cum, q * cum[-1])]
        assert got == pytest.approx(exact, rel=1e-3)
    signed = H.SignedLogBins()
    s = rng.normal(0.5, 1.0, 100_000)
    for dtype in (np.float64, np.float32):
        got = H.quantiles(H.histogram(signed, s.astype(dtype)), signed.edges, (0.1, 0.5, 0.9))
        np.testing.assert_allclose(got, np.quantile(s, (0.1, 0.5, 0.9)), rtol=2e-3, atol=1e-4)
