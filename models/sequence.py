"""Sequence models: input map → oscillator core (``imex``) → linear readout of the final position.

These are the recurrent models of the Neural Wave Machines paper (NWM-2D, NWM-1D) and
its baselines (coRNN with global coupling, uncoupled oscillators): one `imex` step per
input element, the whole sequence in one `oscsim.imex_sequence` call (the fused kernel).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from oscsim.models._choices import check_known
from torch import nn

from oscsim import OscillatorNetwork, OscsimInputError, imex_sequence, map_inputs

#: Ways to initialise the network bias ``b`` (`CoreSpec.initial_bias`).
BIAS_INITS = ("zero", "uniform")
#: Random stream of the bias draw, apart from the kernels' stream of the same seed.
_BIAS_STREAM = 7


@dataclass(frozen=True)
class CoreSpec:
    """The oscillator core of a sequence model.

    ``grid`` and ``coupling`` pick the family: NWM-2D is a ``(16, 16)`` torus with ``local``
    3×3 kernels, NWM-1D a ring, coRNN ``global`` on 256 cells, and ``none`` the uncoupled
    baseline. ``dt``, ``gamma`` and ``epsilon`` are the coRNN hyperparameters.
    """

    grid: tuple[int, ...] = (16, 16)
    channels: int = 1
    coupling: str = "local"
    kernel_size: int = 3
    dt: float = 0.042
    gamma: float = 2.7
    epsilon: float = 4.7
    trainable_gamma: bool = False
    trainable_epsilon: bool = False
    trainable_dt: bool = False
    activation: str = "tanh"
    bias_init: str = "zero"
    extra: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.bias_init not in BIAS_INITS:
            raise OscsimInputError(
                f"bias_init={self.bias_init!r} is not known; choose one of {', '.join(BIAS_INITS)}"
            )

    def initial_bias(self, *, seed: int, fan_in: int) -> float | np.ndarray:
        """The bias ``b`` the network starts from.

        ``zero``: one zero per channel. ``uniform``: one value per cell, uniform on
        ``±1/sqrt(fan_in)``, as PyTorch draws the bias of the reference code's input layer
        ``nn.Linear(F, cells)``; the differing offsets break the symmetry between cells.
        """
        if self.bias_init == "zero":
            return 0.0
        bound = 1.0 / math.sqrt(fan_in)
        rng = np.random.default_rng([seed, _BIAS_STREAM])
        return rng.uniform(-bound, bound, size=(self.channels, *self.grid))

    def build_network(self, *, seed: int = 0, fan_in: int = 1) -> OscillatorNetwork:
        """The oscillator network of this core (bias by ``bias_init``, kernels from ``seed``).

        ``fan_in`` is the number of input features, which scales the ``uniform`` bias.
        """
        same = ("kernel_size", "gamma", "epsilon", "activation", "trainable_gamma",
                "trainable_epsilon")  # fmt: skip
        return OscillatorNetwork(
            self.grid, self.channels, self.coupling,
            bias=self.initial_bias(seed=seed, fan_in=fan_in), seed=seed,
            **{name: getattr(self, name) for name in same},
        )  # fmt: skip

    def to_dict(self) -> dict[str, object]:
        """JSON-able form (stored in checkpoints)."""
        data = asdict(self)
        data["grid"] = list(self.grid)
        return data


class LearnedStep(nn.Module):
    """A step ``dt`` in (0, max) learned through a sigmoid, as the forecasting models do."""

    def __init__(self, initial: float, maximum: float = 1.0) -> None:
        super().__init__()
        if not 0 < initial < maximum:
            raise OscsimInputError(f"dt must lie in (0, {maximum}), got {initial}")
        self.maximum = maximum
        ratio = initial / maximum
        self.raw = nn.Parameter(torch.tensor(math.log(ratio / (1 - ratio))))

    def forward(self) -> torch.Tensor:
        return self.maximum * torch.sigmoid(self.raw)


class OscillatorSequenceModel(nn.Module):
    """Classify or regress a sequence with a coupled-oscillator core.

    Parameters
    ----------
    input_size
        Features per time step ``F``.
    output_size
        Classes (logits) or regression targets.
    core
        The oscillator core (`CoreSpec`).
    seed
        Seed of the core's kernels.

    Notes
    -----
    Input ``(B, T, F)`` (batch first); output ``(B, output_size)`` from the position after
    the last step. The input map has no bias: the network's bias ``b`` plays that part.
    """

    def __init__(self, input_size: int, output_size: int, core: CoreSpec, *, seed: int = 0):
        super().__init__()
        self.core_spec = core
        self.network = core.build_network(seed=seed, fan_in=input_size)
        cells = core.channels * math.prod(core.grid)
        self.input_map = nn.Linear(input_size, cells, bias=False)
        self.readout = nn.Linear(cells, output_size)
        self.step: LearnedStep | None = LearnedStep(core.dt) if core.trainable_dt else None

    @property
    def dt(self) -> torch.Tensor | float:
        """The step: learned (a tensor) or fixed."""
        return self.step() if self.step is not None else self.core_spec.dt

    def drive(self, x: torch.Tensor) -> torch.Tensor:
        """``D(u[n])`` for every step at once: ``(B, T, F) → (T, B, C, *grid)``."""
        batch, steps, _ = x.shape
        mapped = map_inputs(x.transpose(0, 1), self.input_map.weight)
        return mapped.reshape(steps, batch, *self.network.state_shape)

    def hidden_states(
        self, x: torch.Tensor, *, return_sequence: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Positions and velocities after the last step (or after every step)."""
        if x.dim() != 3:
            raise OscsimInputError(f"inputs must be (batch, time, features), got {tuple(x.shape)}")
        drive = self.drive(x)
        zeros = drive.new_zeros(drive.shape[1:])
        return imex_sequence(
            self.network, drive, zeros, zeros, self.dt, return_sequence=return_sequence
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        position, _ = self.hidden_states(x)
        return self.readout(position.flatten(1))


class LSTMSequenceModel(nn.Module):
    """The LSTM baseline (PyTorch's own), read out from the last hidden state."""

    def __init__(self, input_size: int, output_size: int, hidden_size: int = 64):
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden_size, batch_first=True)
        self.readout = nn.Linear(hidden_size, output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, (hidden, _) = self.lstm(x)
        return self.readout(hidden[-1])


SEQUENCE_MODELS: dict[str, dict[str, object]] = {
    "nwm2d": {"grid": (16, 16), "coupling": "local", "kernel_size": 3},
    "nwm1d": {"grid": (256,), "coupling": "local", "kernel_size": 3},
    "cornn": {"grid": (256,), "coupling": "global"},
    "uncoupled": {"grid": (16, 16), "coupling": "none"},
    "lstm": {},
}
"""Model families of the ``oscsim`` preset and their cores (dt, γ, ε come from the task)."""
PRESETS = ("reference", "oscsim")
"""Ways to build a model: ``reference`` (the published models, `oscsim.models.reference`)
or ``oscsim`` (the earlier variant: one shared bias in the network, no input bias)."""
REFERENCE_OPTIONS = {
    "nwm2d": ("hidden", "kernel_size", "kernel_bias", "dt", "gamma", "epsilon"),
    "nwm1d": ("hidden", "kernel_size", "kernel_bias", "rings", "dt", "gamma", "epsilon"),
    "uncoupled": ("hidden", "dt", "gamma", "epsilon"),
    "cornn": ("hidden", "dt", "gamma", "epsilon"),
}
"""Options of the reference preset, per model."""
_FLOAT_OPTIONS = ("dt", "gamma", "epsilon")


def build_sequence_model(
    name: str,
    input_size: int,
    output_size: int,
    *,
    dt: float,
    gamma: float,
    epsilon: float,
    seed: int = 0,
    options: dict[str, object] | None = None,
    hidden: int = 256,
) -> nn.Module:
    """A sequence model by name, with the task's ``dt``, ``gamma``, ``epsilon``.

    ``options["preset"]`` picks ``"reference"`` (default; the published models, see
    `oscsim.models.reference`; options ``hidden``, ``rings``, ``kernel_size``, ``dt``, ``gamma``,
    ``epsilon``) or ``"oscsim"``
    (the earlier variant of `SEQUENCE_MODELS`, whose options override `CoreSpec` fields:
    ``grid``, ``channels``, ``kernel_size``, ``bias_init``, …). ``lstm`` takes
    ``hidden_size``. ``hidden`` is the task's default number of oscillators.

    Raises
    ------
    OscsimInputError
        Unknown model, preset or option.
    """
    check_known("model", name, SEQUENCE_MODELS)
    options = dict(options or {})
    preset = str(options.pop("preset", "reference"))
    if preset not in PRESETS:
        raise OscsimInputError(
            f"preset={preset!r} is not known; choose one of {', '.join(PRESETS)}"
        )
    torch.manual_seed(seed)
    if name == "lstm":
        size = int(options.pop("hidden_size", 64))  # type: ignore[call-overload]
        if options:
            raise OscsimInputError(f"unknown lstm options {sorted(options)}; allowed: hidden_size")
        return LSTMSequenceModel(input_size, output_size, size)
    if preset == "reference":
        from oscsim.models.reference import ReferenceSequenceModel

        allowed_reference = REFERENCE_OPTIONS[name]
        unknown_reference = sorted(set(options) - set(allowed_reference))
        if unknown_reference:
            raise OscsimInputError(
                f"unknown option(s) {unknown_reference} for the reference {name}; allowed: "
                f"{', '.join(allowed_reference)} (or preset=oscsim for the earlier variant)"
            )
        coefficients = {"dt": dt, "gamma": gamma, "epsilon": epsilon}
        coefficients.update({k: float(options.pop(k)) for k in _FLOAT_OPTIONS if k in options})  # type: ignore[arg-type]
        kernel_bias = bool(options.pop("kernel_bias", True))
        sizes = {key: int(value) for key, value in options.items()}  # type: ignore[call-overload]
        sizes.setdefault("hidden", hidden)
        return ReferenceSequenceModel(
            name, input_size, output_size, kernel_bias=kernel_bias, **coefficients, **sizes
        )
    settings: dict[str, object] = {
        **SEQUENCE_MODELS[name],
        "dt": dt,
        "gamma": gamma,
        "epsilon": epsilon,
    }
    allowed = set(CoreSpec.__dataclass_fields__) - {"extra"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise OscsimInputError(
            f"unknown model option(s) {unknown} for {name}; allowed: {', '.join(sorted(allowed))}"
        )
    settings.update(options)
    grid = settings.get("grid")
    if isinstance(grid, Sequence):
        settings["grid"] = tuple(int(g) for g in grid)
    core = CoreSpec(**settings)  # type: ignore[arg-type]
    return OscillatorSequenceModel(input_size, output_size, core, seed=seed)


class EmbeddedSequenceModel(nn.Module):
    """A sequence model reading token ids through a trainable embedding: ``(B, T) → (B, out)``.

    Parameters
    ----------
    vocabulary, dim, padding_index
        Size of the vocabulary, width of the embedding, the padding token's id.
    model
        The sequence model on the embedded tokens ``(B, T, dim)``.
    """

    def __init__(self, vocabulary: int, dim: int, padding_index: int, model: nn.Module) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocabulary, dim, padding_idx=padding_index)
        self.model = model

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Outputs of the inner model on the embedded tokens."""
        if tokens.dim() != 2 or tokens.is_floating_point():
            raise OscsimInputError(
                f"inputs must be token ids (batch, time), got {tokens.dtype} {tuple(tokens.shape)}"
            )
        return self.model(self.embedding(tokens))


def count_parameters(model: nn.Module) -> int:
    """Number of trained parameters (every tensor the optimiser updates)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_weights(model: nn.Module) -> int:
    """Trained parameters without the biases: the count the published tables give."""
    return sum(
        p.numel()
        for name, p in model.named_parameters()
        if p.requires_grad and name.rsplit(".", 1)[-1] != "bias"
    )
