"""VPT by both protocols on hand-worked cases, the ICAR task, the paper's protocol and
``oscsim train SYSTEM --model icar_*`` at a tiny budget."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from oscsim.models.icar import build_icar
from oscsim.models.icar_tasks import ICARHamiltonianTask, paper_protocol
from oscsim.models.vpt import (
    error_curves,
    first_exceedance,
    ours_vpt,
    paper_vpt,
    pool_batches,
    step_errors,
)

from oscsim.errors import OscsimInputError


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OSCSIM_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return tmp_path


def test_first_exceedance_by_hand() -> None:
    errors = np.array([[0.01, 0.03, 0.0], [0.0, 0.025, 0.0], [0.05, 0.0, 0.0]])
    # Row 1 only touches the threshold (not above it): valid over all three steps.
    assert first_exceedance(errors).tolist() == [1, 3, 0]
    assert first_exceedance(errors, threshold=0.02).tolist() == [1, 1, 0]


def test_paper_vpt_counts_from_frame_start_by_hand() -> None:
    # Errors of the predictions of frames 1 … 7. Counting from frame 3 ignores frames 1, 2.
    errors = np.array(
        [
            [0.5, 0.5, 0.0, 0.01, 0.03, 0.0, 0.0],  # frame 5 fails: frames 3, 4 valid → 2
            [0.5, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0],  # never fails: all of frames 3 … 7 → 5
        ]
    )
    assert paper_vpt(errors, start=3).tolist() == [2, 5]
    # Ours from frame 2 over 2·horizon = 4 frames (2 … 5): row 0 fails at once.
    assert ours_vpt(errors, observed=2, horizon=2).tolist() == [0, 0]
    assert ours_vpt(errors, observed=3, horizon=2).tolist() == [2, 4]
    with pytest.raises(OscsimInputError, match="start must be a frame"):
        paper_vpt(errors, start=8)


def test_pooling_is_the_mean_of_batch_medians_by_hand() -> None:
    pooled = pool_batches(np.array([1, 2, 3, 4, 100, 5, 5, 5, 5, 5]))
    assert pooled.medians.tolist() == [3.0, 5.0]
    assert pooled.value == 4.0 and pooled.std == 1.0
    with pytest.raises(OscsimInputError, match="do not split into batches of 5"):
        pool_batches(np.arange(7))


def test_paper_vpt_matches_the_published_loop() -> None:
    # The published evaluation, written out: per trajectory the first index above the
    # threshold (np.argwhere), else the count; the median per batch; the mean of those.
    rng = np.random.default_rng(4)
    errors = rng.uniform(0, 0.03, size=(20, 90)) * np.linspace(0.2, 1.5, 90)
    start = 40
    counted = errors[:, start - 1 :]
    medians = []
    for batch in counted.reshape(4, 5, -1):
        scores = []
        for row in batch:
            hits = np.argwhere(row[None, None, :] > 0.025)
            scores.append(hits[0][2] if hits.shape[0] > 0 else row.shape[-1])
        medians.append(np.median(scores))
    pooled = pool_batches(paper_vpt(errors, start=start), 5)
    assert pooled.value == pytest.approx(float(np.mean(medians)), abs=0)


def test_step_errors_and_curves_by_hand() -> None:
    # Target 0.5 everywhere (mean square 0.25); a deviation d gives relative error 4·d².
    target = torch.full((2, 3, 3, 8, 8), 0.5, dtype=torch.float64)
    prediction = target.clone()
    prediction[0, 1] += 0.1  # 4·0.01 = 0.04 > 0.025
    prediction[1, 2] += 0.05  # 4·0.0025 = 0.01
    errors = step_errors(prediction, target)
    np.testing.assert_allclose(errors, [[0, 0.04, 0], [0, 0, 0.01]], atol=1e-15)
    curves = error_curves(errors)
    np.testing.assert_allclose(curves["mean"], [0, 0.02, 0.005], atol=1e-15)
    # Trajectory 0 stops being valid at step 1 and stays so; trajectory 1 never does.
    np.testing.assert_allclose(curves["valid_fraction"], [1.0, 0.5, 0.5])


def test_icar_task_windows(data_dir: Path) -> None:
    task = ICARHamiltonianTask(
        "pendulum", seed=1, observed=4, window=8, horizon=4, n_train=5, n_eval=3
    )
    x, y = task.train_batch(0, 0, 3)
    assert x.shape == (3, 8, 3, 32, 32) and bool((x > 0).all())  # teacher forcing: all true
    torch.testing.assert_close(x[:, 1:], y, rtol=0, atol=0)
    again, _ = task.train_batch(0, 0, 3)
    torch.testing.assert_close(x, again, rtol=0, atol=0)
    ((xe, ye),) = list(task.eval_batches("validation", 8))
    assert xe.shape == (3, 12, 3, 32, 32) and bool((xe[:, 4:] == 0).all())
    assert task.state()["window"] == 8
    with pytest.raises(OscsimInputError, match="window must be an integer > observed"):
        ICARHamiltonianTask("pendulum", seed=1, observed=4, window=4, horizon=4, n_train=2)


def test_paper_protocol_aligns_frames(data_dir: Path) -> None:
    model = build_icar("icar_nwm2d", preset="cpu", observed=4)

    def perfect_until_frame_9(frames: torch.Tensor) -> torch.Tensor:
        prediction = frames[:, 1:].clone()
        prediction[:, 8:] = 0.0  # frames 9 … are wrong (relative error 1)
        return prediction

    result = paper_protocol(
        model,
        "mass_spring",
        batches=2,
        batch_size=2,
        length=14,
        start=6,
        horizon=4,
        forecast=perfect_until_frame_9,
    )
    # Paper: frames 6, 7, 8 valid → 3. Ours: from frame 4 over 8 frames, 4 … 8 valid → 5.
    assert result["paper_vpt_per_trajectory"] == [3, 3, 3, 3] and result["paper_vpt"] == 3
    assert result["ours_vpt_per_trajectory"] == [5, 5, 5, 5]
    assert result["curve_from_start"]["valid_fraction"] == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    # The model itself, closed loop: the counts stay within what can be counted.
    own = paper_protocol(model, "mass_spring", batches=1, batch_size=2, length=10, start=6)
    assert all(0 <= v <= 4 for v in own["paper_vpt_per_trajectory"])
    assert len(own["curve_from_observed"]["mean"]) == 10 - 4


@pytest.mark.parametrize("model", ["icar_nwm1d", "icar_lstm"])
def test_oscsim_train_icar_at_a_tiny_budget(
    data_dir: Path, model: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from oscsim.cli import main

    out = data_dir / model
    argv = ["train", "mass_spring", "--model", model, "--out", str(out), "--batch-size", "2"]
    tiny = ["preset=cpu", "observed=4", "window=8", "horizon=4", "n_train=4", "n_eval=2"]
    argv += [item for option in tiny for item in ("--set", option)]
    assert main([*argv, "--max-steps", "3"]) == 0
    summary = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert summary["steps"] == 3 and np.isfinite(summary["best"]["test_mse"])
    assert (out / "best.safetensors").exists()
    assert main(["evaluate", str(out / "best.safetensors")]) == 0
    assert json.loads(capsys.readouterr().out)["model"] == model
    bad = ["train", "mass_spring", "--model", model, "--set", "colour=2"]
    bad += ["--out", str(data_dir / f"{model}-bad")]
    assert main(bad) == 2
    assert "unknown option(s) ['colour'] for an ICAR model" in capsys.readouterr().err
    # Both protocols on the checkpoint (2 trajectories of 12 frames, counted from frame 6).
    scored = data_dir / "scored"
    short = ["--batches", "1", "--batch-size", "2", "--length", "12", "--start", "6"]
    experiment = [
        "experiment",
        "icar_vpt",
        str(out / "best.safetensors"),
        "--out",
        str(scored),
        *short,
    ]
    assert main(experiment) == 0
    result = json.loads((scored / f"mass_spring-{model}-s0.json").read_text())
    assert len(result["paper_vpt_per_trajectory"]) == 2 and result["step"] == 3
    assert result["published_vpt"] is not None
    assert (scored / "table.md").exists() and (scored / "mass_spring_errors.png").exists()


def test_a_few_teacher_forced_steps_lower_the_loss(data_dir: Path) -> None:
    from oscsim.models.runs import build_run
    from oscsim.models.training import RunConfig, Trainer

    torch.manual_seed(0)
    options = {"preset": "cpu", "observed": 4, "window": 12, "horizon": 4}
    run = RunConfig(
        task="mass_spring",
        model="icar_nwm2d",
        out=str(data_dir / "learn"),
        seed=0,
        epochs=100,
        batch_size=4,
        lr=2e-3,
        max_steps=40,
        model_options={**options, "n_train": 16, "n_eval": 4},
        checkpoint_every=1000,
        log_every=1,
        progress=False,
    )
    task, model = build_run(run)
    trainer = Trainer(run, task, model)
    trainer.fit()
    losses = [row["loss"] for row in trainer.history if row["split"] == "train"]
    # Measured: 0.0265 over the first five steps, 0.0071 over the last five.
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
