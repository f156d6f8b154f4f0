"""The Neural Wave Machines forecaster of the Hamiltonian Dynamics Suite ("ICAR").

An initial-condition autoregressive model (configuration ``ic_ar_cornn_sweep`` of the
published code): every frame is encoded into a field ``u`` on the oscillator grid; a GRU
reads the first ``observed`` (31) encoded frames from last to first and its final hidden
state is the initial position and velocity; the oscillator core then reads one encoded
frame per step,

.. math::

    v_{n+1} = v_n + Δt\\,\\big(\\tanh(K⋆x_n + W⋆v_n + V⋆u_n + b) − γ x_n − α v_n\\big),
    \\qquad x_{n+1} = x_n + Δt\\, v_{n+1},

and the decoder renders frame ``n + 1`` from ``(x_{n+1}, v_{n+1})``.

Cores (`ICAR_CORES`), all behind the same encoder, GRU and decoder:

- ``nwm2d``: ``K``, ``W``, ``V`` circular 3×3 convolutions on an ``H × W`` torus (23×23);
- ``nwm1d``: circular 1×3 convolutions along each of ``H`` independent rings of ``W``
  cells (23 rings of 23), one kernel shared by all rings;
- ``cornn``: ``K``, ``W``, ``V`` dense ``N × N`` matrices (``N = H·W``, the globally
  coupled coRNN of 529 units).

The kernels are bias-free; convolution kernels start at ``1/9`` plus truncated normal noise
of standard deviation 0.1 (cut at two standard deviations), dense matrices at truncated
normal noise of standard deviation ``1/√N``; the per-cell bias ``b`` starts at zero;
``γ = relu(γ̃)``, ``α = relu(α̃)`` from ``γ̃ = 1``, ``α̃ = 0.5``; ``Δt = sigmoid(Δ̃)`` from
``Δ̃ = −1.95`` (Δt ≈ 0.125). The baseline `ICARLSTMForecaster` puts a deep LSTM (5 layers,
swish between them, zero initial state) between the same encoder and decoder.

Training is teacher-forced one-step prediction (`ICARForecaster.teacher_forced`): the
whole window is encoded in one batched call (on a CPU in cache-sized chunks), ``V⋆u`` of
every frame is one batched convolution (``u`` is known under teacher forcing), the core
runs through the fused ``imex`` kernel (`oscsim.imex_sequence`) and the decoder
renders every step in one batched call. `ICARForecaster.teacher_forced_loop` computes
the same loss frame by frame (the reference it is tested and benchmarked against). At
test time the model is teacher-forced over the first ``observed`` frames and then runs
closed loop: decode, re-encode, step (`ICARForecaster.forecast`). ``forward`` is the
first in training mode and the second in evaluation mode, as the published training and
test code.

Layer widths come from an `ICARConfig`; `ICAR_PRESETS` holds ``paper`` (the published
sizes) and ``cpu`` (small enough to train on a laptop).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from oscsim.models._choices import check_known
from torch import nn

from oscsim import ImexField, OscsimInputError, imex_sequence

#: Oscillator cores of the ICAR model.
ICAR_CORES = ("nwm2d", "nwm1d", "cornn")

#: Model names of ``oscsim train SYSTEM --model NAME`` → core (``lstm``: the LSTM baseline).
ICAR_MODELS: dict[str, str] = {
    "icar_nwm2d": "nwm2d",
    "icar_nwm1d": "nwm1d",
    "icar_cornn": "cornn",
    "icar_lstm": "lstm",
}

#: Initial raw values of the learned constants (published configuration).
INITIAL_GAMMA = 1.0
INITIAL_ALPHA = 0.5
INITIAL_RAW_DT = -1.95
#: Spread of the truncated normal noise on the coupling kernels.
KERNEL_NOISE = 0.1


@dataclass(frozen=True)
class ICARConfig:
    """Sizes of an ICAR model.

    Attributes
    ----------
    grid
        ``(H, W)`` of the oscillator grid (``N = H·W`` cells; one field per cell).
    width
        Channels of every encoder and decoder convolution.
    block_depth
        Convolutions per encoder/decoder block (3 blocks each).
    observed
        Frames the GRU reads (from last to first) to set the initial state, and frames
        read from the data before the closed loop at test time.
    map_channels
        Channels of the decoder's 4×4 input map (the published code uses ``N // 2``);
        ``0`` means ``N // 2``.
    constant_channels
        Learned constant channels added to the decoder's input map.
    lstm_hidden, lstm_layers
        Width of the LSTM baseline's hidden layers and its depth (the last layer has
        ``2·N`` units so that the decoder is the oscillator models' one).
    """

    grid: tuple[int, int] = (23, 23)
    width: int = 64
    block_depth: int = 2
    observed: int = 31
    map_channels: int = 0
    constant_channels: int = 2
    lstm_hidden: int = 250
    lstm_layers: int = 5

    def __post_init__(self) -> None:
        grid = tuple(self.grid)
        if len(grid) != 2 or any(isinstance(g, bool) or int(g) != g or g < 3 for g in grid):
            raise OscsimInputError(f"grid must be two integers >= 3 (H, W), got {self.grid!r}")
        object.__setattr__(self, "grid", (int(grid[0]), int(grid[1])))
        for name in ("width", "block_depth", "observed", "lstm_hidden", "lstm_layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise OscsimInputError(f"{name} must be an integer >= 1, got {value!r}")
        for name in ("map_channels", "constant_channels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise OscsimInputError(f"{name} must be an integer >= 0, got {value!r}")

    @property
    def cells(self) -> int:
        """``N = H·W``."""
        return self.grid[0] * self.grid[1]

    @property
    def decoder_map_channels(self) -> int:
        """Channels of the decoder's input map."""
        return self.map_channels or max(1, self.cells // 2)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able fields."""
        data = asdict(self)
        data["grid"] = list(self.grid)
        return data


#: ``paper``: the published sizes (about 14.8M parameters with the NWM-2D core);
#: ``cpu``: a 12×12 grid, 16-channel convolutions, one per block (about 1.1M), for CPU training.
ICAR_PRESETS: dict[str, ICARConfig] = {
    "paper": ICARConfig(),
    "cpu": ICARConfig(grid=(12, 12), width=16, block_depth=1, lstm_hidden=64),
}


def icar_config(preset: str = "paper", **overrides: Any) -> ICARConfig:
    """An `ICARConfig` from a preset of `ICAR_PRESETS` with fields replaced.

    Raises
    ------
    OscsimInputError
        For an unknown preset or field.
    """
    check_known("ICAR preset", preset, ICAR_PRESETS)
    fields = set(ICARConfig.__dataclass_fields__)
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise OscsimInputError(
            f"unknown ICAR option(s) {unknown}; allowed: {', '.join(sorted(fields))}"
        )
    if "grid" in overrides:
        overrides["grid"] = tuple(overrides["grid"])
    return replace(ICAR_PRESETS[preset], **overrides)


def _truncated_normal_(tensor: torch.Tensor, std: float, mean: float = 0.0) -> torch.Tensor:
    """Normal noise cut at two standard deviations (Haiku's truncated normal)."""
    return nn.init.trunc_normal_(tensor, mean, std, mean - 2 * std, mean + 2 * std)


def _init_dense_layers(module: nn.Module) -> None:
    """Haiku's default initialisation for every convolution and linear layer of ``module``.

    Linear: truncated normal of standard deviation ``1/√fan_in``; convolution: variance
    scaling, the same with the standard deviation divided by 0.8796 (the spread of a unit
    normal cut at ±2), so that the weights have variance ``1/fan_in``; biases zero.
    """
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d)):
            fan_in = layer.weight[0].numel()
            std = 1.0 / math.sqrt(fan_in)
            if isinstance(layer, nn.Conv2d):
                std /= 0.87962566103423978
            _truncated_normal_(layer.weight.data, std)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


