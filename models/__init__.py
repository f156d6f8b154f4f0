"""Learned front-ends of oscsim: encoders, decoders, classifiers, forecasters, data sets.

The public names below are imported on first use, so ``import oscsim.models`` stays light
(``oscsim data mnist`` needs only `oscsim.models.data`). Data sets live in
`oscsim.models.data`; the experiments behind the results pages in
`oscsim.models.experiments` (run them as ``oscsim experiment NAME``).

`load_model` returns the model of a checkpoint written by ``oscsim train`` or
``oscsim import-reference``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from oscsim.lazy import lazy_attributes

if TYPE_CHECKING:
    from oscsim.models.checkpoint import load_checkpoint
    from oscsim.models.equivariance import (
        EquivarianceResult,
        equivariance_test,
        estimate_wave_velocity,
        fourier_shift,
    )
    from oscsim.models.forecast import (
        FORECAST_MODELS,
        AutoregressiveForecaster,
        ConvDecoder,
        ConvEncoder,
        LatentODEForecaster,
        LSTMForecaster,
        build_forecaster,
        latent_dataset,
    )
    from oscsim.models.forecast_tasks import (
        FORECAST_TASKS,
        build_forecast_task,
        valid_prediction_time,
    )
    from oscsim.models.runs import build_run, load_model
    from oscsim.models.sequence import (
        SEQUENCE_MODELS,
        LSTMSequenceModel,
        OscillatorSequenceModel,
        build_sequence_model,
        count_parameters,
    )
    from oscsim.models.tasks import SEQUENCE_TASKS, Task, build_task
    from oscsim.models.training import (
        RunConfig,
        Trainer,
        TrainingDivergedError,
        evaluate,
    )

#: Submodule (relative to the package) → the names it provides on first use.
_LAZY = {
    "equivariance": (
        "EquivarianceResult",
        "equivariance_test",
        "estimate_wave_velocity",
        "fourier_shift",
    ),
    "forecast": (
        "FORECAST_MODELS",
        "AutoregressiveForecaster",
        "ConvDecoder",
        "ConvEncoder",
        "LatentODEForecaster",
        "LSTMForecaster",
        "build_forecaster",
        "latent_dataset",
    ),
    "forecast_tasks": ("FORECAST_TASKS", "build_forecast_task", "valid_prediction_time"),
    "runs": ("build_run", "load_model"),
    "sequence": (
        "SEQUENCE_MODELS",
        "LSTMSequenceModel",
        "OscillatorSequenceModel",
        "build_sequence_model",
        "count_parameters",
    ),
    "tasks": ("SEQUENCE_TASKS", "Task", "build_task"),
    "training": ("RunConfig", "Trainer", "TrainingDivergedError", "evaluate"),
    "checkpoint": ("load_checkpoint",),
}


__getattr__ = lazy_attributes(__name__, _LAZY)


__all__ = [
    "AutoregressiveForecaster",
    "ConvDecoder",
    "ConvEncoder",
    "EquivarianceResult",
    "FORECAST_MODELS",
    "FORECAST_TASKS",
    "LSTMForecaster",
    "LSTMSequenceModel",
    "LatentODEForecaster",
    "OscillatorSequenceModel",
    "RunConfig",
    "SEQUENCE_MODELS",
    "SEQUENCE_TASKS",
    "Task",
    "Trainer",
    "TrainingDivergedError",
    "build_forecast_task",
    "build_forecaster",
    "build_run",
    "build_sequence_model",
    "build_task",
    "count_parameters",
    "equivariance_test",
    "estimate_wave_velocity",
    "evaluate",
    "fourier_shift",
    "latent_dataset",
    "load_checkpoint",
    "load_model",
    "valid_prediction_time",
]
