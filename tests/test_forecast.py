"""Forecasting models, tasks, metrics, latent export and the equivariance shift."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from oscsim.models.equivariance import equivariance_test, estimate_wave_velocity, fourier_shift
from oscsim.models.forecast import (
    FORECAST_MODELS,
    AutoregressiveForecaster,
    Forecaster,
    LatentODEForecaster,
    OscillatorForecaster,
    build_forecaster,
    latent_dataset,
)
from oscsim.models.forecast_tasks import (
    HamiltonianForecastTask,
    relative_error,
    valid_prediction_time,
)
from oscsim.models.runs import build_run
from oscsim.models.training import RunConfig, Trainer

from oscsim.errors import OscsimInputError
from oscsim.io import read_trajectory, write_trajectory

SMALL = {"grid": [5, 5], "features": 8, "width": 2}
FRAME = (3, 16, 16)


def _small(name: str, **options: object) -> Forecaster:
    settings: dict[str, Any] = (
        dict(SMALL) if name != "lstm" else {"features": 8, "width": 2, "hidden_size": 6}
    )
    settings.update(options)
    return build_forecaster(name, FRAME, observed=3, seed=1, options=settings)


@pytest.mark.parametrize(
    ("name", "options"),
    [(name, {}) for name in FORECAST_MODELS]
    + [
        ("nwm2d", {"feedback": "prediction"}),
        ("lstm", {"feedback": "prediction"}),
        ("nwm2d_ode", {"latent_norm": True}),
        ("lstm", {"decoder_output": "linear"}),
    ],
)
def test_every_model_maps_frames_to_next_frames_and_ignores_unobserved_ones(
    name: str, options: dict[str, object]
) -> None:
    model = _small(name, **options)
    frames = torch.rand(2, 7, *FRAME)
    out = model(frames)
    assert out.shape == (2, 6, *FRAME)
    if options.get("decoder_output", "sigmoid") == "sigmoid":
        assert bool(((out > 0) & (out < 1)).all())  # like the frames
    changed = frames.clone()
    changed[:, 3:] = torch.rand_like(changed[:, 3:])  # frames after the observed three
    torch.testing.assert_close(model(changed), out, rtol=0, atol=0)


def test_oscillator_latents_have_the_grid_shape() -> None:
    for name in ("nwm2d", "cornn", "nwm2d_ode"):
        model = _small(name)
        assert isinstance(model, OscillatorForecaster)
        positions, velocities = model.latents(torch.rand(2, 7, *FRAME))
        assert positions.shape == velocities.shape == (6, 2, 1, 5, 5)


def test_unknown_names_and_options_are_refused_with_the_allowed_ones() -> None:
    with pytest.raises(OscsimInputError, match="nwm2d"):
        build_forecaster("transformer", FRAME, observed=3)
    with pytest.raises(OscsimInputError, match="allowed"):
        build_forecaster("lstm", FRAME, observed=3, options={"grid": [5, 5]})
    with pytest.raises(OscsimInputError, match="feedback"):
        build_forecaster("nwm2d", FRAME, observed=3, options={"feedback": "teacher"})
    with pytest.raises(OscsimInputError, match="frames must have shape"):
        _small("nwm2d")(torch.rand(2, 7, 1, 16, 16))


def test_vpt_counts_the_steps_before_the_relative_error_first_exceeds_the_threshold() -> None:
    target = torch.ones(3, 5, 1, 2, 2)  # mean(x²) = 1 in every frame
    # Relative error of a constant offset d is d²; per sample and step:
    offsets = torch.tensor(
        [
            [0.0, 0.1, 0.15, 0.2, 0.0],  # 0, .01, .0225, .04 (> .025 at step 3), 0
            [0.2, 0.0, 0.0, 0.0, 0.0],  # off at once
            [0.1, 0.1, 0.1, 0.1, 0.1],  # never off
        ]
    )
    prediction = target + offsets[:, :, None, None, None]
    torch.testing.assert_close(relative_error(prediction, target), offsets**2)
    assert valid_prediction_time(prediction, target).tolist() == [3, 0, 5]


def test_relative_error_divides_by_the_power_of_each_true_frame() -> None:
    target = torch.full((1, 2, 3, 4, 4), 0.5)
    target[:, 1] = 2.0
    prediction = target + 0.1
    # mean((x̂−x)²) = 0.01; mean(x²) = 0.25 then 4.0.
    torch.testing.assert_close(relative_error(prediction, target), torch.tensor([[0.04, 0.0025]]))


def _hamiltonian_run(out: Path, model: str, **changes: object) -> RunConfig:
    settings: dict[str, object] = dict(
        task="mass_spring",
        model=model,
        seed=0,
        epochs=50,
        batch_size=8,
        lr=3e-3,
        out=str(out),
        limit_train=24,
        limit_eval=8,
        model_options={**SMALL, "observed": 4, "horizon": 4, "n_train": 24, "n_eval": 8},
        checkpoint_every=1000,
        log_every=1,
        progress=False,
    )
    settings.update(changes)
    return RunConfig(**settings)  # type: ignore[arg-type]


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OSCSIM_DATA", str(tmp_path / "data"))
    return tmp_path


@pytest.mark.parametrize("model", ["nwm2d", "nwm2d_ode"])
def test_a_few_training_steps_on_tiny_data_lower_the_loss(data_dir: Path, model: str) -> None:
    torch.manual_seed(0)
    run = _hamiltonian_run(data_dir / model, model, max_steps=30, lr=1e-2, dtype="float32")
    task, net = build_run(run)
    trainer = Trainer(run, task, net)
    trainer.fit()
    losses = [row["loss"] for row in trainer.history if row["split"] == "train"]
    # 24 trajectories in batches of 8, new window offsets each epoch: a fit must lower it clearly.
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])
    assert (data_dir / model / "best.safetensors").exists()


def test_hamiltonian_task_hides_unobserved_frames_and_repeats_its_batches(data_dir: Path) -> None:
    task = HamiltonianForecastTask("pendulum", seed=2, observed=4, horizon=5, n_train=6, n_eval=3)
    x, y = task.train_batch(1, 0, 4)
    assert x.shape == (4, 9, 3, 32, 32) and y.shape == (4, 8, 3, 32, 32)
    assert bool((x[:, 4:] == 0).all()) and bool((x[:, :4] > 0).all())
    torch.testing.assert_close(x[:, 1:4], y[:, :3])  # the targets are the next frames
    again, _ = task.train_batch(1, 0, 4)
    torch.testing.assert_close(x, again, rtol=0, atol=0)
    ((xe, ye),) = list(task.eval_batches("test", 8))
    assert xe.shape == (3, 14, 3, 32, 32) and ye.shape == (3, 13, 3, 32, 32)
    metrics = task.batch_metrics(ye, ye)
    assert metrics["vpt"] == 3 * 10  # a perfect forecast is valid over all 2·horizon steps
    assert metrics["mse"] == 0 and "mse_extrapolation" in metrics


def test_rotating_mnist_task_gives_windows_and_a_linear_decoder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from oscsim.models.data import data_dir

    source = data_dir() / "mnist.pkl.gz"
    if not source.exists():
        pytest.skip(f"MNIST is not in {source.parent} (fetch it with `oscsim data mnist`)")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mnist.pkl.gz").symlink_to(source)
    monkeypatch.setenv("OSCSIM_DATA", str(tmp_path / "data"))
    settings = {"task": "rotmnist", "model": "nwm2d", "seed": 0, "epochs": 1, "batch_size": 4}
    sizes = {"observed": 3, "horizon": 2, "n_train": 4, "n_eval": 2}
    run = RunConfig(
        **settings, lr=1e-3, out=str(tmp_path / "run"), model_options={**SMALL, **sizes}
    )
    task, model = build_run(run)
    assert isinstance(model, Forecaster)
    assert model.config()["decoder_output"] == "linear"  # the task's default for MNIST
    x, y = task.train_batch(0, 0, 4)
    assert x.shape == (4, 5, 1, 28, 28) and y.shape == (4, 4, 1, 28, 28)
    assert bool((x[:, 3:] == 0).all())
    ((xe, ye),) = list(task.eval_batches("validation", 8))
    assert xe.shape == (2, 7, 1, 28, 28)
    assert model.float()(xe).shape == ye.shape


def test_latent_ode_adjoint_gradients_match_direct_backpropagation() -> None:
    torch.manual_seed(0)
    frames = torch.rand(2, 6, *FRAME)
    grads = []
    for adjoint in (False, True):
        model = _small("nwm2d_ode", adjoint=adjoint, method="dopri5", rtol=1e-10, atol=1e-12)
        assert isinstance(model, LatentODEForecaster)
        model(frames).square().mean().backward()
        grads.append(
            torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        )
    # Both solve the same ODE to 1e-10; the adjoint's backward solve adds errors of that order.
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", ["nwm2d", "nwm2d_ode"])
def test_latent_export_is_a_design_trajectory_dataset(tmp_path: Path, name: str) -> None:
    model = _small(name)
    assert isinstance(model, OscillatorForecaster)
    ds = latent_dataset(model, torch.rand(3, 7, *FRAME), seed=1, task="unit")
    assert ds.position.dims == ("sample", "time", "channel", "y", "x")
    assert ds.position.shape == (3, 6, 1, 5, 5)
    assert set(ds.data_vars) == {"position", "velocity"}
    for key in ("config", "oscsim_version", "method", "dt", "gamma", "epsilon", "coupling", "seed"):
        assert key in ds.attrs
    dt = float(torch.as_tensor(model.dt).detach())
    np.testing.assert_allclose(ds.time.values, dt * np.arange(1, 7), rtol=1e-12)
    positions, _ = model.latents(torch.zeros(1, 7, *FRAME))
    assert ds.attrs["coupling"] == "local"
    back = read_trajectory(write_trajectory(ds, tmp_path / "latents.nc"))
    np.testing.assert_array_equal(back.position.values, ds.position.values)
    assert positions.shape[0] == ds.sizes["time"]


def test_fourier_shift_moves_a_plane_wave_by_the_requested_cells() -> None:
    n = 12
    y, x = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    k = 2 * math.pi * torch.tensor([2.0, -3.0]) / n
    wave = torch.cos(k[0] * y + k[1] * x + 0.3)
    shift = (1.25, -2.5)
    expected = torch.cos(k[0] * (y - shift[0]) + k[1] * (x - shift[1]) + 0.3)
    # A single Fourier mode is translated exactly; only rounding remains.
    torch.testing.assert_close(fourier_shift(wave, shift), expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(
        fourier_shift(wave, (3, -5)), torch.roll(wave, (3, -5), (0, 1)), rtol=0, atol=1e-12
    )


def test_wave_velocity_is_recovered_from_a_travelling_bump() -> None:
    n = 15
    y, x = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    dy = (y - 4 + n / 2) % n - n / 2
    dx = (x - 9 + n / 2) % n - n / 2
    bump = torch.exp(-(dy**2 + dx**2) / 8.0) + 0.5  # with a standing offset
    velocity = (0.6, -1.3)
    frames = torch.stack(
        [fourier_shift(bump, (t * velocity[0], t * velocity[1])) for t in range(12)]
    )
    estimate = estimate_wave_velocity(frames[:, None, None])
    # An exact translation is found to within half the 0.01-cell refinement step.
    np.testing.assert_allclose(estimate, velocity, atol=0.005 + 1e-9)
    whole_cells = torch.stack([torch.roll(bump, (2 * t, -t), (0, 1)) for t in range(12)])
    assert estimate_wave_velocity(whole_cells[:, None, None]) == pytest.approx((2.0, -1.0))


def test_equivariance_test_shifts_a_latent_that_really_translates(data_dir: Path) -> None:
    model = _small("nwm2d")
    assert isinstance(model, AutoregressiveForecaster)
    frames = torch.rand(2, 8, *FRAME)
    result = equivariance_test(model, frames, steps=3, velocity=(1.0, 0.0))
    assert result.truth.shape == result.shifted.shape == (2, 3, *FRAME)
    np.testing.assert_allclose(result.shifted[:, 0], result.static[:, 0], atol=1e-12)
    positions, _ = model.latents(frames)
    mean_field = positions[2:].mean(dim=(0, 1))
    expected = mean_field + torch.roll(positions[2, 0] - mean_field, 2, dims=-2)
    np.testing.assert_allclose(result.latent_shifted[2], expected.detach().numpy(), atol=1e-12)
    assert set(result.summary()) >= {"mse_shifted", "mse_unshifted", "mse_model_forecast"}


def test_forecast_table_resumes_its_own_run_but_refuses_one_with_other_settings(
    data_dir: Path,
) -> None:
    from oscsim.models.experiments.forecast_table import train_or_reuse

    folder = data_dir / "table-run"
    first = _hamiltonian_run(folder, "nwm2d", max_steps=2, dtype="float32")
    summary = train_or_reuse(first)
    assert summary["steps"] == 2
    # A longer budget with the same settings continues the run it finds.
    assert (
        train_or_reuse(_hamiltonian_run(folder, "nwm2d", max_steps=3, dtype="float32"))["steps"]
        == 3
    )
    other = _hamiltonian_run(
        folder,
        "nwm2d",
        max_steps=3,
        dtype="float32",
        model_options={
            **SMALL,
            "observed": 4,
            "horizon": 4,
            "n_train": 24,
            "n_eval": 8,
            "epsilon": 0.05,
        },
    )
    with pytest.raises(OscsimInputError, match="other settings.*model_options"):
        train_or_reuse(other)


def test_forecast_table_options_can_target_one_model() -> None:
    from oscsim.models.experiments.forecast_table import model_label, options_for, parse_options

    shared = parse_options(["latent_norm=true", "channels=3", "nwm2d:channels=2"])
    # The targeted option overrides the shared one for its model only; the LSTM has no
    # channels, so the shared one does not reach it.
    assert options_for("nwm2d", shared) == {"latent_norm": True, "channels": 2}
    assert options_for("cornn", shared) == {"latent_norm": True, "channels": 3}
    assert options_for("lstm", shared) == {"latent_norm": True}
    # The table says which model was tuned.
    assert model_label("nwm2d", shared) == "NWM-2D (local 3×3, imex) with channels=2"
    assert model_label("cornn", shared) == "coRNN (global, imex)"
    tuned = parse_options(["nwm2d:kernel_size=5", "nwm2d:channels=2"])
    assert model_label("nwm2d", tuned) == "NWM-2D (local 5×5, imex) with channels=2"
    with pytest.raises(OscsimInputError, match="unknown model 'nwm3d'"):
        options_for("nwm2d", parse_options(["nwm3d:channels=2"]))
    with pytest.raises(OscsimInputError, match="'channels' is not an option of lstm"):
        options_for("nwm2d", parse_options(["lstm:channels=2"]))


def _seed_result(folder: Path, seed: int, vpts: dict[str, list[float]], lr: float = 3e-3) -> Path:
    """A finished forecast_table ``results.json`` with the given per-trajectory VPTs."""
    models = {
        name: {
            "label": name,
            "parameters": 10,
            "steps": 5,
            "batch_size": 2,
            "lr": lr,
            "seed": seed,
            "model_options": {"latent_norm": True},
            "observed": 3,
            "horizon": 4,
            "train_wall_seconds": 60.0,
            "test": {
                "vpt_mean": float(np.mean(v)),
                "mse_window": 0.1,
                "mse_extrapolation": 0.2,
            },
            "test_vpt_per_sample": v,
            "test_mse_per_step": [0.1] * 8,
        }
        for name, v in vpts.items()
    }
    path = folder / "pendulum" / "results.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"system": "pendulum", "models": models, "complete": True}))
    return folder


def test_forecast_seeds_pools_seeds_and_pairs_trajectories(tmp_path: Path) -> None:
    from oscsim.models.experiments.forecast_seeds import main

    a = _seed_result(tmp_path / "a", 0, {"nwm2d": [4.0, 2.0], "lstm": [1.0, 2.0]})
    b = _seed_result(tmp_path / "b", 1, {"nwm2d": [6.0, 8.0], "lstm": [6.0, 4.0]})
    assert main([str(a), str(b), "--system", "pendulum", "--out", str(tmp_path / "out")]) == 0
    result = json.loads((tmp_path / "out" / "results.json").read_text())
    nwm = result["models"]["nwm2d"]
    assert nwm["vpt_per_seed"] == [3.0, 7.0] and nwm["vpt_mean_over_seeds"] == 5.0
    paired = result["paired_vpt_difference"]["lstm"]
    # Differences 3, 0, 0, 4: mean 1.75; sample std 2.06 over 4 trajectories.
    assert paired["mean"] == 1.75 and paired["nwm_ahead"] == 2 and paired["baseline_ahead"] == 0
    assert math.isclose(paired["standard_error"], np.std([3, 0, 0, 4], ddof=1) / 2)
    assert (tmp_path / "out" / "pendulum_mse_seeds.png").stat().st_size > 0


def test_forecast_seeds_refuses_runs_with_other_settings(tmp_path: Path) -> None:
    from oscsim.models.experiments.forecast_seeds import main

    a = _seed_result(tmp_path / "a", 0, {"nwm2d": [4.0], "lstm": [1.0]})
    b = _seed_result(tmp_path / "b", 1, {"nwm2d": [4.0], "lstm": [1.0]}, lr=1e-3)
    with pytest.raises(OscsimInputError, match="lr"):
        main([str(a), str(b), "--system", "pendulum", "--out", str(tmp_path / "out")])
    c = _seed_result(tmp_path / "c", 0, {"nwm2d": [4.0], "lstm": [1.0]})
    with pytest.raises(OscsimInputError, match="seed 0 appears twice"):
        main([str(a), str(c), "--system", "pendulum", "--out", str(tmp_path / "out")])


def test_forecast_seeds_takes_baselines_of_the_same_seed(tmp_path: Path) -> None:
    from oscsim.models.experiments.forecast_seeds import main

    variant = [
        _seed_result(tmp_path / f"v{seed}", seed, {"nwm2d": v})
        for seed, v in ((0, [4.0, 2.0]), (1, [6.0, 8.0]))
    ]
    # Given in the other order: each run takes the baseline of its own seed.
    earlier = [
        _seed_result(tmp_path / f"e{seed}", seed, {"nwm2d": [0.0, 0.0], "lstm": v})
        for seed, v in ((1, [6.0, 4.0]), (0, [1.0, 2.0]))
    ]
    argv = [*map(str, variant), "--system", "pendulum", "--out", str(tmp_path / "out")]
    assert main([*argv, "--baselines", *map(str, earlier)]) == 0
    result = json.loads((tmp_path / "out" / "results.json").read_text())
    # The variant's own NWM-2D rows stay; the earlier NWM-2D rows are not taken.
    assert result["models"]["nwm2d"]["vpt_per_seed"] == [3.0, 7.0]
    assert result["models"]["lstm"]["reused_from"] == [str(earlier[1]), str(earlier[0])]
    assert result["paired_vpt_difference"]["lstm"]["mean"] == 1.75
    assert "taken from" in (tmp_path / "out" / "table.md").read_text()
    # A third seed that trained NWM-2D and the coRNN only pools with the others on those two.
    earlier[0] = _seed_result(tmp_path / "e1c", 1, {"cornn": [7.0, 7.0], "lstm": [6.0, 4.0]})
    earlier[1] = _seed_result(tmp_path / "e0c", 0, {"cornn": [3.0, 3.0], "lstm": [1.0, 2.0]})
    third = _seed_result(tmp_path / "v2", 2, {"nwm2d": [5.0, 5.0], "cornn": [4.0, 6.0]})
    argv = [*map(str, [*variant, third]), "--system", "pendulum", "--out", str(tmp_path / "o3")]
    with pytest.raises(OscsimInputError, match=r"v2 has no lstm \(it has nwm2d, cornn\)"):
        main([*argv, "--baselines", *map(str, earlier), "--models", "nwm2d", "lstm"])
    assert main([*argv, "--baselines", *map(str, earlier), "--models", "nwm2d", "cornn"]) == 0
    pooled = json.loads((tmp_path / "o3" / "results.json").read_text())
    assert list(pooled["models"]) == ["nwm2d", "cornn"]
    assert pooled["models"]["cornn"]["vpt_per_seed"] == [3.0, 7.0, 5.0]
    # Differences 1, -1, -1, 1, 1, -1: a tie.
    assert pooled["paired_vpt_difference"]["cornn"]["mean"] == 0.0


def test_forecast_seeds_refuses_baselines_of_other_data_or_budget(tmp_path: Path) -> None:
    from oscsim.models.experiments.forecast_seeds import main

    variant = [_seed_result(tmp_path / f"v{s}", s, {"nwm2d": [4.0]}) for s in (0, 1)]
    argv = [*map(str, variant), "--system", "pendulum", "--out", str(tmp_path / "out")]
    other_lr = _seed_result(tmp_path / "lr", 1, {"lstm": [1.0]}, lr=1e-3)
    same = _seed_result(tmp_path / "same", 0, {"lstm": [1.0]})
    with pytest.raises(OscsimInputError, match="lr = 0.001"):
        main([*argv, "--baselines", str(same), str(other_lr)])
    # Seed 1 has no baseline folder, so its result lacks the LSTM the other seed has.
    with pytest.raises(OscsimInputError, match=r"has models \['nwm2d'\]"):
        main([*argv, "--baselines", str(same)])
    data = _seed_result(tmp_path / "data", 1, {"lstm": [1.0]})
    path = data / "pendulum" / "results.json"
    result = json.loads(path.read_text())
    result["models"]["lstm"]["model_options"]["n_eval"] = 64
    path.write_text(json.dumps(result))
    with pytest.raises(OscsimInputError, match="n_eval"):
        main([*argv, "--baselines", str(same), str(data)])
    # An open-loop baseline does not join closed-loop runs.
    result["models"]["lstm"]["model_options"] = {"latent_norm": True, "feedback": "prediction"}
    path.write_text(json.dumps(result))
    with pytest.raises(OscsimInputError, match="feedback = 'prediction'"):
        main([*argv, "--baselines", str(same), str(data)])
