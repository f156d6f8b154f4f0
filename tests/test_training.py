"""Training end to end on small data: the loss goes down; an interrupted run resumes exactly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from oscsim.models.experiments.sequence_table import adding_curves_figure, adding_rows
from oscsim.models.runs import build_run
from oscsim.models.sequence import build_sequence_model, count_parameters
from oscsim.models.training import RunConfig, Trainer, TrainingDivergedError

from oscsim.cli import main
from oscsim.errors import OscsimInputError
from tests.helpers import adding_config


def _adding_run(out: Path, **changes) -> RunConfig:
    settings = dict(seed=3, batch_size=16, lr=0.02, seq_len=30, limit_eval=64)
    return adding_config(out, hidden=36, checkpoint_every=10, **{**settings, **changes})


def _train(run: RunConfig, *, resume: bool = False, crash_at: int | None = None) -> Trainer:
    task, model = build_run(run)

    def crash(step: int) -> None:
        if crash_at is not None and step >= crash_at:
            raise KeyboardInterrupt  # stands in for a kill right after a checkpoint

    trainer = Trainer(run, task, model, on_checkpoint=crash)
    trainer.fit(resume=resume)
    return trainer


def test_loss_goes_down_on_a_small_adding_problem(tmp_path: Path) -> None:
    trainer = _train(_adding_run(tmp_path / "run", max_steps=60))
    rows = [r for r in trainer.history if r["split"] == "train"]
    assert rows[-1]["loss"] < 0.5 * rows[0]["loss"]
    for name in ("last.safetensors", "best.safetensors", "metrics.csv", "metrics.json"):
        assert (tmp_path / "run" / name).exists()


def test_a_step_limit_on_an_epoch_boundary_validates_once(tmp_path: Path) -> None:
    # The adding task's epoch is 100 steps: the limit falls where the first epoch ends.
    trainer = _train(_adding_run(tmp_path / "run", epochs=2, max_steps=100))
    validation_steps = [r["step"] for r in trainer.history if r["split"] == "validation"]
    assert validation_steps == [100]


def test_interrupted_and_resumed_run_ends_bit_for_bit_where_the_uninterrupted_one_does(
    tmp_path: Path,
) -> None:
    total = 35
    straight = _train(_adding_run(tmp_path / "straight", max_steps=total))
    interrupted = _adding_run(tmp_path / "resumed", max_steps=total)
    with pytest.raises(KeyboardInterrupt):
        _train(interrupted, crash_at=20)
    resumed = _train(interrupted, resume=True)
    assert resumed.step == straight.step == total
    for (name, a), b in zip(
        straight.model.state_dict().items(), resumed.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    for a, b in zip(
        straight.optimizer.state_dict()["state"].values(),
        resumed.optimizer.state_dict()["state"].values(),
        strict=True,
    ):
        assert torch.equal(a["exp_avg"], b["exp_avg"])
        assert torch.equal(a["exp_avg_sq"], b["exp_avg_sq"])
    # Nothing before the checkpoint was lost: the resumed history holds the early rows.
    steps = [r["step"] for r in resumed.history if r["split"] == "train"]
    assert steps == [r["step"] for r in straight.history if r["split"] == "train"]


def test_smnist_subset_loss_goes_down(tmp_path: Path) -> None:
    run = RunConfig(
        task="smnist",
        model="nwm2d",
        seed=0,
        epochs=20,
        batch_size=32,
        lr=0.1,
        out=str(tmp_path / "s"),
        limit_train=32,
        limit_eval=32,
        model_options={"preset": "oscsim", "protocol": "oscsim"},
        progress=False,
        log_every=1,
    )
    trainer = _train(run)
    rows = [r for r in trainer.history if r["split"] == "train"]
    # Twenty passes over the same 32 digits at a high rate: memorisation must start.
    assert rows[-1]["loss"] < 0.8 * rows[0]["loss"]


def test_gradient_clipping_rescales_the_gradient_the_optimiser_sees(tmp_path: Path, capsys) -> None:
    # The adding problem's first gradient has a norm far above 1e-3, so it must be rescaled.
    run = _adding_run(tmp_path / "clip", max_steps=1, clip_grad_norm=1e-3)
    task, model = build_run(run)
    trainer = Trainer(run, task, model)
    seen: list[float] = []
    step = trainer.optimizer.step

    def record_then_step(*args, **kwargs):
        grads = [p.grad.flatten() for p in model.parameters() if p.grad is not None]
        seen.append(float(torch.cat(grads).norm()))
        return step(*args, **kwargs)

    trainer.optimizer.step = record_then_step  # type: ignore[method-assign]
    trainer.fit()
    assert len(seen) == 1 and seen[0] == pytest.approx(1e-3, rel=1e-4)
    assert main(["train", "adding", "--clip-grad-norm", "0", "--out", str(tmp_path / "bad")]) == 2
    assert "--clip-grad-norm must be positive, got 0.0" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_nan_loss_stops_with_a_clear_message(tmp_path: Path) -> None:
    # imex with dt = 3 at γ = 94.5 amplifies by ~dt²γ ≈ 850 a step: float32 overflows.
    run = _adding_run(tmp_path / "nan", max_steps=5, model_options={"hidden": 36, "dt": 3.0})
    with pytest.raises(TrainingDivergedError, match="Lower the learning rate"):
        _train(run)


def test_oscsim_preset_parameter_counts() -> None:
    counts = {
        name: count_parameters(
            build_sequence_model(
                name, 1, 10, dt=0.042, gamma=2.7, epsilon=4.7, options={"preset": "oscsim"}
            )
        )
        for name in ("nwm2d", "nwm1d", "cornn", "uncoupled")
    }
    assert counts["nwm2d"] <= 3000 and counts["nwm1d"] <= 3000 and counts["uncoupled"] <= 3000
    # coRNN-256: 256·(1 + 2·256) + 256 weights and biases + the 2570 of the readout = 134k.
    assert 133_000 < counts["cornn"] < 135_000


def test_uniform_bias_init_draws_one_offset_per_cell_within_the_input_layer_bound() -> None:
    def bias(seed: int, init: str) -> torch.Tensor:
        model = build_sequence_model(
            "nwm2d",
            2,
            1,
            dt=0.016,
            gamma=94.5,
            epsilon=9.5,
            seed=seed,
            options={"preset": "oscsim", "bias_init": init},
        )
        return model.network.bias.detach()

    zero, uniform = bias(0, "zero"), bias(0, "uniform")
    assert zero.shape == (1,) and float(zero.abs().max()) == 0.0
    assert uniform.shape == (1, 16, 16)
    # PyTorch's nn.Linear(2, 256) bias bound is 1/sqrt(2); 256 draws spread across it.
    assert float(uniform.abs().max()) <= 2**-0.5
    assert float(uniform.max() - uniform.min()) > 1.0
    assert torch.equal(uniform, bias(0, "uniform"))
    assert not torch.equal(uniform, bias(1, "uniform"))
    with pytest.raises(
        OscsimInputError, match="bias_init='normal' is not known; choose one of zero, uniform"
    ):
        bias(0, "normal")


def test_train_and_evaluate_commands(tmp_path: Path, capsys) -> None:
    out = tmp_path / "cli"
    args = [
        "train",
        "adding",
        "--model",
        "nwm1d",
        "--seq-len",
        "20",
        "--max-steps",
        "5",
        "--limit-eval",
        "32",
        "--out",
        str(out),
        "--set",
        "hidden=16",
    ]
    assert main(args) == 0
    assert main(["train", "adding", "--model", "nwm1d", "--out", str(out)]) == 2  # exists
    assert "--resume" in capsys.readouterr().err
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    assert main([*args[:7], "10", *args[8:], "--resume"]) == 0
    assert main(["evaluate", str(out / "last.safetensors")]) == 0
    assert '"step": 10' in capsys.readouterr().out
    # A run copied elsewhere and resumed there continues there; the original stays as it was.
    before = (out / "metrics.csv").read_bytes()
    assert main(["train", "adding", "--out", str(copy), "--max-steps", "8", "--resume"]) == 0
    assert (out / "metrics.csv").read_bytes() == before
    assert json.loads((copy / "metrics.json").read_text())["steps"] == 8


def test_sequence_table_counts_converged_seeds_per_model_variant(tmp_path: Path) -> None:
    def summary(seed: int, converged: int | None, options: dict[str, str]) -> dict[str, object]:
        run = {"seed": seed, "seq_len": 500, "model_options": options}
        history = [{"split": "validation", "step": k, "mse": 0.16 / k} for k in (1, 2, 3)]
        return {
            "task": "adding",
            "model": "nwm2d",
            "parameters": 1043,
            "steps": 10_000,
            "converged_step": converged,
            "run": run,
            "history": history,
        }

    uniform = {"bias_init": "uniform"}
    rows = adding_rows(
        [
            summary(0, 6700, uniform),
            summary(1, None, uniform),
            summary(2, 8500, uniform),
            summary(0, None, {}),
        ]
    )
    assert rows == [
        "| nwm2d | 500 | 1043 | 0/1 | none | — | up to 10000 steps each |",
        "| nwm2d (bias_init=uniform) | 500 | 1043 | 2/3 | 6700, 8500 | — "
        "| up to 10000 steps each |",
    ]
    # Runs that record the published criterion (and the weights-only count) show both.
    reference = [
        {**summary(seed, step, {}), "weights": 786, "converged_iteration_published": published}
        for seed, step, published in ((0, 4100, 3900), (1, None, 12000), (2, None, None))
    ]
    assert adding_rows(reference) == [
        "| nwm2d | 500 | 1043 / 786 | 1/3 | 4100 | 2/3: 3900, 12000 | up to 10000 steps each |"
    ]
    figure = adding_curves_figure(
        [summary(0, None, {}), summary(1, 3, uniform)], tmp_path / "a.png"
    )
    assert figure.read_bytes()[:4] == b"\x89PNG"
