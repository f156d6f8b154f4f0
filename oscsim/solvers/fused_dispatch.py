"""Routes ``imex`` on an `OscillatorNetwork` to the fused kernel of `oscsim.fused`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


def fused_imex_network(
    field: Any,
    position0: torch.Tensor,
    velocity0: torch.Tensor,
    drive: torch.Tensor | None,
    dt: float,
    n_steps: int,
    save_steps: Sequence[int],
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Run ``imex`` through `oscsim.fused.imex_sequence`, or return ``None`` if it does not apply.

    It applies to an `OscillatorNetwork` whose coupling and grid the fused kernel covers
    (`oscsim.fused.fused_supports`); the states at ``save_steps`` are returned.
    """
    from oscsim.fused import fused_supports, imex_sequence
    from oscsim.network import OscillatorNetwork

    if not isinstance(field, OscillatorNetwork) or n_steps == 0:
        return None
    if not fused_supports(field.coupling, len(field.grid), position0.device):
        return None
    if drive is None:
        drive = position0.new_zeros((n_steps, *position0.shape))
    position_weight = None if field.position_coupling is None else field.position_coupling.weight
    velocity_weight = None if field.velocity_coupling is None else field.velocity_coupling.weight
    positions, velocities = imex_sequence(
        drive,
        position0,
        velocity0,
        position_weight,
        velocity_weight,
        field.bias,
        field.gamma,
        field.epsilon,
        dt,
        coupling=field.coupling,
        activation=field.activation,
        return_sequence=True,
    )
    index = torch.as_tensor(list(save_steps), device=position0.device)
    positions = torch.cat([position0.unsqueeze(0), positions])[index]
    velocities = torch.cat([velocity0.unsqueeze(0), velocities])[index]
    return positions, velocities
