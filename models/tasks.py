"""Learning tasks: data, loss, metrics and published defaults, behind one small interface.

A task hands the trainer deterministic batches — batch ``i`` of epoch ``e`` is a pure
function of ``(seed, e, i)`` — which is what makes ``--resume`` continue exactly.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from oscsim.models.data.sequences import SequentialMNIST, adding_problem_batch, adding_problem_split

from oscsim.errors import OscsimInputError

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class TaskDefaults:
    """Published hyperparameters of a task (coRNN's, used by the NWM paper; PAPER.md)."""

    lr: float
    dt: float
    gamma: float
    epsilon: float
    batch_size: int
    epochs: int
    lr_milestones: tuple[int, ...] = ()
    eval_batch_size: int = 1000


class Task(abc.ABC):
    """What the trainer needs from a task."""

    name: str
    input_size: int
    output_size: int
    defaults: TaskDefaults
    #: Metric that selects the best checkpoint, and whether larger is better.
    selection_metric: str
    higher_is_better: bool

    def __init__(self, *, seed: int, limit_train: int | None, limit_eval: int | None) -> None:
        self.seed = seed
        self.limit_train = limit_train
        self.limit_eval = limit_eval

    @abc.abstractmethod
    def batches_per_epoch(self, batch_size: int) -> int:
        """Optimiser steps in one epoch."""

    @abc.abstractmethod
    def train_batch(self, epoch: int, index: int, batch_size: int) -> Batch:
        """Training batch ``index`` of ``epoch`` (deterministic)."""

    @abc.abstractmethod
    def eval_batches(self, split: str, batch_size: int) -> Iterator[Batch]:
        """The fixed validation or test set, in batches."""

    @abc.abstractmethod
    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean loss of a batch."""

    @abc.abstractmethod
    def batch_metrics(self, output: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
        """Sums over the batch (the trainer divides by the count)."""

    def state(self) -> dict[str, Any]:
        """What a checkpoint must store to rebuild the task exactly (e.g. a permutation)."""
        return {}


class MnistSequenceTask(Task):
    """Sequential MNIST, pixel by pixel (``permuted``: one fixed permutation of the pixels)."""

    input_size = 1
    output_size = 10
    selection_metric = "accuracy"
    higher_is_better = True

    def __init__(
        self,
        *,
        permuted: bool,
        seed: int,
        limit_train: int | None = None,
        limit_eval: int | None = None,
        permutation: np.ndarray | None = None,
    ) -> None:
        super().__init__(seed=seed, limit_train=limit_train, limit_eval=limit_eval)
        self.name = "psmnist" if permuted else "smnist"
        self.defaults = (
            TaskDefaults(0.0054, 0.076, 0.4, 8.0, 120, 120, (100,))
            if permuted
            else TaskDefaults(0.0021, 0.042, 2.7, 4.7, 120, 120, (100,))
        )
        options: dict[str, Any] = {"permuted": permuted, "seed": seed, "permutation": permutation}
        self.train = SequentialMNIST("train", **options)
        self.permutation = self.train.permutation
        options["permutation"] = self.permutation
        self._eval = {split: SequentialMNIST(split, **options) for split in ("validation", "test")}

    def _train_size(self) -> int:
        n = len(self.train)
        return n if self.limit_train is None else min(n, self.limit_train)

    def batches_per_epoch(self, batch_size: int) -> int:
        return -(-self._train_size() // batch_size)

    def train_batch(self, epoch: int, index: int, batch_size: int) -> Batch:
        order = np.random.default_rng([self.seed, epoch]).permutation(self._train_size())
        return self.train.batch(order[index * batch_size : (index + 1) * batch_size])

    def eval_batches(self, split: str, batch_size: int) -> Iterator[Batch]:
        data = self._eval[split]
        n = len(data) if self.limit_eval is None else min(len(data), self.limit_eval)
        for start in range(0, n, batch_size):
            yield data.batch(slice(start, min(n, start + batch_size)))

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(output, target)

    def batch_metrics(self, output: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
        return {
            "loss": float(F.cross_entropy(output, target, reduction="sum")),
            "accuracy": float((output.argmax(1) == target).sum()),
        }

    def state(self) -> dict[str, Any]:
        return {"permutation": None if self.permutation is None else self.permutation.tolist()}


class AddingTask(Task):
    """The adding problem of length ``T``; an "epoch" is 100 steps, then an evaluation.

    Converged means validation MSE < 0.05 (the NWM paper's criterion); the trainer records
    the first step at which that happens.
    """

    input_size = 2
    output_size = 1
    selection_metric = "mse"
    higher_is_better = False
    steps_per_epoch = 100
    converged_below = 0.05

    def __init__(
        self,
        *,
        length: int = 500,
        seed: int,
        limit_train: int | None = None,
        limit_eval: int | None = None,
    ) -> None:
        super().__init__(seed=seed, limit_train=limit_train, limit_eval=limit_eval)
        self.name = "adding"
        self.length = length
        # 30k iterations as in the paper = 300 "epochs" of 100 steps.
        self.defaults = TaskDefaults(0.02, 0.016, 94.5, 9.5, 50, 300, ())
        n_eval = 1000 if limit_eval is None else limit_eval
        self._eval = {
            split: adding_problem_split(length, n_eval, seed=seed, split=split)
            for split in ("validation", "test")
        }

    def batches_per_epoch(self, batch_size: int) -> int:
        return self.steps_per_epoch

    def train_batch(self, epoch: int, index: int, batch_size: int) -> Batch:
        x, y = adding_problem_batch(
            self.length, batch_size, seed=self.seed, index=epoch * self.steps_per_epoch + index
        )
        return torch.from_numpy(x), torch.from_numpy(y)

    def eval_batches(self, split: str, batch_size: int) -> Iterator[Batch]:
        x, y = self._eval[split]
        for start in range(0, len(x), batch_size):
            yield (
                torch.from_numpy(x[start : start + batch_size]),
                torch.from_numpy(y[start : start + batch_size]),
            )

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(output, target)

    def batch_metrics(self, output: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
        return {
            "mse": float(((output - target) ** 2).sum()),
            "loss": float(((output - target) ** 2).sum()),
        }

    def state(self) -> dict[str, Any]:
        return {"length": self.length}


SEQUENCE_TASKS = ("smnist", "psmnist", "adding")
"""Names of the sequence tasks (``oscsim train TASK``)."""


def build_task(
    name: str,
    *,
    seed: int,
    limit_train: int | None = None,
    limit_eval: int | None = None,
    seq_len: int | None = None,
    state: dict[str, Any] | None = None,
) -> Task:
    """A task by name; ``state`` (from a checkpoint) restores it exactly."""
    state = state or {}
    if name in ("smnist", "psmnist"):
        permutation = state.get("permutation")
        return MnistSequenceTask(
            permuted=name == "psmnist",
            seed=seed,
            limit_train=limit_train,
            limit_eval=limit_eval,
            permutation=None if permutation is None else np.asarray(permutation),
        )
    if name == "adding":
        length = int(state.get("length", seq_len or 500))
        return AddingTask(length=length, seed=seed, limit_train=limit_train, limit_eval=limit_eval)
    raise OscsimInputError(
        f"unknown sequence task {name!r}; choose one of {', '.join(SEQUENCE_TASKS)}"
    )
