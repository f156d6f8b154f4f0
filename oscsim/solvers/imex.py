"""The coRNN implicit–explicit scheme, written out step by step (the readable reference).

    z[n+1] = z[n] + Δt·a(t_n, y[n], z[n], d[n])      (a = the field's acceleration)
    y[n+1] = y[n] + Δt·z[n+1]

First order in Δt (Rusch & Mishra, ICLR 2021, eq. 3). `oscsim.fused` runs the same
recurrence as one fused kernel; this loop stays as the definition it is checked against.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch
from tqdm.auto import tqdm


class SecondOrderField(Protocol):
    """A field ``y' = z, z' = a(t, y, z, drive)`` that ``imex`` can step."""

    def acceleration(
        self,
        t: torch.Tensor | float,
        position: torch.Tensor,
        velocity: torch.Tensor,
        drive: torch.Tensor | None = None,
    ) -> torch.Tensor: ...


def imex_eager(
    field: SecondOrderField,
    position0: torch.Tensor,
    velocity0: torch.Tensor,
    dt: torch.Tensor | float,
    n_steps: int,
    save_steps: Sequence[int],
    *,
    start_time: float = 0.0,
    drive: torch.Tensor | None = None,
    progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Take ``n_steps`` steps of size ``dt`` from ``start_time``.

    Parameters
    ----------
    field
        Provides ``acceleration(t, y, z, drive)``.
    position0, velocity0
        ``(B, ...)`` initial state.
    dt
        Step Δt (a 0-dim tensor may require grad).
    n_steps
        Number of steps ``N``.
    save_steps
        Increasing step indices in ``[0, N]`` whose states are returned.
    start_time
        ``t_0``; step ``n`` starts at ``t_0 + n·Δt`` (passed to the field).
    drive
        ``(N, B, ...)``: the drive during step ``n`` (already on the grid), or ``None``.
    progress
        Show a progress bar.

    Returns
    -------
    positions, velocities
        ``(len(save_steps), B, ...)`` each.
    """
    wanted = set(int(s) for s in save_steps)
    position, velocity = position0, velocity0
    positions, velocities = [], []
    if 0 in wanted:
        positions.append(position)
        velocities.append(velocity)
    for n in tqdm(range(n_steps), disable=not progress, desc="imex", unit="step"):
        step_drive = None if drive is None else drive[n]
        acceleration = field.acceleration(start_time + n * dt, position, velocity, step_drive)
        velocity = velocity + dt * acceleration
        position = position + dt * velocity
        if n + 1 in wanted:
            positions.append(position)
            velocities.append(velocity)
    return torch.stack(positions), torch.stack(velocities)
