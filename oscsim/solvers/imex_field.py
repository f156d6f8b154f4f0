"""The argument record of the ``imex`` solver and the checks of a drive sequence against it.

`ImexField` holds what the ``imex`` recurrence needs of a network — coupling, kernels,
bias, stiffness, damping, activation — explicitly, so that the solver and the fused kernels
read no network's attributes: `oscsim.OscillatorNetwork.imex_field` builds one.
`check_sequence` validates a field, a drive sequence, an initial state and a step
together, before any work is done.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass

import torch

from oscsim.coupling import couple
from oscsim.errors import OscsimInputError, check_choice

#: Couplings an `ImexField` describes (the fused kernels cover all but ``locally_connected``).
IMEX_COUPLINGS: tuple[str, ...] = ("local", "global", "none", "locally_connected")
IMEX_ACTIVATIONS: tuple[str, ...] = ("tanh", "identity")
FLOAT_DTYPES: tuple[torch.dtype, ...] = (torch.float32, torch.float64)
#: The tensors of an `ImexField`, in the order the fused operators receive them.
COEFFICIENTS: tuple[str, ...] = ("kernel_position", "kernel_velocity", "bias", "gamma", "epsilon")


class ImexFieldMixin(abc.ABC):
    """A field whose ``acceleration`` is that of the `ImexField` its ``imex_field()`` returns.

    `ImexField` and `oscsim.OscillatorNetwork` both derive from it, so that the equation
    is written once.
    """

    @abc.abstractmethod
    def imex_field(self) -> ImexField:
        """The coefficients, as an `ImexField`."""

    def acceleration(
        self,
        t: torch.Tensor | float,
        position: torch.Tensor,
        velocity: torch.Tensor,
        drive: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``dz/dt`` for a state ``(B, C, *grid)`` and a drive already on the grid.

        The readable definition the fused kernels are checked against (``t`` is unused:
        the field is autonomous but for the drive).
        """
        field = self.imex_field()
        per_channel = (-1,) + (1,) * (position.dim() - 2)
        pre = field.bias if field.bias.dim() > 1 else field.bias.reshape(per_channel)
        coupled_y = couple(field.coupling, position, field.kernel_position)
        coupled_z = couple(field.coupling, velocity, field.kernel_velocity)
        if coupled_y is not None and coupled_z is not None:
            pre = pre + coupled_y + coupled_z
        if drive is not None:
            pre = pre + drive
        active = torch.tanh(pre) if field.activation == "tanh" else pre
        return (
            active
            - field.gamma.reshape(per_channel) * position
            - field.epsilon.reshape(per_channel) * velocity
        )


@dataclass(frozen=True)
class ImexField(ImexFieldMixin):
    r"""The second-order field the ``imex`` scheme steps, as explicit tensors.

    .. math::

        \ddot y = \mathrm{act}(K_y \star y + K_z \star z + d + b) - \gamma y - \varepsilon z

    Parameters
    ----------
    coupling
        ``"local"``, ``"global"``, ``"none"`` or ``"locally_connected"``.
    kernel_position, kernel_velocity
        ``K_y``, ``K_z``: (C, C, k) on a ring or (C, C, k, k) on a torus for ``local``
        (circular cross-correlation, `oscsim.coupling.circular_correlate`); (C·N, C·N) for
        ``global`` (acting on the state flattened in (channel, *grid) order); (C, C, *grid,
        k…) for ``locally_connected``; ``None`` for ``none``.
    bias
        ``b``: (C,) or (C, *grid).
    gamma, epsilon
        (C,): stiffness and damping.
    activation
        ``"tanh"`` or ``"identity"``.

    Examples
    --------
    >>> import torch
    >>> field = ImexField("none", None, None, torch.zeros(1), torch.ones(1), torch.zeros(1))
    >>> y = torch.ones(2, 1, 4); z = torch.zeros(2, 1, 4)
    >>> field.acceleration(0.0, y, z).tolist()[0][0]
    [-1.0, -1.0, -1.0, -1.0]
    """

    coupling: str
    kernel_position: torch.Tensor | None
    kernel_velocity: torch.Tensor | None
    bias: torch.Tensor
    gamma: torch.Tensor
    epsilon: torch.Tensor
    activation: str = "tanh"

    def coefficients(self) -> tuple[torch.Tensor | None, ...]:
        """The tensors in the order of `COEFFICIENTS`."""
        return tuple(getattr(self, name) for name in COEFFICIENTS)

    def imex_field(self) -> ImexField:
        """The field itself."""
        return self


