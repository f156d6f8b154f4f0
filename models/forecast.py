"""Latent forecasters: conv encoder → oscillator core (or LSTM) → conv decoder.

Three families forecast frame sequences ``(B, T, C, R, R)``:

- `AutoregressiveForecaster` — the paper's rotating-MNIST model. The encoder drives the
  oscillator grid once per frame (one ``imex`` step, through the fused kernel) and the
  decoder predicts frame ``n + 1`` from the position field after frame ``n``. After the
  ``observed`` frames there is no more data: the network runs on with no input
  (``feedback="none"``, the default) or is driven by the encoding of its own last
  prediction (``feedback="prediction"``, closed loop).
- `LatentODEForecaster` — the paper's forecasting model: a GRU reads the encoded
  ``observed`` frames (last to first) and sets the initial position and velocity on the
  grid; `oscsim.integrate` (torchdiffeq, optionally with the adjoint) carries the network
  forward one frame per unit of "frame time"; the decoder renders every frame.
- `LSTMForecaster` — the baseline: the same encoder and decoder around an LSTM.

Every model maps ``frames`` ``(B, T, C, R, R)`` to predictions of frames ``1 … T−1``,
``(B, T−1, C, R, R)``, and reads only the first ``observed`` frames (the tasks zero the
others as well). Oscillator models learn their step ``dt`` through a sigmoid (initial
0.125, as the paper) and keep γ and ε non-negative by construction.
"""

from __future__ import annotations

import abc
import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from oscsim.models._choices import check_known
from oscsim.models.registry import models as registry_models
from oscsim.models.sequence import CoreSpec, LearnedStep
from torch import nn

from oscsim import imex_sequence
from oscsim.errors import OscsimInputError

FEEDBACK_MODES = ("none", "prediction")
DECODER_OUTPUTS = ("sigmoid", "linear")

FORECAST_MODELS: dict[str, dict[str, str]] = {
    name: {"family": dict(entry.settings)["kind"], "coupling": dict(entry.settings)["coupling"]}
    for name, entry in registry_models("forecast").items()
    # the paper's own models have their own modules: `oscsim.models.icar`, `.rotating`
    if dict(entry.settings)["kind"] not in ("icar", "published_vae")
}
"""Model names of the forecasting tasks → family and oscillator coupling."""


def _check_frame_shape(frame_shape: Sequence[int]) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in frame_shape)
    if len(shape) != 3 or shape[1] != shape[2] or min(shape) < 1 or shape[1] < 8:
        raise OscsimInputError(
            f"frame_shape must be (channels, R, R) with square frames of side R >= 8, got "
            f"{tuple(frame_shape)}"
        )
    return shape[0], shape[1], shape[2]


