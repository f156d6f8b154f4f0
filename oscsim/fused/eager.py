"""The readable reference of the `imex` recurrence: one step at a time, autograd throughout.

`imex_sequence_eager` has the signature of `oscsim.fused.imex_sequence` and defines what
the fused kernels must compute; the tests compare the two. It runs on any device and
supports everything the fused kernels do, at PyTorch's per-call cost for every step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from oscsim.fused._checks import check_arguments


def couple(state: torch.Tensor, kernel: torch.Tensor | None, coupling: str) -> torch.Tensor | None:
    """``kernel ⋆ state`` for one step; ``state`` is (B, C, *grid).

    ``local``: circular cross-correlation, ``conv1d``/``conv2d`` of the state padded
    circularly by ``k // 2``. ``global``: the state flattened in (channel, *grid) order
    times ``kernelᵀ``. ``none``: ``None`` (no coupling term).
    """
    if coupling == "none" or kernel is None:
        return None
    if coupling == "global":
        return (state.flatten(1) @ kernel.T).view_as(state)
    r = kernel.shape[-1] // 2
    if state.ndim == 3:
        return F.conv1d(F.pad(state, (r, r), mode="circular"), kernel)
    return F.conv2d(F.pad(state, (r, r, r, r), mode="circular"), kernel)


def imex_sequence_eager(
    drive: torch.Tensor,
    position0: torch.Tensor,
    velocity0: torch.Tensor,
    kernel_position: torch.Tensor | None,
    kernel_velocity: torch.Tensor | None,
    bias: torch.Tensor,
    gamma: torch.Tensor,
    epsilon: torch.Tensor,
    dt: torch.Tensor | float,
    *,
    coupling: str,
    activation: str = "tanh",
    return_sequence: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the `imex` scheme over a whole drive sequence, one PyTorch step per element.

    For n = 0..T−1::

        z[n+1] = z[n] + dt·(act(K_y⋆y[n] + K_z⋆z[n] + drive[n] + b) − γ·y[n] − ε·z[n])
        y[n+1] = y[n] + dt·z[n+1]

    Arguments, shapes and returns are those of `oscsim.fused.imex_sequence`.
    """
    spec = check_arguments(
        drive, position0, velocity0, kernel_position, kernel_velocity,
        bias, gamma, epsilon, dt, coupling, activation,
    )  # fmt: skip
    per_channel = (-1,) + (1,) * spec.ndim
    b = bias.view(per_channel) if bias.ndim == 1 else bias
    g = gamma.view(per_channel)
    e = epsilon.view(per_channel)
    act = torch.tanh if activation == "tanh" else (lambda a: a)
    y, z = position0, velocity0
    positions, velocities = [], []
    for n in range(spec.steps):
        pre = drive[n] + b
        for state, kernel in ((y, kernel_position), (z, kernel_velocity)):
            coupled = couple(state, kernel, coupling)
            if coupled is not None:
                pre = pre + coupled
        z = z + dt * (act(pre) - g * y - e * z)
        y = y + dt * z
        if return_sequence:
            positions.append(y)
            velocities.append(z)
    if return_sequence:
        return torch.stack(positions), torch.stack(velocities)
    return y, z
