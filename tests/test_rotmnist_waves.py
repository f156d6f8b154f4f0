"""rotmnist_waves: the phase velocity's sign, the shift it drives, and the command end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from oscsim.models.equivariance import fourier_shift
from oscsim.models.experiments.rotmnist_waves import main, phase_velocity
from oscsim.models.rotating import build_published_model, save_published

from oscsim.errors import OscsimInputError
from tests.test_data_mnist import fake_mnist_root  # noqa: F401 - a fixture


def test_phase_velocity_moves_the_wave_onto_its_next_frame() -> None:
    t = np.arange(40)[:, None, None]
    y, x = np.meshgrid(np.arange(36), np.arange(36), indexing="ij")
    omega, ky, kx = 2 * np.pi * 0.1, 2 * np.pi * 2 / 36, -2 * np.pi * 3 / 36
    wave = np.cos(omega * t - ky * y - kx * x)[None]  # crests move along +k at ω/|k|
    velocity, frequency, wavelength = phase_velocity(wave)
    k2 = ky**2 + kx**2
    np.testing.assert_allclose(velocity, omega * np.array([ky, kx]) / k2, rtol=1e-12)
    assert frequency == pytest.approx(0.1) and wavelength == pytest.approx(2 * np.pi / np.sqrt(k2))
    moved = fourier_shift(torch.as_tensor(wave[0, 5]), list(velocity))
    # A band-limited plane wave: the Fourier shift is exact up to rounding.
    np.testing.assert_allclose(moved.numpy(), wave[0, 6], atol=1e-10)


@pytest.mark.parametrize("name", ["published2d", "published1d"])
def test_command_writes_numbers_and_pictures(
    name: str,
    fake_mnist_root: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OSCSIM_DATA", str(fake_mnist_root))
    checkpoint = tmp_path / "last.safetensors"
    out = tmp_path / "out"
    # As the command runs: float32 throughout (the initial weights are drawn in it too).
    torch.set_default_dtype(torch.float32)
    try:
        model = build_published_model(name, seed=0)
        recipe = {"model": name, "seed": 0}
        meta = {"recipe": recipe, "step": 0, "epoch": 0.0, "elapsed": 0.0}
        save_published(checkpoint, model, None, meta)
        assert main([str(checkpoint), "--out", str(out), "--digits", "3", "--animate", "1"]) == 0
    finally:
        torch.set_default_dtype(torch.float64)
    result = json.loads((out / "waves.json").read_text())
    for key in ("percent_waves", "percent_waves_shuffled", "percent_waves_init",
                "dominant_frequency", "wavelength", "equivariance_gain"):  # fmt: skip
        assert key in result
    # The untrained model at its own initialisation: the same weights, the same numbers.
    assert result["percent_waves"] == pytest.approx(result["percent_waves_init"])
    assert (out / "waves.gif").stat().st_size > 0 and (out / "waves_frames.png").exists()
    details = result["equivariance"] if name == "published2d" else result["roll_1d"]
    assert set(details["mse"]) == {"shifted", "unshifted", "forecast"}
    assert len(details["mse_curves"]["shifted"]) == 9
    if name == "published1d":
        assert result["equivariance_gain"] is None and len(details["roll_cells"]) == 9


def test_command_refuses_bad_options(tmp_path: Path) -> None:
    with pytest.raises(OscsimInputError, match="--digits"):
        main([str(tmp_path / "none.pt"), "--out", str(tmp_path), "--digits", "0"])


def test_evaluate_points_a_published_checkpoint_to_its_own_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from oscsim.cli import main as oscsim_main

    checkpoint = tmp_path / "last.safetensors"
    model = build_published_model("published2d", seed=0)
    meta = {"recipe": {"model": "published2d", "seed": 0}, "step": 0, "epoch": 0.0}
    save_published(checkpoint, model, None, meta)
    assert oscsim_main(["evaluate", str(checkpoint)]) == 2
    err = capsys.readouterr().err
    assert "published rotating-MNIST" in err and "rotmnist_waves" in err
    assert len(err.strip().splitlines()) == 1
