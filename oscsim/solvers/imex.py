"""The coRNN implicit–explicit scheme ``imex``: the readable loop and the one entry point.

    z[n+1] = z[n] + Δt·a(t_n, y[n], z[n], d[n])      (a = the field's acceleration)
    y[n+1] = y[n] + Δt·z[n+1]

First order in Δt (Rusch & Mishra, ICLR 2021, eq. 3). `imex_sequence` runs a whole drive
sequence: through the fused kernels of `oscsim.fused` where they apply, else through
`imex_loop`, which stays the readable definition the fused kernels are checked against.
`oscsim.integrate` with ``method="imex"`` calls `imex_sequence` too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import torch
from tqdm.auto import tqdm

from oscsim.errors import OscsimInputError
from oscsim.solvers.imex_field import ImexField, SequenceSpec, check_sequence


class SecondOrderField(Protocol):
    """A field ``y' = z, z' = a(t, y, z, drive)`` that ``imex`` can step: its
    ``acceleration(t, position, velocity, drive=None)`` returns ``z'`` like ``position``
    (as `ImexField.acceleration`)."""

    @property
    def acceleration(self) -> Callable[..., torch.Tensor]: ...


def imex_loop(
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
    """Take ``n_steps`` steps of size ``dt`` from ``start_time``, one PyTorch step each.

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


def _as_imex_field(field: Any) -> ImexField | None:
    """The field's coefficients as an `ImexField`, if it offers them (``imex_field()``)."""
    if isinstance(field, ImexField):
        return field
    describe = getattr(field, "imex_field", None)
    return describe() if callable(describe) else None


def _fused_applies(spec: SequenceSpec | None) -> bool:
    from oscsim.fused import fused_supports

    return spec is not None and fused_supports(spec.coupling, spec.ndim, spec.device)


def imex_sequence(
    field: ImexField | SecondOrderField,
    drive: torch.Tensor | None,
    position0: torch.Tensor,
    velocity0: torch.Tensor,
    dt: torch.Tensor | float,
    *,
    n_steps: int | None = None,
    return_sequence: bool = False,
    save_steps: Sequence[int] | None = None,
    fused: bool | None = None,
    backend: str | None = None,
    start_time: float = 0.0,
    progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the ``imex`` scheme over a whole drive sequence.

    For n = 0..T−1, with ``a`` the field's acceleration::

        z[n+1] = z[n] + dt·a(y[n], z[n], drive[n])
        y[n+1] = y[n] + dt·z[n+1]

    Through the fused kernels of `oscsim.fused` (one call for the whole sequence, with a
    hand-derived adjoint) where the field offers its coefficients (an `ImexField`, or an
    object with ``imex_field()`` such as `oscsim.OscillatorNetwork`) with ``local``,
    ``global`` or ``none`` coupling on CPU or CUDA; through `imex_loop` otherwise.
    Differentiable with respect to every tensor (first derivatives).

    Parameters
    ----------
    field
        An `ImexField`, an object with ``imex_field()``, or any field with
        ``acceleration(t, y, z, drive)`` (the loop only).
    drive
        ``(T, B, C, *grid)``: the input already mapped onto the grid for every step, or
        ``None`` (then ``n_steps``).
    position0, velocity0
        ``(B, C, *grid)``: the initial state ``y[0]``, ``z[0]``.
    dt
        The step, a float or a 0-dim tensor (which may require grad: a learned step).
    n_steps
        T where there is no drive.
    return_sequence
        Return every state after steps 1..T instead of only the last.
    save_steps
        Increasing step indices in ``[0, T]`` whose states are returned, stacked (overrides
        ``return_sequence``; `oscsim.integrate` uses it).
    fused
        ``None``: the fused kernels where they apply; ``False``: the readable loop;
        ``True``: the fused kernels or an error.
    backend
        The fused kernels' implementation: ``None`` (the fastest for the device and
        coupling), ``"numba"`` (CPU, ``local`` or ``none``) or ``"torch"`` (any).
    start_time, progress
        For the loop: the time of step 0 (passed to the field) and a progress bar.

    Returns
    -------
    position, velocity
        ``(B, C, *grid)`` after the last step; ``(T, B, C, *grid)`` with
        ``return_sequence``; ``(len(save_steps), B, C, *grid)`` with ``save_steps``.

    Raises
    ------
    OscsimInputError
        For any shape, dtype, device or option that is not allowed, before any work.

    Examples
    --------
    >>> import torch
    >>> from oscsim import ImexField, imex_sequence
    >>> k = torch.tensor([[[[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]]])
    >>> one = torch.ones(1)
    >>> field = ImexField("local", k, torch.zeros_like(k), torch.zeros(1), one, 0.1 * one)
    >>> drive = torch.zeros(5, 2, 1, 8, 8)
    >>> y0 = torch.zeros(2, 1, 8, 8); y0[:, :, 4, 4] = 1.0
    >>> y, z = imex_sequence(field, drive, y0, torch.zeros_like(y0), 0.1)
    >>> tuple(y.shape)
    (2, 1, 8, 8)
    """
    steps = drive.shape[0] if drive is not None else n_steps
    if steps is None or (drive is None and steps < 1):
        raise OscsimInputError("imex_sequence needs a drive of T >= 1 steps, or n_steps >= 1")
    record = _as_imex_field(field)
    spec = None
    if record is not None:
        spec = check_sequence(record, drive, position0, velocity0, dt, steps)
    elif steps < 1:
        raise OscsimInputError("imex_sequence needs a drive of T >= 1 steps, or n_steps >= 1")
    use_fused = fused is not False and _fused_applies(spec)
    if fused and not use_fused:
        raise OscsimInputError(
            "fused=True, but the fused imex kernel does not cover this field "
            "(it covers an ImexField or OscillatorNetwork with local, global or none coupling)"
        )
    if use_fused and record is not None and spec is not None:
        from oscsim.fused import run_fused

        if drive is None:
            drive = position0.new_zeros((steps, *position0.shape))
        if save_steps is None:
            return run_fused(
                record, spec, drive, position0, velocity0, dt,
                return_sequence=return_sequence, backend=backend,
            )  # fmt: skip
        positions, velocities = run_fused(
            record, spec, drive, position0, velocity0, dt, return_sequence=True, backend=backend
        )
        index = torch.as_tensor(list(save_steps), device=position0.device)
        positions = torch.cat([position0.unsqueeze(0), positions])[index]
        velocities = torch.cat([velocity0.unsqueeze(0), velocities])[index]
        return positions, velocities
    if not hasattr(field, "acceleration"):
        raise OscsimInputError(
            "field must be an ImexField or have acceleration(t, position, velocity, drive), "
            f"got {type(field).__name__}"
        )
    save = save_steps
    if save is None:
        save = range(1, steps + 1) if return_sequence else [steps]
    positions, velocities = imex_loop(
        field, position0, velocity0, dt, steps, list(save),
        start_time=start_time, drive=drive, progress=progress,
    )  # fmt: skip
    if save_steps is not None or return_sequence:
        return positions, velocities
    return positions[-1], velocities[-1]
