"""Figures of the forecasting experiments: forecast frames, error curves, latent movies.

Frames are ``(C, R, R)`` arrays in [0, 1] (RGB or grey). Hamiltonian frames have rows
along +y, so they are drawn with ``origin="lower"``; MNIST frames with ``origin="upper"``.
Latent phase is the angle of the analytic signal along time (Hilbert transform of each
cell after removing its mean), as the paper shows it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.animation import FuncAnimation, PillowWriter  # noqa: E402
from scipy.signal import hilbert  # noqa: E402

from oscsim.atomic import atomic_target
from oscsim.errors import OscsimInputError  # noqa: E402


def _draw_frame(
    ax: Any, frame: np.ndarray, origin: str, *, fontsize: int, title: str | None,
    label: str | None,
) -> None:  # fmt: skip
    """One frame in ``ax``, without ticks; a column title and a row label where given."""
    image, options = _image(frame)
    ax.imshow(image, origin=origin, interpolation="nearest", **options)
    ax.set_xticks([])
    ax.set_yticks([])
    if title is not None:
        ax.set_title(title, fontsize=fontsize)
    if label is not None:
        ax.set_ylabel(label, fontsize=fontsize, rotation=0, ha="right", va="center")


def _image(frame: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """A ``(C, R, R)`` frame as something ``imshow`` draws, with its keyword arguments."""
    if frame.ndim != 3 or frame.shape[0] not in (1, 3):
        raise OscsimInputError(f"frames must be (C, R, R) with C = 1 or 3, got {frame.shape}")
    if frame.shape[0] == 1:
        return frame[0], {"cmap": "gray", "vmin": 0.0, "vmax": 1.0}
    return np.clip(np.moveaxis(frame, 0, -1), 0.0, 1.0), {}


def save_figure(fig: plt.Figure, path: str | Path) -> Path:
    """Write ``fig`` to ``path`` (folders made as needed) and close it."""
    target = Path(path)
    with atomic_target(target) as tmp:  # the temporary's suffix is not the format's
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format=target.suffix.lstrip(".") or None)
    plt.close(fig)
    return target


def forecast_frames_figure(
    truth: np.ndarray,
    predictions: Mapping[str, np.ndarray],
    steps: Sequence[int],
    path: str | Path,
    *,
    origin: Literal["upper", "lower"] = "lower",
    title: str = "",
    first_step: int = 1,
) -> Path:
    """Rows of frames: the truth, then each model's forecast, at the chosen forecast steps.

    Parameters
    ----------
    truth
        ``(S, C, R, R)`` true frames of the forecast (step 0 is the first forecast).
    predictions
        Model name → ``(S, C, R, R)`` forecast.
    steps
        Forecast steps (indices into ``S``) to show, one column each.
    path
        PNG to write.
    origin
        ``"lower"`` for the Hamiltonian frames (rows follow +y), ``"upper"`` for MNIST.
    title
        Figure title.
    first_step
        Number printed for step 0 (the count of steps ahead).
    """
    rows = [("truth", truth), *predictions.items()]
    fig, axes = plt.subplots(
        len(rows), len(steps), figsize=(1.05 * len(steps) + 0.9, 1.1 * len(rows) + 0.4),
        squeeze=False,
    )  # fmt: skip
    for r, (name, frames) in enumerate(rows):
        for c, step in enumerate(steps):
            _draw_frame(
                axes[r, c], frames[step], origin, fontsize=8,
                title=f"+{step + first_step}" if r == 0 else None, label=name if c == 0 else None,
            )  # fmt: skip
    if title:
        fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)


def error_curves_figure(
    curves: Mapping[str, np.ndarray],
    path: str | Path,
    *,
    train_horizon: int | None = None,
    vpt: Mapping[str, float] | None = None,
    title: str = "",
    ylabel: str = "MSE per pixel",
) -> Path:
    """Per-step error of each model over the forecast (log scale).

    ``curves``: name → ``(S,)`` values at forecast steps 1 … S; ``train_horizon`` marks the
    end of the trained window; ``vpt`` (name → mean steps) is added to the legend.
    """
    fig, ax = plt.subplots(figsize=(5.2, 3.2))
    for name, curve in curves.items():
        label = name if vpt is None or name not in vpt else f"{name} (VPT {vpt[name]:.1f})"
        ax.semilogy(np.arange(1, len(curve) + 1), curve, label=label)
    if train_horizon is not None:
        ax.axvline(train_horizon, color="grey", linestyle="--", linewidth=0.8)
        ax.text(
            train_horizon, ax.get_ylim()[1], " trained window ends", fontsize=7, va="top",
            color="grey",
        )  # fmt: skip
    ax.set_xlabel("forecast step")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    return save_figure(fig, path)


def latent_phase(positions: np.ndarray) -> np.ndarray:
    """Instantaneous phase of each cell, ``(S, ...) → (S, ...)`` in (−π, π].

    The angle of the analytic signal along time (axis 0) after removing each cell's mean.
    """
    values = np.asarray(positions, dtype=np.float64)
    if values.ndim < 2 or values.shape[0] < 2:
        raise OscsimInputError(f"positions must be (S, ...) with S >= 2, got {values.shape}")
    return np.angle(hilbert(values - values.mean(axis=0, keepdims=True), axis=0))


def _grid_image(field: np.ndarray) -> np.ndarray:
    """One latent frame as a 2-D picture: the torus itself, or a ring as one row."""
    field = np.asarray(field)
    if field.ndim == 3:  # (C, h, w): channels side by side
        return np.concatenate(list(field), axis=1)
    if field.ndim == 2:  # (C, n)
        return field
    raise OscsimInputError(f"a latent frame must be (C, n) or (C, h, w), got {field.shape}")


def latent_strip_figure(
    positions: np.ndarray,
    steps: Sequence[int],
    path: str | Path,
    *,
    title: str = "",
    times: np.ndarray | None = None,
) -> Path:
    """Latent position (top row) and phase (bottom row) at the chosen steps.

    ``positions``: ``(S, C, *grid)`` one sample's latent trajectory.
    """
    phase = latent_phase(positions)
    limit = float(np.abs(positions).max()) or 1.0
    fig, axes = plt.subplots(2, len(steps), figsize=(1.15 * len(steps) + 0.9, 2.7), squeeze=False)
    for c, step in enumerate(steps):
        for r, (values, options) in enumerate(
            (
                (positions[step], {"cmap": "RdBu_r", "vmin": -limit, "vmax": limit}),
                (phase[step], {"cmap": "twilight", "vmin": -np.pi, "vmax": np.pi}),
            )
        ):
            ax = axes[r, c]
            ax.imshow(_grid_image(values), interpolation="nearest", **options)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                label = f"step {step + 1}" if times is None else f"t = {times[step]:.2f}"
                ax.set_title(label, fontsize=7)
        if c == 0:
            axes[0, 0].set_ylabel("position", fontsize=8)
            axes[1, 0].set_ylabel("phase", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)


def latent_movie(
    positions: np.ndarray,
    path: str | Path,
    *,
    frames: np.ndarray | None = None,
    predictions: np.ndarray | None = None,
    origin: Literal["upper", "lower"] = "lower",
    fps: int = 10,
    title: str = "",
) -> Path:
    """A GIF of the latent position and phase over time, beside the frames if given.

    Parameters
    ----------
    positions
        ``(S, C, *grid)`` one sample's latent trajectory.
    frames, predictions
        ``(S, C, R, R)`` true and predicted frames at the same steps (optional panels).
    origin
        Image origin of the frames.
    fps
        Frames per second of the GIF.
    """
    phase = latent_phase(positions)
    limit = float(np.abs(positions).max()) or 1.0
    panels: list[tuple[str, np.ndarray, dict[str, Any]]] = []
    if frames is not None:
        panels.append(("truth", frames, {"origin": origin}))
    if predictions is not None:
        panels.append(("forecast", predictions, {"origin": origin}))
    panels.append(("latent position", positions, {"cmap": "RdBu_r", "vmin": -limit, "vmax": limit}))
    panels.append(("latent phase", phase, {"cmap": "twilight", "vmin": -np.pi, "vmax": np.pi}))
    fig, axes = plt.subplots(1, len(panels), figsize=(2.2 * len(panels), 2.5), squeeze=False)
    images = []
    for ax, (name, data, options) in zip(axes[0], panels, strict=True):
        first = data[0]
        if name in ("truth", "forecast"):
            picture, extra = _image(first)
            images.append(ax.imshow(picture, interpolation="nearest", **extra, **options))
        else:
            images.append(ax.imshow(_grid_image(first), interpolation="nearest", **options))
        ax.set_title(name, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    caption = fig.suptitle(f"{title} step 1", fontsize=8)

    def update(step: int) -> list[Any]:
        for image, (name, data, _) in zip(images, panels, strict=True):
            if name in ("truth", "forecast"):
                image.set_data(_image(data[step])[0])
            else:
                image.set_data(_grid_image(data[step]))
        caption.set_text(f"{title} step {step + 1}")
        return [*images, caption]

    animation = FuncAnimation(fig, update, frames=len(positions), blit=False)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    animation.save(target, writer=PillowWriter(fps=fps))
    plt.close(fig)
    return target


def equivariance_figure(
    result: object,
    path: str | Path,
    *,
    sample: int = 0,
    columns: Sequence[int] | None = None,
    origin: Literal["upper", "lower"] = "upper",
    title: str = "",
) -> Path:
    """Rows: the truly transformed frames, the decoded shifted latent, the decoded unshifted
    latent, the model's own forecast, and the shifted latent field; with the per-shift MSE.

    ``result`` is a `models.equivariance.EquivarianceResult`.
    """
    from oscsim.models.equivariance import EquivarianceResult

    if not isinstance(result, EquivarianceResult):
        raise OscsimInputError(f"result must be an EquivarianceResult, got {type(result).__name__}")
    steps = len(result.mse_shifted)
    columns = list(range(steps)) if columns is None else list(columns)
    rows = [
        ("truth", result.truth[sample]),
        ("decoded\nshifted latent", result.shifted[sample]),
        ("decoded\nunshifted latent", result.static[sample]),
        ("model\nforecast", result.rollout[sample]),
    ]
    fig = plt.figure(figsize=(1.0 * len(columns) + 1.6, 1.05 * (len(rows) + 1) + 2.4))
    grid = fig.add_gridspec(
        len(rows) + 2, len(columns), height_ratios=[1] * (len(rows) + 1) + [2.2]
    )
    limit = float(np.abs(result.latent_shifted).max()) or 1.0
    for c, step in enumerate(columns):
        for r, (name, frames) in enumerate(rows):
            _draw_frame(
                fig.add_subplot(grid[r, c]), frames[step], origin, fontsize=7,
                title=f"shift {step}" if r == 0 else None, label=name if c == 0 else None,
            )  # fmt: skip
        ax = fig.add_subplot(grid[len(rows), c])
        ax.imshow(
            _grid_image(result.latent_shifted[step]), cmap="RdBu_r", vmin=-limit, vmax=limit,
            interpolation="nearest",
        )  # fmt: skip
        ax.set_xticks([])
        ax.set_yticks([])
        if c == 0:
            ax.set_ylabel("shifted\nlatent", fontsize=7, rotation=0, ha="right", va="center")
    ax = fig.add_subplot(grid[len(rows) + 1, :])
    shifts = np.arange(steps)
    ax.plot(shifts, result.mse_shifted, "o-", label="decoded shifted latent")
    ax.plot(shifts, result.mse_static, "s-", label="decoded unshifted latent")
    ax.plot(shifts, result.mse_rollout, "^-", label="model forecast (dynamics)")
    ax.set_xlabel("shift s (frames of rotation; latent moved by s·v)")
    ax.set_ylabel("MSE vs rotated digit")
    ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)