def _channels_last(module: nn.Module) -> None:
    """Store every convolution weight of ``module`` in channels-last layout."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            layer.weight.data = layer.weight.data.contiguous(memory_format=torch.channels_last)


def _check_frame_shape(frame_shape: Sequence[int]) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in frame_shape)
    if len(shape) != 3 or shape[1] != shape[2] or shape[1] % 8 or shape[1] < 8 or shape[0] < 1:
        raise OscsimInputError(
            f"frame_shape must be (channels, R, R) with R a multiple of 8, got {tuple(frame_shape)}"
        )
    return shape[0], shape[1], shape[2]


class ICAREncoder(nn.Module):
    """Frames to fields on the grid: three conv blocks (stride 2 first), a conv, a linear map.

    Block ``i`` is ``block_depth`` 3×3 convolutions of ``width`` channels with leaky ReLU,
    the first of stride 2 (so ``R → R/8``); the last block ends with a 3×3 convolution to
    ``N`` channels (no activation), whose ``N × R/8 × R/8`` map a linear layer projects to
    the ``N`` cells.

    Notes
    -----
    Input ``(M, C, R, R)``, output ``(M, N)``.
    """

    def __init__(self, frame_shape: Sequence[int], cells: int, width: int, depth: int) -> None:
        super().__init__()
        channels, side, _ = _check_frame_shape(frame_shape)
        layers: list[nn.Module] = []
        in_channels = channels
        for _block in range(3):
            for j in range(depth):
                layers.append(
                    nn.Conv2d(in_channels, width, 3, stride=2 if j == 0 else 1, padding=1)
                )
                layers.append(nn.LeakyReLU(0.01))
                in_channels = width
        layers.append(nn.Conv2d(width, cells, 3, padding=1))
        self.convs = nn.Sequential(*layers)
        self.project = nn.Linear(cells * (side // 8) ** 2, cells)
        _init_dense_layers(self)
        # Channels-last convolution weights make oneDNN run the whole stack without layout
        # conversions: a training step of the cpu preset in about half the time.
        _channels_last(self.convs)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.project(self.convs(frames).flatten(1))


class ICARDecoder(nn.Module):
    """``(x, v)`` to a frame: linear map to 4×4, constant channels, three ×2 upsamplings.

    The ``2·N`` values are mapped linearly to a ``map_channels × R/8 × R/8`` map; learned
    constant channels (starting at 1) are stacked on it; three blocks each upsample by 2
    (nearest neighbour) and apply ``block_depth`` 3×3 convolutions of ``width`` channels
    with leaky ReLU; a last 3×3 convolution gives the frame's channels, then a sigmoid.

    Notes
    -----
    Input ``(M, 2·N)``, output ``(M, C, R, R)`` in (0, 1).
    """

    def __init__(
        self,
        frame_shape: Sequence[int],
        latent_size: int,
        *,
        map_channels: int,
        constant_channels: int,
        width: int,
        depth: int,
    ) -> None:
        super().__init__()
        channels, side, _ = _check_frame_shape(frame_shape)
        self.base = side // 8
        self.map_channels = map_channels
        self.project = nn.Linear(latent_size, map_channels * self.base**2)
        self.constant = nn.Parameter(torch.ones(constant_channels, self.base, self.base))
        layers: list[nn.Module] = []
        in_channels = map_channels + constant_channels
        for _block in range(3):
            layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
            for _ in range(depth):
                layers.append(nn.Conv2d(in_channels, width, 3, padding=1))
                layers.append(nn.LeakyReLU(0.01))
                in_channels = width
        layers.append(nn.Conv2d(width, channels, 3, padding=1))
        self.convs = nn.Sequential(*layers)
        _init_dense_layers(self)
        _channels_last(self.convs)  # as the encoder's

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        count = latent.shape[0]
        grid = self.project(latent).reshape(count, self.map_channels, self.base, self.base)
        constant = self.constant.unsqueeze(0).expand(count, -1, -1, -1)
        return torch.sigmoid(self.convs(torch.cat([constant, grid], dim=1)))


class OscillatorCore(nn.Module):
    """The coRNN step of the ICAR model on an ``H × W`` grid (module docstring).

    Parameters
    ----------
    kind
        ``nwm2d``, ``nwm1d`` or ``cornn`` (`ICAR_CORES`).
    grid
        ``(H, W)``; for ``nwm1d`` the ``H`` rows are independent rings of ``W`` cells.

    Notes
    -----
    States and drives are ``(B, 1, H, W)``; inputs ``u`` are ``(M, N)`` (one value per
    cell, flattened row by row).
    """

    def __init__(self, kind: str, grid: tuple[int, int]) -> None:
        super().__init__()
        if kind not in ICAR_CORES:
            raise OscsimInputError(f"core must be one of {', '.join(ICAR_CORES)}, got {kind!r}")
        self.kind = kind
        self.grid = grid
        cells = grid[0] * grid[1]
        if kind == "cornn":
            shape: tuple[int, ...] = (cells, cells)
        elif kind == "nwm2d":
            shape = (1, 1, 3, 3)
        else:
            shape = (1, 1, 1, 3)
        self.position_kernel = nn.Parameter(torch.empty(shape))
        self.velocity_kernel = nn.Parameter(torch.empty(shape))
        self.input_kernel = nn.Parameter(torch.empty(shape))
        for kernel in (self.position_kernel, self.velocity_kernel, self.input_kernel):
            if kind == "cornn":
                _truncated_normal_(kernel.data, 1.0 / math.sqrt(cells))
            else:
                _truncated_normal_(kernel.data, KERNEL_NOISE, mean=1.0 / 9.0)
        self.bias = nn.Parameter(torch.zeros(1, *grid))
        self.raw_gamma = nn.Parameter(torch.tensor(INITIAL_GAMMA))
        self.raw_alpha = nn.Parameter(torch.tensor(INITIAL_ALPHA))
        self.raw_dt = nn.Parameter(torch.tensor(INITIAL_RAW_DT))

    @property
    def coupling(self) -> str:
        """The fused kernel's coupling: ``global`` for coRNN, ``local`` otherwise."""
        return "global" if self.kind == "cornn" else "local"

    def constants(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(γ, α, Δt)``: ``relu``, ``relu``, ``sigmoid`` of the raw parameters (0-dim)."""
        return F.relu(self.raw_gamma), F.relu(self.raw_alpha), torch.sigmoid(self.raw_dt)

    def _as_square(self, kernel: torch.Tensor) -> torch.Tensor:
        """A 1×3 ring kernel as the 3×3 torus kernel with zero top and bottom rows."""
        if self.kind == "nwm1d":
            return F.pad(kernel, (0, 0, 1, 1))
        return kernel

    def _local(self, field: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
        """Circular cross-correlation of ``(M, 1, H, W)`` with a 3×3 or 1×3 kernel."""
        pad = (1, 1, 1, 1) if self.kind == "nwm2d" else (1, 1, 0, 0)
        return F.conv2d(F.pad(field, pad, mode="circular"), kernel)

    def couple(self, field: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
        """``K⋆field`` for ``(M, 1, H, W)`` fields (dense product for coRNN)."""
        if self.kind == "cornn":
            return (field.flatten(1) @ kernel.t()).reshape(field.shape)
        return self._local(field, kernel)

    def drive(self, inputs: torch.Tensor) -> torch.Tensor:
        """``V⋆u`` for inputs ``(M, N)`` in one batched call, ``(M, 1, H, W)``."""
        return self.couple(inputs.reshape(-1, 1, *self.grid), self.input_kernel)

    def step(
        self, position: torch.Tensor, velocity: torch.Tensor, drive: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One step written out (the readable definition), ``drive = V⋆u``."""
        gamma, alpha, dt = self.constants()
        pre = (
            self.couple(position, self.position_kernel)
            + self.couple(velocity, self.velocity_kernel)
            + drive
            + self.bias
        )
        velocity = velocity + dt * (torch.tanh(pre) - gamma * position - alpha * velocity)
        return position + dt * velocity, velocity

    def run(
        self, drive: torch.Tensor, position: torch.Tensor, velocity: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Every step of a drive sequence ``(T, B, 1, H, W)`` through the fused kernel.

        Returns the positions and velocities after steps ``1 … T``, ``(T, B, 1, H, W)``.
        """
        gamma, alpha, dt = self.constants()
        field = ImexField(
            self.coupling,
            self._as_square(self.position_kernel),
            self._as_square(self.velocity_kernel),
            self.bias,
            gamma.reshape(1),
            alpha.reshape(1),
            activation="tanh",
        )
        return imex_sequence(field, drive, position, velocity, dt, return_sequence=True)


class _ICARBase(nn.Module, abc.ABC):
    """Encoder, decoder and the teacher-forced/closed-loop logic shared by both models."""

    core_name: str = ""
    #: Rows per encoder/decoder call on a CPU (``None``: all at once); see ``_batched``.
    cpu_frames_per_call: int | None = 64

    def __init__(self, config: ICARConfig, frame_shape: Sequence[int]) -> None:
        super().__init__()
        self.config = config
        self.frame_shape = _check_frame_shape(frame_shape)
        self.observed = config.observed
        cells = config.cells
        self.encoder = ICAREncoder(self.frame_shape, cells, config.width, config.block_depth)
        self.decoder = ICARDecoder(
            self.frame_shape,
            2 * cells,
            map_channels=config.decoder_map_channels,
            constant_channels=config.constant_channels,
            width=config.width,
            depth=config.block_depth,
        )

    def _check_frames(self, frames: torch.Tensor, minimum: int) -> None:
        if frames.dim() != 5 or tuple(frames.shape[2:]) != self.frame_shape:
            raise OscsimInputError(
                f"frames must have shape (batch, time, {', '.join(map(str, self.frame_shape))})"
                f", got {tuple(frames.shape)}"
            )
        if frames.shape[1] < minimum:
            raise OscsimInputError(
                f"frames need at least {minimum} time steps here, got {frames.shape[1]}"
            )

    def _batched(self, module: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        """``module`` over the rows of ``inputs``: one call on a GPU, cache-sized on a CPU.

        On a CPU the activations of hundreds of frames at once do not stay in cache: calls
        of `cpu_frames_per_call` rows made a paper-preset training step about 1.3× faster
        than one call on the development machine. The values are the same.
        """
        chunk = self.cpu_frames_per_call
        if inputs.device.type != "cpu" or chunk is None or inputs.shape[0] <= chunk:
            return module(inputs)
        return torch.cat([module(part) for part in torch.split(inputs, chunk)])

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """``(B, T, C, R, R)`` frames → ``(B, T, N)`` fields, in one batched call."""
        batch, steps = frames.shape[:2]
        flat = frames.reshape(batch * steps, *self.frame_shape)
        return self._batched(self.encoder, flat).reshape(batch, steps, -1)

    def render(self, latents: torch.Tensor) -> torch.Tensor:
        """``(B, S, L)`` decoder inputs → ``(B, S, C, R, R)`` frames, in one batched call."""
        batch, steps = latents.shape[:2]
        images = self._batched(self.decoder, latents.reshape(batch * steps, -1))
        return images.reshape(batch, steps, *self.frame_shape)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Teacher-forced predictions in training mode, the closed-loop forecast otherwise.

        Both map ``(B, T, C, R, R)`` to predictions of frames ``1 … T−1``.
        """
        if self.training:
            return self.teacher_forced(frames)
        return self.forecast(frames)

    @abc.abstractmethod
    def teacher_forced(self, frames: torch.Tensor) -> torch.Tensor:
        """Predictions of frames ``1 … T−1``, each from the true frames before it."""

    @abc.abstractmethod
    def forecast(self, frames: torch.Tensor, observed: int | None = None) -> torch.Tensor:
        """Teacher-forced over ``observed`` frames, then closed loop to frame ``T−1``."""

    def describe(self) -> dict[str, Any]:
        """JSON-able description (stored with results)."""
        return {
            "core": self.core_name,
            "frame_shape": list(self.frame_shape),
            **self.config.to_dict(),
        }


class ICARForecaster(_ICARBase):
    """The ICAR model with an oscillator core (module docstring).

    Parameters
    ----------
    core
        ``nwm2d``, ``nwm1d`` or ``cornn``.
    config
        Sizes (`ICAR_PRESETS`).
    frame_shape
        ``(C, R, R)`` (``(3, 32, 32)`` for the suite).

    Notes
    -----
    ``teacher_forced`` and ``forecast`` map ``(B, T, C, R, R)`` to predictions of frames
    ``1 … T−1`` ``(B, T−1, C, R, R)``.
    """

    def __init__(
        self, core: str, config: ICARConfig, frame_shape: Sequence[int] = (3, 32, 32)
    ) -> None:
        super().__init__(config, frame_shape)
        self.core_name = core
        self.core = OscillatorCore(core, config.grid)
        cells = config.cells
        self.initial = nn.GRU(cells, 2 * cells, batch_first=True)

    def initial_state(self, encoded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x₀, v₀)`` ``(B, 1, H, W)`` from the GRU over the first ``observed`` fields.

        The GRU reads ``encoded[:, observed−1], …, encoded[:, 0]`` from a zero state; the
        first ``N`` units of its last hidden state are ``x₀``, the others ``v₀``.
        """
        seen = encoded[:, : self.observed]
        _, hidden = self.initial(torch.flip(seen, (1,)))
        state = hidden[-1].reshape(encoded.shape[0], 2, 1, *self.config.grid)
        return state[:, 0], state[:, 1]

    @staticmethod
    def _latent(position: torch.Tensor, velocity: torch.Tensor) -> torch.Tensor:
        """``(..., 1, H, W)`` position and velocity → ``(..., 2·N)`` decoder input."""
        return torch.cat([position.flatten(-3), velocity.flatten(-3)], dim=-1)

    def latents(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced positions and velocities after reading frames ``0 … T−2``.

        Returns ``(T−1, B, 1, H, W)`` each: the state behind the prediction of frames
        ``1 … T−1``. Needs ``T ≥ observed + 1``.
        """
        self._check_frames(frames, self.observed + 1)
        batch, total = frames.shape[:2]
        encoded = self.encode(frames[:, : total - 1])
        position, velocity = self.initial_state(encoded)
        drive = self.core.drive(encoded.transpose(0, 1).reshape(-1, self.config.cells))
        drive = drive.reshape(total - 1, batch, 1, *self.config.grid)
        return self.core.run(drive, position, velocity)

    def teacher_forced(self, frames: torch.Tensor) -> torch.Tensor:
        """Predictions of frames ``1 … T−1`` from the true frames before each (training).

        One batched encoder call, one batched input convolution, the fused core, one
        batched decoder call.
        """
        positions, velocities = self.latents(frames)
        return self.render(self._latent(positions, velocities).transpose(0, 1))

    def teacher_forced_loop(self, frames: torch.Tensor) -> torch.Tensor:
        """`teacher_forced` computed frame by frame (the reference for tests and benchmarks).

        Each frame is encoded, stepped with `OscillatorCore.step` and decoded on its own.
        """
        self._check_frames(frames, self.observed + 1)
        total = frames.shape[1]
        encoded = [self.encoder(frames[:, t]) for t in range(total - 1)]
        position, velocity = self.initial_state(torch.stack(encoded[: self.observed], dim=1))
        predictions = []
        for t in range(total - 1):
            drive = self.core.drive(encoded[t])
            position, velocity = self.core.step(position, velocity, drive)
            predictions.append(self.decoder(self._latent(position, velocity)))
        return torch.stack(predictions, dim=1)

    def forecast(self, frames: torch.Tensor, observed: int | None = None) -> torch.Tensor:
        """Teacher-forced over the first ``observed`` frames, then closed loop.

        Frames ``0 … observed−1`` are read (and predict frames ``1 … observed``); from then
        on the model's own last prediction is encoded and drives the next step. Only the
        first ``observed`` frames of ``frames`` are read; ``T`` sets the length.
        """
        return self.forecast_states(frames, observed)[0]

    def forecast_states(
        self, frames: torch.Tensor, observed: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`forecast` with the latent states behind it (for wave figures and movies).

        Returns
        -------
        predictions, positions, velocities
            ``(B, T−1, C, R, R)`` and ``(T−1, B, 1, H, W)`` twice: the state after reading
            frame (or prediction) ``k`` is behind the prediction of frame ``k + 1``.
        """
        observed = self.observed if observed is None else observed
        if observed < self.observed:
            raise OscsimInputError(
                f"observed must be >= {self.observed} (the frames the GRU reads), got {observed}"
            )
        self._check_frames(frames, observed + 1)
        batch, total = frames.shape[:2]
        window = frames[:, :observed]
        encoded = self.encode(window)
        position, velocity = self.initial_state(encoded)
        drive = self.core.drive(encoded.transpose(0, 1).reshape(-1, self.config.cells))
        positions, velocities = self.core.run(
            drive.reshape(observed, batch, 1, *self.config.grid), position, velocity
        )
        outputs = [self.render(self._latent(positions, velocities).transpose(0, 1))]
        position_list, velocity_list = [positions], [velocities]
        position, velocity = positions[-1], velocities[-1]
        last = outputs[0][:, -1]
        for _ in range(total - 1 - observed):
            drive = self.core.drive(self.encoder(last))
            position, velocity = self.core.step(position, velocity, drive)
            last = self.decoder(self._latent(position, velocity))
            outputs.append(last.unsqueeze(1))
            position_list.append(position.unsqueeze(0))
            velocity_list.append(velocity.unsqueeze(0))
        return torch.cat(outputs, dim=1), torch.cat(position_list), torch.cat(velocity_list)


class ICARLSTMForecaster(_ICARBase):
    """The deep autoregressive LSTM baseline between the ICAR encoder and decoder.

    ``lstm_layers`` LSTMs in a stack (``lstm_hidden`` units, the last ``2·N`` so that the
    decoder is the oscillator models' one), swish between them, zero initial state; the
    top layer's output is decoded. Training and test as `ICARForecaster`.
    """

    core_name = "lstm"

    def __init__(self, config: ICARConfig, frame_shape: Sequence[int] = (3, 32, 32)) -> None:
        super().__init__(config, frame_shape)
        sizes = [config.lstm_hidden] * (config.lstm_layers - 1) + [2 * config.cells]
        inputs = [config.cells, *sizes[:-1]]
        self.layers = nn.ModuleList(nn.LSTM(i, h) for i, h in zip(inputs, sizes, strict=True))

    def _run(
        self, sequence: torch.Tensor, states: list[Any] | None
    ) -> tuple[torch.Tensor, list[Any]]:
        """``(S, B, N)`` inputs through the stack → ``(S, B, 2·N)`` and the new states."""
        new_states = []
        for index, layer in enumerate(self.layers):
            sequence, state = layer(sequence, None if states is None else states[index])
            new_states.append(state)
            if index < len(self.layers) - 1:
                sequence = F.silu(sequence)
        return sequence, new_states

    def teacher_forced(self, frames: torch.Tensor) -> torch.Tensor:
        self._check_frames(frames, 2)
        encoded = self.encode(frames[:, :-1])
        outputs, _ = self._run(encoded.transpose(0, 1), None)
        return self.render(outputs.transpose(0, 1))

    def forecast(self, frames: torch.Tensor, observed: int | None = None) -> torch.Tensor:
        observed = self.observed if observed is None else observed
        if observed < 1:
            raise OscsimInputError(f"observed must be >= 1, got {observed}")
        self._check_frames(frames, observed + 1)
        total = frames.shape[1]
        encoded = self.encode(frames[:, :observed])
        hidden, states = self._run(encoded.transpose(0, 1), None)
        outputs = [self.render(hidden.transpose(0, 1))]
        last = outputs[0][:, -1]
        for _ in range(total - 1 - observed):
            hidden, states = self._run(self.encoder(last).unsqueeze(0), states)
            last = self.decoder(hidden[0])
            outputs.append(last.unsqueeze(1))
        return torch.cat(outputs, dim=1)


def build_icar(
    name: str,
    *,
    preset: str = "paper",
    frame_shape: Sequence[int] = (3, 32, 32),
    seed: int = 0,
    **overrides: Any,
) -> ICARForecaster | ICARLSTMForecaster:
    """An ICAR model by name (`ICAR_MODELS`), sizes from a preset with overrides.

    Parameters
    ----------
    name
        ``icar_nwm2d``, ``icar_nwm1d``, ``icar_cornn`` or ``icar_lstm``.
    preset
        ``paper`` or ``cpu`` (`ICAR_PRESETS`).
    frame_shape
        ``(C, R, R)``.
    seed
        Seeds the initial weights.
    **overrides
        Fields of `ICARConfig`.

    Raises
    ------
    OscsimInputError
        For an unknown name, preset or option.
    """
    check_known("ICAR model", name, ICAR_MODELS)
    config = icar_config(preset, **overrides)
    torch.manual_seed(seed)
    core = ICAR_MODELS[name]
    if core == "lstm":
        return ICARLSTMForecaster(config, frame_shape)
    return ICARForecaster(core, config, frame_shape)