@dataclass(frozen=True)
class SequenceSpec:
    """What a validated drive sequence describes: its sizes, coupling, dtype and device."""

    steps: int
    batch: int
    channels: int
    grid: tuple[int, ...]
    coupling: str
    activation: str
    dtype: torch.dtype
    device: torch.device

    @property
    def ndim(self) -> int:
        """1 (ring) or 2 (torus)."""
        return len(self.grid)

    @property
    def cells(self) -> int:
        """Cells of the grid ``N``."""
        return math.prod(self.grid)


def _shape(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


def _check_names(field: ImexField) -> None:
    check_choice("coupling", field.coupling, IMEX_COUPLINGS)
    check_choice("activation", field.activation, IMEX_ACTIVATIONS)


def _check_tensors(
    field: ImexField, reference: str, tensors: dict[str, torch.Tensor | None]
) -> dict[str, torch.Tensor]:
    """Every tensor present, floating, of ``tensors[reference]``'s dtype and device."""
    if field.coupling != "none":
        tensors["kernel_position"] = field.kernel_position
        tensors["kernel_velocity"] = field.kernel_velocity
    elif field.kernel_position is not None or field.kernel_velocity is not None:
        raise OscsimInputError(
            "kernel_position and kernel_velocity must be None for coupling 'none'"
        )
    checked: dict[str, torch.Tensor] = {}
    for name, value in tensors.items():
        if not isinstance(value, torch.Tensor):
            raise OscsimInputError(
                f"{name} must be a torch.Tensor, got {type(value).__name__}"
                + (f" (coupling {field.coupling!r} needs both kernels)" if value is None else "")
            )
        checked[name] = value
    first = checked[reference]
    if first.dtype not in FLOAT_DTYPES:
        raise OscsimInputError(f"{reference} must be float32 or float64, got {first.dtype}")
    for name, value in checked.items():
        if value.dtype != first.dtype:
            raise OscsimInputError(
                f"{name} has dtype {value.dtype} but {reference} has {first.dtype}; "
                "convert all tensors to one dtype (float32 or float64)"
            )
        if value.device != first.device:
            raise OscsimInputError(
                f"{name} is on {value.device} but {reference} is on {first.device}; "
                "move all tensors to one device"
            )
    return checked


def _check_kernels(field: ImexField, checked: dict[str, torch.Tensor], channels: int,
                   grid: tuple[int, ...]) -> None:  # fmt: skip
    kernels = [(name, checked[name]) for name in ("kernel_position", "kernel_velocity")
               if name in checked]  # fmt: skip
    if field.coupling in ("local", "locally_connected"):
        cells = grid if field.coupling == "locally_connected" else ()
        for name, kernel in kernels:
            k = kernel.shape[-1] if kernel.ndim else 0
            expected = (channels, channels, *cells) + (k,) * len(grid)
            if _shape(kernel) != expected or k % 2 == 0:
                where = "".join(f", {g}" for g in cells)
                raise OscsimInputError(
                    f"{name} for {field.coupling!r} coupling with {channels} channel(s) on a "
                    f"{len(grid)}-D grid must have shape (C, C{where}{', k' * len(grid)}) with "
                    f"odd k, got {_shape(kernel)}"
                )
            if any(k > g for g in grid):
                raise OscsimInputError(
                    f"{name}: grid {list(grid)} is smaller than the kernel size {k}"
                )
        if kernels[0][1].shape != kernels[1][1].shape:
            raise OscsimInputError(
                "kernel_position and kernel_velocity must have the same shape, got "
                f"{_shape(kernels[0][1])} and {_shape(kernels[1][1])}"
            )
    elif field.coupling == "global":
        n = channels * math.prod(grid)
        for name, kernel in kernels:
            if _shape(kernel) != (n, n):
                raise OscsimInputError(
                    f"{name} for 'global' coupling must have shape (C·N, C·N) = {(n, n)}, "
                    f"got {_shape(kernel)}"
                )


def _check_dt(dt: torch.Tensor | float, device: torch.device, reference: str) -> None:
    if isinstance(dt, torch.Tensor):
        if dt.ndim != 0 or not dt.is_floating_point():
            raise OscsimInputError(
                f"dt must be a float or a 0-dim floating tensor, got shape {_shape(dt)} "
                f"and dtype {dt.dtype}"
            )
        if dt.device != device:
            raise OscsimInputError(f"dt is on {dt.device} but {reference} is on {device}")
        dt_value = float(dt.detach())
    elif isinstance(dt, (int, float)) and not isinstance(dt, bool):
        dt_value = float(dt)
    else:
        raise OscsimInputError(f"dt must be a float or a 0-dim tensor, got {type(dt).__name__}")
    if not math.isfinite(dt_value) or dt_value <= 0:
        raise OscsimInputError(f"dt must be finite and > 0, got {dt_value}")


def check_sequence(
    field: ImexField,
    drive: torch.Tensor | None,
    position0: torch.Tensor,
    velocity0: torch.Tensor,
    dt: torch.Tensor | float,
    steps: int | None = None,
) -> SequenceSpec:
    """Check a field, a drive sequence, an initial state and a step together.

    Parameters
    ----------
    field
        The coefficients.
    drive
        (T, B, C, *grid), or ``None`` (no drive; then ``steps`` gives T).
    position0, velocity0
        (B, C, *grid).
    dt
        A float or a 0-dim floating tensor, > 0.
    steps
        T where there is no drive.

    Returns
    -------
    SequenceSpec
        The sizes, coupling, dtype and device.

    Raises
    ------
    OscsimInputError
        Naming the argument, what it is and what is allowed.
    """
    if not isinstance(field, ImexField):
        raise OscsimInputError(f"field must be an ImexField, got {type(field).__name__}")
    _check_names(field)
    reference = "drive" if drive is not None else "position0"
    tensors: dict[str, torch.Tensor | None] = {
        **({"drive": drive} if drive is not None else {}),
        "position0": position0,
        "velocity0": velocity0,
        "bias": field.bias,
        "gamma": field.gamma,
        "epsilon": field.epsilon,
    }
    checked = _check_tensors(field, reference, tensors)
    if drive is not None:
        if drive.ndim not in (4, 5):
            raise OscsimInputError(
                "drive must have shape (T, B, C, n) on a ring or (T, B, C, h, w) on a torus, "
                f"got {_shape(drive)}"
            )
        steps, *state_list = drive.shape
        state = tuple(state_list)
    else:
        if position0.ndim not in (3, 4):
            raise OscsimInputError(
                "position0 must have shape (B, C, n) on a ring or (B, C, h, w) on a torus, "
                f"got {_shape(position0)}"
            )
        state = _shape(position0)
    if steps is None or steps < 1:
        shape = f"shape {_shape(drive)}" if drive is not None else f"steps = {steps}"
        raise OscsimInputError(f"drive must have at least one time step, got {shape}")
    batch, channels, *grid_list = state
    grid = tuple(grid_list)
    for name, value in (("position0", position0), ("velocity0", velocity0)):
        if _shape(value) != state:
            raise OscsimInputError(
                f"{name} must have shape {state} (B, C, *grid) to match {reference} "
                f"{_shape(checked[reference])}, got {_shape(value)}"
            )
    for name, value in (("gamma", field.gamma), ("epsilon", field.epsilon)):
        if _shape(value) != (channels,):
            raise OscsimInputError(
                f"{name} must have shape ({channels},) (one value per channel), got {_shape(value)}"
            )
    if _shape(field.bias) not in ((channels,), (channels, *grid)):
        raise OscsimInputError(
            f"bias must have shape ({channels},) or {(channels, *grid)}, got {_shape(field.bias)}"
        )
    _check_kernels(field, checked, channels, grid)
    first = checked[reference]
    _check_dt(dt, first.device, reference)
    return SequenceSpec(
        steps=steps,
        batch=batch,
        channels=channels,
        grid=grid,
        coupling=field.coupling,
        activation=field.activation,
        dtype=first.dtype,
        device=first.device,
    )
