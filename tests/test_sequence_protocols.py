"""The published data protocols of the sequence tasks, and the one registry of tasks and models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from oscsim.models import registry
from oscsim.models.data.sequences import SequentialMNIST, published_mnist_split
from oscsim.models.reference import ReferenceSequenceModel
from oscsim.models.runs import build_run
from oscsim.models.sequence import OscillatorSequenceModel
from oscsim.models.tasks import build_task
from oscsim.models.training import RunConfig, Trainer

from oscsim.cli import build_parser, main
from oscsim.errors import OscsimInputError


def test_published_mnist_split_is_a_seeded_57k_3k_partition_of_the_60k_training_images() -> None:
    train, validation = published_mnist_split(0)
    assert (len(train), len(validation)) == (57_000, 3_000)
    assert np.array_equal(np.union1d(train, validation), np.arange(60_000))
    again, _ = published_mnist_split(0)
    other, _ = published_mnist_split(1)
    assert np.array_equal(train, again) and not np.array_equal(train, other)


def test_reference_protocol_validates_on_held_out_training_images_and_picks_the_test_model() -> (
    None
):
    smnist = build_task("smnist", seed=2, limit_eval=5)
    psmnist = build_task("psmnist", seed=2, limit_eval=5)
    # Published: sMNIST reports the last epoch's test accuracy, psMNIST the best validation's.
    assert (smnist.test_at, psmnist.test_at) == ("last", "best")
    _, validation = published_mnist_split(2)
    everything = SequentialMNIST("all_train")
    x, y = next(smnist.eval_batches("validation", 5))
    x_expected, y_expected = everything.batch(validation[:5])
    assert torch.equal(x, x_expected) and torch.equal(y, y_expected)
    # No training image is ever validated on.
    train_x, _ = smnist.train_batch(0, 0, 57_000)
    assert train_x.shape[0] == 57_000
    oscsim = build_task("smnist", seed=2, protocol="oscsim")
    assert oscsim.test_at == "best" and len(oscsim.train) == 50_000


def _run(tmp_path: Path, task: str, **changes) -> RunConfig:
    settings = dict(
        task=task,
        model="nwm2d",
        seed=0,
        epochs=2,
        batch_size=4,
        lr=0.01,
        out=str(tmp_path / task),
        seq_len=20,
        limit_train=8,
        limit_eval=8,
        model_options={"hidden": 16},
        progress=False,
    )
    settings.update(changes)
    return RunConfig(**settings)


def test_smnist_reports_the_test_metrics_of_the_last_epoch(tmp_path: Path) -> None:
    run = _run(tmp_path, "smnist")
    task, model = build_run(run)
    summary = Trainer(run, task, model).fit()
    assert summary["test"]["selection"] == "last"
    assert summary["test"]["step"] == summary["steps"] == 4
    assert 0.0 <= summary["test"]["accuracy"] <= 1.0


def test_the_published_adding_criterion_checks_one_training_batch_every_100_iterations(
    tmp_path: Path,
) -> None:
    run = _run(tmp_path, "adding", max_steps=7, epochs=1)
    task, model = build_run(run)
    # Checked at iterations 2, 4, 6 (0-based, never 0) here; any loss passes the threshold.
    task.batch_criterion = (2, 1e9)
    summary = Trainer(run, task, model).fit()
    assert summary["converged_iteration_published"] == 2
    never = _run(tmp_path / "never", "adding", max_steps=7, epochs=1)
    task, model = build_run(never)
    task.batch_criterion = (2, 0.0)
    assert Trainer(never, task, model).fit()["converged_iteration_published"] is None
    assert build_task("adding", seed=0, limit_eval=4).batch_criterion == (100, 0.05)


def test_checkpoints_from_before_the_presets_rebuild_the_model_they_trained(tmp_path: Path) -> None:
    run = _run(tmp_path, "adding", model_options={"grid": [4, 4]})
    task, model = build_run(run, {"length": 20})  # a task state without a protocol
    assert isinstance(model, OscillatorSequenceModel) and task.protocol == "oscsim"
    task, model = build_run(_run(tmp_path, "adding"))
    assert isinstance(model, ReferenceSequenceModel) and task.protocol == "reference"
    assert task.state()["protocol"] == "reference"


def test_the_command_line_reads_tasks_and_models_from_the_registry(capsys) -> None:
    parser = build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]  # type: ignore[union-attr]
    task_action = next(a for a in train._actions if a.dest == "task")
    assert tuple(task_action.choices) == tuple(registry.TASKS)
    with pytest.raises(OscsimInputError, match="not a model of adding; choose one of"):
        registry.check_model("adding", "nwm2d_ode")
    for entry in registry.TASKS.values():
        if entry.factory:
            assert callable(registry.resolve(entry.factory))
    assert main(["train", "adding", "--model", "nwm2d_ode", "--max-steps", "1"]) == 2
    assert "not a model of adding" in capsys.readouterr().err
