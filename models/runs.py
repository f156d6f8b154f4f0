"""From a run configuration to a task and a model, through `oscsim.models.registry`."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch
from oscsim.models.checkpoint import CheckpointError, load_checkpoint
from oscsim.models.registry import RUN_BUILDERS, check_model, resolve, task_entry
from oscsim.models.rotating import CHECKPOINT_KIND as PUBLISHED_ROTATING_KIND
from oscsim.models.sequence import REFERENCE_OPTIONS, EmbeddedSequenceModel, build_sequence_model
from oscsim.models.tasks import Task, build_task
from oscsim.models.training import RunConfig
from torch import nn

from oscsim.errors import OscsimInputError

Builder = Callable[[RunConfig, dict[str, Any] | None], tuple[Task, nn.Module]]

#: ``--set`` keys of a sequence run that configure the task, not the model.
SEQUENCE_TASK_OPTIONS = ("protocol",)


def sequence_run(run: RunConfig, task_state: dict[str, Any] | None) -> tuple[Task, nn.Module]:
    """Task and model of a sequence run.

    ``run.model_options`` holds ``protocol`` (the data protocol, `oscsim.models.tasks`),
    ``preset`` (``reference`` or ``oscsim``) and the model's own options. Both default to
    ``reference`` for a new run; a checkpoint written before they existed (its task state
    has no ``protocol``) rebuilds the ``oscsim`` model and protocol it was trained with.
    """
    options = dict(run.model_options)
    protocol = options.pop("protocol", None)
    legacy = task_state is not None and "protocol" not in task_state
    if legacy:
        options.setdefault("preset", "oscsim")
    task = build_task(
        run.task,
        seed=run.seed,
        state=task_state,
        limit_train=run.limit_train,
        limit_eval=run.limit_eval,
        seq_len=run.seq_len,
        protocol=None if protocol is None else str(protocol),
    )
    defaults = task.defaults
    preset = options.get("preset", "reference")
    if preset == "reference" and run.model in REFERENCE_OPTIONS:
        # Task-specific facts of the published models (IMDB's kernels have no bias).
        allowed = REFERENCE_OPTIONS[run.model]
        options = {**{k: v for k, v in task.model_defaults.items() if k in allowed}, **options}
    model = build_sequence_model(
        run.model,
        task.input_size,
        task.output_size,
        **defaults.oscillator(),
        seed=run.seed,
        options=options,
        hidden=defaults.hidden,
    )
    embedding = task.initial_embedding
    if embedding is not None:
        # Token inputs: a trainable embedding, starting from the task's vectors, in front.
        vocabulary, dim = embedding.shape
        model = EmbeddedSequenceModel(vocabulary, dim, task.padding_index, model)
        with torch.no_grad():
            model.embedding.weight.copy_(torch.from_numpy(embedding))
    return task, model


def build_run(run: RunConfig, task_state: dict[str, Any] | None = None) -> tuple[Task, nn.Module]:
    """The task and model of ``run`` (``task_state`` from a checkpoint restores the task).

    Raises
    ------
    OscsimInputError
        Unknown task or model, or an option the task or model does not take.
    """
    entry = task_entry(run.task)
    check_model(run.task, run.model)
    builder: Builder = resolve(RUN_BUILDERS[entry.family])
    return builder(run, task_state)


def model_from_checkpoint(
    path: str | os.PathLike[str],
) -> tuple[RunConfig, Task, nn.Module, dict[str, Any]]:
    """The run, task and trained model of a checkpoint written by the trainer.

    Returns
    -------
    run, task, model, state
        The run configuration, its task (restored from the checkpoint's task state), the
        model with the checkpoint's weights in the run's dtype, and the checkpoint itself.

    Raises
    ------
    OscsimInputError
        No checkpoint at ``path`` or not an oscsim one.
    """
    state = load_checkpoint(path)
    if isinstance(state["run"], dict) and state["run"].get("kind") == PUBLISHED_ROTATING_KIND:
        raise CheckpointError(
            f"checkpoint {str(path)!r} is a published rotating-MNIST model, trained by its own "
            "recipe: measure and draw it with oscsim experiment rotmnist_waves CKPT --out DIR"
        )
    try:
        run = RunConfig(**state["run"])
    except TypeError as error:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has a run record this oscsim cannot read: {error}"
        ) from None
    task, model = build_run(run, state["task_state"])
    model.to(dtype=getattr(torch, run.dtype))
    try:
        model.load_state_dict(state["model_state"])
    except RuntimeError as error:
        raise OscsimInputError(
            f"{path}: the stored weights do not fit the {run.model} model of {run.task}: {error}"
        ) from error
    return run, task, model, state


def load_model(path: str | os.PathLike[str], *, device: str = "cpu") -> nn.Module:
    """The model of a checkpoint written by ``oscsim train``, weights loaded, in eval mode.

    Parameters
    ----------
    path
        ``last.safetensors`` or ``best.safetensors`` of a run folder, or a checkpoint written
        by ``oscsim import-reference``.
    device
        Where the model goes.

    Raises
    ------
    oscsim.models.checkpoint.CheckpointError
        If ``path`` is not an oscsim checkpoint (nothing of it is executed).
    """
    _, _, model, _ = model_from_checkpoint(path)
    return model.to(device).eval()
