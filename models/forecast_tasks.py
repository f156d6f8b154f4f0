"""Forecasting tasks: frame sequences in, future frames out; per-step MSE and VPT.

A batch is ``(x, y)``: ``x`` the whole window ``(B, T, C, R, R)`` with every frame from
``observed`` on set to zero (the model may read only what it would have at forecast time),
``y = frames[:, 1:]`` the frames to predict. Training windows hold ``observed + horizon``
frames; validation and test windows ``observed + 2·horizon``, so the forecast is scored
over an extrapolation horizon twice the one trained on.

Metrics (sums over the batch, as the trainer expects) are taken over the forecast frames
``observed … T−1`` only:

- ``mse``: mean squared error per pixel over the forecast; ``mse_window`` and
  ``mse_extrapolation`` split it into the first ``horizon`` steps and the rest;
- ``vpt``: valid prediction time, the number of forecast steps before
  ``mean((x̂ − x)²) / mean(x²)`` over a frame's pixels first exceeds 0.025 (the
  Hamiltonian Dynamics Suite's definition); ``T − observed`` if it never does.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from oscsim.models.data import hamiltonian_trajectories, rotating_mnist
from oscsim.models.forecast import build_forecaster
from oscsim.models.registry import task_names
from oscsim.models.tasks import Batch, Task, TaskDefaults
from oscsim.models.training import RunConfig
from torch import nn

from oscsim.errors import OscsimInputError

#: Relative error above which a predicted frame stops being valid.
VPT_THRESHOLD = 0.025

HAMILTONIAN_TASKS = ("mass_spring", "pendulum", "two_body")
FORECAST_TASKS = task_names("forecast")
"""Names of the forecasting tasks (``oscsim train TASK``), from `oscsim.models.registry`."""
#: ``--set`` keys that configure the task rather than the model.
TASK_OPTIONS = ("observed", "horizon", "n_train", "n_eval")


def per_step_mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error of each frame, ``(B, S, ...) → (B, S)``."""
    if prediction.shape != target.shape or prediction.dim() < 3:
        raise OscsimInputError(
            f"prediction and target must share a shape (B, S, ...), got "
            f"{tuple(prediction.shape)} and {tuple(target.shape)}"
        )
    return (prediction - target).square().flatten(2).mean(2)


