"""The one list of tasks and models: names, families, what builds them, what they need.

A new task is one `TaskEntry` here (plus its class); a new model is one `ModelEntry` here
(plus its builder). The command line reads its choices and help from this module, and
`oscsim.models.runs.build_run` dispatches through it. This module imports neither torch nor
any data code, so reading it is free.

Families
--------
``sequence``
    Classification or regression of a whole sequence (`oscsim.models.tasks`), models of
    `oscsim.models.sequence` (presets ``reference`` and ``oscsim``).
``forecast``
    Frame forecasting (`oscsim.models.forecast_tasks`), models of `oscsim.models.forecast`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from oscsim.errors import OscsimInputError

FAMILIES = ("sequence", "forecast")


@dataclass(frozen=True)
class ModelEntry:
    """A model name of one family.

    Attributes
    ----------
    name
        The ``--model`` value.
    family
        ``"sequence"`` or ``"forecast"``.
    summary
        One line for ``--help``.
    settings
        Family-specific facts the builder reads (forecast: ``kind`` and ``coupling``).
    """

    name: str
    family: str
    summary: str
    settings: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class TaskEntry:
    """A task name.

    Attributes
    ----------
    name
        The ``oscsim train`` positional value.
    family
        ``"sequence"`` or ``"forecast"``.
    summary
        One line for ``--help``.
    factory
        ``"module:callable"`` building the task from a `oscsim.models.tasks.TaskRequest`
        (sequence family; see `oscsim.models.tasks.build_task`).
    paper
        Whether the task is one of the Neural Wave Machines paper's sequence benchmarks
        (their models default to the ``reference`` preset and protocol).
    """

    name: str
    family: str
    summary: str
    factory: str = ""
    paper: bool = False


_MODELS = (
    ModelEntry("nwm2d", "sequence", "Neural Wave Machine on a torus, 3×3 circular kernels"),
    ModelEntry("nwm1d", "sequence", "Neural Wave Machine on rings (16 rings of 16 cells)"),
    ModelEntry("cornn", "sequence", "coRNN: dense (global) coupling"),
    ModelEntry("uncoupled", "sequence", "oscillators without coupling"),
    ModelEntry("lstm", "sequence", "PyTorch's LSTM"),
    ModelEntry(
        "nwm2d",
        "forecast",
        "autoregressive NWM-2D forecaster",
        (("kind", "autoregressive"), ("coupling", "local")),
    ),
    ModelEntry(
        "cornn",
        "forecast",
        "autoregressive coRNN forecaster",
        (("kind", "autoregressive"), ("coupling", "global")),
    ),
    ModelEntry(
        "nwm2d_ode",
        "forecast",
        "latent-ODE forecaster with local coupling",
        (("kind", "latent_ode"), ("coupling", "local")),
    ),
    ModelEntry(
        "cornn_ode",
        "forecast",
        "latent-ODE forecaster with global coupling",
        (("kind", "latent_ode"), ("coupling", "global")),
    ),
    ModelEntry("lstm", "forecast", "LSTM forecaster", (("kind", "lstm"), ("coupling", "none"))),
    # The published rotating-MNIST VAEs (rotmnist only; `oscsim.models.rotating`).
    ModelEntry(
        "published2d",
        "forecast",
        "the published rotating-MNIST VAE on a 36×36 torus (its own SGD recipe)",
        (("kind", "published_vae"), ("coupling", "local")),
    ),
    ModelEntry(
        "published1d",
        "forecast",
        "the published rotating-MNIST VAE on 24 rings of 54 (forward coupling)",
        (("kind", "published_vae"), ("coupling", "local")),
    ),
    # The paper's forecaster (Hamiltonian suite only; `oscsim.models.icar`).
    ModelEntry(
        "icar_nwm2d",
        "forecast",
        "the paper's ICAR forecaster, NWM-2D core (23×23 torus)",
        (("kind", "icar"), ("coupling", "local")),
    ),
    ModelEntry(
        "icar_nwm1d",
        "forecast",
        "the paper's ICAR forecaster, NWM-1D core (23 rings of 23)",
        (("kind", "icar"), ("coupling", "local")),
    ),
    ModelEntry(
        "icar_cornn",
        "forecast",
        "the paper's ICAR forecaster, coRNN core (global coupling)",
        (("kind", "icar"), ("coupling", "global")),
    ),
    ModelEntry(
        "icar_lstm",
        "forecast",
        "the ICAR forecaster's 5-layer autoregressive LSTM baseline",
        (("kind", "icar"), ("coupling", "none")),
    ),
)

_TASKS = (
    TaskEntry(
        "smnist",
        "sequence",
        "sequential MNIST, pixel by pixel",
        "oscsim.models.tasks:mnist_task",
        paper=True,
    ),
    TaskEntry(
        "psmnist",
        "sequence",
        "permuted sequential MNIST",
        "oscsim.models.tasks:mnist_task",
        paper=True,
    ),
    TaskEntry(
        "adding",
        "sequence",
        "the adding problem (T = 500)",
        "oscsim.models.tasks:adding_task",
        paper=True,
    ),
    TaskEntry(
        "noisy_cifar10",
        "sequence",
        "noisy sequential CIFAR-10 (32 rows of 96 values, then 968 noise steps)",
        "oscsim.models.cifar_imdb:noisy_cifar_task",
        paper=True,
    ),
    TaskEntry(
        "imdb",
        "sequence",
        "IMDB sentiment from GloVe-100d word vectors",
        "oscsim.models.cifar_imdb:imdb_task",
        paper=True,
    ),
    TaskEntry("rotmnist", "forecast", "rotating MNIST next-frame forecasting"),
    TaskEntry("mass_spring", "forecast", "Hamiltonian suite: mass-spring frames"),
    TaskEntry("pendulum", "forecast", "Hamiltonian suite: pendulum frames"),
    TaskEntry("two_body", "forecast", "Hamiltonian suite: two-body frames"),
)

#: Task name → entry, in the order of the command line.
TASKS: dict[str, TaskEntry] = {entry.name: entry for entry in _TASKS}

#: Builder of a run of each family: ``"module:callable"`` taking ``(RunConfig, task_state)``.
RUN_BUILDERS = {
    "sequence": "oscsim.models.runs:sequence_run",
    "forecast": "oscsim.models.forecast_tasks:build_forecast_run",
}


def task_names(family: str | None = None) -> tuple[str, ...]:
    """The task names (of one family, or all)."""
    return tuple(name for name, entry in TASKS.items() if family in (None, entry.family))


def task_entry(name: str) -> TaskEntry:
    """The entry of a task.

    Raises
    ------
    OscsimInputError
        Unknown name; the message lists the known ones.
    """
    if name not in TASKS:
        raise OscsimInputError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    return TASKS[name]


def models(family: str) -> dict[str, ModelEntry]:
    """The models of a family, name → entry."""
    if family not in FAMILIES:
        raise OscsimInputError(f"family={family!r} is not known; choose one of {FAMILIES}")
    return {entry.name: entry for entry in _MODELS if entry.family == family}


def model_names(family: str | None = None) -> tuple[str, ...]:
    """Model names of one family, or of all (each name once, in registry order)."""
    names: list[str] = []
    for entry in _MODELS:
        if family in (None, entry.family) and entry.name not in names:
            names.append(entry.name)
    return tuple(names)


def check_model(task: str, model: str) -> ModelEntry:
    """The entry of ``model`` for ``task``.

    Raises
    ------
    OscsimInputError
        The task does not know this model; the message lists the ones it knows.
    """
    family = task_entry(task).family
    known = models(family)
    if model not in known:
        raise OscsimInputError(
            f"--model {model!r} is not a model of {task}; choose one of {', '.join(known)}"
        )
    return known[model]


def model_help() -> str:
    """The ``--model`` help text: the models of each family."""
    return "; ".join(f"{family}: {' | '.join(model_names(family))}" for family in FAMILIES)


def resolve(path: str) -> Callable[..., Any]:
    """The callable named by ``"module:callable"``."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)
