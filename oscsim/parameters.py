"""The parameters of an oscillator network as plain NumPy data.

`NetworkParameters` is the one record that describes a network independently of any
backend: the torch `OscillatorNetwork` is built from it and can be exported to it, and the
Numba reference solvers (`oscsim.reference`) read it without importing torch. That shared,
torch-free description is what makes a cross-backend comparison meaningful.

Shapes (``C`` channels, ``grid`` of ``d`` = 1 or 2 dimensions, ``N = prod(grid)``, odd ``k``):

==================== ====================================================================
coupling             ``kernel_position`` / ``kernel_velocity``
==================== ====================================================================
``local``            ``(C, C, k)`` on a ring, ``(C, C, k, k)`` on a torus
``global``           ``(C*N, C*N)``, acting on the state flattened in ``(channel, *grid)``
                     C order
``none``             ``None``
``locally_connected`` ``(C, C, *grid, k)`` / ``(C, C, h, w, k, k)``: a kernel per cell
==================== ====================================================================

The local coupling is circular cross-correlation, exactly ``torch.nn.functional.conv2d``
with circular padding ``k // 2``::

    (K ⋆ y)[o, i, j] = Σ_{c, a, b} K[o, c, a, b] · y[c, (i + a − k//2) mod h, (j + b − k//2) mod w]

``gamma`` and ``epsilon`` have shape ``(C,)``; ``bias`` has shape ``(C,)`` (one value per
channel) or ``(C, *grid)`` (one per cell).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from oscsim.errors import OscsimInputError, check_choice

COUPLINGS: tuple[str, ...] = ("local", "global", "none", "locally_connected")
"""Names of the couplings ``⋆`` (docs/model.md)."""
ACTIVATIONS: tuple[str, ...] = ("tanh", "identity")
"""Names of the activations ``act``."""

Coupling = Literal["local", "global", "none", "locally_connected"]
Activation = Literal["tanh", "identity"]


def _as_per_channel(name: str, value: float | np.ndarray, channels: int) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(channels, float(arr))
    if arr.shape != (channels,):
        raise OscsimInputError(
            f"{name} must be a scalar or have shape ({channels},) (one per channel), "
            f"got shape {arr.shape}"
        )
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise OscsimInputError(f"{name} must be finite and >= 0, got {arr.tolist()}")
    return arr


@dataclass(frozen=True, eq=False)
class NetworkParameters:
    """Every number that defines an oscillator network (docs/model.md), as float64 arrays.

    Parameters
    ----------
    grid
        ``(n,)`` for a ring or ``(h, w)`` for a torus.
    channels
        Oscillators per cell.
    coupling
        One of ``COUPLINGS``.
    kernel_position, kernel_velocity
        ``K_y`` and ``K_z``; shapes in the module docstring (``None`` for ``none``).
    gamma, epsilon
        Stiffness and damping, ``(C,)``, non-negative.
    bias
        ``(C,)`` or ``(C, *grid)``.
    activation
        ``"tanh"`` or ``"identity"``.

    Raises
    ------
    OscsimInputError
        If any shape, value or name is not allowed; the message names the field.
    """

    grid: tuple[int, ...]
    channels: int
    coupling: str
    kernel_position: np.ndarray | None
    kernel_velocity: np.ndarray | None
    gamma: np.ndarray
    epsilon: np.ndarray
    bias: np.ndarray
    activation: str = "tanh"

    def __post_init__(self) -> None:
        grid = tuple(int(g) for g in self.grid)
        if len(grid) not in (1, 2) or any(g < 1 for g in grid):
            raise OscsimInputError(
                f"grid must be [n] (ring) or [h, w] (torus) with positive sizes, got {list(grid)}"
            )
        object.__setattr__(self, "grid", grid)
        if int(self.channels) < 1:
            raise OscsimInputError(f"channels must be >= 1, got {self.channels}")
        object.__setattr__(self, "channels", int(self.channels))
        check_choice("coupling", self.coupling, COUPLINGS)
        check_choice("activation", self.activation, ACTIVATIONS)
        c = self.channels
        object.__setattr__(self, "gamma", _as_per_channel("gamma", self.gamma, c))
        object.__setattr__(self, "epsilon", _as_per_channel("epsilon", self.epsilon, c))
        bias = np.asarray(self.bias, dtype=np.float64)
        if bias.ndim == 0:
            bias = np.full(c, float(bias))
        if bias.shape not in ((c,), (c, *grid)):
            raise OscsimInputError(
                f"bias must be a scalar, shape ({c},) or shape {(c, *grid)}, got {bias.shape}"
            )
        object.__setattr__(self, "bias", bias)
        for name in ("kernel_position", "kernel_velocity"):
            kernel = getattr(self, name)
            if self.coupling == "none":
                if kernel is not None:
                    raise OscsimInputError(f"{name} must be None for coupling 'none'")
                continue
            if kernel is None:
                raise OscsimInputError(f"{name} is required for coupling {self.coupling!r}")
            kernel = np.ascontiguousarray(kernel, dtype=np.float64)
            expected = self._kernel_shape(kernel)
            if kernel.shape != expected:
                raise OscsimInputError(
                    f"{name} for coupling {self.coupling!r} on grid {list(grid)} with {c} "
                    f"channel(s) must have shape {expected}, got {kernel.shape}"
                )
            if not np.all(np.isfinite(kernel)):
                raise OscsimInputError(f"{name} contains NaN or inf")
            object.__setattr__(self, name, kernel)

    def _kernel_shape(self, kernel: np.ndarray) -> tuple[int, ...]:
        c, grid, d = self.channels, self.grid, len(self.grid)
        if self.coupling == "global":
            n = c * math.prod(grid)
            return (n, n)
        k = kernel.shape[-1] if kernel.ndim else 0
        if k % 2 == 0:
            raise OscsimInputError(f"kernel size must be odd, got {k}")
        if any(k > g for g in grid):
            raise OscsimInputError(f"grid {list(grid)} is smaller than the kernel size {k}")
        if self.coupling == "local":
            return (c, c) + (k,) * d
        return (c, c) + grid + (k,) * d  # locally_connected

    @property
    def ndim(self) -> int:
        """Number of spatial dimensions (1 ring, 2 torus)."""
        return len(self.grid)

    @property
    def kernel_size(self) -> int | None:
        """Side of the local kernel, or ``None`` for ``global`` and ``none``."""
        if self.coupling in ("local", "locally_connected") and self.kernel_position is not None:
            return int(self.kernel_position.shape[-1])
        return None

    @property
    def state_shape(self) -> tuple[int, ...]:
        """Shape of one sample's position (or velocity): ``(C, *grid)``."""
        return (self.channels, *self.grid)

    @property
    def bias_full(self) -> np.ndarray:
        """The bias broadcast to ``(C, *grid)``."""
        if self.bias.ndim == 1:
            return np.broadcast_to(
                self.bias.reshape((-1,) + (1,) * self.ndim), self.state_shape
            ).copy()
        return self.bias.copy()

    @classmethod
    def random(
        cls,
        grid: tuple[int, ...] | list[int],
        channels: int = 1,
        coupling: str = "local",
        *,
        kernel_size: int = 3,
        gamma: float | np.ndarray = 1.0,
        epsilon: float | np.ndarray = 0.1,
        bias: float | np.ndarray = 0.0,
        activation: str = "tanh",
        rng: np.random.Generator | int | None = 0,
        kernel_position: np.ndarray | None = None,
        kernel_velocity: np.ndarray | None = None,
    ) -> NetworkParameters:
        """Parameters with any kernel not given drawn like PyTorch's default layer init.

        Each weight is uniform on ``±1/sqrt(fan_in)`` where ``fan_in`` is the number of
        inputs one output sums over (``C·k^d`` locally, ``C·N`` globally).
        """
        generator = np.random.default_rng(rng)
        grid = tuple(int(g) for g in grid)
        c, d, n = int(channels), len(grid), math.prod(grid)
        check_choice("coupling", coupling, COUPLINGS)
        if coupling == "none":
            shape: tuple[int, ...] | None = None
            fan_in = 1
        elif coupling == "global":
            shape, fan_in = (c * n, c * n), c * n
        elif coupling == "local":
            shape, fan_in = (c, c) + (kernel_size,) * d, c * kernel_size**d
        else:  # locally_connected
            shape, fan_in = (c, c) + grid + (kernel_size,) * d, c * kernel_size**d
        bound = 1.0 / math.sqrt(fan_in)

        def draw(given: np.ndarray | None) -> np.ndarray | None:
            if given is not None:
                return np.asarray(given, dtype=np.float64)
            if shape is None:
                return None
            return generator.uniform(-bound, bound, size=shape)

        return cls(
            grid=grid,
            channels=c,
            coupling=coupling,
            kernel_position=draw(kernel_position),
            kernel_velocity=draw(kernel_velocity),
            gamma=gamma,  # type: ignore[arg-type]
            epsilon=epsilon,  # type: ignore[arg-type]
            bias=bias,  # type: ignore[arg-type]
            activation=activation,
        )
