"""Valid prediction time (VPT) by the two protocols the forecasting results use.

Both score a frame by its relative error ``mean((x̂ − x)²) / mean(x²)`` over its pixels
(`oscsim.models.forecast_tasks.relative_error`) and stop at the first frame whose error
exceeds 0.025 (strictly). They differ in where counting starts and how trajectories are
pooled:

- **ours** (`ours_vpt`, the forecasting tasks' ``vpt`` metric): counted from the first
  frame the model did not read (frame ``observed``), over the ``2·horizon`` frames of an
  evaluation window, averaged over trajectories;
- **the paper's** (`paper_vpt`): counted from frame 60 (the end of the training window),
  on long test trajectories; the median over each batch of 5 trajectories, averaged over
  the batches (50 in the publication: 250 trajectories).

Predictions are arrays ``(B, T−1, C, R, R)`` of frames ``1 … T−1`` (index ``j`` predicts
frame ``j + 1``), as the forecasters return them, with the true frames ``1 … T−1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from oscsim.models.forecast_tasks import VPT_THRESHOLD, relative_error

from oscsim.errors import OscsimInputError

#: Frame at which the paper's protocol starts counting (the end of the training window).
PAPER_START = 60
#: Trajectories per batch whose median the paper's protocol takes, and batches it averages.
PAPER_BATCH = 5
PAPER_BATCHES = 50
#: Frames of the long test trajectories: the paper's count can reach 450 steps.
PAPER_LENGTH = 510


def first_exceedance(errors: np.ndarray, threshold: float = VPT_THRESHOLD) -> np.ndarray:
    """Index of the first step whose error exceeds ``threshold``, per row; the length if none.

    Parameters
    ----------
    errors
        ``(B, S)`` errors, step 0 first.
    threshold
        Errors strictly above it end the valid prediction.

    Returns
    -------
    numpy.ndarray
        ``(B,)`` int64 in ``[0, S]``.

    Examples
    --------
    >>> first_exceedance(np.array([[0.01, 0.03, 0.0], [0.0, 0.025, 0.0]]))
    array([1, 3])
    """
    errors = np.asarray(errors)
    if errors.ndim != 2:
        raise OscsimInputError(f"errors must be (B, S), got shape {errors.shape}")
    exceeded = errors > threshold
    first = exceeded.argmax(axis=1)  # the first True; 0 for a row without any
    return np.where(exceeded.any(axis=1), first, errors.shape[1]).astype(np.int64)


def step_errors(prediction: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    """Relative error of every predicted frame, ``(B, S, ...) → (B, S)`` float64."""
    return relative_error(prediction.double(), target.double()).detach().cpu().numpy()


def _check_frame(name: str, frame: int, steps: int) -> int:
    """Index of predicted frame ``frame`` among the predictions of frames ``1 … steps``."""
    if isinstance(frame, bool) or not isinstance(frame, int) or not 1 <= frame <= steps:
        raise OscsimInputError(
            f"{name} must be a frame in [1, {steps}] of the predicted frames 1 … {steps}, "
            f"got {frame!r}"
        )
    return frame - 1


def paper_vpt(
    errors: np.ndarray, *, start: int = PAPER_START, threshold: float = VPT_THRESHOLD
) -> np.ndarray:
    """VPT of every trajectory by the paper's protocol (before pooling).

    Parameters
    ----------
    errors
        ``(B, T−1)`` relative errors of the predictions of frames ``1 … T−1``
        (`step_errors`).
    start
        First frame counted (60).
    threshold
        0.025.

    Returns
    -------
    numpy.ndarray
        ``(B,)``: frames from ``start`` on before the first error above ``threshold``
        (``T − start`` if none).
    """
    errors = np.asarray(errors)
    if errors.ndim != 2:
        raise OscsimInputError(f"errors must be (B, T-1), got shape {errors.shape}")
    index = _check_frame("start", start, errors.shape[1])
    return first_exceedance(errors[:, index:], threshold)


def ours_vpt(
    errors: np.ndarray, *, observed: int, horizon: int, threshold: float = VPT_THRESHOLD
) -> np.ndarray:
    """VPT of every trajectory by our protocol: from frame ``observed``, over ``2·horizon``.

    Parameters
    ----------
    errors
        ``(B, T−1)`` relative errors of the predictions of frames ``1 … T−1``.
    observed
        Frames the model read; counting starts at frame ``observed``.
    horizon
        The training horizon; ``2·horizon`` frames are scored (at most those there are).
    """
    errors = np.asarray(errors)
    if errors.ndim != 2:
        raise OscsimInputError(f"errors must be (B, T-1), got shape {errors.shape}")
    index = _check_frame("observed", observed, errors.shape[1])
    if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
        raise OscsimInputError(f"horizon must be an integer >= 1, got {horizon!r}")
    return first_exceedance(errors[:, index : index + 2 * horizon], threshold)


@dataclass(frozen=True)
class PooledVPT:
    """The paper's pooling of per-trajectory VPTs.

    Attributes
    ----------
    value
        Mean over batches of each batch's median.
    std
        Standard deviation of the batch medians (over batches, ``ddof = 0``).
    medians
        The median of each batch.
    """

    value: float
    std: float
    medians: np.ndarray


def pool_batches(values: np.ndarray, batch_size: int = PAPER_BATCH) -> PooledVPT:
    """Median within consecutive batches of ``batch_size``, then the mean over batches.

    Raises
    ------
    OscsimInputError
        If the count is not a positive multiple of ``batch_size``.

    Examples
    --------
    >>> pool_batches(np.array([1, 2, 3, 4, 100, 5, 5, 5, 5, 5])).value
    4.0
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    if batch_size < 1 or values.size == 0 or values.size % batch_size:
        raise OscsimInputError(f"{values.size} values do not split into batches of {batch_size}")
    medians = np.median(values.reshape(-1, batch_size), axis=1)
    return PooledVPT(float(medians.mean()), float(medians.std()), medians)


def error_curves(errors: np.ndarray) -> dict[str, np.ndarray]:
    """Per-step summaries of ``(B, S)`` relative errors over the trajectories.

    Returns
    -------
    dict
        ``mean``, ``median``, ``q25``, ``q75`` (each ``(S,)``) and ``valid_fraction``, the
        share of trajectories still under the threshold at every step since the start
        of the array (a survival curve).
    """
    errors = np.asarray(errors, dtype=np.float64)
    if errors.ndim != 2:
        raise OscsimInputError(f"errors must be (B, S), got shape {errors.shape}")
    alive = np.logical_not(np.maximum.accumulate(errors > VPT_THRESHOLD, axis=1))
    return {
        "mean": errors.mean(axis=0),
        "median": np.median(errors, axis=0),
        "q25": np.quantile(errors, 0.25, axis=0),
        "q75": np.quantile(errors, 0.75, axis=0),
        "valid_fraction": alive.mean(axis=0),
    }
