"""The trainer: Adam, progress bars, validation every epoch, atomic checkpoints, exact resume.

A run folder holds ``last.safetensors`` (written every ``checkpoint_every`` steps and at
every epoch end), ``best.safetensors`` (best validation metric), ``metrics.csv`` and
``metrics.json``. Checkpoints hold tensors and JSON only (`oscsim.models.checkpoint`), so
loading one cannot run code. Batches are pure functions of ``(seed, epoch, index)``, a
fresh run seeds the torch, NumPy and Python generators from its seed, and the checkpoint
stores the model, optimiser, schedule, the three RNG states, the metric history and the
partly filled logging interval, so ``--resume`` after a kill continues bit for bit where
the uninterrupted run would be: the same weights, the same logged rows (the first row after
a resume averages the same steps) and the same RNG states.
"""

from __future__ import annotations

import csv
import io
import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from oscsim.models.checkpoint import BEST, LAST, load_checkpoint, save_checkpoint
from oscsim.models.tasks import Task
from torch import nn
from tqdm.auto import tqdm

from oscsim.atomic import write_text_atomic
from oscsim.errors import OscsimInputError

__all__ = [
    "BEST",
    "LAST",
    "RunConfig",
    "Trainer",
    "TrainingDivergedError",
    "evaluate",
    "load_checkpoint",
    "save_checkpoint",
    "seed_everything",
]


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; the message says where and what to change."""


@dataclass
class RunConfig:
    """Everything that defines a training run (stored in every checkpoint)."""

    task: str
    model: str
    seed: int
    epochs: int
    batch_size: int
    lr: float
    out: str
    max_steps: int | None = None
    limit_train: int | None = None
    limit_eval: int | None = None
    seq_len: int | None = None
    model_options: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    dtype: str = "float32"
    checkpoint_every: int = 50
    log_every: int = 10
    progress: bool = True
    stop_when_converged: bool = False
    #: Rescale the gradient to at most this 2-norm before each step (None: never), the
    #: usual guard for LSTMs on long sequences.
    clip_grad_norm: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)


def seed_everything(seed: int) -> None:
    """Seed the torch, NumPy and Python generators (a fresh run starts from known states)."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def _rng_state() -> dict[str, Any]:
    return {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def to_device(tensor: torch.Tensor, device: str, dtype: torch.dtype) -> torch.Tensor:
    """Move a batch tensor; floating ones take the run's dtype, labels keep theirs."""
    if tensor.is_floating_point():
        return tensor.to(device=device, dtype=dtype)
    return tensor.to(device)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    task: Task,
    split: str,
    device: str = "cpu",
    dtype: str = "float32",
    batch_size: int | None = None,
) -> dict[str, float]:
    """Mean metrics of ``model`` over a fixed split of ``task``.

    ``batch_size`` (default: the task's evaluation batch size) changes only how many items
    go through the model at once, not the metrics (up to rounding).
    """
    model.eval()
    torch_dtype = getattr(torch, dtype)
    totals: dict[str, float] = {}
    count = 0
    size = task.defaults.eval_batch_size if batch_size is None else batch_size
    if size < 1:
        raise OscsimInputError(f"batch_size must be a positive integer, got {size}")
    for x, y in task.eval_batches(split, size):
        y = to_device(y, device, torch_dtype)
        output = model(to_device(x, device, torch_dtype))
        for key, value in task.batch_metrics(output, y).items():
            totals[key] = totals.get(key, 0.0) + value
        count += len(y)
    model.train()
    if count == 0:
        raise OscsimInputError(f"the {split} split of {task.name} is empty")
    return {key: value / count for key, value in totals.items()}