class ConvEncoder(nn.Module):
    """Frames to feature vectors: three stride-2 convolutions and a linear layer.

    Parameters
    ----------
    frame_shape
        ``(C, R, R)`` of one frame.
    features
        Length ``F`` of the output vector.
    width
        Channels of the first convolution (the others have ``2·width``).

    Notes
    -----
    Input ``(N, C, R, R)``, output ``(N, F)``.
    """

    def __init__(self, frame_shape: Sequence[int], features: int = 32, width: int = 8) -> None:
        super().__init__()
        channels, side, _ = _check_frame_shape(frame_shape)
        self.convs = nn.Sequential(
            nn.Conv2d(channels, width, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(2 * width, 2 * width, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            flat = self.convs(torch.zeros(1, channels, side, side)).shape[1]
        self.linear = nn.Linear(flat, features)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.linear(self.convs(frames))


class ConvDecoder(nn.Module):
    """Latent vectors to frames: two linear layers, three transposed convolutions.

    Parameters
    ----------
    latent_size
        Length of the input vector (the flattened position field for oscillator models).
    frame_shape
        ``(C, R, R)`` of one frame; the ``8·⌈R/8⌉`` image is cropped to ``R`` at the centre.
    features, width
        Bottleneck length and channels of the last transposed convolution.
    output
        ``"sigmoid"`` (values in (0, 1)) or ``"linear"``. A sigmoid suits frames on a grey
        background; on a black one (MNIST) it saturates towards 0 early in training and
        the gradient vanishes, so those frames use ``"linear"``.

    Notes
    -----
    Input ``(N, latent_size)``, output ``(N, C, R, R)``.
    """

    def __init__(
        self,
        latent_size: int,
        frame_shape: Sequence[int],
        features: int = 32,
        width: int = 8,
        output: str = "sigmoid",
    ) -> None:
        super().__init__()
        channels, side, _ = _check_frame_shape(frame_shape)
        if output not in DECODER_OUTPUTS:
            raise OscsimInputError(
                f"decoder output must be one of {', '.join(DECODER_OUTPUTS)}, got {output!r}"
            )
        self.output = output
        self.side = side
        self.base = math.ceil(side / 8)
        self.project = nn.Sequential(
            nn.Linear(latent_size, features),
            nn.ReLU(),
            nn.Linear(features, 2 * width * self.base**2),
            nn.ReLU(),
            nn.Unflatten(1, (2 * width, self.base, self.base)),
        )
        self.deconvs = nn.Sequential(
            nn.ConvTranspose2d(2 * width, 2 * width, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(width, channels, 4, stride=2, padding=1),
        )

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        image = self.deconvs(self.project(latent))
        start = (8 * self.base - self.side) // 2
        image = image[..., start : start + self.side, start : start + self.side]
        return torch.sigmoid(image) if self.output == "sigmoid" else image


class Forecaster(nn.Module):
    """What every forecaster shares: frame shape, observed frames, decoding of a sequence."""

    family: str = ""

    def __init__(self, frame_shape: Sequence[int], observed: int) -> None:
        super().__init__()
        self.frame_shape = _check_frame_shape(frame_shape)
        if isinstance(observed, bool) or not isinstance(observed, int) or observed < 1:
            raise OscsimInputError(f"observed must be an integer >= 1, got {observed!r}")
        self.observed = observed
        self.decoder: nn.Module
        #: Normalise each latent frame (zero mean, unit variance over its cells, no learned
        #: scale) before decoding: the decoder then sees the pattern, not its amplitude.
        self.latent_norm = False

    def _check_frames(self, frames: torch.Tensor) -> None:
        if frames.dim() != 5 or tuple(frames.shape[2:]) != self.frame_shape:
            raise OscsimInputError(
                f"frames must have shape (batch, time, {', '.join(map(str, self.frame_shape))})"
                f", got {tuple(frames.shape)}"
            )
        if frames.shape[1] < 2:
            raise OscsimInputError(
                f"frames need at least 2 time steps (one to read, one to predict), got "
                f"{frames.shape[1]}"
            )

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Latents ``(N, ...)`` to frames ``(N, C, R, R)``."""
        flat = latent.reshape(latent.shape[0], -1)
        if self.latent_norm:
            # Statistics over all cells are unchanged by a shift on the torus, so this
            # commutes with translating the latent (the equivariance test relies on it).
            flat = F.layer_norm(flat, flat.shape[-1:])
        return self.decoder(flat)

    def decode_sequence(self, latents: torch.Tensor) -> torch.Tensor:
        """``(S, B, ...)`` latents to frames ``(B, S, C, R, R)``."""
        steps, batch = latents.shape[:2]
        images = self.decode(latents.reshape(steps * batch, *latents.shape[2:]))
        return images.reshape(steps, batch, *self.frame_shape).transpose(0, 1)

    def config(self) -> dict[str, Any]:
        """JSON-able description (stored with exported latents)."""
        return {
            "family": self.family,
            "frame_shape": list(self.frame_shape),
            "latent_norm": self.latent_norm,
            "decoder_output": getattr(self.decoder, "output", "sigmoid"),
        }


class OscillatorForecaster(Forecaster, abc.ABC):
    """Base of the oscillator-core forecasters: the network, its learned step, the decoder."""

    def __init__(
        self,
        frame_shape: Sequence[int],
        core: CoreSpec,
        *,
        observed: int,
        features: int = 32,
        width: int = 8,
        decoder_output: str = "sigmoid",
        seed: int = 0,
    ) -> None:
        super().__init__(frame_shape, observed)
        self.core_spec = core
        self.network = core.build_network(seed=seed)
        self.cells = core.channels * math.prod(core.grid)
        self.features = features
        self.encoder = ConvEncoder(self.frame_shape, features, width)
        self.decoder = ConvDecoder(self.cells, self.frame_shape, features, width, decoder_output)
        self.step: LearnedStep | None = LearnedStep(core.dt) if core.trainable_dt else None

    @property
    def dt(self) -> torch.Tensor | float:
        """Model time per frame: learned (a tensor) or fixed."""
        return self.step() if self.step is not None else self.core_spec.dt

    @abc.abstractmethod
    def latents(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Position and velocity behind predictions ``1 … T−1``, each ``(T−1, B, C, *grid)``."""

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        positions, _ = self.latents(frames)
        return self.decode_sequence(positions)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "observed": self.observed, "core": self.core_spec.to_dict()}


class AutoregressiveForecaster(OscillatorForecaster):
    """Encoder drives the oscillator grid frame by frame; the decoder predicts the next frame.

    Parameters
    ----------
    frame_shape
        ``(C, R, R)``.
    core
        The oscillator core (`models.sequence.CoreSpec`): grid, coupling, dt, γ, ε.
    observed
        Frames read from the data; later steps run on without data (see ``feedback``).
    feedback
        ``"none"``: no input after the observed frames; ``"prediction"``: the encoding of the
        model's own last prediction drives the next step (closed loop).
    **shared
        ``features``, ``width``, ``decoder_output`` (encoder/decoder sizes and the decoder's
        output, `ConvEncoder`, `ConvDecoder`) and ``seed`` (of the coupling kernels), as
        `OscillatorForecaster` takes them.

    Notes
    -----
    ``forward(frames (B, T, C, R, R)) → (B, T−1, C, R, R)``: the prediction of frame ``n+1``
    is decoded from the position after the ``imex`` step that read frame ``n``.
    """

    family = "autoregressive"

    def __init__(
        self,
        frame_shape: Sequence[int],
        core: CoreSpec,
        *,
        observed: int,
        feedback: str = "none",
        **shared: Any,
    ) -> None:
        # features, width, decoder_output, seed: as `OscillatorForecaster`
        super().__init__(frame_shape, core, observed=observed, **shared)
        if feedback not in FEEDBACK_MODES:
            raise OscsimInputError(
                f"feedback must be one of {', '.join(FEEDBACK_MODES)}, got {feedback!r}"
            )
        self.feedback = feedback
        self.input_map = nn.Linear(self.features, self.cells)

    def _drive(self, frames: torch.Tensor) -> torch.Tensor:
        """``(B, S, C, R, R)`` frames → drive ``(S, B, C, *grid)``."""
        batch, steps = frames.shape[:2]
        encoded = self.input_map(
            self.encoder(frames.transpose(0, 1).reshape(-1, *self.frame_shape))
        )
        return encoded.reshape(steps, batch, *self.network.state_shape)

    def latents(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self._check_frames(frames)
        batch, total = frames.shape[:2]
        steps = total - 1
        seen = min(self.observed, steps)
        drive = self._drive(frames[:, :seen])
        zeros = drive.new_zeros((batch, *self.network.state_shape))
        dt = self.dt
        if self.feedback == "none" or seen == steps:
            if seen < steps:
                drive = torch.cat([drive, drive.new_zeros((steps - seen, *drive.shape[1:]))])
            return imex_sequence(self.network, drive, zeros, zeros, dt, return_sequence=True)
        positions, velocities = imex_sequence(
            self.network, drive, zeros, zeros, dt, return_sequence=True
        )
        position_list, velocity_list = list(positions), list(velocities)
        y, z = position_list[-1], velocity_list[-1]
        for _ in range(steps - seen):
            prediction = self.decode(y)
            step_drive = self._drive(prediction.unsqueeze(1))
            y, z = imex_sequence(self.network, step_drive, y, z, dt)
            position_list.append(y)
            velocity_list.append(z)
        return torch.stack(position_list), torch.stack(velocity_list)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "feedback": self.feedback}


class _FrameClock(nn.Module):
    """The network's vector field in frame time ``s = t/dt``: ``d/ds = dt · f``."""

    state_names = ("position", "velocity")

    def __init__(self, owner: OscillatorForecaster) -> None:
        super().__init__()
        self.network = owner.network
        self.step = owner.step
        self.fixed_dt = owner.core_spec.dt

    def forward(
        self, t: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        dt = self.step() if self.step is not None else self.fixed_dt
        velocity, acceleration = self.network(t, state)
        return dt * velocity, dt * acceleration


class LatentODEForecaster(OscillatorForecaster):
    """Infer ``(y₀, z₀)`` on the grid from the observed frames, integrate, decode every frame.

    Parameters
    ----------
    frame_shape, core, observed
        As `AutoregressiveForecaster`.
    hidden_size
        Hidden units of the GRU that reads the encoded observed frames (last to first, so
        it ends on frame 0, the initial time).
    method
        Any torchdiffeq method (``rk4`` default; ``dopri5`` adaptive).
    substeps
        Fixed steps per frame for fixed-step methods.
    adjoint
        Backpropagate with ``integrate(adjoint=True)``: the checkpointed pass, exact, with
        memory of about √N states instead of N steps (docs/gradients.md).
    rtol, atol
        Tolerances of adaptive methods.

    **shared
        ``features``, ``width``, ``decoder_output`` and ``seed``, as `AutoregressiveForecaster`.

    Notes
    -----
    ``forward(frames (B, T, C, R, R)) → (B, T−1, C, R, R)``: frame ``k`` is decoded from
    the position at frame time ``k`` (model time ``k·dt``).
    """

    family = "latent_ode"

    def __init__(
        self,
        frame_shape: Sequence[int],
        core: CoreSpec,
        *,
        observed: int,
        hidden_size: int = 64,
        method: str = "rk4",
        substeps: int = 1,
        adjoint: bool = False,
        rtol: float = 1e-4,
        atol: float = 1e-5,
        **shared: Any,
    ) -> None:
        # features, width, decoder_output, seed: as `OscillatorForecaster`
        super().__init__(frame_shape, core, observed=observed, **shared)
        if isinstance(substeps, bool) or not isinstance(substeps, int) or substeps < 1:
            raise OscsimInputError(f"substeps must be an integer >= 1, got {substeps!r}")
        from oscsim import check_method

        if method == "imex":
            raise OscsimInputError(
                "the latent-ODE model integrates with torchdiffeq; choose rk4, dopri5, … "
                "(imex is the autoregressive model's scheme: use nwm2d)"
            )
        check_method(method)
        self.method = method
        self.substeps = substeps
        self.adjoint = bool(adjoint)
        self.rtol, self.atol = float(rtol), float(atol)
        self.inference = nn.GRU(self.features, hidden_size, batch_first=True)
        self.initial = nn.Linear(hidden_size, 2 * self.cells)
        self.clock = _FrameClock(self)

    def initial_state(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(y₀, z₀)`` at frame 0 from the observed frames ``(B, S, C, R, R)``."""
        batch, steps = frames.shape[:2]
        features = self.encoder(frames.reshape(-1, *self.frame_shape)).reshape(batch, steps, -1)
        _, hidden = self.inference(torch.flip(features, (1,)))
        state = self.initial(hidden[-1]).reshape(batch, 2, *self.network.state_shape)
        return state[:, 0], state[:, 1]

    def latents(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from oscsim import integrate

        self._check_frames(frames)
        total = frames.shape[1]
        y0, z0 = self.initial_state(frames[:, : min(self.observed, total)])
        times = torch.arange(total, dtype=y0.dtype, device=y0.device)
        solution = integrate(
            self.clock,
            (y0, z0),
            times,
            method=self.method,
            dt=1.0 / self.substeps,
            adjoint=self.adjoint,
            rtol=self.rtol,
            atol=self.atol,
        )
        return solution.position[1:], solution.velocity[1:]

    def config(self) -> dict[str, Any]:
        return {
            **super().config(),
            "method": self.method,
            "substeps": self.substeps,
            "adjoint": self.adjoint,
        }


class LSTMForecaster(Forecaster):
    """The LSTM baseline: the same encoder and decoder around ``torch.nn.LSTM``.

    Parameters
    ----------
    frame_shape, observed, feedback, features, width, decoder_output
        As `AutoregressiveForecaster`.
    hidden_size
        LSTM units; the decoder reads the hidden state.
    """

    family = "lstm"

    def __init__(
        self,
        frame_shape: Sequence[int],
        *,
        observed: int,
        hidden_size: int = 64,
        feedback: str = "none",
        features: int = 32,
        width: int = 8,
        decoder_output: str = "sigmoid",
    ) -> None:
        super().__init__(frame_shape, observed)
        if feedback not in FEEDBACK_MODES:
            raise OscsimInputError(
                f"feedback must be one of {', '.join(FEEDBACK_MODES)}, got {feedback!r}"
            )
        self.feedback = feedback
        self.hidden_size = hidden_size
        self.encoder = ConvEncoder(self.frame_shape, features, width)
        self.lstm = nn.LSTM(features, hidden_size)
        self.decoder = ConvDecoder(hidden_size, self.frame_shape, features, width, decoder_output)

    def _encode(self, frames: torch.Tensor) -> torch.Tensor:
        batch, steps = frames.shape[:2]
        flat = frames.transpose(0, 1).reshape(-1, *self.frame_shape)
        return self.encoder(flat).reshape(steps, batch, -1)

    def latents(self, frames: torch.Tensor) -> torch.Tensor:
        """Hidden states behind predictions ``1 … T−1``, ``(T−1, B, hidden_size)``."""
        self._check_frames(frames)
        batch, total = frames.shape[:2]
        steps = total - 1
        seen = min(self.observed, steps)
        inputs = self._encode(frames[:, :seen])
        if self.feedback == "none" or seen == steps:
            if seen < steps:
                inputs = torch.cat([inputs, inputs.new_zeros((steps - seen, *inputs.shape[1:]))])
            hidden, _ = self.lstm(inputs)
            return hidden
        hidden, state = self.lstm(inputs)
        outputs = list(hidden)
        h = outputs[-1]
        for _ in range(steps - seen):
            prediction = self.decode(h)
            out, state = self.lstm(self._encode(prediction.unsqueeze(1)), state)
            h = out[-1]
            outputs.append(h)
        return torch.stack(outputs)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.decode_sequence(self.latents(frames))

    def config(self) -> dict[str, Any]:
        return {
            **super().config(),
            "observed": self.observed,
            "hidden_size": self.hidden_size,
            "feedback": self.feedback,
        }


_SHARED_OPTIONS = {"features", "width", "latent_norm", "decoder_output"}
_CORE_OPTIONS = {
    "grid",
    "channels",
    "kernel_size",
    "activation",
    "trainable_gamma",
    "trainable_epsilon",
    "trainable_dt",
    "dt",
    "gamma",
    "epsilon",
}
#: Options (``--set``) each model family accepts.
FAMILY_OPTIONS = {
    "autoregressive": _SHARED_OPTIONS | _CORE_OPTIONS | {"feedback"},
    "latent_ode": _SHARED_OPTIONS
    | _CORE_OPTIONS
    | {"hidden_size", "method", "substeps", "adjoint", "rtol", "atol"},
    "lstm": _SHARED_OPTIONS | {"hidden_size", "feedback"},
}


def build_forecaster(
    name: str,
    frame_shape: Sequence[int],
    *,
    observed: int,
    dt: float = 0.125,
    gamma: float = 1.0,
    epsilon: float = 0.5,
    seed: int = 0,
    options: dict[str, Any] | None = None,
) -> Forecaster:
    """A model of `FORECAST_MODELS` for frames of ``frame_shape``.

    Defaults follow the paper's forecasting set-up: a 23×23 torus, 3×3 kernels, dt learned
    through a sigmoid from 0.125, γ = 1 and ε = 0.5 learned and kept non-negative.

    Parameters
    ----------
    name
        ``nwm2d``, ``cornn`` (autoregressive; local or global coupling), ``nwm2d_ode``,
        ``cornn_ode`` (latent ODE) or ``lstm``.
    frame_shape
        ``(C, R, R)``.
    observed
        Frames the model reads before forecasting.
    dt, gamma, epsilon
        Initial step and oscillator constants (from the task).
    seed
        Seeds the weights.
    options
        Overrides: ``grid``, ``channels``, ``kernel_size``, ``features``, ``width``,
        ``feedback``, ``hidden_size``, ``method``, ``substeps``, ``adjoint``,
        ``latent_norm`` (decode each latent frame normalised to zero mean and unit
        variance), ``decoder_output`` (``sigmoid`` or ``linear``), …

    Raises
    ------
    OscsimInputError
        For an unknown name or option.
    """
    check_known("forecasting model", name, FORECAST_MODELS)
    family = FORECAST_MODELS[name]["family"]
    options = dict(options or {})
    unknown = sorted(set(options) - FAMILY_OPTIONS[family])
    if unknown:
        raise OscsimInputError(
            f"unknown model option(s) {unknown} for {name}; allowed: "
            f"{', '.join(sorted(FAMILY_OPTIONS[family]))}"
        )
    torch.manual_seed(seed)
    latent_norm = bool(options.pop("latent_norm", False))
    shared: dict[str, Any] = {"decoder_output": str(options.pop("decoder_output", "sigmoid"))}
    shared.update({key: int(options.pop(key)) for key in list(options) if key in _SHARED_OPTIONS})
    model: Forecaster
    if family == "lstm":
        model = LSTMForecaster(
            frame_shape,
            observed=observed,
            hidden_size=int(options.pop("hidden_size", 64)),
            feedback=str(options.pop("feedback", "none")),
            **shared,
        )
        model.latent_norm = latent_norm
        return model
    core_settings: dict[str, Any] = {
        "grid": (23, 23),
        "coupling": FORECAST_MODELS[name]["coupling"],
        "dt": dt,
        "gamma": gamma,
        "epsilon": epsilon,
        "trainable_dt": True,
        "trainable_gamma": True,
        "trainable_epsilon": True,
    }
    core_settings.update({key: options.pop(key) for key in list(options) if key in _CORE_OPTIONS})
    if isinstance(core_settings["grid"], Sequence):
        core_settings["grid"] = tuple(int(g) for g in core_settings["grid"])
    core = CoreSpec(**core_settings)
    if family == "autoregressive":
        model = AutoregressiveForecaster(
            frame_shape,
            core,
            observed=observed,
            feedback=str(options.pop("feedback", "none")),
            seed=seed,
            **shared,
        )
    else:
        model = LatentODEForecaster(
            frame_shape,
            core,
            observed=observed,
            hidden_size=int(options.pop("hidden_size", 64)),
            method=str(options.pop("method", "rk4")),
            substeps=int(options.pop("substeps", 1)),
            adjoint=bool(options.pop("adjoint", False)),
            rtol=float(options.pop("rtol", 1e-4)),
            atol=float(options.pop("atol", 1e-5)),
            seed=seed,
            **shared,
        )
    model.latent_norm = latent_norm
    return model


@torch.no_grad()
def latent_dataset(
    model: OscillatorForecaster,
    frames: torch.Tensor,
    *,
    seed: int = 0,
    **attrs: Any,
) -> Any:
    """The latent position and velocity of ``model`` on ``frames`` as a trajectory dataset.

    Parameters
    ----------
    model
        An oscillator forecaster (autoregressive or latent ODE).
    frames
        ``(B, T, C, R, R)`` input sequences (only the observed frames are read).
    seed
        Recorded as the ``seed`` attribute (the seed of the model's weights).
    **attrs
        Further attributes (task, checkpoint, …).

    Returns
    -------
    xarray.Dataset
        Dims ``(sample, time, channel, y, x)`` (``x`` only on a ring); ``time`` is model
        time, ``k·dt`` for the state behind the prediction of frame ``k``, with the learned
        ``dt``.

    Raises
    ------
    OscsimInputError
        If ``model`` has no oscillator core.
    """
    from oscsim.io import trajectory_dataset

    if not isinstance(model, OscillatorForecaster):
        raise OscsimInputError(
            f"latent export needs an oscillator forecaster (nwm2d, cornn, nwm2d_ode, "
            f"cornn_ode), got {type(model).__name__}"
        )
    was_training = model.training
    model.eval()
    positions, velocities = model.latents(frames)
    model.train(was_training)
    dt = float(torch.as_tensor(model.dt).detach())
    steps = positions.shape[0]
    times = dt * np.arange(1, steps + 1, dtype=np.float64)
    network = model.network
    method = model.method if isinstance(model, LatentODEForecaster) else "imex"
    return trajectory_dataset(
        times,
        positions.double().cpu().numpy(),
        velocities.double().cpu().numpy(),
        config=json.loads(json.dumps(model.config())),
        method=method,
        dt=dt,
        gamma=network.gamma.detach().double().cpu().numpy(),
        epsilon=network.epsilon.detach().double().cpu().numpy(),
        coupling=network.coupling,
        seed=seed,
        source="latent trajectories of a trained forecaster",
        **attrs,
    )
