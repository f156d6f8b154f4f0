"""From a run configuration to a task and a model: the one place tasks are registered."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch
from oscsim.models.checkpoint import load_checkpoint
from oscsim.models.forecast_tasks import FORECAST_TASKS, build_forecast_run
from oscsim.models.sequence import build_sequence_model
from oscsim.models.tasks import SEQUENCE_TASKS, Task, build_task
from oscsim.models.training import RunConfig
from torch import nn

from oscsim.errors import OscsimInputError

Builder = Callable[[RunConfig, dict[str, Any] | None], tuple[Task, nn.Module]]


def _sequence_run(run: RunConfig, task_state: dict[str, Any] | None) -> tuple[Task, nn.Module]:
    task = build_task(
        run.task,
        seed=run.seed,
        limit_train=run.limit_train,
        limit_eval=run.limit_eval,
        seq_len=run.seq_len,
        state=task_state,
    )
    defaults = task.defaults
    model = build_sequence_model(
        run.model,
        task.input_size,
        task.output_size,
        dt=defaults.dt,
        gamma=defaults.gamma,
        epsilon=defaults.epsilon,
        seed=run.seed,
        options=run.model_options,
    )
    return task, model


#: task name → builder of (task, model); forecasting tasks register here too.
RUN_BUILDERS: dict[str, Builder] = {name: _sequence_run for name in SEQUENCE_TASKS}
RUN_BUILDERS.update({name: build_forecast_run for name in FORECAST_TASKS})


def build_run(run: RunConfig, task_state: dict[str, Any] | None = None) -> tuple[Task, nn.Module]:
    """The task and model of ``run`` (``task_state`` from a checkpoint restores the task)."""
    if run.task not in RUN_BUILDERS:
        raise OscsimInputError(
            f"unknown task {run.task!r}; choose one of {', '.join(RUN_BUILDERS)}"
        )
    return RUN_BUILDERS[run.task](run, task_state)


def load_model(path: str | os.PathLike[str], *, device: str = "cpu") -> nn.Module:
    """The model of a checkpoint written by ``oscsim train``, weights loaded, in eval mode.

    Parameters
    ----------
    path
        ``last.safetensors`` or ``best.safetensors`` of a run folder.
    device
        Where the model goes.

    Raises
    ------
    oscsim.models.checkpoint.CheckpointError
        If ``path`` is not an oscsim checkpoint (nothing of it is executed).
    """
    state = load_checkpoint(path)
    run = RunConfig(**state["run"])
    _, model = build_run(run, state["task_state"])
    model.to(dtype=getattr(torch, run.dtype))
    model.load_state_dict(state["model_state"])
    return model.to(device).eval()
