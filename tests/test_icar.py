"""The ICAR forecaster: sizes, the fast teacher-forced path against a frame-by-frame loop,
the closed loop, the cores' structure."""

from __future__ import annotations

import math

import pytest
import torch
from oscsim.models.icar import (
    ICAR_MODELS,
    ICARForecaster,
    ICARLSTMForecaster,
    OscillatorCore,
    build_icar,
    icar_config,
)
from oscsim.models.sequence import count_parameters

from oscsim.errors import OscsimInputError

OSCILLATOR_MODELS = ("icar_nwm2d", "icar_nwm1d", "icar_cornn")


def _small(
    name: str, dtype: torch.dtype = torch.float64, seed: int = 0
) -> ICARForecaster | ICARLSTMForecaster:
    # Four GRU frames instead of 31 keep the windows short; nothing else depends on it.
    return build_icar(name, preset="cpu", observed=4, seed=seed).to(dtype)


def _frames(batch: int, steps: int, dtype: torch.dtype, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, steps, 3, 32, 32, generator=generator, dtype=dtype)


def test_paper_preset_has_the_published_size() -> None:
    # Published: about 14.8M parameters (encoder 5.0M, GRU 5.0M, decoder 4.8M). Counted by
    # hand from the published layer sizes, with PyTorch's second GRU bias (3·1058 more).
    model = build_icar("icar_nwm2d", preset="paper")
    encoder = 3 * 9 * 64 + 64 + 5 * (64 * 9 * 64 + 64) + (64 * 9 * 529 + 529) + 8464 * 529 + 529
    gru = 3 * 1058 * (529 + 1058 + 2)
    decoder = (
        1058 * 4224 + 4224 + 32 + (266 * 9 * 64 + 64) + 5 * (64 * 9 * 64 + 64) + 64 * 9 * 3 + 3
    )
    core = 3 * 9 + 529 + 3
    assert count_parameters(model) == encoder + gru + decoder + core
    assert 14.7e6 < count_parameters(model) < 14.9e6


def test_initial_constants_are_the_published_ones() -> None:
    core = OscillatorCore("nwm2d", (23, 23))
    gamma, alpha, dt = (value.detach() for value in core.constants())
    assert float(gamma) == 1.0 and float(alpha) == 0.5
    assert float(dt) == pytest.approx(1 / (1 + math.exp(1.95)), rel=1e-6)
    for kernel in (core.position_kernel, core.velocity_kernel, core.input_kernel):
        # 1/9 plus noise of 0.1 cut at two standard deviations.
        assert torch.all((kernel - 1 / 9).abs() <= 0.2 + 1e-7)
    assert torch.all(core.bias == 0)


@pytest.mark.parametrize("name", OSCILLATOR_MODELS)
def test_fast_path_equals_the_frame_loop_in_float64(name: str) -> None:
    # The fused kernel (with the input convolution precomputed) against OscillatorCore.step
    # written out, one frame at a time: values and every gradient to float64 rounding.
    model = _small(name)
    assert isinstance(model, ICARForecaster)
    frames = _frames(2, 8, torch.float64)
    target = frames[:, 1:]
    fast = torch.nn.functional.mse_loss(model.teacher_forced(frames), target)
    fast_grads = torch.autograd.grad(fast, list(model.parameters()))
    loop = torch.nn.functional.mse_loss(model.teacher_forced_loop(frames), target)
    loop_grads = torch.autograd.grad(loop, list(model.parameters()))
    assert float(fast.detach()) == pytest.approx(float(loop.detach()), rel=1e-12)
    for (label, _), a, b in zip(model.named_parameters(), fast_grads, loop_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12, msg=label)


@pytest.mark.parametrize("name", OSCILLATOR_MODELS)
def test_fast_path_loss_equals_the_frame_loop_in_float32(name: str) -> None:
    # Same loss to float32 rounding: a relative 1e-5 is a few hundred ulps of the sums.
    model = _small(name, torch.float32)
    assert isinstance(model, ICARForecaster)
    frames = _frames(2, 10, torch.float32)
    with torch.no_grad():
        fast = torch.nn.functional.mse_loss(model.teacher_forced(frames), frames[:, 1:])
        loop = torch.nn.functional.mse_loss(model.teacher_forced_loop(frames), frames[:, 1:])
    assert float(fast) == pytest.approx(float(loop), rel=1e-5)


