"""Training and evaluating the ICAR forecaster on the Hamiltonian suite.

``oscsim train SYSTEM --model icar_nwm2d|icar_nwm1d|icar_cornn|icar_lstm`` builds an
`ICARHamiltonianTask` and a model of `oscsim.models.icar`. ``--set`` takes the task
options ``window`` (frames per training window, 60), ``horizon``, ``n_train``, ``n_eval``
and the model options ``preset`` (``paper`` or ``cpu``) and the fields of
`oscsim.models.icar.ICARConfig` (``grid``, ``width``, ``observed``, …).

Training windows are ``window`` consecutive true frames and the loss is the teacher-forced
one-step MSE over all of them; validation and test windows are ``observed + 2·horizon``
frames (31 + 120), forecast closed loop after the first ``observed``, with the forecasting
tasks' metrics (``mse``; ``vpt``, our protocol). `paper_protocol` scores a model the
paper's way on long trajectories generated for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from oscsim.models._choices import check_known
from oscsim.models.data import hamiltonian_trajectories
from oscsim.models.forecast_tasks import HamiltonianForecastTask
from oscsim.models.icar import (
    ICAR_MODELS,
    ICARConfig,
    ICARForecaster,
    ICARLSTMForecaster,
    build_icar,
)
from oscsim.models.tasks import Batch, TaskDefaults
from oscsim.models.training import RunConfig
from oscsim.models.vpt import (
    PAPER_BATCH,
    PAPER_BATCHES,
    PAPER_LENGTH,
    PAPER_START,
    error_curves,
    ours_vpt,
    paper_vpt,
    pool_batches,
    step_errors,
)
from torch import nn
from tqdm.auto import tqdm

from oscsim.errors import OscsimInputError

#: ``--set`` keys that configure the ICAR task rather than the model.
ICAR_TASK_OPTIONS = ("window", "horizon", "n_train", "n_eval")
#: Published optimiser settings: Adam at 1.5e-4, batches of 8, 500k steps.
PAPER_STEPS = 500_000


class ICARHamiltonianTask(HamiltonianForecastTask):
    """A suite system for the ICAR model: teacher-forced training windows, closed-loop tests.

    Parameters
    ----------
    system
        ``mass_spring``, ``pendulum`` or ``two_body``.
    seed
        Data seeds as `HamiltonianForecastTask` (train ``3·seed``, validation ``+1``,
        test ``+2``).
    observed
        The model's ``observed`` (frames read before the closed loop).
    window
        Frames of a training window (60, published).
    horizon, n_train, n_eval, limit_train, limit_eval
        As `HamiltonianForecastTask`; trajectories hold ``observed + 2·horizon`` frames.
    """

    def __init__(
        self,
        system: str,
        *,
        seed: int,
        observed: int = 31,
        window: int = 60,
        horizon: int = 60,
        n_train: int = 2000,
        n_eval: int = 128,
        limit_train: int | None = None,
        limit_eval: int | None = None,
    ) -> None:
        if isinstance(window, bool) or not isinstance(window, int) or window <= observed:
            raise OscsimInputError(
                f"window must be an integer > observed ({observed}), got {window!r}"
            )
        if window > observed + 2 * horizon:
            raise OscsimInputError(
                f"window ({window}) must fit in a trajectory of observed + 2·horizon = "
                f"{observed + 2 * horizon} frames"
            )
        self.window_frames = window
        super().__init__(
            system,
            seed=seed,
            limit_train=limit_train,
            limit_eval=limit_eval,
            observed=observed,
            horizon=horizon,
            n_train=n_train,
            n_eval=n_eval,
        )
        # 500k steps of 8 windows over 2000 trajectories are 2000 epochs (--max-steps caps).
        self.defaults = TaskDefaults(
            lr=1.5e-4,
            dt=0.125,
            gamma=1.0,
            epsilon=0.5,
            batch_size=8,
            epochs=2000,
            eval_batch_size=16,
        )

    @property
    def train_length(self) -> int:
        """Frames in a training window."""
        return self.window_frames

    def train_batch(self, epoch: int, index: int, batch_size: int) -> Batch:
        """Windows of true frames from random offsets; ``(frames, frames[:, 1:])``."""
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(self.n_train)
        offsets = rng.integers(0, self.eval_length - self.window_frames + 1, size=self.n_train)
        chosen = order[index * batch_size : (index + 1) * batch_size]
        steps = offsets[chosen, None] + np.arange(self.window_frames)
        frames = torch.from_numpy(
            np.array(self.system.render(self._train_states[chosen[:, None], steps]), np.float32)
        )
        return frames, frames[:, 1:].clone()

    def state(self) -> dict[str, Any]:
        return {**super().state(), "window": self.window_frames}


def _split_options(
    options: dict[str, Any], task_state: dict[str, Any] | None
) -> tuple[dict[str, int], str, dict[str, Any]]:
    options = dict(options)
    task_options = {key: int(options.pop(key)) for key in ICAR_TASK_OPTIONS if key in options}
    if task_state:
        task_options = {key: int(task_state[key]) for key in ICAR_TASK_OPTIONS if key in task_state}
    preset = str(options.pop("preset", "paper"))
    allowed = set(ICARConfig.__dataclass_fields__)
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise OscsimInputError(
            f"unknown option(s) {unknown} for an ICAR model; allowed: preset, "
            f"{', '.join(ICAR_TASK_OPTIONS)}, {', '.join(sorted(allowed))}"
        )
    return task_options, preset, options


def icar_model_from_run(run: RunConfig) -> nn.Module:
    """The model of an ICAR run (``run.model`` and ``run.model_options``), untrained."""
    _, preset, model_options = _split_options(run.model_options, None)
    return build_icar(run.model, preset=preset, seed=run.seed, **model_options)


def build_icar_run(
    run: RunConfig, task_state: dict[str, Any] | None = None
) -> tuple[ICARHamiltonianTask, nn.Module]:
    """Task and model of ``oscsim train SYSTEM --model icar_*`` (see the module notes).

    Raises
    ------
    OscsimInputError
        For an unknown model or option.
    """
    check_known("ICAR model", run.model, ICAR_MODELS)
    task_options, preset, model_options = _split_options(run.model_options, task_state)
    model = build_icar(run.model, preset=preset, seed=run.seed, **model_options)
    task = ICARHamiltonianTask(
        run.task,
        seed=run.seed,
        observed=model.observed,
        limit_train=run.limit_train,
        limit_eval=run.limit_eval,
        **task_options,
    )
    return task, model


@torch.no_grad()
def paper_protocol(
    model: ICARForecaster | ICARLSTMForecaster,
    system: str,
    *,
    seed: int = 0,
    batches: int = PAPER_BATCHES,
    batch_size: int = PAPER_BATCH,
    length: int = PAPER_LENGTH,
    start: int = PAPER_START,
    horizon: int = 60,
    device: str = "cpu",
    progress: bool = False,
    forecast: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, Any]:
    """Both VPT protocols and the per-step error curves of a model, on long trajectories.

    ``batches × batch_size`` test trajectories of ``length`` frames (data seed
    ``3·seed + 2``, the test seed of the tasks) are forecast closed loop after the model's
    ``observed`` frames.

    Parameters
    ----------
    model
        An ICAR model.
    system
        ``mass_spring``, ``pendulum`` or ``two_body``.
    seed
        The run's seed.
    batches, batch_size, length, start
        The paper's protocol: 50 batches of 5, 510 frames, counted from frame 60.
    horizon
        Our protocol scores ``2·horizon`` frames from frame ``observed``.
    device
        Where the model runs.
    progress
        Show a progress bar over the batches.
    forecast
        The forecasting function (default ``model.forecast``).

    Returns
    -------
    dict
        ``paper_vpt`` (mean of the batch medians), ``paper_vpt_std`` (over batches),
        ``paper_batch_medians``, ``paper_vpt_per_trajectory``, ``ours_vpt`` (mean over
        trajectories), ``ours_vpt_std``, ``ours_vpt_per_trajectory``, the curves
        ``curve_from_start`` and ``curve_from_observed`` (`models.vpt.error_curves`, lists)
        and the settings.
    """
    observed = int(model.observed)
    if length <= max(start, observed) + 1:
        raise OscsimInputError(
            f"length must exceed the first counted frame ({max(start, observed)}) + 1, got {length}"
        )
    data = hamiltonian_trajectories(system, batches * batch_size, seed=3 * seed + 2, length=length)
    run = forecast if forecast is not None else model.forecast
    was_training = model.training
    model.eval()
    errors = []
    for index in tqdm(range(batches), disable=not progress, desc="paper VPT", unit="batch"):
        states = data.states[index * batch_size : (index + 1) * batch_size]
        frames = torch.from_numpy(np.array(data.system.render(states), np.float32)).to(device)
        frames = frames.to(next(model.parameters()).dtype)
        errors.append(step_errors(run(frames), frames[:, 1:]))
    model.train(was_training)
    errs = np.concatenate(errors)
    paper = paper_vpt(errs, start=start)
    pooled = pool_batches(paper, batch_size)
    ours = ours_vpt(errs, observed=observed, horizon=horizon)

    def as_lists(curves: dict[str, np.ndarray]) -> dict[str, list[float]]:
        return {key: [float(v) for v in value] for key, value in curves.items()}

    return {
        "system": system,
        "batches": batches,
        "batch_size": batch_size,
        "length": length,
        "start": start,
        "observed": observed,
        "horizon": horizon,
        "paper_vpt": pooled.value,
        "paper_vpt_std": pooled.std,
        "paper_batch_medians": [float(m) for m in pooled.medians],
        "paper_vpt_per_trajectory": [int(v) for v in paper],
        "ours_vpt": float(ours.mean()),
        "ours_vpt_std": float(ours.std()),
        "ours_vpt_per_trajectory": [int(v) for v in ours],
        "curve_from_start": as_lists(error_curves(errs[:, start - 1 :])),
        "curve_from_observed": as_lists(error_curves(errs[:, observed - 1 :])),
    }
