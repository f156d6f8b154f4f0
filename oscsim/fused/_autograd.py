"""What the two fused operators share around `torch.autograd.Function`: the order of their
differentiable inputs, which of them need a gradient, and the gradient tuple they return.

Both operators are applied as ``Function.apply(spec, field, return_sequence, *INPUTS)``:
the `ImexField` itself is not differentiable, its tensors reach autograd as positional
inputs in the order of `oscsim.solvers.imex_field.COEFFICIENTS`.
"""

from __future__ import annotations

from typing import Any

import torch

from oscsim.solvers.imex_field import COEFFICIENTS

#: The differentiable inputs, after the three non-tensor ones (spec, field, return_sequence).
INPUTS: tuple[str, ...] = ("drive", "position0", "velocity0", "dt", *COEFFICIENTS)
_LEADING = 3


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
