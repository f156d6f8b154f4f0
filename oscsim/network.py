"""The oscillator network as a vector field ``f(t, (position, velocity))`` (docs/model.md).

    dy/dt = z
    dz/dt = act(K_y ⋆ y + K_z ⋆ z + D(u(t)) + b) − γ·y − ε·z

`oscsim.integrate` hands it to torchdiffeq (any method) or to the discrete ``imex``
scheme, which reads nothing of the network but the record `OscillatorNetwork.imex_field`
returns (its coefficients as explicit tensors).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from oscsim.coupling import build_coupling
from oscsim.errors import OscsimInputError
from oscsim.parameters import NetworkParameters
from oscsim.solvers.imex_field import ImexField, ImexFieldMixin


def _inverse_softplus(value: torch.Tensor) -> torch.Tensor:
    # softplus(x) = log(1 + e^x); its inverse is x = log(e^v − 1) = v + log(1 − e^−v).
    return value + torch.log(-torch.expm1(-value))


class NonNegative(nn.Module):
    """A per-channel value kept ≥ 0 by construction: fixed, or ``softplus`` of a free parameter.

    A trainable value of exactly 0 starts at 1e-6 (softplus never reaches 0).
    """

    fixed: torch.Tensor

    def __init__(self, value: torch.Tensor, trainable: bool) -> None:
        super().__init__()
        self.trainable = trainable
        if trainable:
            self.raw = nn.Parameter(_inverse_softplus(value.clamp_min(1e-6)))
        else:
            self.register_buffer("fixed", value.clone())

    def forward(self) -> torch.Tensor:
        if self.trainable:
            return F.softplus(self.raw)
        return self.fixed


class LinearDrive(nn.Module):
    """``D(u) = W u + c`` reshaped onto the grid: ``(B, features) → (B, C, *grid)``."""

    def __init__(self, input_size: int, state_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.state_shape = tuple(state_shape)
        self.linear = nn.Linear(input_size, math.prod(state_shape))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.linear(u).reshape(u.shape[0], *self.state_shape)


class OscillatorNetwork(nn.Module, ImexFieldMixin):
    """A grid of damped, driven, coupled nonlinear oscillators.

    Parameters
    ----------
    grid
        ``(n,)`` ring or ``(h, w)`` torus, periodic in every direction.
    channels
        Oscillators per cell ``C``.
    coupling
        ``"local"``, ``"global"``, ``"none"`` or ``"locally_connected"``.
    kernel_size
        Odd side of local kernels.
    gamma, epsilon
        Stiffness γ and damping ε, ≥ 0, a scalar or one per channel.
    bias
        ``b``: scalar, ``(C,)`` or ``(C, *grid)``.
    activation
        ``"tanh"`` or ``"identity"`` (linear network).
    trainable_gamma, trainable_epsilon, trainable_bias
        Whether those are learned (γ and ε through ``softplus``, so they stay ≥ 0).
    input_size
        If given, ``D`` is a learned linear map from ``input_size`` features onto the grid.
    drive
        Any module mapping ``u`` of shape ``(B, ...)`` to ``(B, C, *grid)``; overrides
        ``input_size``. With neither, ``u`` must already have shape ``(B, C, *grid)``.
    seed
        Seed for the kernels not given explicitly (see `NetworkParameters.random`).
    dtype
        Floating dtype of the parameters (default: torch's default dtype).
    kernel_position, kernel_velocity
        ``K_y`` and ``K_z``, shapes as in `oscsim.parameters`.

    Examples
    --------
    >>> net = OscillatorNetwork((8, 8), activation="identity")
    >>> y = torch.zeros(2, 1, 8, 8); z = torch.ones(2, 1, 8, 8)
    >>> dy, dz = net(0.0, (y, z))
    >>> bool(torch.equal(dy, z))
    True
    """

    state_names = ("position", "velocity")

    def __init__(
        self,
        grid: Sequence[int],
        channels: int = 1,
        coupling: str = "local",
        *,
        kernel_size: int = 3,
        gamma: float | Sequence[float] = 1.0,
        epsilon: float | Sequence[float] = 0.1,
        bias: float | np.ndarray = 0.0,
        activation: str = "tanh",
        trainable_gamma: bool = False,
        trainable_epsilon: bool = False,
        trainable_bias: bool = True,
        input_size: int | None = None,
        drive: nn.Module | None = None,
        seed: int = 0,
        kernel_position: np.ndarray | None = None,
        kernel_velocity: np.ndarray | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        params = NetworkParameters.random(
            tuple(grid),
            channels,
            coupling,
            kernel_size=kernel_size,
            gamma=np.asarray(gamma, dtype=np.float64),
            epsilon=np.asarray(epsilon, dtype=np.float64),
            bias=np.asarray(bias, dtype=np.float64),
            activation=activation,
            rng=seed,
            kernel_position=kernel_position,
            kernel_velocity=kernel_velocity,
        )
        self.grid = params.grid
        self.channels = params.channels
        self.coupling = params.coupling
        self.activation = params.activation
        # Built directly in the requested dtype: converting later (.double()) could not
        # restore digits already rounded away in float32.
        dtype = dtype if dtype is not None else torch.get_default_dtype()
        self.position_coupling = build_coupling(
            params.coupling, _tensor(params.kernel_position, dtype)
        )
        self.velocity_coupling = build_coupling(
            params.coupling, _tensor(params.kernel_velocity, dtype)
        )
        bias_tensor = torch.as_tensor(params.bias, dtype=dtype)
        if trainable_bias:
            self.bias = nn.Parameter(bias_tensor)
        else:
            self.register_buffer("bias", bias_tensor)
        self.gamma_term = NonNegative(torch.as_tensor(params.gamma, dtype=dtype), trainable_gamma)
        self.epsilon_term = NonNegative(
            torch.as_tensor(params.epsilon, dtype=dtype), trainable_epsilon
        )
        if drive is None and input_size is not None:
            drive = LinearDrive(input_size, params.state_shape)
        self.drive: nn.Module | None = drive

    @classmethod
    def from_parameters(cls, params: NetworkParameters, **options: object) -> OscillatorNetwork:
        """A network with exactly the numbers of ``params``; ``options`` as in the constructor."""
        return cls(
            params.grid,
            params.channels,
            params.coupling,
            kernel_size=params.kernel_size or 3,
            gamma=params.gamma.tolist(),
            epsilon=params.epsilon.tolist(),
            bias=params.bias,
            activation=params.activation,
            kernel_position=params.kernel_position,
            kernel_velocity=params.kernel_velocity,
            **options,  # type: ignore[arg-type]
        )

    def to_parameters(self) -> NetworkParameters:
        """Every number of the network as a float64 `NetworkParameters` (drive excluded)."""

        def weight(module: nn.Module | None) -> np.ndarray | None:
            if module is None:
                return None
            tensor = module.weight
            if not isinstance(tensor, torch.Tensor):
                raise TypeError(f"coupling {type(module).__name__} has no weight tensor")
            return tensor.detach().cpu().double().numpy().copy()

        return NetworkParameters(
            grid=self.grid,
            channels=self.channels,
            coupling=self.coupling,
            kernel_position=weight(self.position_coupling),
            kernel_velocity=weight(self.velocity_coupling),
            gamma=self.gamma.detach().cpu().double().numpy(),
            epsilon=self.epsilon.detach().cpu().double().numpy(),
            bias=self.bias.detach().cpu().double().numpy(),
            activation=self.activation,
        )

    @property
    def state_shape(self) -> tuple[int, ...]:
        """``(C, *grid)``: the shape of one sample's position or velocity."""
        return (self.channels, *self.grid)

    @property
    def gamma(self) -> torch.Tensor:
        """Stiffness γ, ``(C,)``, non-negative."""
        return self.gamma_term()

    @property
    def epsilon(self) -> torch.Tensor:
        """Damping ε, ``(C,)``, non-negative."""
        return self.epsilon_term()

    def _per_channel(self, value: torch.Tensor) -> torch.Tensor:
        return value.reshape((-1,) + (1,) * len(self.grid))

    def bias_on_grid(self) -> torch.Tensor:
        """The bias broadcastable against ``(B, C, *grid)``."""
        return self.bias if self.bias.dim() > 1 else self._per_channel(self.bias)

    def drive_term(self, u: torch.Tensor | None) -> torch.Tensor | None:
        """``D(u)`` on the grid, ``(B, C, *grid)``, or ``None`` without input."""
        if u is None:
            return None
        if self.drive is not None:
            return self.drive(u)
        if tuple(u.shape[1:]) != self.state_shape:
            raise OscsimInputError(
                f"input of shape {tuple(u.shape)} cannot drive a network of state shape "
                f"{self.state_shape} without a drive map: pass input_size= or drive= when "
                "building the network, or give inputs of shape (T, B, C, *grid)"
            )
        return u

    def imex_field(self) -> ImexField:
        """The network's coefficients as the ``imex`` solver takes them (`ImexField`):
        the current tensors (parameters, or γ and ε through ``softplus``), so gradients
        flow back to the network. `acceleration` (``dz/dt`` given the state and the drive
        on the grid) is that of this record."""

        def weight(module: nn.Module | None) -> torch.Tensor | None:
            return None if module is None else module.weight  # type: ignore[return-value]

        kernels = weight(self.position_coupling), weight(self.velocity_coupling)
        return ImexField(
            self.coupling, *kernels, self.bias, self.gamma, self.epsilon, self.activation
        )

    def forward(
        self,
        t: torch.Tensor | float,
        state: tuple[torch.Tensor, torch.Tensor],
        u: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The vector field: ``(dy/dt, dz/dt)`` for ``state = (y, z)``, input ``u = u(t)``."""
        position, velocity = state
        return velocity, self.acceleration(t, position, velocity, self.drive_term(u))


def _tensor(value: np.ndarray | None, dtype: torch.dtype) -> torch.Tensor | None:
    return None if value is None else torch.as_tensor(value, dtype=dtype)
