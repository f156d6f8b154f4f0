"""Validation of `imex_sequence` arguments: every check runs before any work is done."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from oscsim.errors import OscsimInputError

FUSED_COUPLINGS: tuple[str, ...] = ("local", "global", "none")
FUSED_ACTIVATIONS: tuple[str, ...] = ("tanh", "identity")
FLOAT_DTYPES: tuple[torch.dtype, ...] = (torch.float32, torch.float64)


@dataclass(frozen=True)
class SequenceSpec:
    """What the validated arguments describe."""

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
        return len(self.grid)

    @property
    def cells(self) -> int:
        return math.prod(self.grid)


def _shape(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


def check_arguments(
    drive: torch.Tensor,
    position0: torch.Tensor,
    velocity0: torch.Tensor,
    kernel_position: torch.Tensor | None,
    kernel_velocity: torch.Tensor | None,
    bias: torch.Tensor,
    gamma: torch.Tensor,
    epsilon: torch.Tensor,
    dt: torch.Tensor | float,
    coupling: str,
    activation: str,
) -> SequenceSpec:
    """Check shapes, dtypes, devices and option names; return the problem's dimensions.

    Raises
    ------
    OscsimInputError
        Naming the argument, what it is and what is allowed.
    """
    if coupling not in FUSED_COUPLINGS:
        extra = (
            " ('locally_connected' has no fused kernel: use oscsim.fused.imex_sequence_eager)"
            if coupling == "locally_connected"
            else ""
        )
        raise OscsimInputError(
            f"coupling must be one of {', '.join(FUSED_COUPLINGS)}; got {coupling!r}{extra}"
        )
    if activation not in FUSED_ACTIVATIONS:
        raise OscsimInputError(
            f"activation must be one of {', '.join(FUSED_ACTIVATIONS)}; got {activation!r}"
        )
    tensors: dict[str, torch.Tensor | None] = {
        "drive": drive,
        "position0": position0,
        "velocity0": velocity0,
        "bias": bias,
        "gamma": gamma,
        "epsilon": epsilon,
    }
    if coupling != "none":
        tensors["kernel_position"] = kernel_position
        tensors["kernel_velocity"] = kernel_velocity
    elif kernel_position is not None or kernel_velocity is not None:
        raise OscsimInputError(
            "kernel_position and kernel_velocity must be None for coupling 'none'"
        )
    checked: dict[str, torch.Tensor] = {}
    for name, value in tensors.items():
        if not isinstance(value, torch.Tensor):
            raise OscsimInputError(
                f"{name} must be a torch.Tensor, got {type(value).__name__}"
                + (f" (coupling {coupling!r} needs both kernels)" if value is None else "")
            )
        checked[name] = value
    if drive.dtype not in FLOAT_DTYPES:
        raise OscsimInputError(f"drive must be float32 or float64, got {drive.dtype}")
    for name, value in checked.items():
        if value.dtype != drive.dtype:
            raise OscsimInputError(
                f"{name} has dtype {value.dtype} but drive has {drive.dtype}; "
                "convert all tensors to one dtype (float32 or float64)"
            )
        if value.device != drive.device:
            raise OscsimInputError(
                f"{name} is on {value.device} but drive is on {drive.device}; "
                "move all tensors to one device"
            )
    if drive.ndim not in (4, 5):
        raise OscsimInputError(
            "drive must have shape (T, B, C, n) on a ring or (T, B, C, h, w) on a torus, "
            f"got {_shape(drive)}"
        )
    steps, batch, channels, *grid_list = drive.shape
    grid = tuple(grid_list)
    if steps < 1:
        raise OscsimInputError(f"drive must have at least one time step, got shape {_shape(drive)}")
    state_shape = (batch, channels, *grid)
    for name, value in (("position0", position0), ("velocity0", velocity0)):
        if _shape(value) != state_shape:
            raise OscsimInputError(
                f"{name} must have shape {state_shape} (B, C, *grid) to match drive "
                f"{_shape(drive)}, got {_shape(value)}"
            )
    for name, value in (("gamma", gamma), ("epsilon", epsilon)):
        if _shape(value) != (channels,):
            raise OscsimInputError(
                f"{name} must have shape ({channels},) (one value per channel), got {_shape(value)}"
            )
    if _shape(bias) not in ((channels,), (channels, *grid)):
        raise OscsimInputError(
            f"bias must have shape ({channels},) or {(channels, *grid)}, got {_shape(bias)}"
        )
    kernels = [(name, checked[name]) for name in ("kernel_position", "kernel_velocity")
               if name in checked]  # fmt: skip
    if coupling == "local":
        for name, kernel in kernels:
            k = kernel.shape[-1] if kernel.ndim else 0
            expected = (channels, channels) + (k,) * len(grid)
            if _shape(kernel) != expected or k % 2 == 0:
                raise OscsimInputError(
                    f"{name} for 'local' coupling with {channels} channel(s) on a "
                    f"{len(grid)}-D grid must have shape (C, C{', k' * len(grid)}) with odd k, "
                    f"got {_shape(kernel)}"
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
    elif coupling == "global":
        n = channels * math.prod(grid)
        for name, kernel in kernels:
            if _shape(kernel) != (n, n):
                raise OscsimInputError(
                    f"{name} for 'global' coupling must have shape (C·N, C·N) = {(n, n)}, "
                    f"got {_shape(kernel)}"
                )
    if isinstance(dt, torch.Tensor):
        if dt.ndim != 0 or not dt.is_floating_point():
            raise OscsimInputError(
                f"dt must be a float or a 0-dim floating tensor, got shape {_shape(dt)} "
                f"and dtype {dt.dtype}"
            )
        if dt.device != drive.device:
            raise OscsimInputError(f"dt is on {dt.device} but drive is on {drive.device}")
        dt_value = float(dt.detach())
    elif isinstance(dt, (int, float)) and not isinstance(dt, bool):
        dt_value = float(dt)
    else:
        raise OscsimInputError(f"dt must be a float or a 0-dim tensor, got {type(dt).__name__}")
    if not math.isfinite(dt_value) or dt_value <= 0:
        raise OscsimInputError(f"dt must be finite and > 0, got {dt_value}")
    return SequenceSpec(
        steps=steps,
        batch=batch,
        channels=channels,
        grid=grid,
        coupling=coupling,
        activation=activation,
        dtype=drive.dtype,
        device=drive.device,
    )