class Trainer:
    """Fits a model to a task with Adam; see the module docstring for the run folder."""

    def __init__(
        self,
        config: RunConfig,
        task: Task,
        model: nn.Module,
        *,
        on_checkpoint: Callable[[int], None] | None = None,
        distributed: Any = None,
    ) -> None:
        self.config = config
        self.task = task
        if config.dtype not in ("float32", "float64"):
            raise OscsimInputError(f"dtype must be float32 or float64, got {config.dtype!r}")
        self.dtype = getattr(torch, config.dtype)
        self.model = model.to(device=config.device, dtype=self.dtype)
        self.out = Path(config.out)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(
            self.optimizer, milestones=list(task.defaults.lr_milestones), gamma=0.1
        )
        self.epoch = 0
        self.batch_index = 0
        self.step = 0
        self.elapsed = 0.0
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] = {}
        self.converged_step: int | None = None
        #: Test metrics of the model the task's rule selects (set when a run finishes).
        self.test: dict[str, Any] = {}
        self.on_checkpoint = on_checkpoint
        # The logging interval in progress (sums since the last logged row): checkpointed,
        # so the first row after a resume averages the same steps as without the break.
        self.interval: dict[str, float] = {}
        self.interval_steps = 0
        self.interval_seconds = 0.0
        # data-parallel hooks (oscsim.models.distributed.DistributedContext): the step runs
        # through the DDP wrapper, only rank 0 writes files
        self.distributed = distributed
        self.writer = distributed is None or distributed.is_writer
        self.step_model = self.model if distributed is None else distributed.wrap(self.model)

    # ----------------------------------------------------------------------------------
    # checkpoints

    def _checkpoint(self) -> dict[str, Any]:
        return {
            "run": self.config.to_dict(),
            "task_state": self.task.state(),
            "model_state": self.model.state_dict(),
            "optimizer_state": self.optimizer.state_dict(),
            "scheduler_state": self.scheduler.state_dict(),
            "epoch": self.epoch,
            "batch_index": self.batch_index,
            "step": self.step,
            "elapsed": self.elapsed,
            "history": self.history,
            "best": self.best,
            "converged_step": self.converged_step,
            "interval": {
                "sums": self.interval,
                "steps": self.interval_steps,
                "seconds": self.interval_seconds,
            },
            "rng": _rng_state(),
        }

    def save(self, name: str = LAST) -> Path:
        """Write a checkpoint and the metric files, atomically."""
        path = self.out / name
        if not self.writer:
            return path
        save_checkpoint(self._checkpoint(), path)
        self._write_metrics()
        if self.on_checkpoint is not None:
            self.on_checkpoint(self.step)
        return path

    def load(self, path: Path) -> None:
        """Restore everything from a checkpoint written by `save`."""
        state = load_checkpoint(path)
        self.model.load_state_dict(state["model_state"])
        self.optimizer.load_state_dict(state["optimizer_state"])
        self.scheduler.load_state_dict(state["scheduler_state"])
        self.epoch = state["epoch"]
        self.batch_index = state["batch_index"]
        self.step = state["step"]
        self.elapsed = state["elapsed"]
        self.history = state["history"]
        self.best = state["best"]
        self.converged_step = state["converged_step"]
        interval = state.get("interval", {})
        self.interval = dict(interval.get("sums", {}))
        self.interval_steps = int(interval.get("steps", 0))
        self.interval_seconds = float(interval.get("seconds", 0.0))
        _set_rng_state(state["rng"])

    def _write_metrics(self) -> None:
        keys: list[str] = []
        for row in self.history:
            keys.extend(k for k in row if k not in keys)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=keys)
        writer.writeheader()
        writer.writerows(self.history)
        write_text_atomic(buffer.getvalue(), self.out / "metrics.csv")
        write_text_atomic(json.dumps(self.summary(), indent=2), self.out / "metrics.json")

    def summary(self) -> dict[str, Any]:
        """Run summary: parameters, budget, best validation, test metrics when known."""
        from oscsim.models.sequence import count_parameters, count_weights

        train_rows = [r for r in self.history if r["split"] == "train"]
        seconds = [r["seconds_per_step"] for r in train_rows if "seconds_per_step" in r]
        summary = {
            "task": self.task.name,
            "model": self.config.model,
            "parameters": count_parameters(self.model),
            "weights": count_weights(self.model),
            "steps": self.step,
            "epochs_completed": self.epoch,
            "wall_seconds": self.elapsed,
            "seconds_per_step": float(np.mean(seconds)) if seconds else None,
            "best": self.best,
            "test": self.test,
            "converged_step": self.converged_step,
        }
        if self.task.batch_criterion is not None:
            # The published criterion counts iterations from 0: step s ends iteration s − 1.
            hits = [r["step"] - 1 for r in self.history if r["split"] == "batch_criterion"]
            summary["converged_iteration_published"] = hits[0] if hits else None
        return {**summary, "run": self.config.to_dict(), "history": self.history}

    # ----------------------------------------------------------------------------------
    # training

    def _validate(self, *, partial: bool) -> dict[str, float]:
        metrics = evaluate(
            self.model, self.task, "validation", self.config.device, self.config.dtype
        )
        row = {"split": "validation", "step": self.step, "epoch": self.epoch, **metrics}
        if partial:
            row["partial_epoch"] = 1
        self.history.append(row)
        key = self.task.selection_metric
        value = metrics[key]
        best = self.best.get(key)
        better = best is None or (value > best if self.task.higher_is_better else value < best)
        if better:
            self.best = {key: value, "step": self.step, "epoch": self.epoch, **metrics}
            if self.writer:
                save_checkpoint(self._checkpoint(), self.out / BEST)
        threshold = getattr(self.task, "converged_below", None)
        if threshold is not None and self.converged_step is None and value < threshold:
            self.converged_step = self.step
        return metrics

    def _train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        self.optimizer.zero_grad(set_to_none=True)
        output = self.step_model(x)
        loss = self.task.loss(output, y)
        value = float(loss.detach())
        if self.distributed is not None:  # every rank sees the whole batch's loss and stops
            value = self.distributed.global_mean(loss)
            loss = self.distributed.weighted_loss(loss, output)
        if not np.isfinite(value):
            last = self.out / LAST
            where = (
                f"the last good checkpoint is {last} (resume from it with --resume)"
                if last.exists()
                else "no checkpoint was written before it"
            )
            raise TrainingDivergedError(
                f"the training loss became {value} at step {self.step + 1} (epoch "
                f"{self.epoch}); {where}. Lower the learning rate (now "
                f"{self.optimizer.param_groups[0]['lr']:g}) or dt, or raise the damping "
                "epsilon, then run again"
            )
        loss.backward()
        if self.config.clip_grad_norm is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip_grad_norm)
        self.optimizer.step()
        with torch.no_grad():
            metrics = self.task.batch_metrics(output.detach(), y)
        count = len(y)
        if self.distributed is not None:
            metrics = self.distributed.sum_metrics(metrics)
            count = self.distributed.shard.last_batch
        return {key: value / count for key, value in metrics.items()}

    def _check_batch_criterion(self, metrics: dict[str, float]) -> None:
        """Record the first training batch that meets the task's batch criterion, if any."""
        criterion = self.task.batch_criterion
        if criterion is None:
            return
        every, threshold = criterion
        iteration = self.step - 1
        if iteration == 0 or iteration % every:
            return
        if any(row["split"] == "batch_criterion" for row in self.history):
            return
        if metrics["loss"] <= threshold:
            row = {"split": "batch_criterion", "step": self.step, "epoch": self.epoch}
            self.history.append({**row, "loss": metrics["loss"]})

    def fit(self, *, resume: bool = False) -> dict[str, Any]:
        """Train until ``epochs`` (or ``max_steps``); returns the summary."""
        config = self.config
        last = self.out / LAST
        if resume:
            if not last.exists():
                raise OscsimInputError(f"--resume: no checkpoint at {last}")
            self.load(last)
        elif last.exists():
            raise OscsimInputError(
                f"{self.out} already holds a run; pass --resume to continue it or choose "
                "another --out"
            )
        else:
            seed_everything(config.seed)
        self.out.mkdir(parents=True, exist_ok=True)
        while self.epoch < config.epochs:
            n_batches = self.task.batches_per_epoch(config.batch_size)
            bar = tqdm(
                total=n_batches,
                initial=self.batch_index,
                desc=f"{self.task.name}/{config.model} epoch {self.epoch + 1}/{config.epochs}",
                disable=not config.progress or not self.writer,
                leave=False,
            )
            while self.batch_index < n_batches:
                if config.max_steps is not None and self.step >= config.max_steps:
                    bar.close()
                    return self._finish(stopped_early=True)
                x, y = self.task.train_batch(self.epoch, self.batch_index, config.batch_size)
                if self.distributed is not None:  # this rank's rows of the global batch
                    x, y = self.distributed.shard(x, y)
                start = time.perf_counter()
                metrics = self._train_step(
                    to_device(x, config.device, self.dtype), to_device(y, config.device, self.dtype)
                )
                seconds = time.perf_counter() - start
                self.elapsed += seconds
                self.step += 1
                self.batch_index += 1
                self.interval_steps += 1
                self.interval_seconds += seconds
                for key, value in metrics.items():
                    self.interval[key] = self.interval.get(key, 0.0) + value
                self._check_batch_criterion(metrics)
                bar.update(1)
                bar.set_postfix(loss=f"{metrics['loss']:.4f}", s_per_step=f"{seconds:.3f}")
                if self.step % config.log_every == 0:
                    self.history.append(
                        {
                            "split": "train",
                            "step": self.step,
                            "epoch": self.epoch,
                            **{k: v / self.interval_steps for k, v in self.interval.items()},
                            "seconds_per_step": self.interval_seconds / self.interval_steps,
                            "lr": self.optimizer.param_groups[0]["lr"],
                        }
                    )
                    self.interval, self.interval_steps, self.interval_seconds = {}, 0, 0.0
                if self.step % config.checkpoint_every == 0:
                    self.save()
            bar.close()
            self._validate(partial=False)
            self.epoch += 1
            self.batch_index = 0
            self.scheduler.step()
            self.save()
            if config.stop_when_converged and self.converged_step is not None:
                break
        return self._finish(stopped_early=False)

    def _finish(self, *, stopped_early: bool) -> dict[str, Any]:
        validated_now = any(
            row["split"] == "validation" and row["step"] == self.step for row in self.history
        )
        if stopped_early and not validated_now:  # a stop on an epoch boundary is validated
            self._validate(partial=True)
        self.save()
        best_path = self.out / BEST
        if self.writer and self.task.test_at == "last":
            test = evaluate(self.model, self.task, "test", self.config.device, self.config.dtype)
            self.test = {"selection": "last", "step": self.step, "epoch": self.epoch, **test}
            self._write_metrics()
        elif self.writer and best_path.exists():
            best_model = load_checkpoint(best_path)
            current = {k: v.clone() for k, v in self.model.state_dict().items()}
            self.model.load_state_dict(best_model["model_state"])
            test = evaluate(self.model, self.task, "test", self.config.device, self.config.dtype)
            self.model.load_state_dict(current)
            self.best = {**self.best, **{f"test_{k}": v for k, v in test.items()}}
            self.test = {
                "selection": "best",
                "step": self.best.get("step"),
                "epoch": self.best.get("epoch"),
                **test,
            }
            self._write_metrics()
        summary = self.summary()
        summary.pop("history")
        return summary
