"""The figures and the animation are drawn, labelled and written."""

from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr
from oscsim.analysis import analyze_dataset, figures

from tests.test_analysis import DT, plane_wave


@pytest.fixture(params=["ring", "torus"])
def wave(request) -> xr.DataArray:
    if request.param == "ring":
        return plane_wave((2 * math.pi * 3 / 48,), 1.2, grid=(48,), frames=60)
    return plane_wave((2 * math.pi * 2 / 24, 2 * math.pi / 32), 1.2, grid=(24, 32), frames=60)


def test_each_figure_has_labelled_axes(wave):
    for fig in (
        figures.space_time(wave),
        figures.snapshots(wave, n=3),
        figures.phase_map(wave),
        figures.quiver(wave),
        figures.kw_spectrum_plot(wave),
    ):
        labelled = [ax for ax in fig.axes if ax.get_xlabel() and ax.get_ylabel()]
        assert labelled, "every figure has an axis with both labels"
        units = " ".join(ax.get_xlabel() + ax.get_ylabel() for ax in labelled)
        assert "cell" in units or "rad" in units


def test_write_figures_and_gif(tmp_path, wave):
    ds = xr.Dataset({"position": wave.expand_dims(sample=[0], channel=[0])})
    report = analyze_dataset(ds, out_dir=tmp_path)
    names = sorted(p.split("/")[-1] for p in report["files"])
    assert "report.json" in names and "waves.gif" in names and "kw_spectrum.png" in names
    for name in names:
        assert (tmp_path / name).stat().st_size > 1000
    from PIL import Image

    with Image.open(tmp_path / "waves.gif") as gif:
        assert gif.n_frames == 60
    assert np.isclose(report["dt"], DT)


def test_phase_is_grey_where_there_is_no_wave():
    """Cells whose amplitude is below 2 % of the frame's peak get no phase colour (NaN,
    drawn grey); the others keep their phase."""
    wave = plane_wave((2 * math.pi * 2 / 24, 2 * math.pi / 32), 1.2, grid=(24, 32), frames=60)
    envelope = xr.DataArray(np.where(np.arange(32) < 16, 1.0, 1e-3), dims="x")
    image = figures.phase_map(wave * envelope).axes[0].images[0].get_array()
    quiet = np.ma.getmaskarray(np.ma.masked_invalid(image))
    assert quiet[:, 18:30].all()  # away from the step in amplitude: no wave
    assert not quiet[:, 2:14].any()
