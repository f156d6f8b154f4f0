"""Learned front-ends of oscsim: encoders, decoders, classifiers, forecasters, data sets.

The public names below are imported on first use, so ``import oscsim.models`` stays light
(``oscsim data mnist`` needs only `oscsim.models.data`). Data sets live in
`oscsim.models.data`; the experiments behind the results pages in
`oscsim.models.experiments` (run them as ``oscsim experiment NAME``).

`load_model` returns the model of a checkpoint written by ``oscsim train`` or
``oscsim import-reference``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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

_LAZY = {
    "EquivarianceResult": "oscsim.models.equivariance",
    "equivariance_test": "oscsim.models.equivariance",
    "estimate_wave_velocity": "oscsim.models.equivariance",
    "fourier_shift": "oscsim.models.equivariance",
    "FORECAST_MODELS": "oscsim.models.forecast",
    "AutoregressiveForecaster": "oscsim.models.forecast",
    "ConvDecoder": "oscsim.models.forecast",
    "ConvEncoder": "oscsim.models.forecast",
    "LatentODEForecaster": "oscsim.models.forecast",
    "LSTMForecaster": "oscsim.models.forecast",
    "build_forecaster": "oscsim.models.forecast",
    "latent_dataset": "oscsim.models.forecast",
    "FORECAST_TASKS": "oscsim.models.forecast_tasks",
    "build_forecast_task": "oscsim.models.forecast_tasks",
    "valid_prediction_time": "oscsim.models.forecast_tasks",
    "build_run": "oscsim.models.runs",
    "load_model": "oscsim.models.runs",
    "SEQUENCE_MODELS": "oscsim.models.sequence",
    "LSTMSequenceModel": "oscsim.models.sequence",
    "OscillatorSequenceModel": "oscsim.models.sequence",
    "build_sequence_model": "oscsim.models.sequence",
    "count_parameters": "oscsim.models.sequence",
    "SEQUENCE_TASKS": "oscsim.models.tasks",
    "Task": "oscsim.models.tasks",
    "build_task": "oscsim.models.tasks",
    "RunConfig": "oscsim.models.training",
    "Trainer": "oscsim.models.training",
    "TrainingDivergedError": "oscsim.models.training",
    "evaluate": "oscsim.models.training",
    "load_checkpoint": "oscsim.models.checkpoint",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'oscsim.models' has no attribute {name!r}")


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