@pytest.mark.parametrize("name", [*OSCILLATOR_MODELS, "icar_lstm"])
def test_closed_loop_is_teacher_forcing_on_its_own_predictions(name: str) -> None:
    # Feeding the forecast back in as if it were data must reproduce it: the closed loop
    # decodes, re-encodes and steps exactly as teacher forcing does on those frames.
    model = _small(name)
    model.eval()
    frames = _frames(2, 9, torch.float64)
    observed = model.observed
    with torch.no_grad():
        forecast = model(frames)
        assert forecast.shape == (2, 8, 3, 32, 32)
        fed = frames.clone()
        fed[:, observed:-1] = forecast[:, observed - 1 : -1]
        torch.testing.assert_close(model.teacher_forced(fed), forecast, rtol=1e-10, atol=1e-12)
        # Only the first `observed` frames are read.
        blank = frames.clone()
        blank[:, observed:] = 0.0
        torch.testing.assert_close(model(blank), forecast, rtol=0, atol=0)


def test_training_mode_forward_is_teacher_forced() -> None:
    model = _small("icar_nwm2d")
    frames = _frames(1, 7, torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(model(frames), model.teacher_forced(frames))


def test_nwm1d_rings_are_independent() -> None:
    # Drive one ring only: the other rings stay at rest (zero bias, zero state, tanh(0) = 0).
    core = OscillatorCore("nwm1d", (5, 7)).double()
    drive = torch.zeros(6, 1, 1, 5, 7, dtype=torch.float64)
    drive[:, :, :, 2, 3] = 1.0
    zero = torch.zeros(1, 1, 5, 7, dtype=torch.float64)
    positions, _ = core.run(drive, zero, zero)
    assert torch.all(positions[:, :, :, [0, 1, 3, 4]] == 0)
    assert torch.all(positions[-1, 0, 0, 2] != 0)  # the wave has reached the whole ring


def test_names_and_options_are_checked() -> None:
    assert set(ICAR_MODELS) == {"icar_nwm2d", "icar_nwm1d", "icar_cornn", "icar_lstm"}
    with pytest.raises(OscsimInputError, match="unknown ICAR model"):
        build_icar("icar_gru")
    with pytest.raises(OscsimInputError, match="unknown ICAR preset"):
        icar_config("gpu")
    with pytest.raises(OscsimInputError, match="unknown ICAR option"):
        icar_config("cpu", channels=3)
    with pytest.raises(OscsimInputError, match="grid"):
        icar_config("cpu", grid=(2, 5))
    model = _small("icar_nwm2d")
    with pytest.raises(OscsimInputError, match="at least 5 time steps"):
        model.teacher_forced(_frames(1, 4, torch.float64))
    with pytest.raises(OscsimInputError, match="frames must have shape"):
        model.teacher_forced(torch.zeros(1, 8, 1, 32, 32, dtype=torch.float64))


def test_benchmark_row_compares_equal_losses() -> None:
    from oscsim.benchmarks.bench_icar import time_training_step

    result = time_training_step("nwm1d", preset="cpu", batch=2, window=33, repeats=1)
    assert result["loss_relative_difference"] < 1e-5  # float32 rounding, as above
    assert result["ours_s"] > 0 and result["baseline_s"] > 0


def test_forecast_states_are_the_teacher_forced_latents_while_data_is_read() -> None:
    model = _small("icar_cornn")
    assert isinstance(model, ICARForecaster)
    frames = _frames(2, 9, torch.float64)
    with torch.no_grad():
        predictions, positions, velocities = model.forecast_states(frames)
        teacher_positions, _ = model.latents(frames)
    observed = model.observed
    assert positions.shape == velocities.shape == (8, 2, 1, 12, 12)
    torch.testing.assert_close(positions[:observed], teacher_positions[:observed])
    torch.testing.assert_close(predictions, model.forecast(frames), rtol=0, atol=0)


def test_cpu_chunks_give_the_values_of_one_call() -> None:
    model = _small("icar_nwm2d")
    frames = _frames(2, 8, torch.float64)
    with torch.no_grad():
        model.cpu_frames_per_call = None
        whole = model.teacher_forced(frames)
        model.cpu_frames_per_call = 3  # 14 rows in calls of 3, 3, 3, 3, 2
        torch.testing.assert_close(model.teacher_forced(frames), whole, rtol=1e-13, atol=1e-15)
