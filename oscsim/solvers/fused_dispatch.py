"""Runs ``imex`` on an `OscillatorNetwork`: the fused kernel where it applies, else the loop."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from oscsim.errors import OscsimInputError
from oscsim.solvers.imex import imex_eager


def _fused_applies(network: Any, device: torch.device) -> bool:
    from oscsim.fused import fused_supports
    from oscsim.network import OscillatorNetwork

    return isinstance(network, OscillatorNetwork) and fused_supports(
        network.coupling, len(network.grid), device
    )


def run_imex(
    network: Any,
    drive: torch.Tensor | None,
    position0: torch.Tensor,
    velocity0: torch.Tensor,
    dt: torch.Tensor | float,
    *,
    n_steps: int | None = None,
    return_sequence: bool = False,
    fused: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``imex`` scheme over a whole sequence, as the recurrent models use it.

    Parameters
    ----------
    network
        An `OscillatorNetwork` (or any field with ``acceleration`` for the loop).
    drive
        ``(T, B, C, *grid)``: ``D(u[n])`` for each step, or ``None`` (then ``n_steps``).
    position0, velocity0
        ``(B, C, *grid)``.
    dt
        Step; a 0-dim tensor may require grad (a learned step).
    return_sequence
        Return the states after every step, ``(T, B, C, *grid)``, instead of the last.
    fused
        ``None``: the fused kernel where it applies; ``False``: the readable loop;
        ``True``: the fused kernel or an error.
    """
    steps = drive.shape[0] if drive is not None else n_steps
    if steps is None or steps < 1:
        raise OscsimInputError("run_imex needs a drive of T >= 1 steps, or n_steps >= 1")
    use_fused = fused is not False and _fused_applies(network, position0.device)
    if fused and not use_fused:
        raise OscsimInputError(
            "fused=True, but the fused imex kernel does not cover this field "
            "(it covers OscillatorNetwork with local, global or none coupling)"
        )
    if use_fused:
        from oscsim.fused import imex_sequence

        if drive is None:
            drive = position0.new_zeros((steps, *position0.shape))
        return imex_sequence(
            drive,
            position0,
            velocity0,
            None if network.position_coupling is None else network.position_coupling.weight,
            None if network.velocity_coupling is None else network.velocity_coupling.weight,
            network.bias,
            network.gamma,
            network.epsilon,
            dt,
            coupling=network.coupling,
            activation=network.activation,
            return_sequence=return_sequence,
        )
    save = range(1, steps + 1) if return_sequence else [steps]
    positions, velocities = imex_eager(
        network, position0, velocity0, dt, steps, list(save), drive=drive
    )
    if return_sequence:
        return positions, velocities
    return positions[-1], velocities[-1]


def fused_imex_network(
    field: Any,
    position0: torch.Tensor,
    velocity0: torch.Tensor,
    drive: torch.Tensor | None,
    dt: float,
    n_steps: int,
    save_steps: Sequence[int],
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """States at ``save_steps`` through the fused kernel, or ``None`` where it does not apply."""
    if n_steps == 0 or not _fused_applies(field, position0.device):
        return None
    positions, velocities = run_imex(
        field, drive, position0, velocity0, dt, n_steps=n_steps, return_sequence=True, fused=True
    )
    index = torch.as_tensor(list(save_steps), device=position0.device)
    positions = torch.cat([position0.unsqueeze(0), positions])[index]
    velocities = torch.cat([velocity0.unsqueeze(0), velocities])[index]
    return positions, velocities