def relative_error(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``mean((x̂ − x)²) / mean(x²)`` over each frame's pixels, ``(B, S, ...) → (B, S)``."""
    power = target.square().flatten(2).mean(2)
    # A frame of zeros has no scale; the tiny floor keeps it finite (any error then counts).
    return per_step_mse(prediction, target) / power.clamp_min(1e-12)


def valid_prediction_time(
    prediction: torch.Tensor, target: torch.Tensor, threshold: float = VPT_THRESHOLD
) -> torch.Tensor:
    """Steps before the relative error first exceeds ``threshold``, ``(B,)`` int64.

    Parameters
    ----------
    prediction, target
        ``(B, S, ...)`` forecast frames and the truth, step 0 being the first forecast.
    threshold
        Relative error that ends the valid prediction (0.025 in the suite).

    Returns
    -------
    torch.Tensor
        For each sample the index of the first frame whose relative error exceeds
        ``threshold`` (so 0 when the first forecast is already off), or ``S`` when none is.
    """
    exceeded = relative_error(prediction, target) > threshold
    steps = exceeded.shape[1]
    first = exceeded.to(torch.uint8).argmax(dim=1)  # the first maximum: the first exceedance
    return torch.where(exceeded.any(dim=1), first, torch.full_like(first, steps))


class FrameForecastTask(Task):
    """Shared batching, loss and metrics of the forecasting tasks (see the module notes)."""

    # Forecast MSE over the whole 2·horizon: smooth, unlike VPT, which stays 0 early on.
    selection_metric = "mse"
    higher_is_better = False
    frame_shape: tuple[int, int, int]
    #: Model options that suit the task's frames (``--set`` overrides them).
    model_defaults: dict[str, Any] = {}

    def __init__(
        self,
        seed: int,
        limit_train: int | None,
        limit_eval: int | None,
        observed: int,
        horizon: int,
        n_train: int,
        n_eval: int,
    ) -> None:
        super().__init__(seed=seed, limit_train=limit_train, limit_eval=limit_eval)
        self._eval: dict[str, np.ndarray] = {}
        for name, value in (
            ("observed", observed),
            ("horizon", horizon),
            ("n_train", n_train),
            ("n_eval", n_eval),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise OscsimInputError(f"{name} must be an integer >= 1, got {value!r}")
        self.observed = observed
        self.horizon = horizon
        self.n_train = n_train if limit_train is None else min(n_train, limit_train)
        self.n_eval = n_eval if limit_eval is None else min(n_eval, limit_eval)
        self._n_train_full = n_train
        self._n_eval_full = n_eval

    @property
    def train_length(self) -> int:
        """Frames in a training window: ``observed + horizon``."""
        return self.observed + self.horizon

    @property
    def eval_length(self) -> int:
        """Frames in an evaluation window: ``observed + 2·horizon``."""
        return self.observed + 2 * self.horizon

    def window(self, frames: np.ndarray) -> Batch:
        """``(x, y)`` of frames ``(B, T, C, R, R)``: unobserved frames zeroed, targets 1…T−1."""
        x = torch.from_numpy(np.array(frames, dtype=np.float32))
        y = x[:, 1:].clone()
        x[:, self.observed :] = 0.0
        return x, y

    def batches_per_epoch(self, batch_size: int) -> int:
        return -(-self.n_train // batch_size)

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(output, target)

    def _eval_items(self, split: str) -> np.ndarray:
        """The stored items (states or frames) of ``validation`` or ``test``."""
        if split not in self._eval:
            raise OscsimInputError(f"split must be validation or test, got {split!r}")
        return self._eval[split]

    def _frames(self, items: np.ndarray) -> np.ndarray:
        """Frames ``(B, T, C, R, R)`` of stored items; the items themselves by default."""
        return items

    def eval_batches(self, split: str, batch_size: int) -> Iterator[Batch]:
        items = self._eval_items(split)
        for start in range(0, len(items), batch_size):
            yield self.window(self._frames(items[start : start + batch_size]))

    def forecast_part(
        self, output: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The predictions of frames ``observed …`` and their truth."""
        start = self.observed - 1  # output index j predicts frame j + 1
        return output[:, start:], target[:, start:]

    def batch_metrics(self, output: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
        prediction, truth = self.forecast_part(output, target)
        step_mse = per_step_mse(prediction, truth)
        metrics = {
            "loss": float(per_step_mse(output, target).mean(1).sum()),
            "mse": float(step_mse.mean(1).sum()),
            "vpt": float(valid_prediction_time(prediction, truth).sum()),
        }
        if step_mse.shape[1] > self.horizon:
            metrics["mse_window"] = float(step_mse[:, : self.horizon].mean(1).sum())
            metrics["mse_extrapolation"] = float(step_mse[:, self.horizon :].mean(1).sum())
        return metrics

    def state(self) -> dict[str, Any]:
        return {
            "observed": self.observed,
            "horizon": self.horizon,
            "n_train": self._n_train_full,
            "n_eval": self._n_eval_full,
        }


class HamiltonianForecastTask(FrameForecastTask):
    """Forecast a Hamiltonian system of the suite from 32×32 RGB frames.

    Trajectories of ``observed + 2·horizon`` frames (the paper's 31 + 60 + 60 = 151 by
    default) are simulated once (cached) and drawn on demand. A training window starts at a
    random offset in ``[0, horizon]`` of a training trajectory (the system is autonomous, so
    every window is a valid initial condition); evaluation windows start at frame 0. Train,
    validation and test trajectories come from the data seeds ``3·seed``, ``3·seed + 1``,
    ``3·seed + 2``.
    """

    frame_shape = (3, 32, 32)
    defaults = TaskDefaults(3e-3, 0.125, 1.0, 0.5, 16, 20, eval_batch_size=64)

    def __init__(
        self,
        system: str,
        *,
        seed: int,
        limit_train: int | None = None,
        limit_eval: int | None = None,
        observed: int = 31,
        horizon: int = 60,
        n_train: int = 2000,
        n_eval: int = 128,
    ) -> None:
        super().__init__(seed, limit_train, limit_eval, observed, horizon, n_train, n_eval)
        if system not in HAMILTONIAN_TASKS:
            raise OscsimInputError(
                f"unknown Hamiltonian system {system!r}; choose one of "
                f"{', '.join(HAMILTONIAN_TASKS)}"
            )
        self.name = system
        length = self.eval_length
        train = hamiltonian_trajectories(system, n_train, seed=3 * seed, length=length)
        self.system = train.system
        self._train_states = train.states[: self.n_train]
        self._eval = {
            split: hamiltonian_trajectories(
                system, n_eval, seed=3 * seed + k, length=length
            ).states[: self.n_eval]
            for k, split in ((1, "validation"), (2, "test"))
        }

    def train_batch(self, epoch: int, index: int, batch_size: int) -> Batch:
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(self.n_train)
        offsets = rng.integers(0, self.horizon + 1, size=self.n_train)
        chosen = order[index * batch_size : (index + 1) * batch_size]
        steps = offsets[chosen, None] + np.arange(self.train_length)
        states = self._train_states[chosen[:, None], steps]
        return self.window(self.system.render(states))

    def eval_states(self, split: str) -> np.ndarray:
        """Simulated states ``(n, T, state_dim)`` of a split (``validation`` or ``test``)."""
        return self._eval_items(split)

    def _frames(self, items: np.ndarray) -> np.ndarray:
        return self.system.render(items)


class RotatingMnistForecastTask(FrameForecastTask):
    """Forecast a rotating MNIST digit (20° per frame, random start angle) from its first frames.

    Training sequences are digits of MNIST's train split, validation and test sequences
    those of its validation and test splits (`models.data.rotating_mnist`, cached). With the
    defaults the model reads 6 frames (120°) and is trained to continue for 12 (a full turn
    in all), and is scored over 24 (480°).
    """

    frame_shape = (1, 28, 28)
    # Black background: a sigmoid output saturates towards 0 and stops learning. With only
    # a few observed frames the latent starts small (it grows like dt² per frame); decoding
    # each latent frame normalised lets the decoder learn from the first steps on.
    model_defaults = {"decoder_output": "linear", "latent_norm": True}
    name = "rotmnist"
    # The paper's oscillator constants (dt = sigmoid(−1.95), γ = 1, ε = 0.5).
    defaults = TaskDefaults(1e-3, 0.125, 1.0, 0.5, 32, 10, eval_batch_size=64)

    def __init__(
        self,
        *,
        seed: int,
        limit_train: int | None = None,
        limit_eval: int | None = None,
        observed: int = 6,
        horizon: int = 12,
        n_train: int = 6000,
        n_eval: int = 256,
    ) -> None:
        super().__init__(seed, limit_train, limit_eval, observed, horizon, n_train, n_eval)
        self._train_frames = rotating_mnist(
            "train", self._n_train_full, seed=seed, frames=self.train_length, random_start=True
        ).frames[: self.n_train]
        self._eval = {
            "validation": rotating_mnist(
                "validation", self._n_eval_full, seed=seed, frames=self.eval_length,
                random_start=True,
            ).frames[: self.n_eval],
            "test": rotating_mnist(
                "test", self._n_eval_full, seed=seed, frames=self.eval_length, random_start=True
            ).frames[: self.n_eval],
        }  # fmt: skip

    def train_batch(self, epoch: int, index: int, batch_size: int) -> Batch:
        order = np.random.default_rng([self.seed, epoch]).permutation(self.n_train)
        return self.window(self._train_frames[order[index * batch_size : (index + 1) * batch_size]])

    def eval_frames(self, split: str) -> np.ndarray:
        """Frames ``(n, T, 1, 28, 28)`` of a split (``validation`` or ``test``)."""
        return self._eval_items(split)


def build_forecast_task(
    name: str,
    *,
    seed: int,
    limit_train: int | None = None,
    limit_eval: int | None = None,
    **options: int,
) -> FrameForecastTask:
    """A forecasting task by name; ``options`` are `TASK_OPTIONS` (``observed``, …)."""
    unknown = sorted(set(options) - set(TASK_OPTIONS))
    if unknown:
        raise OscsimInputError(
            f"unknown task option(s) {unknown} for {name}; allowed: {', '.join(TASK_OPTIONS)}"
        )
    settings = {key: int(value) for key, value in options.items()}
    if name == "rotmnist":
        return RotatingMnistForecastTask(
            seed=seed, limit_train=limit_train, limit_eval=limit_eval, **settings
        )
    if name in HAMILTONIAN_TASKS:
        return HamiltonianForecastTask(
            name, seed=seed, limit_train=limit_train, limit_eval=limit_eval, **settings
        )
    raise OscsimInputError(
        f"unknown forecasting task {name!r}; choose one of {', '.join(FORECAST_TASKS)}"
    )


def build_forecast_run(
    run: RunConfig, task_state: dict[str, Any] | None = None
) -> tuple[FrameForecastTask, nn.Module]:
    """Task and model of a forecasting run (the forecast builder of `oscsim.models.registry`).

    ``run.model_options`` (``--set``) holds task options (`TASK_OPTIONS`) and model options
    (see `models.forecast.build_forecaster`, over the task's ``model_defaults``);
    ``task_state`` from a checkpoint wins over the task options, so a resumed or evaluated
    run sees the same data.
    """
    from oscsim.models.icar import ICAR_MODELS

    if run.model in ICAR_MODELS:  # the paper's forecaster has its own task (teacher forcing)
        from oscsim.models.icar_tasks import build_icar_run

        return build_icar_run(run, task_state)
    options = dict(run.model_options)
    task_options = {key: options.pop(key) for key in TASK_OPTIONS if key in options}
    if task_state:
        task_options = {key: task_state[key] for key in TASK_OPTIONS if key in task_state}
    task = build_forecast_task(
        run.task,
        seed=run.seed,
        limit_train=run.limit_train,
        limit_eval=run.limit_eval,
        **task_options,
    )
    defaults = task.defaults
    model = build_forecaster(
        run.model,
        task.frame_shape,
        observed=task.observed,
        **defaults.oscillator(),
        seed=run.seed,
        options={**task.model_defaults, **options},
    )
    return task, model
