"""What the two fused operators share around `torch.autograd.Function`: the order of their
differentiable inputs, which of them need a gradient, and the gradient tuple they return.

Both operators are applied as ``Function.apply(call, *inputs)``: ``call`` is the
non-differentiable `Call` (the validated spec, the `ImexField`, whether the sequence is
returned); the inputs follow in the order of `INPUTS`, the field's tensors last (in the
order of `oscsim.solvers.imex_field.COEFFICIENTS`) only so that autograd sees them.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from oscsim.solvers.imex_field import COEFFICIENTS, ImexField, SequenceSpec

#: The differentiable inputs, after the one non-tensor `Call`.
INPUTS: tuple[str, ...] = ("drive", "position0", "velocity0", "dt", *COEFFICIENTS)
_LEADING = 1

#: What an operator returns: positions and velocities.
States = tuple[torch.Tensor, torch.Tensor]


class Call(NamedTuple):
    """The non-differentiable part of an operator call."""

    spec: SequenceSpec
    field: ImexField
    return_sequence: bool


def unpack(inputs: tuple[Any, ...]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, Any]:
    """``drive, position0, velocity0, dt`` of the inputs (the field's tensors follow them,
    passed only so that autograd sees them: ``forward`` reads them from the field)."""
    drive, position0, velocity0, dt = inputs[: len(INPUTS) - len(COEFFICIENTS)]
    return drive, position0, velocity0, dt


def needed(ctx: Any) -> dict[str, bool]:
    """Which inputs need a gradient, by name."""
    return dict(zip(INPUTS, ctx.needs_input_grad[_LEADING:], strict=True))


def gradients(grads: dict[str, torch.Tensor | None]) -> tuple[torch.Tensor | None, ...]:
    """The tuple ``backward`` returns: ``None`` for the non-tensor inputs and for any input
    missing from ``grads``."""
    return (None,) * _LEADING + tuple(grads.get(name) for name in INPUTS)
